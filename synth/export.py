"""Write a synthesis the way Pulumi would: a v3 stack export, and Kubernetes manifests."""

from __future__ import annotations

import io
import json
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from pulumi.runtime import rpc

from synth import helm
from synth.engine import STACK_TYPE, Resource, Synthesis, _numbers
from synth.helm import RENDERED_BY

# Pulumi's signature for a secret value in a checkpoint (see `pulumi stack export`).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# synth has no stack secrets provider, so a secret's value is never written, only marked.
REDACTED = "synth:redacted"


def secret_marker(value: Any = None, show: bool = False) -> dict:
    """A secret as a checkpoint holds it: encrypted (here: redacted), or, as `pulumi stack export
    --show-secrets` writes it, with the JSON text of its value under "plaintext"."""
    if show:
        return {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(_plain(value, show))}
    return {SIG_KEY: SECRET_SIG, "ciphertext": REDACTED}


def _plain(value: Any, show: bool = False) -> Any:
    """Engine values -> JSON, with every secret replaced by its export marker."""
    if rpc.is_rpc_secret(value):
        return secret_marker(rpc.unwrap_rpc_secret(value), show)
    if isinstance(value, dict):
        return {k: _plain(v, show) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, show) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _ordered(resources: list[Resource]) -> list[Resource]:
    """Deterministic order in which everything a resource needs comes before it (as in a checkpoint)."""
    by_urn = {r.urn: r for r in resources}
    placed: set[str] = set()
    ordered: list[Resource] = []

    def place(resource: Resource) -> None:
        if resource.urn in placed:
            return
        placed.add(resource.urn)
        needs = [resource.parent, (resource.provider or "").rsplit("::", 1)[0], *resource.dependencies]
        for urn in sorted(u for u in needs if u in by_urn):
            place(by_urn[urn])
        ordered.append(resource)

    for resource in sorted(resources, key=lambda r: (r.type != STACK_TYPE, r.urn)):
        place(resource)
    return ordered


def to_export(synthesis: Synthesis, show_secrets: bool = False) -> dict:
    """The synthesis as `pulumi stack export` (deployment v3) would show it; with ``show_secrets``
    as `pulumi stack export --show-secrets` does (never written to disk by synth)."""
    entries = []
    for r in _ordered(synthesis.resources):
        outputs = {
            key: secret_marker(value, show_secrets) if key in r.secret_outputs else _plain(value, show_secrets)
            for key, value in r.outputs.items()
        }
        entry: dict[str, Any] = {"urn": r.urn, "custom": r.custom}
        if r.custom:
            entry["id"] = r.id or ""
        entry.update(type=r.type, inputs=_plain(r.inputs, show_secrets), outputs=outputs)
        if r.parent:
            entry["parent"] = r.parent
        if r.provider:
            entry["provider"] = r.provider
        if r.dependencies:
            entry["dependencies"] = sorted(set(r.dependencies))
        deps = {k: sorted(set(v)) for k, v in r.property_dependencies.items() if v}
        if deps:
            entry["propertyDependencies"] = dict(sorted(deps.items()))
        # as the checkpoint writes them: present only when set
        if r.protect:
            entry["protect"] = True
        if r.retain_on_delete:
            entry["retainOnDelete"] = True
        if r.aliases:
            entry["aliases"] = r.aliases
        if r.ignore_changes:
            entry["ignoreChanges"] = r.ignore_changes
        entries.append(entry)
    return {
        "version": 3,
        "deployment": {
            "manifest": {"time": "1970-01-01T00:00:00Z", "magic": "", "version": "synth"},
            "resources": entries,
        },
    }


MASK = "REDACTED-BY-SYNTH"


def _masked(value: Any) -> Any:
    """A secret's shape with every value masked: the manifest stays valid, the secret stays out."""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return MASK


