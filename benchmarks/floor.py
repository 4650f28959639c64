"""The floor a synth is measured against (issue 24 item 11): "the same resources registered as plain
values with the same imports". Only the SDKs here: the floor's process must not import our own
components or settings, whose cost is the program's.

Each resource is registered as a program registers it: an instance of its SDK class
(``pulumi_aws.kms.Key(name, opts=..., description=...)``), never the generic
``pulumi.CustomResource(type, name, props)``. The class does per-class work the generic form skips -
its ``_internal_init`` building the ``...Args`` props, the input-type name translation
(pulumi/_types.py ``input_type_py_to_pulumi_names``, ``unwrap_type``; pulumi/runtime/rpc.py
``serialize_property``) and its typed outputs (pulumi/_types.py ``_types_from_py_properties``,
``_raw_return_hints``; pulumi/runtime/rpc.py ``translate_output_properties``) - and that is the
SDK's cost, not the program's."""

from __future__ import annotations

import importlib
import json
import sys
from functools import reduce
from typing import Any

import pulumi
from pulumi import _types
from pulumi.runtime import rpc

SIGNATURE = "4dabf18193072939515e22adb298388d"  # a checkpoint's special value (secret, asset...)
COMPONENT, SDK, BARE = "component", "sdk", "bare"
# pulumi_kubernetes/apiextensions/CustomResource.py: the class for a Kubernetes type its SDK has no
# class for (a CRD's kind); its constructor takes these top-level fields and no others
APIEXTENSIONS = ("pulumi_kubernetes.apiextensions", "CustomResource")
CRD_FIELDS = {"apiVersion": "api_version", "kind": "kind", "metadata": "metadata", "spec": "spec"}
# Inputs a class sets in its _internal_init whatever its caller passes, absent from its ...Args:
# pulumi_kubernetes/helm/v3/Release.py (`__props__.__dict__["compat"] = 'true'`)
SET_BY_CLASS = {"kubernetes:helm.sh/v3:Release": frozenset({"compat"})}


class UnmappedType(ValueError):
    """A custom type the floor cannot register through its SDK class: no silent generic fallback,
    which would let the floor quietly go back to the cheaper form."""


def plain_resources(document: dict) -> list[dict]:
    """What a floor registers for a synthesized export, in order: each resource's type, name, the
    SDK class that registers it (module path and class name) with its inputs as that class's Python
    keyword arguments, and for a custom resource which of the providers (registered first, as the
    program does: default providers are disabled) manages it. The stack itself is the engine's.

    The mapping is done here, in the measuring process, so the floor's process only reaches each
    class and calls it - as a program's source does. Raises UnmappedType for a custom type no SDK
    class registers (the SDKs whose types these are must be imported: their registries are read)."""
    resources = [r for r in document["deployment"]["resources"] if r["type"] != "pulumi:pulumi:Stack"]
    providers = {f"{r['urn']}::{r.get('id', '')}": i for i, r in enumerate(resources)
                 if r["type"].startswith("pulumi:providers:")}
    plain = []
    for i, r in enumerate(resources):
        inputs = plain_value(r.get("inputs") or {})
        entry = {"type": r["type"], "name": f"{i}-{r['urn'].rsplit('::', 1)[-1]}",
                 "provider": providers.get(r.get("provider") or "")}
        if not r.get("custom"):
            entry.update(form=COMPONENT)
        else:
            entry.update(_registration(r["type"], inputs))
        plain.append(entry)
    return plain


def plain_value(value: Any) -> Any:
    """The export's values as plain JSON: a checkpoint secret becomes a plain string."""
    if isinstance(value, dict):
        return "[secret]" if SIGNATURE in value else {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_value(v) for v in value]
    return value


def _registration(type_: str, inputs: dict) -> dict:
    """How a program registers a custom resource of ``type_`` with these (wire) inputs."""
    found = sdk_class(type_)
    if found is not None:
        module, name = found
        return {"form": SDK, "module": module, "class": name, "kwargs": _keyword_arguments(type_, module, name, inputs)}
    if type_.startswith("kubernetes:"):
        # a kind no SDK class stands for: what the program registers it with (helpers/kube.py)
        api_version, kind = type_.split(":")[1:]
        if (inputs.get("apiVersion"), inputs.get("kind")) != (api_version, kind):
            raise UnmappedType(f"{type_}: its inputs name apiVersion {inputs.get('apiVersion')!r}, "
                               f"kind {inputs.get('kind')!r}, not the type's")
        if set(inputs) <= set(CRD_FIELDS):
            module, name = APIEXTENSIONS
            return {"form": SDK, "module": module, "class": name,
                    "kwargs": {CRD_FIELDS[key]: value for key, value in inputs.items()}}
        # apiextensions.CustomResource takes no other top-level field (a VolumeSnapshotClass's
        # driver): the program registers such a kind by its type token (components/neo4j_snapshots.py)
        return {"form": BARE, "kwargs": inputs}
    raise UnmappedType(f"{type_}: no SDK class registers this type (none of the imported SDKs' "
                       "registries lists it), so the floor cannot register it as a program would")


