"""DnsFailover: an HTTPS health check on the primary, PRIMARY/SECONDARY alias records, an alarm."""

from __future__ import annotations

import pytest

from components.dns_failover import DnsFailoverArgs, LoadBalancerTarget

RECORD = "aws:route53/record:Record"


def test_health_check_probes_healthz_over_https_from_several_regions(prod):
    [check] = prod.of_type("aws:route53/healthCheck:HealthCheck")
    i = check.inputs
    assert (i["type"], i["port"], i["resourcePath"]) == ("HTTPS", 443, "/healthz")
    assert i["fqdn"] == "primary.api.intelgraph.example.com" and i["enableSni"] is True
    assert i["requestInterval"] == 10 and i["failureThreshold"] == 3 and i["measureLatency"] is True
    assert len(i["regions"]) >= 3


def test_primary_and_secondary_alias_records_fail_over(any_stack):
    [check] = any_stack.of_type("aws:route53/healthCheck:HealthCheck")
    records = {r.inputs["setIdentifier"]: r.inputs for r in any_stack.of_type(RECORD)}
    assert set(records) == {"primary", "secondary"}
    primary, secondary = records["primary"], records["secondary"]
    assert primary["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert secondary["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    assert primary["healthCheckId"] == check.id and "healthCheckId" not in secondary
    assert primary["name"] == secondary["name"] and primary["zoneId"] == secondary["zoneId"]
    for record, region in ((primary, "us-east-1"), (secondary, "us-west-2")):
        [alias] = record["aliases"]
        assert alias["evaluateTargetHealth"] is True and f".{region}.elb.amazonaws.com" in alias["name"]


def test_unhealthy_primary_raises_an_alarm_in_us_east_1(prod):
    alarm = prod.named("api-failover-primary-unhealthy", "aws:cloudwatch/metricAlarm:MetricAlarm")
    [check] = prod.of_type("aws:route53/healthCheck:HealthCheck")
    assert alarm.inputs["namespace"] == "AWS/Route53" and alarm.inputs["metricName"] == "HealthCheckStatus"
    assert alarm.inputs["dimensions"] == {"HealthCheckId": check.id}
    provider = next(r for r in prod.resources if r.urn == alarm.provider.rsplit("::", 1)[0])
    assert provider.inputs["region"] == "us-east-1"


@pytest.mark.parametrize("changes,words", [
    ({"request_interval_seconds": 15}, "10 or 30"),
    ({"failure_threshold": 0}, "between 1 and 10"),
    ({"checker_regions": ("us-east-1",)}, "at least 3 regions"),
    ({"secondary": LoadBalancerTarget("a.us-east-1.elb.amazonaws.com", "Z1")}, "different load balancers"),
])
def test_args_are_validated_with_the_field_named(changes, words):
    base = dict(account_id="481236059412", hosted_zone_id="Z1", record_name="api.example.com",
                health_check_fqdn="primary.example.com", request_interval_seconds=10,
                failure_threshold=3, checker_regions=("us-east-1", "us-west-2", "eu-west-1"),
                primary=LoadBalancerTarget("a.us-east-1.elb.amazonaws.com", "Z1"),
                secondary=LoadBalancerTarget("b.us-west-2.elb.amazonaws.com", "Z2"))
    with pytest.raises(ValueError, match=words):
        DnsFailoverArgs(**{**base, **changes})
