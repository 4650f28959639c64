"""Small helpers so that each rule reads as: which resources, what must hold, what to change.

Rules get props wrapped in pulumi_policy's unknown-checking proxy (by the Pulumi engine, and by
our offline runner alike): touching a value that is unknown during preview raises
UnknownValueError, which both runners report as "cannot tell yet" - never a pass, never a crash.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

from . import exceptions

Props = Mapping[str, Any]
ResourceCheck = Callable[[Props, ResourceValidationArgs], Iterable[str]]
StackCheck = Callable[[list[PolicyResource], StackValidationArgs], Iterable[tuple[str, Optional[str]]]]


def _schema(config: Optional[dict[str, dict]]) -> Optional[PolicyConfigSchema]:
    return PolicyConfigSchema(properties=config) if config else None


class JudgingResourcePolicy(ResourceValidationPolicy):
    """A resource policy that says which resource types it judges (what an offline runner counts
    as judged: synth/policy_runner.py); the engine ignores the extra attribute."""

    def __init__(self, *args: Any, judges: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.judges = judges


class JudgingStackPolicy(StackValidationPolicy):
    """A stack policy with the resource types it passes judgement on (none: the pack's own files)."""

    def __init__(self, *args: Any, judges: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.judges = judges


def resource_rule(
    name: str, description: str, types: tuple[str, ...],
    level: EnforcementLevel = EnforcementLevel.MANDATORY, config: Optional[dict[str, dict]] = None,
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Turn ``check(props, args) -> messages`` into a policy that only looks at ``types``.

    ``config`` is a JSON schema of the rule's settings (with defaults), set per stack through
    the pack config. A violation on a resource with a valid exception is waived: the engine hears
    "not applicable" with the waiver as the reason (and the stack rule policy-exceptions-in-use
    shows every waiver in force as an advisory message in the preview).
    """

    def decorate(check: ResourceCheck) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if args.resource_type not in types:
                return
            messages = list(check(args.props, args))
            waiver = exceptions.waiver(name, args.urn) if messages else None
            if waiver is not None:
                args.not_applicable(exceptions.describe(waiver))
            for message in messages:
                report_violation(message, None)

        return JudgingResourcePolicy(name, description, validate, enforcement_level=level,
                                     config_schema=_schema(config), judges=types)

    return decorate


def stack_rule(
    name: str, description: str, level: EnforcementLevel = EnforcementLevel.MANDATORY,
    config: Optional[dict[str, dict]] = None, judges: tuple[str, ...] = (),
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Turn ``check(resources, args) -> (message, urn)`` pairs into a stack policy. ``judges``: the
    resource types it passes judgement on (none: it judges the pack's own exceptions file)."""

    def decorate(check: StackCheck) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            # An offline runner may listen for waived findings; the engine's args have no such hook.
            report_waived = getattr(args, "report_waived", None)
            for message, urn in check(list(args.resources), args):
                waiver = exceptions.waiver(name, urn)
                if waiver is None:
                    report_violation(message, urn)
                elif report_waived is not None:
                    report_waived(urn, exceptions.describe(waiver))

        return JudgingStackPolicy(name, description, validate, enforcement_level=level,
                                  config_schema=_schema(config), judges=judges)

    return decorate


def number(value: Any) -> Any:
    """A number for a message: the engine sends every number as a float (14.0); say 14."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def setting(args: Any, key: str, schema: dict[str, dict]) -> Any:
    """A rule setting from the pack config, or its schema default."""
    return args.get_config().get(key, schema[key].get("default"))


def region_of(resource: Any) -> Optional[str]:
    """A resource's region: its own ``region`` (pulumi-aws v7), else its provider's."""
    own = peek(resource.props, "region")  # unknown at preview when not set: the provider's region
    if own and not is_unknown(own):
        return own
    provider = getattr(resource, "provider", None)
    return dig(provider.props, "region") if provider is not None else None


def cluster_of(resource: Any) -> str:
    """The Kubernetes cluster a resource goes to: its provider's URN (one provider per cluster), so
    a namespace of the same name in two regions' clusters is judged as two namespaces."""
    provider = getattr(resource, "provider", None)
    return getattr(provider, "urn", None) or "default"


UNKNOWNS = frozenset((UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, UNKNOWN_ARRAY_VALUE,
                      UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_OBJECT_VALUE))


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWNS


def _raw(value: Any) -> Any:
    try:
        return value["__target"]  # what the unknown-checking proxy wraps
    except (KeyError, IndexError, TypeError):
        return value


def peek(props: Any, *path: Any, default: Any = None) -> Any:
    """Like ``dig``, but an unknown value is returned (as its sentinel) instead of raising."""
    value = _raw(props)
    for key in path:
        if is_unknown(value):
            return value
        try:
            value = _raw(value[key])
        except (KeyError, IndexError, TypeError):
            return default
    return value


def present(props: Any, *path: Any) -> bool:
    """Whether a value is set. During preview a value unknown to the engine is set: it can only be
    an output of a resource this stack creates (a key's ARN, a health check's id), never missing.
    An unknown object that would hold it proves nothing."""
    if is_unknown(peek(props, *path)) and not is_unknown(peek(props, *path[:-1])):
        return True
    return bool(dig(props, *path))  # an unknown object around it: cannot tell yet (raises)


def depends_on(resource: Any, key: str, resource_type: str) -> list:
    """The resources of ``resource_type`` that the property ``key`` comes from (the engine sends
    property dependencies to stack policies): how a stack rule follows a reference at preview,
    when the ARN or name it carries is still unknown."""
    return [d for d in (getattr(resource, "property_dependencies", {}) or {}).get(key, [])
            if d.resource_type == resource_type]


def dig(props: Any, *path: Any, default: Any = None) -> Any:
    """props['a'][0]['b'] without KeyError/IndexError; unknown values still raise."""
    value = props
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return default
    return value


def each(props: Any, *path: Any) -> Iterator[Any]:
    """Iterate a list at ``path`` (missing means empty)."""
    value = dig(props, *path, default=None)
    if value is None:
        return iter(())
    return iter(value)
