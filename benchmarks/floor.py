"""The floor a synth is measured against (issue 24 item 11): "the same resources registered as plain
values with the same imports". Only the SDK here: the floor's process must not import our own
components or settings, whose cost is the program's."""

from __future__ import annotations

import pulumi


def plain_resources(document: dict) -> list[dict]:
    """What a floor registers for a synthesized export: each resource's type, name and inputs, and
    for a custom resource which of the providers (registered first, as the program does: default
    providers are disabled) manages it. The stack itself is the engine's."""
    resources = [r for r in document["deployment"]["resources"] if r["type"] != "pulumi:pulumi:Stack"]
    providers = {f"{r['urn']}::{r.get('id', '')}": i for i, r in enumerate(resources)
                 if r["type"].startswith("pulumi:providers:")}
    return [{"type": r["type"], "name": f"{i}-{r['urn'].rsplit('::', 1)[-1]}", "custom": bool(r.get("custom")),
             "inputs": _plain(r.get("inputs") or {}), "provider": providers.get(r.get("provider") or "")}
            for i, r in enumerate(resources)]


SIGNATURE = "4dabf18193072939515e22adb298388d"  # a checkpoint's special value (secret, asset...)


def _plain(value):
    """The export's values as plain JSON: a checkpoint secret becomes a plain string."""
    if isinstance(value, dict):
        return "[secret]" if SIGNATURE in value else {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def plain_program(resources: list[dict]):
    """The floor (issue 24 item 11: "the same resources registered as plain values with the same
    imports"): every resource of the measured program - its type, its inputs, its provider -
    registered under the same engine and mocks, as plain values: no Output, parent or dependency,
    none of the program's own computation. What synth costs beyond it is ours."""
    def run() -> None:
        registered: dict[int, pulumi.ProviderResource] = {}
        for i, r in enumerate(resources):
            if r["type"].startswith("pulumi:providers:"):
                registered[i] = pulumi.ProviderResource(r["type"].rsplit(":", 1)[-1], r["name"], dict(r["inputs"]))
            elif r["custom"]:
                provider = registered.get(r["provider"]) if r["provider"] is not None else None
                pulumi.CustomResource(r["type"], r["name"], dict(r["inputs"]),
                                      opts=pulumi.ResourceOptions(provider=provider))
            else:
                pulumi.ComponentResource(r["type"], r["name"])

    return run
