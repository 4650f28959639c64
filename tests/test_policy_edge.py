"""The edge rules on every branch: an ALB Ingress or HTTPS listener negotiating TLS 1.0/1.1 (the
default policy included) is refused, and so is a WebACL that never blocks - inline rules, rule JSON,
separate WebAclRule and WebAclRuleGroupAssociation resources alike.

Facts: ELB User Guide for Application Load Balancers, "Security policies for your Application Load
Balancer" (which predefined policies negotiate which protocols; ELBSecurityPolicy-2016-08 is the
API's default and accepts TLS 1.0); aws-load-balancer-controller docs/guide/ingress/annotations.md
(ssl-policy defaults to ELBSecurityPolicy-2016-08); AWS WAF Developer Guide, "Overriding rule group
actions" (override Count sets every rule of the group to Count; None keeps the group's actions)."""

from __future__ import annotations

import json

import pytest

from policy.guardrails import edge
from synth import policy_runner

ACL_ARN = "arn:aws:wafv2:us-east-1:481236059412:regional/webacl/api-acl/7d1f2c3a"


def resource(type_: str, props: dict, name: str = "subject", deps: dict | None = None) -> dict:
    return {"urn": f"urn:pulumi:prod::intelgraph-platform::{type_}::{name}", "custom": True, "id": name,
            "type": type_, "inputs": props, "outputs": props,
            **({"propertyDependencies": deps} if deps else {})}


def judge(rule, *resources: dict) -> policy_runner.Verdict:
    document = {"version": 3, "deployment": {"resources": list(resources)}}
    [result] = policy_runner.evaluate(document, policies=[rule], config={}).verdicts
    return result


def ingress(annotations: dict, ingress_class: str = "alb") -> dict:
    return resource(edge.INGRESS, {"metadata": {"name": "api", "annotations": annotations},
                                   "spec": {"ingressClassName": ingress_class}})


def listener(**props) -> dict:
    return resource(edge.LISTENERS[0], {"loadBalancerArn": "arn:aws:elasticloadbalancing:x", "port": 443, **props})


TLS_CASES = [
    # what, resource, passes, words of the message
    ("ingress TLS 1.3+1.2", ingress({edge.SSL_POLICY: "ELBSecurityPolicy-TLS13-1-2-2021-06"}), True, ""),
    ("ingress TLS 1.2 only (2017)", ingress({edge.SSL_POLICY: "ELBSecurityPolicy-TLS-1-2-2017-01"}), True, ""),
    ("ingress TLS 1.0", ingress({edge.SSL_POLICY: "ELBSecurityPolicy-TLS-1-0-2015-04"}), False,
     "annotation alb.ingress.kubernetes.io/ssl-policy is 'ELBSecurityPolicy-TLS-1-0-2015-04'"),
    ("ingress TLS13 family accepting 1.1", ingress({edge.SSL_POLICY: "ELBSecurityPolicy-TLS13-1-1-2021-06"}), False,
     "set it to ELBSecurityPolicy-TLS13-1-2-2021-06"),
    ("ingress unset: the controller's default", ingress({}), False, "unset (ELBSecurityPolicy-2016-08"),
    ("nginx ingress: no ALB", ingress({}, "nginx"), True, ""),
    ("HTTPS listener TLS 1.2+", listener(protocol="HTTPS", sslPolicy="ELBSecurityPolicy-TLS13-1-2-Res-2021-06"), True, ""),
    ("HTTPS listener default policy", listener(protocol="HTTPS"), False, "sslPolicy is unset"),
    ("TLS listener 2016-08", listener(protocol="TLS", sslPolicy="ELBSecurityPolicy-2016-08"), False,
     "sslPolicy is 'ELBSecurityPolicy-2016-08'"),
    ("HTTP listener: no TLS to negotiate", listener(protocol="HTTP", port=80), True, ""),
]


@pytest.mark.parametrize("what,subject,passes,words", TLS_CASES, ids=[c[0] for c in TLS_CASES])
def test_tls_policy_branches(what, subject, passes, words):
    verdict = judge(edge.tls12_policy, subject)
    assert verdict.evaluated == 1
    if passes:
        assert verdict.violations == []
    else:
        [violation] = verdict.violations
        assert words in violation.message and violation.urn == subject["urn"]


