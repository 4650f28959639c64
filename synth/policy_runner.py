"""Apply the CrossGuard pack to a stack export, offline, the way the Pulumi engine would.

The same rule objects that ``policy/__main__.py`` serves to the engine are called here with the
same argument types and the same values the engine sends (tests/test_policy_engine.py speaks the
engine's gRPC protocol to the pack and checks that both reach the same verdict): resource rules
on inputs, stack rules on outputs, secrets decrypted, numbers as floats, unknowns as sentinels,
the pack config reconciled and validated as the engine does. Works on our synth output and on a
real ``pulumi stack export`` (best with ``--show-secrets``: an encrypted secret cannot be read).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import jsonschema
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError as NotApplicable  # what args.not_applicable raises
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

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
    level: str  # "mandatory" | "advisory" | "remediate" | "disabled"
    evaluated: int = 0
    violations: list[Finding] = field(default_factory=list)
    cannot_tell: list[Finding] = field(default_factory=list)
    waived: list[Finding] = field(default_factory=list)
    not_applicable: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    pack: str
    verdicts: list[Verdict]

    @property
    def mandatory_violations(self) -> list[tuple[str, Finding]]:
        # the engine reports a violation of a "remediate" policy that was not remediated as mandatory
        return [(v.policy, f) for v in self.verdicts if v.level in ("mandatory", "remediate") for f in v.violations]

    @property
    def advisory_violations(self) -> list[tuple[str, Finding]]:
        return [(v.policy, f) for v in self.verdicts if v.level == "advisory" for f in v.violations]

    @property
    def undecided(self) -> list[tuple[str, Finding]]:
        """Judgements that could not decide (a value unknown during preview, or encrypted)."""
        return [(v.policy, f) for v in self.verdicts for f in v.cannot_tell]

    def to_json(self) -> dict:
        return {
            "pack": self.pack,
            "summary": {
                "policies": len(self.verdicts),
                "mandatoryViolations": len(self.mandatory_violations),
                "advisoryViolations": len(self.advisory_violations),
                "undecided": len(self.undecided),
            },
            "policies": [asdict(v) for v in self.verdicts],
        }


class ConfigError(ValueError):
    """A pack config the engine would refuse (or that names a rule or setting that does not exist)."""


LEVELS = ("advisory", "mandatory", "remediate", "disabled")


def pack_config(stack: Optional[str]) -> dict[str, Any]:
    """``policy/config/<stack>.json`` - the file given to ``--policy-pack-config`` for that stack."""
    if not stack:
        return {}
    path = CONFIG_DIR / f"{stack}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise ConfigError(f"no policy config {path.relative_to(ROOT)} for stack {stack!r}; known: {known}")
    return load_config(path)


def load_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"policy config {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"policy config {path}: must be a JSON object of policy name -> level or settings")
    return config


def _given_level(name: str, level: Any) -> Optional[str]:
    if level is None:
        return None
    if not isinstance(level, str) or level not in LEVELS:
        raise ConfigError(f"policy config for {name}: {level!r} is not a valid enforcement level "
                          f"(one of {', '.join(LEVELS)})")
    return level


def reconcile(policies, config: dict[str, Any]) -> dict[str, tuple[str, dict]]:
    """Each policy's (level, settings) as the engine computes them before ``Configure``
    (pulumi/pulumi pkg/resource/analyzer/config.go, ReconcilePolicyPackConfig): the policy's own
    level and its schema defaults, then ``"all"`` (a level only), then the policy's entry; the
    result validated against the policy's schema - an invalid one stops the run. Stricter than
    the engine: a misspelt policy or setting name is refused too (the engine ignores it)."""
    if not isinstance(config, dict):
        raise ConfigError("policy config must be a JSON object of policy name -> level or settings")
    given: dict[str, tuple[Optional[str], dict]] = {}
    for name, value in config.items():
        if isinstance(value, str):
            given[name] = (_given_level(name, value), {})
        elif isinstance(value, dict):
            settings = {k: v for k, v in value.items() if k != "enforcementLevel"}
            given[name] = (_given_level(name, value.get("enforcementLevel")), settings)
        else:
            raise ConfigError(f"policy config for {name}: {value!r} is not a valid value; "
                              "must be an enforcement level or an object")
    known = {p.name for p in (*POLICIES, *policies)}  # a run of some policies still reads the whole file
    unknown = sorted(set(given) - known - {"all"})
    if unknown:
        raise ConfigError(f"policy config names no such policy: {', '.join(unknown)}")
    all_level, all_settings = given.get("all", (None, {}))
    result, problems = {}, []
    if all_settings:  # the engine silently drops them
        problems.append(f"all: takes only an enforcement level, not settings {sorted(all_settings)}")
    for policy in policies:
        schema = policy.config_schema
        properties = schema.properties if schema else {}
        level = all_level or (policy.enforcement_level or EnforcementLevel.MANDATORY).value
        settings = {k: v["default"] for k, v in properties.items() if "default" in v}
        own_level, own_settings = given.get(policy.name, (None, {}))
        level = own_level or level
        settings.update(own_settings)
        misspelt = sorted(set(own_settings) - set(properties))
        if misspelt:
            problems.append(f"{policy.name}: unknown settings {misspelt} (known: {sorted(properties)})")
        document = {"type": "object", "properties": properties}
        if schema and schema.required:
            document["required"] = list(schema.required)
        for error in jsonschema.Draft7Validator(document).iter_errors(settings):
            where = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"{policy.name}: {where + ': ' if where else ''}{error.message}")
        result[policy.name] = (level, settings)
    if problems:
        raise ConfigError("policy pack configuration is invalid: " + "; ".join(problems))
    return result


SECRET_SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
ENCRYPTED = "encrypted secret"


def engine_value(value: Any, path: tuple = (), encrypted: Optional[list] = None) -> Any:
    """A checkpoint value as the engine hands it to a pack: secrets decrypted (from the plaintext
    that `pulumi stack export --show-secrets` writes), every number a float (protobuf Struct has
    only doubles). A secret still encrypted cannot be read here: it becomes unknown, and its path
    is noted in ``encrypted`` so the report can say why."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            if "plaintext" in value:
                return engine_value(json.loads(value["plaintext"]), path, encrypted)
            if encrypted is not None:
                encrypted.append(path)
            return UNKNOWN_STRING_VALUE
        return {k: engine_value(v, (*path, k), encrypted) for k, v in value.items()}
    if isinstance(value, list):
        return [engine_value(v, (*path, i), encrypted) for i, v in enumerate(value)]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _inputs(entry: dict) -> dict:
    """Resource policies judge what the program asks for, as the engine's Analyze does: inputs
    (outputs for an export without)."""
    return entry.get("inputs") or entry.get("outputs") or {}


