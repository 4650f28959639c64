"""Apply the CrossGuard pack to a stack export, offline, the way the Pulumi engine would.

The same rule objects that ``policy/__main__.py`` serves to the engine are called here with the
same argument types, props wrapped in the same unknown-checking proxy. Works on our synth output
and on a real ``pulumi stack export`` (props come from inputs, or from outputs when a checkpoint
has none).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from policy.guardrails import PACK_NAME, POLICIES
from policy.guardrails import exceptions as policy_exceptions

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "policy" / "config"


@dataclass
class Finding:
    urn: Optional[str]
    message: str


@dataclass
class Verdict:
    policy: str
    description: str
    kind: str  # "resource" | "stack"
    level: str  # "mandatory" | "advisory" | "disabled"
    evaluated: int = 0
    violations: list[Finding] = field(default_factory=list)
    cannot_tell: list[Finding] = field(default_factory=list)
    waived: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    pack: str
    verdicts: list[Verdict]

    @property
    def mandatory_violations(self) -> list[tuple[str, Finding]]:
        return [(v.policy, f) for v in self.verdicts if v.level == "mandatory" for f in v.violations]

    @property
    def advisory_violations(self) -> list[tuple[str, Finding]]:
        return [(v.policy, f) for v in self.verdicts if v.level == "advisory" for f in v.violations]

    def to_json(self) -> dict:
        return {
            "pack": self.pack,
            "summary": {
                "policies": len(self.verdicts),
                "mandatoryViolations": len(self.mandatory_violations),
                "advisoryViolations": len(self.advisory_violations),
            },
            "policies": [asdict(v) for v in self.verdicts],
        }


def pack_config(stack: Optional[str]) -> dict[str, Any]:
    """``policy/config/<stack>.json`` - the file given to ``--policy-pack-config`` for that stack."""
    if not stack:
        return {}
    path = CONFIG_DIR / f"{stack}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise ValueError(f"no policy config {path.relative_to(ROOT)} for stack {stack!r}; known: {known}")
    return json.loads(path.read_text())


def _level(policy, config: dict[str, Any]) -> tuple[str, dict]:
    entry = config.get(policy.name, config.get("all"))
    settings: dict = {}
    if isinstance(entry, str):
        level = entry
    elif isinstance(entry, dict):
        settings = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        level = entry.get("enforcementLevel")
    else:
        level = None
    if level is None:
        level = (policy.enforcement_level or EnforcementLevel.MANDATORY).value
    if level not in ("mandatory", "advisory", "disabled", "remediate"):
        raise ValueError(f"policy config for {policy.name}: unknown enforcement level {level!r}")
    # as the engine does: the rule's schema defaults, overridden by the stack's settings
    schema = policy.config_schema.properties if policy.config_schema else {}
    unknown = set(settings) - set(schema)
    if unknown:
        raise ValueError(f"policy config for {policy.name}: unknown settings {sorted(unknown)}")
    defaults = {k: v["default"] for k, v in schema.items() if "default" in v}
    return level, {**defaults, **settings}


def _props(entry: dict) -> dict:
    """Resource policies judge what the program asks for: inputs (outputs for an export without)."""
    return entry.get("inputs") or entry.get("outputs") or {}


def _state(entry: dict) -> dict:
    """Stack policies judge the resulting state, as the engine's AnalyzeStack does: the declared
    inputs, completed by outputs only the provider knows (ARNs, ids, regions, stack outputs)."""
    return {**(entry.get("outputs") or {}), **(entry.get("inputs") or {})}


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _options(entry: dict) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=bool(entry.get("protect", False)), ignore_changes=[], delete_before_replace=None,
        aliases=[], custom_timeouts=None, additional_secret_outputs=[], parent=entry.get("parent"),
    )


class _Stack:
    """Index of an export: providers by reference, so rules can see a resource's region."""

    def __init__(self, entries: list[dict]):
        self.entries = entries
        self._by_urn = {e["urn"]: e for e in entries}
        self._providers: dict[str, Optional[PolicyProviderResource]] = {}

    def provider(self, entry: dict) -> Optional[PolicyProviderResource]:
        ref = entry.get("provider")
        if not ref:
            return None
        if ref not in self._providers:
            provider = self._by_urn.get(ref.rsplit("::", 1)[0])
            self._providers[ref] = provider and PolicyProviderResource(
                provider["type"], unknown_checking_proxy(_props(provider)), provider["urn"], _name(provider["urn"]))
        return self._providers[ref]

    @cached_property
    def resource_views(self) -> list[tuple[dict, Any, PolicyResourceOptions, Optional[PolicyProviderResource]]]:
        """What every resource policy sees of each entry, built once (not once per policy)."""
        return [(e, unknown_checking_proxy(_props(e)), _options(e), self.provider(e)) for e in self.entries]

    @cached_property
    def policy_resources(self) -> list[PolicyResource]:
        resources = {
            e["urn"]: PolicyResource(
                resource_type=e["type"], props=unknown_checking_proxy(_state(e)), urn=e["urn"],
                name=_name(e["urn"]), opts=_options(e), provider=self.provider(e), parent=None,
                dependencies=[], property_dependencies={},
            )
            for e in self.entries
        }
        for e in self.entries:
            resource = resources[e["urn"]]
            resource.parent = resources.get(e.get("parent"))
            resource.dependencies = [resources[u] for u in e.get("dependencies", []) if u in resources]
            resource.property_dependencies = {
                key: [resources[u] for u in urns if u in resources]
                for key, urns in (e.get("propertyDependencies") or {}).items()
            }
        return list(resources.values())


