"""DnsFailover: PRIMARY/SECONDARY alias records switched by the Region switch plan, the primary's probe, an alarm."""

from __future__ import annotations

import pytest

from components.dns_failover import DnsFailoverArgs, LoadBalancerTarget
from tests.conftest import stack_settings

RECORD = "aws:route53/record:Record"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"


def host_matches(rule_host: str, host: str) -> bool:
    """Ingress host matching (Kubernetes Ingress docs): exact, or a wildcard covering one label."""
    if rule_host.startswith("*."):
        return host.split(".", 1)[-1] == rule_host[2:] and host.count(".") == rule_host.count(".")
    return rule_host == host


def path_matches(path: dict, request_path: str) -> bool:
    """Exact: the whole path, case-sensitive; Prefix: element-wise on '/' (Kubernetes Ingress docs)."""
    if path["pathType"] == "Exact":
        return path["path"] == request_path
    prefix = [p for p in path["path"].split("/") if p]
    return [p for p in request_path.split("/") if p][: len(prefix)] == prefix


def serving_rules(synthesis, host: str, request_path: str) -> list[dict]:
    return [rule for ingress in synthesis.of_type(INGRESS) for rule in ingress.inputs["spec"]["rules"]
            if host_matches(rule.get("host", host), host)
            and any(path_matches(p, request_path) for p in rule["http"]["paths"])]


def test_health_check_probes_healthz_over_https_from_several_regions(prod):
    [check] = prod.of_type("aws:route53/healthCheck:HealthCheck")
    i = check.inputs
    assert (i["type"], i["port"], i["resourcePath"]) == ("HTTPS", 443, "/healthz")
    assert i["fqdn"] == "primary.api.intelgraph.example.com" and i["enableSni"] is True
    assert i["requestInterval"] == 10 and i["failureThreshold"] == 3 and i["measureLatency"] is True
    assert len(i["regions"]) >= 3


def test_the_checked_name_is_served_by_the_primary_alb(any_stack):
    """Route 53 HTTPS checks send the FQDN as Host and SNI and count only 2xx/3xx answers (Route 53
    Developer Guide, "How Amazon Route 53 determines whether a health check is healthy"); an ALB
    answers a host no Ingress rule matches with its default 404. So the checked name must resolve
    to a record this stack creates - aliasing the primary ALB, not the failover name, which would
    follow the failover - and an Ingress rule on that ALB must match its host and path."""
    [check] = any_stack.of_type("aws:route53/healthCheck:HealthCheck")
    fqdn, path = check.inputs["fqdn"], check.inputs["resourcePath"]
    [record] = [r for r in any_stack.of_type(RECORD) if r.inputs["name"] == fqdn]
    assert not record.inputs.get("failoverRoutingPolicies")
    primary = next(r for r in any_stack.of_type(RECORD) if r.inputs.get("setIdentifier") == "primary")
    assert record.inputs["aliases"][0]["name"] == primary.inputs["aliases"][0]["name"]
    assert record.inputs["aliases"][0]["name"] == any_stack.outputs["edge"]["loadBalancerDnsName"]
    rules = serving_rules(any_stack, fqdn, path)
    assert rules, f"no Ingress rule serves {fqdn}{path}: the ALB would answer 404"
    alb_ingress = any_stack.named("api", INGRESS)
    assert any(rule in alb_ingress.inputs["spec"]["rules"] for rule in rules)
    assert not serving_rules(any_stack, fqdn, "/admin")  # only the health path is exposed on that name


def test_a_health_check_on_the_failover_name_is_a_settings_error():
    import settings
    from tests.conftest import config_with

    with pytest.raises(settings.SettingsError, match="intelgraph-platform:dns: healthCheck.fqdn "
                                                     "'api.intelgraph.example.com' is the failover recordName"):
        settings.validate(config_with("prod", {"dns.healthCheck.fqdn": "api.intelgraph.example.com"}))


