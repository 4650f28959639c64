"""Write a synthesis the way Pulumi would: a v3 stack export, and Kubernetes manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import rpc

from synth.engine import STACK_TYPE, Resource, Synthesis

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


def kubernetes_objects(synthesis: Synthesis) -> list[dict]:
    """Every Kubernetes object the stack creates directly, as the API server would receive it
    (secret values masked). Helm releases are not objects - Helm renders them at deploy time -
    and stay in stack.json."""
    objects = []
    for r in synthesis.resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith(("kubernetes:helm.sh", "pulumi:")):
            continue
        body = _manifest_value({k: v for k, v in r.inputs.items() if not k.startswith("__")})
        metadata = {**body.get("metadata", {}), "name": r.outputs["metadata"]["name"]}
        head = {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind"), "metadata": metadata}
        body.pop("metadata", None)
        objects.append({**head, **body})
    return objects


class _ManifestDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml when present
    """Multi-line strings (config files, scripts) as literal blocks: readable in review."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _str)


def write(synthesis: Synthesis, out: Path, export: dict) -> list[Path]:
    """Write stack.json and manifests/ under ``out``; return the manifest paths."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "stack.json").write_text(json.dumps(export, indent=2, sort_keys=False) + "\n")
    manifests = out / "manifests"
    manifests.mkdir(exist_ok=True)
    for old in manifests.glob("*.yaml"):
        old.unlink()
    written = []
    for obj in kubernetes_objects(synthesis):
        namespace = obj["metadata"].get("namespace", "_cluster")
        stem = "_".join([namespace, obj.get("kind", "Object"), obj["metadata"]["name"]])
        path = manifests / (re.sub(r"[^A-Za-z0-9_.-]", "-", stem) + ".yaml")
        path.write_text(yaml.dump(obj, Dumper=_ManifestDumper, sort_keys=False, allow_unicode=True))
        written.append(path)
    return written
