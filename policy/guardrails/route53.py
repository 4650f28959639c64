"""Route 53: a failover PRIMARY record without a health check never fails over."""

from __future__ import annotations

from ._rules import dig, each, present, resource_rule

RECORD = "aws:route53/record:Record"


@resource_rule("route53-primary-health-check", "Failover PRIMARY records carry a health check.", (RECORD,))
def primary_health_check(props, args):
    primary = any(dig(p, "type") == "PRIMARY" for p in each(props, "failoverRoutingPolicies"))
    if primary and not present(props, "healthCheckId"):
        yield "Set healthCheckId: without one Route 53 treats the PRIMARY as always healthy."


POLICIES = [primary_health_check]