def test_every_allowed_policy_is_a_tls12_or_newer_elb_policy():
    # the names say their floor: TLS13-1-2 / TLS13-1-3 / TLS-1-2 / FS-1-2; nothing older slips in
    for name in edge.TLS12_POLICIES:
        assert name.startswith(("ELBSecurityPolicy-TLS13-1-2-", "ELBSecurityPolicy-TLS13-1-3-",
                                "ELBSecurityPolicy-TLS-1-2-", "ELBSecurityPolicy-FS-1-2-")), name
    assert not {"ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-FS-2018-06", "ELBSecurityPolicy-TLS13-1-0-2021-06",
                "ELBSecurityPolicy-TLS-1-1-2017-01", "ELBSecurityPolicy-FS-1-1-2019-08"} & edge.TLS12_POLICIES
    from components.waf_ingress import TLS_POLICY

    assert TLS_POLICY == edge.RECOMMENDED  # the component uses what the rule recommends


def managed(name: str, override: str) -> dict:
    return {"name": name, "priority": 1, "overrideAction": {override: {}},
            "statement": {"managedRuleGroupStatement": {"vendorName": "AWS", "name": name}}}


def own(action: str) -> dict:
    return {"name": "rate", "priority": 2, "action": {action: {}},
            "statement": {"rateBasedStatement": {"limit": 3000, "aggregateKeyType": "IP"}}}


def acl(default: str, rules: list | None = None, **extra) -> dict:
    return resource(edge.WEB_ACL, {"scope": "REGIONAL", "defaultAction": {default: {}}, "rules": rules or [],
                                   "arn": ACL_ARN, **extra}, name="api-acl")


COUNTING = [managed("AWSManagedRulesCommonRuleSet", "count"), own("count")]
ACL_CASES = [
    ("default block, no rules", [acl("block")], True),
    ("allow, a managed group with override none", [acl("allow", [managed("AWSManagedRulesSQLiRuleSet", "none")])], True),
    ("allow, a rule with action block", [acl("allow", [own("block")])], True),
    ("allow, everything counts", [acl("allow", COUNTING)], False),
    ("allow, no rules at all", [acl("allow")], False),
    ("allow, a rule that allows", [acl("allow", [own("allow")])], False),
    ("allow, rule JSON (API spelling) that blocks",
     [acl("allow", ruleJson=json.dumps([{"Name": "r", "Priority": 1, "Action": {"Block": {}}}]))], True),
    ("allow, rule JSON that counts",
     [acl("allow", ruleJson=json.dumps([{"Name": "g", "Priority": 1, "OverrideAction": {"Count": {}}}]))], False),
    ("allow, a WebAclRule resource blocking, by ARN",
     [acl("allow", COUNTING), resource(edge.WEB_ACL_RULE, {"webAclArn": ACL_ARN, **own("block")}, "r")], True),
    ("allow, a WebAclRule resource blocking, by dependency (unknown ARN at preview)",
     [acl("allow", COUNTING), resource(edge.WEB_ACL_RULE, {"webAclArn": "other", **own("block")}, "r",
                                       deps={"webAclArn": [f"urn:pulumi:prod::intelgraph-platform::{edge.WEB_ACL}::api-acl"]})],
     True),
    ("allow, a WebAclRule of another ACL", [acl("allow", COUNTING), resource(
        edge.WEB_ACL_RULE, {"webAclArn": "arn:aws:wafv2:us-east-1:1:regional/webacl/other/1", **own("block")}, "r")], False),
    ("allow, a rule group association with override none", [acl("allow", COUNTING), resource(
        edge.RULE_GROUP_ASSOCIATION, {"webAclArn": ACL_ARN, "ruleName": "g", "priority": 5, "overrideAction": "none"},
        "g")], True),
    ("allow, a rule group association counting", [acl("allow", COUNTING), resource(
        edge.RULE_GROUP_ASSOCIATION, {"webAclArn": ACL_ARN, "ruleName": "g", "priority": 5, "overrideAction": "count"},
        "g")], False),
]


@pytest.mark.parametrize("what,resources,passes", ACL_CASES, ids=[c[0] for c in ACL_CASES])
def test_web_acl_blocks_branches(what, resources, passes):
    verdict = judge(edge.acl_blocks, *resources)
    assert verdict.evaluated >= 1
    if passes:
        assert verdict.violations == []
    else:
        [violation] = verdict.violations
        assert violation.urn == resources[0]["urn"]
        assert "blocks nothing" in violation.message and "overrideAction none" in violation.message