def _outputs(entry: dict) -> dict:
    """Stack policies judge the resulting state, as the engine's AnalyzeStack does: outputs."""
    return entry.get("outputs") or {}


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _options(entry: dict) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=bool(entry.get("protect", False)), ignore_changes=[], delete_before_replace=None,
        # no customTimeouts: the engine's analyzer sends zeros, not None (pulumi_policy, _get_resource_options)
        aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
        parent=entry.get("parent"),
    )


@dataclass
class _View:
    """One entry as the engine would send it: props in the engine's form, and where secrets
    could not be read."""

    props: Any
    encrypted: list


def _view(props: dict) -> _View:
    encrypted: list = []
    return _View(unknown_checking_proxy(engine_value(props, (), encrypted)), encrypted)


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
            self._providers[ref] = PolicyProviderResource(
                provider["type"], _view(_inputs(provider)).props, provider["urn"], _name(provider["urn"])) if provider else None
        return self._providers[ref]

    @cached_property
    def resource_views(self) -> list[tuple[dict, _View, PolicyResourceOptions, Optional[PolicyProviderResource]]]:
        """What every resource policy sees of each entry, built once (not once per policy)."""
        return [(e, _view(_inputs(e)), _options(e), self.provider(e)) for e in self.entries]

    @cached_property
    def stack_view(self) -> tuple[list[PolicyResource], list]:
        views = {e["urn"]: _view(_outputs(e)) for e in self.entries}
        resources = {
            e["urn"]: PolicyResource(
                resource_type=e["type"], props=views[e["urn"]].props, urn=e["urn"],
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
        encrypted = [(urn, path) for urn, view in views.items() for path in view.encrypted]
        return list(resources.values()), encrypted


class _StackArgs(StackValidationArgs):
    """The engine's StackValidationArgs, plus a hook the pack's stack rules call for a waived
    finding (under the engine the hook is absent and the waiver shows as advisory instead)."""

    def __init__(self, resources, config, report_waived):
        super().__init__(resources=resources, config=config)
        self.report_waived = report_waived


def evaluate(export: dict, stack: Optional[str] = None, policies=None,
             config: Optional[dict[str, Any]] = None) -> Report:
    """Run every policy over ``export``; ``config`` defaults to the stack's pack config file.
    A config the engine would refuse raises ConfigError before any rule runs."""
    policies = POLICIES if policies is None else policies
    config = pack_config(stack) if config is None else config
    configured = reconcile(policies, config)
    stack_index = _Stack(list(export.get("deployment", {}).get("resources", [])))
    verdicts = []
    for policy in policies:
        level, settings = configured[policy.name]
        kind = "stack" if isinstance(policy, StackValidationPolicy) else "resource"
        verdict = Verdict(policy.name, policy.description, kind, level)
        verdicts.append(verdict)
        if level == "disabled":
            continue
        settings = engine_value(settings)  # Configure carries a protobuf Struct: floats
        if isinstance(policy, ResourceValidationPolicy):
            for view in stack_index.resource_views:
                _run_resource_policy(policy, view, settings, verdict)
        else:
            _run_stack_policy(policy, stack_index, settings, verdict)
    return Report(PACK_NAME, verdicts)


def _unreadable(path: tuple, urn: str) -> str:
    return (f"{ENCRYPTED} at .{'.'.join(str(k) for k in path)} (of {_name(urn)}) cannot be read; judge a "
            "`pulumi stack export --show-secrets` file")


def _cannot_tell(exc: UnknownValueError, encrypted: list, urn: Optional[str] = None) -> str:
    path = tuple(exc.props)
    for where, secret in encrypted if urn is None else ((urn, p) for p in encrypted):
        if path[:len(secret)] == tuple(str(k) for k in secret):
            return _unreadable(path, where)
    return exc.message


def _run_resource_policy(policy: ResourceValidationPolicy, view: tuple, settings: dict, verdict: Verdict) -> None:
    entry, props, opts, provider = view
    urn = entry["urn"]
    args = ResourceValidationArgs(resource_type=entry["type"], props=props.props, urn=urn, name=_name(urn),
                                  opts=opts, provider=provider, config=settings)
    found: list[str] = []
    try:
        policy.validate(args, lambda message, _urn=None: found.append(message))
    except UnknownValueError as exc:
        verdict.cannot_tell.append(Finding(urn, _cannot_tell(exc, props.encrypted, urn)))
        return
    except NotApplicable as exc:  # a waiver, or a rule that hands the judgement to a stack rule
        verdict.evaluated += 1
        if policy_exceptions.waiver(policy.name, urn) is not None:
            verdict.waived.append(Finding(urn, exc.reason or ""))
        elif props.encrypted:  # the engine reads the secret and decides; here it cannot be read
            verdict.evaluated -= 1
            verdict.cannot_tell.append(Finding(urn, _unreadable(props.encrypted[0], urn)))
        else:
            verdict.not_applicable.append(Finding(urn, exc.reason or ""))
        return
    verdict.evaluated += 1
    verdict.violations.extend(Finding(urn, m) for m in found)


def _run_stack_policy(policy: StackValidationPolicy, stack_index: _Stack, settings: dict,
                      verdict: Verdict) -> None:
    resources, encrypted = stack_index.stack_view
    found: list[Finding] = []
    waived: list[Finding] = []
    args = _StackArgs(resources, settings, lambda urn, reason: waived.append(Finding(urn, reason)))
    try:
        policy.validate(args, lambda message, urn=None: found.append(Finding(urn, message)))
    except UnknownValueError as exc:
        verdict.cannot_tell.append(Finding(None, _cannot_tell(exc, encrypted)))
        return
    verdict.evaluated += 1
    verdict.violations.extend(found)
    verdict.waived.extend(waived)