def test_the_region_switch_plan_alone_moves_traffic(any_stack):
    """Each failover record carries the Route 53 health check the Region switch plan owns for its
    region (ARC Developer Guide, "Amazon Route 53 health check execution block": the block creates
    the health checks, which you attach to your records), never the endpoint probe, and evaluates no
    target health: a failing primary ALB alone must not send clients to the DR region's read-only
    replica (Route 53 Developer Guide, "Values specific for failover alias records")."""
    [probe] = any_stack.of_type("aws:route53/healthCheck:HealthCheck")
    records = {r.inputs["setIdentifier"]: r.inputs for r in any_stack.of_type(RECORD) if "setIdentifier" in r.inputs}
    assert set(records) == {"primary", "secondary"}
    primary, secondary = records["primary"], records["secondary"]
    assert primary["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert secondary["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    checks = any_stack.outputs["regionSwitch"]["healthChecks"]
    aws = stack_settings(any_stack.stack).aws
    assert primary["healthCheckId"] == checks[aws.primary_region] != probe.id
    assert secondary["healthCheckId"] == checks[aws.dr_region] != probe.id
    assert primary["name"] == secondary["name"] and primary["zoneId"] == secondary["zoneId"]
    for record, region in ((primary, aws.primary_region), (secondary, aws.dr_region)):
        [alias] = record["aliases"]
        assert alias["evaluateTargetHealth"] is False and f".{region}.elb.amazonaws.com" in alias["name"]


def test_unhealthy_primary_raises_an_alarm_in_us_east_1(prod):
    alarm = prod.named("api-failover-primary-unhealthy", "aws:cloudwatch/metricAlarm:MetricAlarm")
    [check] = prod.of_type("aws:route53/healthCheck:HealthCheck")
    assert alarm.inputs["namespace"] == "AWS/Route53" and alarm.inputs["metricName"] == "HealthCheckStatus"
    assert alarm.inputs["dimensions"] == {"HealthCheckId": check.id}
    # HealthCheckStatus is 1 (healthy) or 0 per checker: the Minimum of a minute is 0 as soon as the
    # check fails (Route 53 Developer Guide, "Monitoring health check status ... with CloudWatch")
    assert (alarm.inputs["statistic"], alarm.inputs["comparisonOperator"], alarm.inputs["threshold"]) == (
        "Minimum", "LessThanThreshold", 1)
    assert (alarm.inputs["period"], alarm.inputs["evaluationPeriods"]) == (60, 1)
    provider = next(r for r in prod.resources if r.urn == alarm.provider.rsplit("::", 1)[0])
    assert provider.inputs["region"] == "us-east-1"


@pytest.mark.parametrize("changes,words", [
    ({"request_interval_seconds": 15}, "10 or 30"),
    ({"failure_threshold": 0}, "between 1 and 10"),
    ({"checker_regions": ("us-east-1",)}, "at least 3 regions"),
    ({"secondary": LoadBalancerTarget("a.us-east-1.elb.amazonaws.com", "Z1")}, "different load balancers"),
    ({"health_check_fqdn": "api.example.com"}, "must not be the failover record_name"),
    ({"switch_checks": {"PRIMARY": "check-a"}}, "switch_checks must name"),
])
def test_args_are_validated_with_the_field_named(changes, words):
    base = dict(account_id="481236059412", hosted_zone_id="Z1", record_name="api.example.com",
                health_check_fqdn="primary.example.com", request_interval_seconds=10,
                failure_threshold=3, checker_regions=("us-east-1", "us-west-2", "eu-west-1"),
                primary=LoadBalancerTarget("a.us-east-1.elb.amazonaws.com", "Z1"),
                secondary=LoadBalancerTarget("b.us-west-2.elb.amazonaws.com", "Z2"),
                switch_checks={"PRIMARY": "check-a", "SECONDARY": "check-b"})
    with pytest.raises(ValueError, match=words):
        DnsFailoverArgs(**{**base, **changes})
