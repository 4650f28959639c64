"""The edge: a WAF-protected TLS Ingress by default, and the ingress-nginx compatibility mode."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
import yaml

import settings
from components.waf_ingress import NGINX_WARNING, greater_than_regex, rate_limit_per_window
from synth import engine
from tests.conftest import ROOT, config_with

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NGINX = {"ingress.mode": "nginx", "ingress.tlsSecretName": "api-tls"}


def web_acl(synthesis):
    [acl] = synthesis.of_type("aws:wafv2/webAcl:WebAcl")
    return acl


def test_web_acl_runs_managed_rules_rate_limit_and_body_limit(prod):
    acl = web_acl(prod).inputs
    assert acl["scope"] == "REGIONAL" and acl["defaultAction"] == {"allow": {}}
    rules = {r["name"]: r for r in acl["rules"]}
    managed = [r["statement"]["managedRuleGroupStatement"]["name"] for r in acl["rules"]
               if "managedRuleGroupStatement" in r["statement"]]
    assert managed == ["AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesSQLiRuleSet"]
    rate = rules["rate-limit-per-ip"]["statement"]["rateBasedStatement"]
    assert rate["limit"] == 10 * 300 and rate["evaluationWindowSec"] == 300 and rate["aggregateKeyType"] == "IP"
    [allowlist] = prod.of_type("aws:wafv2/ipSet:IpSet")
    assert allowlist.inputs["addresses"] == ["10.0.0.0/8"]
    exempt = rate["scopeDownStatement"]["notStatement"]["statement"]["ipSetReferenceStatement"]["arn"]
    assert exempt == allowlist.outputs["arn"]
    body = rules["body-size-limit"]["statement"]["regexMatchStatement"]
    assert body["fieldToMatch"] == {"singleHeader": {"name": "content-length"}}
    assert re.fullmatch(body["regexString"], str(2 * 2**20 + 1)) and not re.fullmatch(body["regexString"], str(2 * 2**20))
    for rule in [*acl["rules"], acl]:
        visibility = rule["visibilityConfig"]
        assert visibility["cloudwatchMetricsEnabled"] and visibility["sampledRequestsEnabled"]


def test_common_rule_set_does_not_block_bodies_the_api_accepts(prod):
    common = next(r for r in web_acl(prod).inputs["rules"] if r["name"] == "AWSManagedRulesCommonRuleSet")
    overrides = common["statement"]["managedRuleGroupStatement"]["ruleActionOverrides"]
    assert overrides == [{"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}]


def test_waf_logs_to_cloudwatch_without_credentials(prod):
    [logging] = prod.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    [group] = [g for g in prod.of_type("aws:cloudwatch/logGroup:LogGroup")
               if g.inputs["name"].startswith("aws-waf-logs-")]
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
    assert annotations["alb.ingress.kubernetes.io/ssl-policy"].startswith("ELBSecurityPolicy-TLS13")
    assert ingress["spec"]["tls"] == [{"hosts": [ingress["spec"]["rules"][0]["host"]]}]
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
    assert ingress["spec"]["tls"] == [{"hosts": ["api.intelgraph.example.com"], "secretName": "api-tls"}]
    assert not nginx.of_type("aws:wafv2/webAcl:WebAcl")


def test_nginx_mode_warns(nginx):
    assert nginx.warnings == [NGINX_WARNING]


def test_nginx_mode_through_a_stack_file_prints_the_warning(tmp_path):
    document = yaml.safe_load((ROOT / "Pulumi.stage.yaml").read_text())
    document["config"]["intelgraph-platform:ingress"].update(mode="nginx", tlsSecretName="api-tls")
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
