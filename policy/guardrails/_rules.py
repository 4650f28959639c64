"""Small helpers so that each rule reads as: which resources, what must hold, what to change.

Rules get props wrapped in pulumi_policy's unknown-checking proxy (by the Pulumi engine, and by
our offline runner alike): touching a value that is unknown during preview raises
UnknownValueError, which both runners report as "cannot tell yet" - never a pass, never a crash.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

Props = Mapping[str, Any]
ResourceCheck = Callable[[Props, ResourceValidationArgs], Iterable[str]]
StackCheck = Callable[[list[PolicyResource], StackValidationArgs], Iterable[tuple[str, Optional[str]]]]


def resource_rule(
    name: str, description: str, types: tuple[str, ...],
    level: EnforcementLevel = EnforcementLevel.MANDATORY,
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Turn ``check(props, args) -> messages`` into a policy that only looks at ``types``."""

    def decorate(check: ResourceCheck) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if args.resource_type in types:
                for message in check(args.props, args):
                    report_violation(message, None)

        return ResourceValidationPolicy(name, description, validate, enforcement_level=level)

    return decorate


def stack_rule(
    name: str, description: str, level: EnforcementLevel = EnforcementLevel.MANDATORY,
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Turn ``check(resources, args) -> (message, urn)`` pairs into a stack policy."""

    def decorate(check: StackCheck) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            for message, urn in check(list(args.resources), args):
                report_violation(message, urn)

        return StackValidationPolicy(name, description, validate, enforcement_level=level)

    return decorate


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
