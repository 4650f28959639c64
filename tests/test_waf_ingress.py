"""The edge: a WAF-protected TLS Ingress by default, and the ingress-nginx compatibility mode."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import pytest
import yaml

import settings
from components.waf_ingress import NGINX_WARNING, greater_than_regex, rate_limit_per_window
from synth import engine
from tests.conftest import ROOT, config_with, stack_settings

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NGINX = {"ingress.mode": "nginx", "ingress.tlsSecretName": "api-tls",
         "dns.primaryLoadBalancer": {"dnsName": "ingress-nginx-4f1c2a9b7e-1736402215.us-east-1.elb.amazonaws.com",
                                     "zoneId": "Z35SXDOTRQ7X7K"},
         # each region's ingress-nginx controller has its own load balancer (us-west-2's canonical zone)
         "dns.drLoadBalancer": {"dnsName": "ingress-nginx-8d2e5f1a3c-2039485716.us-west-2.elb.amazonaws.com",
                                "zoneId": "Z1H1FL5HABSF5"}}
WEB_ACL = "aws:wafv2/webAcl:WebAcl"


def web_acl(synthesis, name="api-acl"):
    return synthesis.named(name, WEB_ACL)


def test_web_acl_runs_managed_rules_rate_limit_and_body_limit(prod):
    acl = web_acl(prod).inputs
    assert acl["scope"] == "REGIONAL" and acl["defaultAction"] == {"allow": {}}
    rules = {r["name"]: r for r in acl["rules"]}
    managed = [r["statement"]["managedRuleGroupStatement"]["name"] for r in acl["rules"]
               if "managedRuleGroupStatement" in r["statement"]]
    assert managed == ["AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesSQLiRuleSet"]
    # exact actions: a managed group overridden to count, or an own rule that counts, blocks nothing
    # (AWS WAF Developer Guide, "Overriding rule group actions")
    assert {r["name"]: (r.get("overrideAction"), r.get("action"), r["priority"]) for r in acl["rules"]} == {
        "AWSManagedRulesCommonRuleSet": ({"none": {}}, None, 0),
        "AWSManagedRulesKnownBadInputsRuleSet": ({"none": {}}, None, 1),
        "AWSManagedRulesSQLiRuleSet": ({"none": {}}, None, 2),
        "rate-limit-per-ip": (None, {"block": {}}, 10),
        "body-size-limit": (None, {"block": {}}, 20)}
    for name in managed:
        assert rules[name]["statement"]["managedRuleGroupStatement"]["vendorName"] == "AWS"
    rate = rules["rate-limit-per-ip"]["statement"]["rateBasedStatement"]
    assert rate["limit"] == 10 * 300 and rate["evaluationWindowSec"] == 300 and rate["aggregateKeyType"] == "IP"
    allowlist = prod.named("api-allowlist", "aws:wafv2/ipSet:IpSet")
    assert allowlist.inputs["addresses"] == ["10.0.0.0/8"]
    exempt = rate["scopeDownStatement"]["notStatement"]["statement"]["ipSetReferenceStatement"]["arn"]
    assert exempt == allowlist.outputs["arn"]
    body = rules["body-size-limit"]["statement"]["regexMatchStatement"]
    assert body["fieldToMatch"] == {"singleHeader": {"name": "content-length"}}
    assert re.fullmatch(body["regexString"], str(2 * 2**20 + 1)) and not re.fullmatch(body["regexString"], str(2 * 2**20))
    assert body["textTransformations"] == [{"priority": 0, "type": "NONE"}]
    for rule in [*acl["rules"], acl]:
        visibility = rule["visibilityConfig"]
        assert visibility["cloudwatchMetricsEnabled"] is True and visibility["sampledRequestsEnabled"] is True
        assert visibility["metricName"] == rule.get("name", "api-acl")


def test_common_rule_set_does_not_block_bodies_the_api_accepts(prod):
    common = next(r for r in web_acl(prod).inputs["rules"] if r["name"] == "AWSManagedRulesCommonRuleSet")
    overrides = common["statement"]["managedRuleGroupStatement"]["ruleActionOverrides"]
    assert overrides == [{"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}]
    # only that one rule counts: the other groups keep every rule's own action
    others = [r for r in web_acl(prod).inputs["rules"] if "managedRuleGroupStatement" in r["statement"]
              and r["name"] != "AWSManagedRulesCommonRuleSet"]
    assert others and all("ruleActionOverrides" not in r["statement"]["managedRuleGroupStatement"] for r in others)


def test_waf_logs_to_cloudwatch_without_credentials(prod):
    logging = prod.named("api-waf-logging", "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    group = prod.named("api-waf-logs", "aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"].startswith("aws-waf-logs-")
    assert group.inputs["retentionInDays"] == 365  # logs.retentionDays (prod)
    assert group.inputs["kmsKeyId"] == prod.named("api-waf-logs-key", "aws:kms/key:Key").outputs["arn"]
    assert logging.inputs["logDestinationConfigs"] == [group.outputs["arn"]]
    assert logging.inputs["resourceArn"] == web_acl(prod).outputs["arn"]
    redacted = {f["singleHeader"]["name"] for f in logging.inputs["redactedFields"]}
    assert redacted == {"authorization", "cookie"}


def test_alb_ingress_is_tls_only_and_carries_the_acl(any_stack):
    ingress = any_stack.named("api", INGRESS).inputs
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert annotations["alb.ingress.kubernetes.io/wafv2-acl-arn"] == web_acl(any_stack).outputs["arn"]
    assert annotations["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS": 443}]'
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:us-east-1:")
    # exactly TLS 1.3 + 1.2 (ELB User Guide, "Security policies for your Application Load Balancer");
    # a prefix would accept ELBSecurityPolicy-TLS13-1-0-2021-06, which speaks TLS 1.0
    assert annotations["alb.ingress.kubernetes.io/ssl-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz"
    assert ingress["spec"]["tls"] == [{"hosts": [rule["host"] for rule in ingress["spec"]["rules"]]}]
    assert not any(k.startswith("nginx.") for k in annotations)


@pytest.fixture(scope="module")
def nginx():
    return engine.synthesize("prod", config_with("prod", NGINX))


def test_nginx_mode_uses_only_non_snippet_annotations(nginx):
    ingress = nginx.named("api", INGRESS).inputs
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert annotations == {
        "nginx.ingress.kubernetes.io/enable-modsecurity": "true",
        "nginx.ingress.kubernetes.io/enable-owasp-core-rules": "true",
        "nginx.ingress.kubernetes.io/limit-rps": "10",
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": "2",
        "nginx.ingress.kubernetes.io/limit-allowlist": "10.0.0.0/8",
        "nginx.ingress.kubernetes.io/proxy-body-size": "2m",
        "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
    }
    assert ingress["spec"]["tls"] == [{"hosts": ["api.intelgraph.example.com", "primary.api.intelgraph.example.com"],
                                       "secretName": "api-tls"}]
    assert not nginx.of_type("aws:wafv2/webAcl:WebAcl")


def test_nginx_mode_warns(nginx):
    assert nginx.warnings == [NGINX_WARNING] * 2  # each region's edge runs on the retired controller


def test_nginx_mode_through_a_stack_file_prints_the_warning(tmp_path):
    document = yaml.safe_load((ROOT / "Pulumi.stage.yaml").read_text())
    document["config"]["intelgraph-platform:ingress"].update(mode="nginx", tlsSecretName="api-tls")
    for role in ("primary", "dr"):
        document["config"]["intelgraph-platform:dns"][f"{role}LoadBalancer"] = NGINX[f"dns.{role}LoadBalancer"]
    stack_file = tmp_path / "Pulumi.stage.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "synth", "--stack", "stage", "--stack-file", str(stack_file),
                             "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "WARNING: ingress.mode is nginx: ingress-nginx was retired in March 2026" in result.stdout
    assert (tmp_path / "out" / "manifests" / "edge_Ingress_api.yaml").read_text().count("nginx.ingress") == 7


def test_nginx_mode_without_a_tls_secret_is_a_settings_error():
    with pytest.raises(settings.SettingsError, match="intelgraph-platform:ingress: mode nginx needs tlsSecretName"):
        settings.validate(config_with("prod", {"ingress.mode": "nginx"}))


@pytest.mark.parametrize("limit", [2 * 2**20, 9, 10, 99, 1000, 1999, 8192, 65535, 9999999])
def test_content_length_regex_matches_exactly_the_numbers_above_the_limit(limit):
    pattern = re.compile(greater_than_regex(limit))
    rng = random.Random(limit)
    candidates = {0, 1, limit - 1, limit, limit + 1, limit * 10, 10 ** len(str(limit))}
    candidates |= {rng.randrange(0, limit * 3) for _ in range(2000)}
    for n in candidates:
        assert bool(pattern.fullmatch(str(n))) == (n > limit), n
    assert not pattern.fullmatch("-1") and not pattern.fullmatch("00" + str(limit + 1))


def test_rate_translation():
    assert rate_limit_per_window(10) == 3000 and rate_limit_per_window(10, 60) == 600


# --- the ALB DNS aliases is the one the WAF-protected Ingress creates (item: DNS aliased a name from config)

def test_dns_aliases_the_alb_the_waf_protected_ingress_creates(any_stack):
    # AWS Load Balancer Controller: an Ingress's ALB is named k8s-<namespace>-<name>-<hash> unless
    # alb.ingress.kubernetes.io/load-balancer-name sets it (at most 32 characters, the ELB limit).
    ingress = any_stack.named("api", INGRESS).inputs
    annotations = ingress["metadata"]["annotations"]
    alb_name = annotations["alb.ingress.kubernetes.io/load-balancer-name"]
    assert len(alb_name) <= 32 and alb_name == f"intelgraph-{any_stack.stack}-api"
    assert annotations["alb.ingress.kubernetes.io/wafv2-acl-arn"] == web_acl(any_stack).outputs["arn"]
    alb_dns = any_stack.outputs["edge"]["loadBalancerDnsName"]
    assert alb_dns.startswith(f"{alb_name}-") and alb_dns.endswith(".us-east-1.elb.amazonaws.com")
    [primary] = [r for r in any_stack.of_type("aws:route53/record:Record") if r.inputs.get("setIdentifier") == "primary"]
    assert primary.inputs["aliases"][0]["name"] == alb_dns
    assert primary.inputs["aliases"][0]["zoneId"] == "Z35SXDOTRQ7X7K"  # us-east-1's ALB hosted zone


def alb_program(wait: bool, annotate: bool = True, lookup: str = "intelgraph-test-api"):
    """An Ingress (whose annotations resolve late, like the WebACL ARN) and a lookup of its ALB."""
    import pulumi
    import pulumi_aws as aws
    import pulumi_kubernetes as k8s

    def program():
        provider = aws.Provider("primary", region="us-east-1")
        cluster = k8s.Provider("eks", context="test")
        topic = aws.sns.Topic("slow", opts=pulumi.ResourceOptions(provider=provider))
        named = {"alb.ingress.kubernetes.io/load-balancer-name": "intelgraph-test-api"} if annotate else {}
        ingress = k8s.networking.v1.Ingress("api", metadata={"name": "api", "namespace": "edge", "annotations": {
            **named, "alb.ingress.kubernetes.io/wafv2-acl-arn": topic.arn}},
            spec={"ingressClassName": "alb"}, opts=pulumi.ResourceOptions(provider=cluster))
        alb = aws.lb.get_load_balancer_output(name=lookup, opts=pulumi.InvokeOutputOptions(
            provider=provider, depends_on=[ingress] if wait else None))
        return {"dns": alb.dns_name}

    return program


def failed_run(*args) -> str:
    # A program that fails inside an invoke leaves the SDK's pending outputs behind in its process:
    # run each failing case in a process of its own.
    script = ("import sys; from tests.conftest import run_component; from tests.test_waf_ingress import alb_program; "
              f"run_component(alb_program(*{args!r}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_looking_the_alb_up_before_its_ingress_exists_fails():
    """What the first `up` would do without depends_on: the lookup runs when the program runs,
    before the controller has created the ALB (elbv2 DescribeLoadBalancers: LoadBalancerNotFound)."""
    from tests.conftest import run_component

    assert run_component(alb_program(True)).outputs["dns"].startswith("intelgraph-test-api-")
    assert "LoadBalancerNotFound: no load balancer named 'intelgraph-test-api'" in failed_run(False)
    # Without the annotation the controller names the ALB k8s-edge-api-<hash>: a name from config
    # (today's k8s-edge-prod-...) is some other load balancer, or none.
    assert "LoadBalancerNotFound: no load balancer named 'k8s-edge-prod-4f1c2a9b7e'" in failed_run(
        True, False, "k8s-edge-prod-4f1c2a9b7e")


def test_a_primary_load_balancer_from_config_is_refused_in_alb_mode():
    lb = NGINX["dns.primaryLoadBalancer"]
    with pytest.raises(settings.SettingsError, match="dns.primaryLoadBalancer: must not be set with ingress.mode alb"):
        settings.validate(config_with("prod", {"dns.primaryLoadBalancer": lb}))
    with pytest.raises(settings.SettingsError, match="dns.primaryLoadBalancer: is required with ingress.mode nginx"):
        settings.validate(config_with("prod", {"ingress.mode": "nginx", "ingress.tlsSecretName": "api-tls"}))


def test_nginx_mode_aliases_the_configured_controller_load_balancers(nginx):
    records = {r.inputs["setIdentifier"]: r for r in nginx.of_type("aws:route53/record:Record")
               if r.inputs.get("setIdentifier")}
    assert records["primary"].inputs["aliases"][0]["name"] == NGINX["dns.primaryLoadBalancer"]["dnsName"]
    assert records["secondary"].inputs["aliases"][0]["name"] == NGINX["dns.drLoadBalancer"]["dnsName"]


@pytest.mark.parametrize("name,ok", [("intelgraph-prod-api", True), ("a" * 32, True), ("a" * 33, False),
                                     ("-edge", False), ("edge-", False), ("internal-edge", False),
                                     ("edge_api", False), (None, False)])
def test_alb_names_follow_the_elb_rules(name, ok):
    from components.waf_ingress import WafIngressArgs

    args = dict(mode="alb", namespace="edge", host="api.example.com", service_name="api", service_port=8080,
                certificate_arn="arn:aws:acm:us-east-1:1:certificate/x", requests_per_second=10,
                burst_multiplier=2, allowlist_cidrs=(), max_body_bytes=2**21, load_balancer_name=name,
                region="us-east-1", account_id="111111111111")
    if ok:
        WafIngressArgs(**args)
    else:
        with pytest.raises(ValueError, match="not a valid ALB name"):
            WafIngressArgs(**args)


# --- the DR region has the same WebACL (a regional WebACL protects only its own region)

def test_the_dr_region_gets_the_same_web_acl_and_exports_it(any_stack):
    from tests.test_postgres_dr import region_of

    primary, dr = web_acl(any_stack), web_acl(any_stack, "api-dr-acl")
    aws = stack_settings(any_stack.stack).aws
    assert region_of(any_stack, primary) == aws.primary_region and region_of(any_stack, dr) == aws.dr_region
    assert dr.inputs["scope"] == "REGIONAL" and f":{aws.dr_region}:" in dr.outputs["arn"]
    dr_allowlist = any_stack.named("api-dr-allowlist", "aws:wafv2/ipSet:IpSet")
    assert region_of(any_stack, dr_allowlist) == aws.dr_region

    def comparable(rules, allowlist_arn):
        return json.dumps(rules).replace(allowlist_arn, "<allowlist>")

    assert comparable(dr.inputs["rules"], dr_allowlist.outputs["arn"]) == comparable(
        primary.inputs["rules"], any_stack.named("api-allowlist", "aws:wafv2/ipSet:IpSet").outputs["arn"])
    logging = any_stack.named("api-dr-waf-logging", "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    assert logging.inputs["resourceArn"] == dr.outputs["arn"]
    assert any_stack.outputs["edge"]["drWebAclArn"] == dr.outputs["arn"]
