"""The configuration reference, generated from the settings schema (settings/ is the only source).

    python -m synth.config_reference > docs/configuration.md

tests/test_config_reference.py fails when the committed file differs from what this prints.
"""

from __future__ import annotations

import json
import sys
from typing import Any

HEADER = """# Configuration reference

Generated from `settings/` by `python -m synth.config_reference > docs/configuration.md`; do not
edit by hand. Every key lives under the `intelgraph-platform:` namespace of `Pulumi.<stack>.yaml`;
besides it, only the engine's namespace and the providers' are read ({others}): a key in any other
namespace (a misspelt project prefix) is an error. Unknown keys are errors; a bad value stops
`python -m synth` with exit 2 before anything is registered, naming the key, the value and what is
allowed. Rules that relate several keys (S3 lifecycle minimums, CIDRs inside their region's VPC,
...) are listed in `settings/` beside the model they judge.
"""


def _resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = {**defs[schema["$ref"].split("/")[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _variants(schema: dict, defs: dict) -> list[dict]:
    """The non-null alternatives of an Optional/Union, resolved."""
    options = schema.get("anyOf") or [schema]
    return [_resolve(o, defs) for o in options if o.get("type") != "null"]


def _allowed(schema: dict, defs: dict) -> str:
    parts = []
    for option in _variants(schema, defs):
        if "enum" in option:
            parts.append(" | ".join(f"`{json.dumps(v)}`" for v in option["enum"]))
        elif "const" in option:
            parts.append(f"`{json.dumps(option['const'])}`")
        elif option.get("type") == "array":
            items = _allowed(option.get("items", {}), defs)
            bounds = _bounds(option, "minItems", "maxItems", "items")
            parts.append(f"list of {items}" + (f" ({bounds})" if bounds else ""))
        elif option.get("type") == "object" or "properties" in option:
            parts.append("object (below)")
        else:
            text = option.get("type", "any")
            bounds = _bounds(option, "minimum", "maximum") or _bounds(option, "minLength", "maxLength", "characters")
            if "pattern" in option:
                bounds = ", ".join(filter(None, [bounds, f"pattern `{option['pattern']}`"]))
            parts.append(text + (f" ({bounds})" if bounds else ""))
    return " or ".join(parts)


def _bounds(schema: dict, low: str, high: str, unit: str = "") -> str:
    lo, hi = schema.get(low), schema.get(high)
    suffix = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f"{lo}-{hi}{suffix}"
    if lo is not None:
        return f">= {lo}{suffix}"
    if hi is not None:
        return f"<= {hi}{suffix}"
    return ""


def _rows(schema: dict, defs: dict, prefix: str, required: set[str]) -> list[tuple[str, str, str, str]]:
    rows = []
    for key, field in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = "required" if key in required else f"default `{json.dumps(field.get('default'))}`"
        rows.append((path, _allowed(field, defs), default, field.get("description", "")))
        for option in _variants(field, defs):
            if option.get("type") == "array":
                option = _resolve(option.get("items", {}), defs)
                if "properties" in option:
                    rows += _rows(option, defs, f"{path}[].", set(option.get("required", [])))
            elif "properties" in option:
                rows += _rows(option, defs, f"{path}.", set(option.get("required", [])))
    return rows


def reference() -> str:
    import settings

    schema = settings.StackSettings.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    out = [HEADER.format(others=", ".join(f"`{ns}:`" for ns in (settings.ENGINE_NAMESPACE,
                                                                  *settings.PROVIDER_NAMESPACES)))]
    for section, field in schema["properties"].items():
        out.append(f"\n## `{section}`\n")
        if field.get("description"):
            out.append(f"{field['description']}\n")
        rows = _rows({"properties": {section: field}}, defs, "", set(schema.get("required", [])))
        out.append("| key | allowed | | description |")
        out.append("|-----|---------|---|-------------|")
        out += [f"| `{_cell(path)}` | {_cell(allowed)} | {_cell(default)} | {_cell(text)} |"
                for path, allowed, default, text in rows]
    return "\n".join(out) + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main() -> int:
    sys.stdout.write(reference())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