def _manifest_value(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        return _masked(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _manifest_value(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_manifest_value(v) for v in value]
    return value


CLUSTERS = ("primary", "dr")


def cluster_of(provider_ref: str | None) -> str:
    """Which region's cluster a Kubernetes resource goes to: its provider (``eks`` for the primary
    cluster, ``eks-dr`` for the DR region's; __main__.py names them)."""
    name = provider_ref.split("::")[-2] if provider_ref and provider_ref.count("::") >= 2 else ""
    return "dr" if name.endswith("-dr") else "primary"


def every_cluster_objects(synthesis: Synthesis) -> list[dict]:
    """The Kubernetes objects of every region's cluster: what the validators judge."""
    return [obj for cluster in CLUSTERS for obj in kubernetes_objects(synthesis, cluster)]


def kubernetes_objects(synthesis: Synthesis, cluster: str = "primary") -> list[dict]:
    """Every Kubernetes object the stack creates directly in one region's ``cluster``, as its API
    server would receive it (secret values masked). Helm releases are not objects - Helm renders
    them at deploy time - and stay in stack.json; ``render_releases`` renders what they create."""
    objects = []
    for r in synthesis.resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith(("kubernetes:helm.sh", "pulumi:")):
            continue
        if cluster_of(r.provider) != cluster:
            continue
        body = _manifest_value({k: v for k, v in r.inputs.items() if not k.startswith("__")})
        metadata = {**body.get("metadata", {}), "name": r.outputs["metadata"]["name"]}
        head = {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind"), "metadata": metadata}
        body.pop("metadata", None)
        objects.append({**head, **body})
    return objects


_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present


class _ManifestDumper(_SafeDumper):
    """Multi-line strings (config files, scripts) as literal blocks: readable in review."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _str)


def manifest_name(obj: dict) -> str:
    """``<namespace>_<Kind>_<name>.yaml``; an object a Helm release renders is prefixed with
    ``rendered-by-<release>_`` (releases of one chart render objects of the same name)."""
    metadata = obj["metadata"]
    parts = [metadata.get("namespace", "_cluster"), obj.get("kind", "Object"), metadata["name"]]
    release = (metadata.get("annotations") or {}).get(RENDERED_BY)
    if release:
        parts.insert(0, "rendered-by-" + release.rsplit("/", 1)[-1])
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "_".join(parts)) + ".yaml"


def manifest_dir(out: Path, cluster: str) -> Path:
    """manifests/ holds the primary cluster's objects, manifests/dr/ the DR region's cluster's."""
    return out / "manifests" if cluster == "primary" else out / "manifests" / cluster


def write(synthesis: Synthesis, out: Path, export: dict, rendered: Sequence[dict] = ()) -> list[Path]:
    """Write stack.json and the manifests of each cluster (the stack's own objects and the
    ``rendered`` entries of its releases) under ``out``; return the manifest paths."""
    # every file's name and text first: a manifest that cannot be written stops synth before
    # anything in ``out`` changed
    clusters = []
    for cluster in CLUSTERS:
        manifests = manifest_dir(out, cluster)
        objects = [*kubernetes_objects(synthesis, cluster),
                   *(entry["inputs"] for entry in rendered if cluster_of(entry.get("provider")) == cluster)]
        paths = [manifests / manifest_name(obj) for obj in objects]
        _refuse_shared_names(objects, paths)
        clusters.append((manifests, paths, _manifest_texts(objects)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "stack.json").write_text(json.dumps(export, indent=2, sort_keys=False) + "\n")
    written: list[Path] = []
    for manifests, paths, texts in clusters:
        manifests.mkdir(parents=True, exist_ok=True)
        # only what this synth does not write again goes: a file written anew replaces its old
        # contents anyway, and unlinking all of them first cost more than writing them
        for old in set(manifests.glob("*.yaml")) - set(paths):
            old.unlink()
        for path, text in zip(paths, texts, strict=True):
            path.write_text(text)
        written += paths
    return written


def _refuse_shared_names(objects: list[dict], paths: list[Path]) -> None:
    """Two objects whose manifests would share a file (the name leaves out apiVersion and turns
    other characters into '-'): the second would silently replace the first."""
    seen: dict[Path, dict] = {}
    for obj, path in zip(objects, paths, strict=True):
        if path in seen:
            first = seen[path]
            raise ValueError(f"{first.get('apiVersion')} {first.get('kind')} {first['metadata'].get('name')!r} and "
                             f"{obj.get('apiVersion')} {obj.get('kind')} {obj['metadata'].get('name')!r} would both be "
                             f"written to {path.name}; rename one of them")
        seen[path] = obj


def _manifest_texts(objects: list[dict]) -> list[str]:
    """Each object's YAML document, from one emitter for all of them: a dumper per object cost a
    third of writing prod's manifests (issue 24 item 11). The emitter writes each document whole
    when it ends, so the stream's position after each marks where it stops; every document opens
    with an explicit ``---`` line, dropped here. Each text is what dumping its object alone writes,
    except the ``...`` end marker a lone dump adds after a document left open (a string kept with
    its trailing newlines), which YAML does not need at the end of a file."""
    stream = io.StringIO()
    dumper = _ManifestDumper(stream, sort_keys=False, allow_unicode=True, explicit_start=True)
    dumper.open()
    ends = []
    for obj in objects:
        dumper.represent(obj)
        ends.append(stream.tell())
    dumper.close()
    text = stream.getvalue()
    documents = [text[start:end] for start, end in zip([0, *ends][:-1], ends, strict=True)]
    if not all(document.startswith("---\n") for document in documents):
        raise RuntimeError("the YAML emitter did not write one document per object; manifests not written")
    return [document[len("---\n"):] for document in documents]


RELEASE = "kubernetes:helm.sh/v3:Release"


def _type_token(obj: dict) -> str:
    """Pulumi's type token for a Kubernetes object: core group objects are ``core/v1``."""
    api = str(obj.get("apiVersion", ""))
    return f"kubernetes:{api if '/' in api else 'core/' + api}:{obj.get('kind')}"


def _unsecret(value: Any) -> Any:
    """Values with each encrypted secret as a masked string: secrets never decide pod security,
    and helm needs a string where the chart expects one."""
    if isinstance(value, dict):
        return MASK if SIG_KEY in value else {k: _unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(v) for v in value]
    return value


def _release_job(release: dict) -> tuple[str, str, str, dict] | None:
    """What ``helm.render`` takes for one release entry of an export: (release name, namespace,
    chart, values), or None when its values are encrypted as a whole (nothing to render:
    k8s-helm-values-hardened says so)."""
    props = release.get("inputs") or release.get("outputs") or {}
    name, namespace = props.get("name"), props.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str) or not isinstance(props.get("chart"), str):
        raise ValueError(f"Helm release {release['urn']} names no chart, release name or namespace")
    chart = props["chart"].rsplit("/", 1)[-1]  # "repo/neo4j" and "neo4j" are the same chart source
    values = props.get("values") or {}
    if SIG_KEY in values:
        return None
    return name, namespace, chart, _unsecret(values)


_RENDER_INPUTS = ("name", "namespace", "chart", "values")  # what _release_job reads


def _job_key(job: tuple[str, str, str, dict]) -> str:
    return json.dumps(job, sort_keys=True)


class ReleasePrefetch:
    """Starts ``helm template`` for each Helm release the moment the program registers it, so the
    renders (helm processes) run beside the rest of the registration instead of after it (issue 24
    item 11). A render started here is used only for the very job ``render_releases`` then reads
    from the export - same release, namespace, chart and values, compared in full - so what is
    rendered is what the export says, as before; any other job renders as it always did."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="helm-prefetch")
        self._started: dict[str, Future] = {}
        self._lock = threading.Lock()

    def __call__(self, resource: Resource) -> None:
        """A RecordingMonitor listener: called with each resource as it is registered."""
        if resource.type == RELEASE:
            self._start({"urn": resource.urn, "inputs": _plain(resource.inputs)})

    def constructed(self, type_: str, name: str, props: Mapping[str, Any]) -> None:
        """A RecordingMonitor ``constructing`` listener: a release whose inputs are plain values
        already is started as the program constructs it. A release registers only after every
        resource it depends on, and the Neo4j roll chains each server's release after the one
        before: prod's ten registered last, and synth then waited for their helm processes
        (issue 24 item 11). A release whose inputs hold an Output starts at registration."""
        if type_ != RELEASE:
            return
        try:  # what a render takes, as the engine will record it: JSON values (a tuple is a list,
            # a whole float an int: engine._numbers)
            inputs = _numbers(json.loads(json.dumps({key: props.get(key) for key in _RENDER_INPUTS})))
        except TypeError:
            return  # an Output (or another value known only later) in what the render takes
        self._start({"urn": name, "inputs": inputs})

    def _start(self, release: dict) -> None:
        try:
            job = _release_job(release)
        except ValueError:
            return  # render_releases names the release and what it lacks
        if job is not None:
            key = _job_key(job)
            with self._lock:
                if key not in self._started:  # the same release seen constructed, then registered
                    self._started[key] = self._pool.submit(helm.render, *job)

    def take(self, job: tuple[str, str, str, dict]) -> Future | None:
        with self._lock:
            return self._started.pop(_job_key(job), None)

    def close(self) -> None:
        """Stop what was not taken (a program that failed, an export rendered elsewhere)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def render_releases(document: dict, prefetched: ReleasePrefetch | None = None) -> list[dict]:
    """Every object the export's Helm releases render, rendered with the real chart and helm from
    the values in the export itself (so an edited export renders what it says), as export entries:
    children of their release (the URN names the release, as Pulumi names a chart's children), the
    object as both inputs and outputs. The engine never sees these; synth and ``synth check`` judge
    them beside the rest. ``prefetched`` holds renders already started for the same jobs."""
    jobs = []
    for release in document.get("deployment", {}).get("resources", []):
        if release.get("type") != RELEASE:
            continue
        job = _release_job(release)
        if job is not None:
            jobs.append((release, job))
    # each render waits on its own helm process: run them side by side (one per core), in order
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [(prefetched and prefetched.take(job)) or pool.submit(helm.render, *job) for _, job in jobs]
        rendered = [future.result() for future in futures]
    entries = []
    for (release, (name, *_)), objects in zip(jobs, rendered, strict=True):
        prefix = release["urn"].rsplit("::", 1)[0]
        for obj in objects:
            type_ = _type_token(obj)
            meta = obj["metadata"]
            entry = {"urn": f"{prefix}${type_}::{name}:{meta.get('namespace')}/{meta['name']}", "custom": True,
                     "id": "", "type": type_, "inputs": obj, "outputs": obj, "parent": release["urn"]}
            if release.get("provider"):
                entry["provider"] = release["provider"]
            entries.append(entry)
    return entries


def with_rendered(document: dict, rendered: list[dict] | None = None) -> dict:
    """The export plus what its releases render: what synth and ``synth check`` judge."""
    rendered = render_releases(document) if rendered is None else rendered
    deployment = document.get("deployment", {})
    return {**document, "deployment": {**deployment, "resources": [*deployment.get("resources", []), *rendered]}}