def evaluate(export: dict, stack: Optional[str] = None, policies=None,
             config: Optional[dict[str, Any]] = None) -> Report:
    """Run every policy over ``export``; ``config`` defaults to the stack's pack config file."""
    policies = POLICIES if policies is None else policies
    config = pack_config(stack) if config is None else config
    stack_index = _Stack(list(export.get("deployment", {}).get("resources", [])))
    verdicts = []
    for policy in policies:
        level, settings = _level(policy, config)
        kind = "stack" if isinstance(policy, StackValidationPolicy) else "resource"
        verdict = Verdict(policy.name, policy.description, kind, level)
        verdicts.append(verdict)
        if level == "disabled":
            continue
        policy_exceptions.WAIVED.clear()
        if isinstance(policy, ResourceValidationPolicy):
            for view in stack_index.resource_views:
                _run_resource_policy(policy, view, settings, verdict)
        else:
            _run_stack_policy(policy, stack_index, settings, verdict)
        verdict.waived = [Finding(urn, "waived by policy/exceptions.yaml") for _, urn in policy_exceptions.WAIVED]
    return Report(PACK_NAME, verdicts)


def _run_resource_policy(policy: ResourceValidationPolicy, view: tuple, settings: dict, verdict: Verdict) -> None:
    entry, props, opts, provider = view
    urn = entry["urn"]
    args = ResourceValidationArgs(resource_type=entry["type"], props=props, urn=urn, name=_name(urn),
                                  opts=opts, provider=provider, config=settings)
    found: list[str] = []
    try:
        policy.validate(args, lambda message, _urn=None: found.append(message))
    except UnknownValueError as exc:
        verdict.cannot_tell.append(Finding(urn, exc.message))
        return
    verdict.evaluated += 1
    verdict.violations.extend(Finding(urn, m) for m in found)


def _run_stack_policy(policy: StackValidationPolicy, stack_index: _Stack, settings: dict,
                      verdict: Verdict) -> None:
    args = StackValidationArgs(resources=stack_index.policy_resources, config=settings)
    found: list[Finding] = []
    try:
        policy.validate(args, lambda message, urn=None: found.append(Finding(urn, message)))
    except UnknownValueError as exc:
        verdict.cannot_tell.append(Finding(None, exc.message))
        return
    verdict.evaluated += 1
    verdict.violations.extend(found)