def sdk_class(type_: str) -> tuple[str, str] | None:
    """The module path and class name the SDKs register for a type token (the registries the
    engine's resource references are resolved with: pulumi/runtime/rpc.py ``_RESOURCE_PACKAGES``
    for a provider ``pulumi:providers:<pkg>``, ``_RESOURCE_MODULES`` keyed "<pkg>:<module>"
    otherwise; each SDK's _utilities.py Package.pkg_info / Module.mod_info hold ``fqn`` and the class)."""
    pkg, module, name = (type_.split(":") + ["", ""])[:3]
    if (pkg, module) == ("pulumi", "providers"):
        found = {(info["fqn"], info["class"]) for package in rpc._RESOURCE_PACKAGES.get(name, [])
                 if (info := getattr(package, "pkg_info", None)) and info.get("token") == type_}
    else:
        found = {(info["fqn"], info["classes"][type_]) for registered in rpc._RESOURCE_MODULES.get(f"{pkg}:{module}", [])
                 if (info := getattr(registered, "mod_info", None)) and type_ in info.get("classes", {})}
    if len(found) > 1:
        raise UnmappedType(f"{type_}: several SDK classes are registered for it: {sorted(found)}")
    return found.pop() if found else None


def resolve(module: str, name: str) -> type:
    """The class as a program reaches it: attribute by attribute from the top package
    (``pulumi_kubernetes.core.v1.Service``), so the SDK's lazy modules load as they do for it."""
    top, *path = module.split(".")
    return getattr(reduce(getattr, path, importlib.import_module(top)), name)


def args_class(cls: type) -> type:
    """A resource class's ``...Args`` input type: the other name its generated module exports
    (``__all__ = ['KeyArgs', 'Key']``; Kubernetes' typed kinds call theirs ``ServiceInitArgs``)."""
    module = sys.modules[cls.__module__]
    names = [n for n in getattr(module, "__all__", ()) if n != cls.__name__]
    if len(names) != 1 or not _types.is_input_type(found := getattr(module, names[0])):
        raise UnmappedType(f"{cls.__module__}.{cls.__name__}: no single input type beside it in {names}")
    return found


def _keyword_arguments(type_: str, module: str, name: str, inputs: dict) -> dict:
    """The export's top-level (wire, camelCase) inputs as the class's Python keyword arguments, by
    the names its ...Args declare (pulumi/_types.py input_type_py_to_pulumi_names). Nested values
    keep their wire names: serialize_property translates a key through the input type's names and
    keeps one it does not know, so the same inputs reach the engine (tests/test_benchmarks.py)."""
    cls = resolve(module, name)
    args = args_class(cls)
    python_names = {wire: python for python, wire in _types.input_type_py_to_pulumi_names(args).items()}
    unknown = set(inputs) - set(python_names) - SET_BY_CLASS.get(type_, frozenset())
    if unknown:
        raise UnmappedType(f"{type_}: inputs {sorted(unknown)} are not arguments of {module}.{name}")
    # A provider sends every input that is not a string as JSON text (pulumi_aws/provider.py:
    # `pulumi.Output.from_input(default_tags).apply(pulumi.runtime.to_json)`): a program passes the value
    json_encoded = issubclass(cls, pulumi.ProviderResource)
    types = _types.input_type_types(args) if json_encoded else {}
    return {python_names[key]: json.loads(value) if json_encoded and isinstance(value, str) and types.get(key) is not str
            else value
            for key, value in inputs.items() if key in python_names}


def plain_program(resources: list[dict]):
    """The floor (issue 24 item 11: "the same resources registered as plain values with the same
    imports"): every resource of the measured program - its type, its inputs, its provider -
    registered under the same engine and mocks through its SDK class, as plain values: no Output,
    parent or dependency, none of the program's own computation. What synth costs beyond it is ours."""
    def run() -> None:
        registered: dict[int, pulumi.ProviderResource] = {}
        for i, r in enumerate(resources):
            if r["form"] == COMPONENT:
                pulumi.ComponentResource(r["type"], r["name"])
                continue
            provider = registered.get(r["provider"]) if r["provider"] is not None else None
            opts = pulumi.ResourceOptions(provider=provider)
            if r["form"] == BARE:
                pulumi.CustomResource(r["type"], r["name"], dict(r["kwargs"]), opts=opts)
                continue
            resource = resolve(r["module"], r["class"])(r["name"], opts=opts, **r["kwargs"])
            if isinstance(resource, pulumi.ProviderResource):
                registered[i] = resource

    return run
