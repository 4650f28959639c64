"""DnsFailover: the failover records, switched by the ARC Region switch plan, and the primary's probe.

The PRIMARY and SECONDARY alias records each carry the Route 53 health check that the Region switch
plan owns for their region (components/region_switch.py): the plan's move-traffic step marks the
activating region's healthy and the other's unhealthy, after it has promoted that region's database.
Traffic therefore moves with the writer and never because a probe failed: neither record evaluates
its load balancer's target health, which would send clients to the DR region's read-only replica
on its own (Route 53 Developer Guide, "Values specific for failover alias records", Evaluate target
health).

An HTTPS health check still probes the primary's /healthz from several Route 53 checker regions and
alarms when it fails: that is the page on which the on-call starts the plan. The checked name has a
record of its own, aliasing the primary load balancer (never the failover name: that would follow
the failover and check the DR region), and the Ingress serves it. Detection takes
request_interval x failure_threshold; resolvers may keep the old answer for the alias's 60 s TTL
after the switch (see helpers/dr_budget.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Optional

import pulumi
import pulumi_aws as aws

from helpers.alerting import alarm, alert_topic
from helpers.validation import require


@dataclass(frozen=True)
class LoadBalancerTarget:
    dns_name: pulumi.Input[str]
    zone_id: pulumi.Input[str]


@dataclass(frozen=True)
class DnsFailoverArgs:
    account_id: str
    hosted_zone_id: str
    record_name: str
    health_check_fqdn: str
    request_interval_seconds: Literal[10, 30]
    failure_threshold: int
    checker_regions: tuple[str, ...]
    primary: LoadBalancerTarget
    secondary: LoadBalancerTarget
    # PRIMARY / SECONDARY: the Region switch plan's health check of the record's region
    switch_checks: Mapping[str, pulumi.Input[str]]
    health_path: str = "/healthz"

    def __post_init__(self) -> None:
        problems = []
        if self.request_interval_seconds not in (10, 30):
            problems.append("request_interval_seconds must be 10 or 30 (the only values Route 53 offers)")
        if not 1 <= self.failure_threshold <= 10:
            problems.append("failure_threshold must be between 1 and 10")
        if len(self.checker_regions) < 3:
            problems.append("checker_regions needs at least 3 regions (Route 53's minimum)")
        if isinstance(self.primary.dns_name, str) and self.primary == self.secondary:
            problems.append("primary and secondary must be different load balancers")
        if set(self.switch_checks) != {"PRIMARY", "SECONDARY"}:
            problems.append("switch_checks must name the Region switch health check of PRIMARY and of SECONDARY")
        if self.health_check_fqdn.rstrip(".") == self.record_name.rstrip("."):
            problems.append("health_check_fqdn must not be the failover record_name: the check would follow "
                            "the failover to the DR region")
        require("DnsFailoverArgs", problems)


class DnsFailover(pulumi.ComponentResource):
    """``opts.provider`` must be a us-east-1 provider: Route 53 health-check metrics live there."""

    health_check_id: pulumi.Output[str]
    fqdn: pulumi.Output[str]

    def __init__(self, name: str, args: DnsFailoverArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:dns:DnsFailover", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # The name Route 53 probes resolves to the primary load balancer, whatever the failover says.
        aws.route53.Record(
            f"{name}-health",
            zone_id=args.hosted_zone_id,
            name=args.health_check_fqdn,
            type="A",
            aliases=[{"name": args.primary.dns_name, "zone_id": args.primary.zone_id,
                      "evaluate_target_health": False}],
            opts=child,
        )
        check = aws.route53.HealthCheck(
            f"{name}-primary",
            type="HTTPS",
            fqdn=args.health_check_fqdn,
            port=443,
            resource_path=args.health_path,
            enable_sni=True,
            request_interval=args.request_interval_seconds,
            failure_threshold=args.failure_threshold,
            regions=list(args.checker_regions),
            measure_latency=True,
            tags={"Name": f"{name}-primary"},
            opts=child,
        )
        records = [
            aws.route53.Record(
                f"{name}-{role.lower()}",
                zone_id=args.hosted_zone_id,
                name=args.record_name,
                type="A",
                set_identifier=role.lower(),
                failover_routing_policies=[{"type": role}],
                # only the Region switch plan moves traffic (module docstring)
                health_check_id=args.switch_checks[role],
                aliases=[{"name": target.dns_name, "zone_id": target.zone_id,
                          "evaluate_target_health": False}],
                opts=child,
            )
            for role, target in (("PRIMARY", args.primary), ("SECONDARY", args.secondary))
        ]
        topic = alert_topic(f"{name}-alerts", args.account_id, child)
        alarm(
            f"{name}-primary-unhealthy",
            description=(f"{args.health_check_fqdn}{args.health_path} is failing: decide on the region switch "
                         "(run the ARC Region switch plan from the DR region, docs/runbooks.md)"),
            namespace="AWS/Route53", metric="HealthCheckStatus",
            dimensions={"HealthCheckId": check.id},
            statistic="Minimum", comparison="LessThanThreshold", threshold=1,
            period_seconds=60, evaluation_periods=1,
            topic=topic, opts=child,
        )

        self.health_check_id = check.id
        self.alert_topic = topic  # in us-east-1 (Route 53 metrics); __main__ subscribes it
        self.fqdn = records[0].fqdn
        self.register_outputs({"healthCheckId": self.health_check_id, "fqdn": self.fqdn})
