"""Strict validation of custom resources against the upstream CRDs in ../shared/crds, and those kept
with the tests in tests/upstream-crds (each folder's README names its upstream and version).

A CRD schema leaves ``additionalProperties`` open, but the API server prunes (and
``kubectl --validate=strict`` reports) every field the schema does not declare, unless the schema
says ``x-kubernetes-preserve-unknown-fields``. So strict validation closes every object schema
that declares properties.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[2] / "shared" / "crds"
TEST_CRDS = Path(__file__).resolve().parent / "upstream-crds"


class _CrdLoader(yaml.SafeLoader):
    """The AlertmanagerConfig CRD lists the matcher ``=`` in an enum: YAML 1.1 reads a bare ``=``
    as the ``value`` tag, which the safe loader refuses. It is just the string."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def strict(schema: dict) -> dict:
    schema = dict(schema)
    if schema.get("type") == "object" and "properties" in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    for key in ("properties", "patternProperties"):
        if key in schema:
            schema[key] = {k: strict(v) for k, v in schema[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [strict(s) for s in schema[key]]
    return schema


@cache
def crd_schema(api_version: str, kind: str) -> dict:
    group, version = api_version.split("/")
    for path in (*CRDS.rglob("*.yaml"), *TEST_CRDS.rglob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_CrdLoader)
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        if spec["group"] == group and spec["names"]["kind"] == kind:
            served = next(v for v in spec["versions"] if v["name"] == version and v["served"])
            return strict(served["schema"]["openAPIV3Schema"])
    raise LookupError(f"no CRD for {api_version} {kind} under {CRDS} or {TEST_CRDS}")


def validate(obj: dict) -> None:
    """Raise jsonschema.ValidationError when ``obj`` does not match its CRD strictly (metadata is
    ObjectMeta, which the CRD leaves to the API server). OpenAPI v3 schemas are JSON Schema
    draft 4 plus extensions; the schema itself is not checked by Python's regex rules because
    some patterns use Go's RE2 syntax (``(?i)`` mid-pattern), which the API server compiles."""
    check(obj, crd_schema(obj["apiVersion"], obj["kind"]))


def check(value, schema: dict) -> None:
    """Validate ``value`` against one (already strict) sub-schema of a CRD."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft4Validator(schema).iter_errors(value))
    if error is not None:
        raise error
