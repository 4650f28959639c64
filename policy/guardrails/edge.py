"""The edge: an HTTPS listener accepts only TLS 1.2 and newer, and a WebACL in front of it blocks
something. A WAF that only counts, behind a listener accepting TLS 1.0, passed every other rule."""

from __future__ import annotations

import json

from ._rules import depends_on, dig, each, is_unknown, peek, resource_rule, stack_rule

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_RULE = "aws:wafv2/webAclRule:WebAclRule"
RULE_GROUP_ASSOCIATION = "aws:wafv2/webAclRuleGroupAssociation:WebAclRuleGroupAssociation"
SSL_POLICY = "alb.ingress.kubernetes.io/ssl-policy"
# Elastic Load Balancing User Guide for Application Load Balancers, "Security policies for your
# Application Load Balancer" (describe-ssl-policies): the predefined policies whose protocols are
# TLSv1.2 and/or TLSv1.3 only. Every other one (ELBSecurityPolicy-2016-08 - the default of the API,
# the CLI and the AWS Load Balancer Controller -, -TLS-1-0-*, -TLS-1-1-*, -FS-2018-06, -FS-1-1-*,
# -TLS13-1-0-*, -TLS13-1-1-*) also negotiates TLS 1.0 or 1.1.
TLS12_POLICIES = frozenset({
    "ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04", "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Ext0-FIPS-2023-04", "ELBSecurityPolicy-TLS13-1-2-Ext1-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-FIPS-2023-04", "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-Ext2-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-Ext0-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-FIPS-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-Ext2-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS-1-2-2017-01", "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
    "ELBSecurityPolicy-FS-1-2-2019-08", "ELBSecurityPolicy-FS-1-2-Res-2019-08", "ELBSecurityPolicy-FS-1-2-Res-2020-10",
})
RECOMMENDED = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@resource_rule("alb-tls12-policy", "HTTPS listeners and ALB Ingresses negotiate TLS 1.2 or newer only.",
               (INGRESS, *LISTENERS))
def tls12_policy(props, args):
    if args.resource_type == INGRESS:
        if dig(props, "spec", "ingressClassName") != "alb":
            return
        policy, where = dig(props, "metadata", "annotations", SSL_POLICY), f"annotation {SSL_POLICY}"
    elif dig(props, "protocol") in ("HTTPS", "TLS"):
        policy, where = dig(props, "sslPolicy"), "sslPolicy"
    else:
        return  # an HTTP listener negotiates no TLS (k8s-ingress-tls and the listen-ports keep the edge on HTTPS)
    if policy not in TLS12_POLICIES:
        # unset: the ELB API's and the AWS Load Balancer Controller's default, ELBSecurityPolicy-2016-08
        found = "unset (ELBSecurityPolicy-2016-08: TLS 1.0 and 1.1 too)" if policy is None else repr(policy)
        yield (f"{where} is {found}, not a TLS 1.2+ ALB security policy; set it to {RECOMMENDED} (or another "
               "TLS 1.2+ policy of the ELB User Guide, 'Security policies for your Application Load Balancer').")


def _key(value, name: str):
    """A key in inline rules (camelCase) or in rule JSON (the WAF API's PascalCase)."""
    return next((v for k, v in (value or {}).items() if k.lower() == name.lower()), None)


def _blocks(rule) -> bool:
    """Whether a rule can block: its own action is Block, or it runs a rule group (managed or own)
    whose override is None, so the group's rules keep their actions (AWS WAF Developer Guide,
    "Overriding rule group actions": override Count makes every rule in the group count)."""
    action, override = _key(rule, "action"), _key(rule, "overrideAction")
    if isinstance(override, str):  # WebAclRuleGroupAssociation: "none" or "count"
        return override == "none"
    return _key(action, "block") is not None or (override is not None and _key(override, "none") is not None)


@stack_rule("waf-acl-blocks", "A WebACL blocks something: its default action, or a rule or rule group that is not "
            "counting only.", judges=(WEB_ACL,))
def acl_blocks(resources, args):
    attached = [r for r in resources if r.resource_type in (WEB_ACL_RULE, RULE_GROUP_ASSOCIATION)]
    for acl in (r for r in resources if r.resource_type == WEB_ACL):
        raw = dig(acl.props, "ruleJson")
        rules = [*each(acl.props, "rules"), *(json.loads(raw) if raw else [])]
        arn = peek(acl.props, "arn")
        rules += [r.props for r in attached if acl in depends_on(r, "webAclArn", WEB_ACL)
                  or (not is_unknown(arn) and arn is not None and peek(r.props, "webAclArn") == arn)]
        if _key(dig(acl.props, "defaultAction"), "block") is None and not any(_blocks(r) for r in rules):
            yield (f"WebACL {acl.name} allows by default and every rule counts (action Count, or a rule group "
                   "overridden to Count): it blocks nothing. Give the rules that must stop requests action Block "
                   "and rule groups overrideAction none; count only single rules of a group (ruleActionOverrides).",
                   acl.urn)


POLICIES = [tls12_policy, acl_blocks]
