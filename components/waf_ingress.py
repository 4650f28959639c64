"""WafIngress: the platform's public edge - a TLS Ingress protected by a web application firewall.

Default mode ``alb``: an AWS Load Balancer Controller Ingress with a regional WAFv2 WebACL
attached through ``alb.ingress.kubernetes.io/wafv2-acl-arn``. The controller names the ALB
``k8s-<namespace>-<ingress>-<hash>`` unless ``alb.ingress.kubernetes.io/load-balancer-name`` fixes
it, so the Ingress fixes it and the component reads that ALB back (``aws.lb.get_load_balancer``,
made to wait for the Ingress: the ALB exists only once the controller has reconciled it). DNS
aliases exactly that ALB - the one the WebACL protects - never a name from config. A regional
WebACL protects only its own region's ALBs, so each region's tier builds its own WafIngress
(components/regional_tier.py). The ACL runs AWS's managed rule
groups (common, known bad inputs, SQL injection), a per-IP rate limit that exempts an allowlist,
and a request-size limit; every rule emits CloudWatch metrics and sampled requests, and the ACL
logs to CloudWatch Logs with credentials redacted.

Compatibility mode ``nginx``, for clusters still on ingress-nginx (retired in March 2026: no more
security fixes): the same Ingress with the controller's non-snippet annotations only.
``modsecurity-snippet`` is refused by current controllers; ModSecurity blocking
(``SecRuleEngine On``) must be switched on in the controller's ConfigMap instead
(docs/decisions/006-waf-instead-of-nginx-snippets.md).

Rate limit translation (docs/decisions/007-waf-rate-limit-translation.md): the design notes
allowed 10 rps with bursts of 2x on nginx's leaky bucket. WAF
counts requests per client IP over a sliding window, so the limit is rps x window (10 x 300 s =
3000 per 5 minutes). A window average has no separate burst knob: a client may burst at 2x for
half the window, which is that burst allowance spread over time.

Body size (docs/decisions/008-waf-body-size.md): WAF on an ALB inspects only the first 8 KB of a body, so it cannot measure a 2 MB
body. The limit is enforced on the declared Content-Length instead, and the common rule set's
8 KB SizeRestrictions_BODY rule is set to count - otherwise it would block every request above
8 KB, far below the 2 MB the API accepts. Chunked uploads are bounded by the backend.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal, Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from helpers.log_groups import log_key
from helpers.validation import require

RATE_WINDOW_SECONDS = 300
WAF_BODY_INSPECTION_BYTES = 8 * 1024
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesSQLiRuleSet")
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
REGION_ANNOTATION = "intelgraph.io/region"
NGINX_WARNING = (
    "ingress.mode is nginx: ingress-nginx was retired in March 2026 and gets no security fixes; "
    "WAF blocking needs enable-modsecurity and 'SecRuleEngine On' in the controller ConfigMap "
    "(modsecurity-snippet is refused). Plan the move to mode alb."
)


# Elastic Load Balancing: a load balancer name has at most 32 characters, only alphanumerics and
# hyphens, must not begin or end with a hyphen, and must not begin with "internal-".
_ALB_NAME = re.compile(r"^(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")


def rate_limit_per_window(requests_per_second: int, window_seconds: int = RATE_WINDOW_SECONDS) -> int:
    return requests_per_second * window_seconds


def greater_than_regex(limit: int) -> str:
    """A regex matching exactly the decimal integers (no sign, no leading zeros) above ``limit``.

    WAF compares strings, not numbers; this turns "Content-Length > limit" into a pattern.
    """
    digits = str(limit)
    branches = [rf"[1-9]\d{{{len(digits)},}}"]  # more digits than the limit
    for i, digit in enumerate(digits):
        d = int(digit)
        if d == 9:
            continue
        prefix = digits[:i]
        rest = len(digits) - i - 1
        first = f"[{d + 1}-9]" if d + 1 < 9 else "9"
        branches.append(f"{prefix}{first}" + (rf"\d{{{rest}}}" if rest else ""))
    return "^(" + "|".join(branches) + ")$"


@dataclass(frozen=True)
class WafIngressArgs:
    mode: Literal["alb", "nginx"]
    namespace: str
    host: str
    service_name: str
    service_port: int
    certificate_arn: str
    requests_per_second: int
    burst_multiplier: int
    allowlist_cidrs: tuple[str, ...]
    max_body_bytes: int
    tls_secret_name: Optional[str] = None  # nginx mode terminates TLS in the cluster
    log_retention_days: int = 90
    load_balancer_name: Optional[str] = None  # alb mode: the ALB's fixed name
    # A host served only for the health check: Route 53 probes the primary ALB by this name.
    health_host: Optional[str] = None
    health_path: str = "/healthz"
    # the Kubernetes object's name (default: the component's): one name in every region's cluster
    ingress_name: Optional[str] = None
    # alb mode: the region of the cluster (and so of its ALB), stated on the Ingress for the policy
    # pack, which cannot derive it from a kubeconfig alias or file
    region: Optional[str] = None
    # alb mode: the account, for the WAF log group's key policy (known here: no invoke asks for it)
    account_id: Optional[str] = None
    # The URN of the component the WebACL's resources were children of before (a stack deployed
    # when another edge built this region's WebACL): an alias each, so nothing is replaced.
    acl_moved_from: Optional[pulumi.Input[str]] = None

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in ("alb", "nginx"):
            problems.append("mode must be 'alb' or 'nginx'")
        if self.mode == "nginx" and not self.tls_secret_name:
            problems.append("nginx mode needs tls_secret_name (TLS is always on)")
        if self.requests_per_second * RATE_WINDOW_SECONDS < 10:
            problems.append("the rate limit must allow at least 10 requests per window (WAF's minimum)")
        if self.max_body_bytes <= WAF_BODY_INSPECTION_BYTES:
            problems.append("max_body_bytes at or below 8 KB: use WAF's body size constraint directly")
        if self.mode == "alb" and not _ALB_NAME.match(self.load_balancer_name or ""):
            problems.append(f"load_balancer_name {self.load_balancer_name!r} is not a valid ALB name: at most 32 "
                            "letters, digits and '-', not starting or ending with '-' nor with 'internal-'")
        if self.health_host == self.host:
            problems.append("health_host must differ from host: the health check must reach the primary itself")
        if not self.health_path.startswith("/"):
            problems.append("health_path must start with '/'")
        if self.mode == "alb" and not (self.region and self.account_id):
            problems.append("alb mode needs region and account_id (the WAF log group's key policy names both)")
        require("WafIngressArgs", problems)


class WafIngress(pulumi.ComponentResource):
    web_acl_arn: Optional[pulumi.Output[str]]
    load_balancer_dns_name: Optional[pulumi.Output[str]]  # alb mode: the ALB the Ingress creates
    load_balancer_zone_id: Optional[pulumi.Output[str]]
    warnings: list[str]

    def __init__(self, name: str, args: WafIngressArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:edge:WafIngress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.web_acl_arn = None
        self.load_balancer_dns_name = self.load_balancer_zone_id = None
        self.warnings = []
        hosts = [args.host, *([args.health_host] if args.health_host else [])]
        if args.mode == "alb":
            acl = self._web_acl(name, args, pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                aliases=[pulumi.Alias(parent=args.acl_moved_from)] if args.acl_moved_from else None)))
            self.web_acl_arn = acl.arn
            assert args.load_balancer_name is not None  # WafIngressArgs requires it in alb mode
            annotations: dict[str, pulumi.Input[str]] = {
                "alb.ingress.kubernetes.io/scheme": "internet-facing",
                "alb.ingress.kubernetes.io/target-type": "ip",
                "alb.ingress.kubernetes.io/listen-ports": json.dumps([{"HTTPS": 443}]),
                "alb.ingress.kubernetes.io/certificate-arn": args.certificate_arn,
                "alb.ingress.kubernetes.io/ssl-policy": TLS_POLICY,
                "alb.ingress.kubernetes.io/healthcheck-path": args.health_path,
                "alb.ingress.kubernetes.io/wafv2-acl-arn": acl.arn,
                "alb.ingress.kubernetes.io/load-balancer-name": args.load_balancer_name,
                **({REGION_ANNOTATION: args.region} if args.region else {}),
            }
            tls: list[k8s.networking.v1.IngressTLSArgsDict] = [{"hosts": hosts}]
            ingress_class = "alb"
        else:
            self.warnings.append(NGINX_WARNING)
            pulumi.log.warn(NGINX_WARNING, resource=self)
            annotations = {
                "nginx.ingress.kubernetes.io/enable-modsecurity": "true",
                "nginx.ingress.kubernetes.io/enable-owasp-core-rules": "true",
                "nginx.ingress.kubernetes.io/limit-rps": str(args.requests_per_second),
                "nginx.ingress.kubernetes.io/limit-burst-multiplier": str(args.burst_multiplier),
                "nginx.ingress.kubernetes.io/limit-allowlist": ",".join(args.allowlist_cidrs),
                "nginx.ingress.kubernetes.io/proxy-body-size": f"{args.max_body_bytes // 2**20}m",
                "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
            }
            tls = [{"hosts": hosts, "secret_name": args.tls_secret_name}]
            ingress_class = "nginx"

        backend: k8s.networking.v1.IngressBackendArgsDict = {
            "service": {"name": args.service_name, "port": {"number": args.service_port}}}
        rules: list[k8s.networking.v1.IngressRuleArgsDict] = [
            {"host": args.host, "http": {"paths": [{"path": "/", "path_type": "Prefix", "backend": backend}]}}]
        if args.health_host:
            # Route 53 sends the checked name as Host and SNI; an ALB answers a host no rule
            # matches with its default fixed 404, which the check counts as a failure.
            rules.append({"host": args.health_host, "http": {"paths": [
                {"path": args.health_path, "path_type": "Exact", "backend": backend}]}})
        ingress = k8s.networking.v1.Ingress(
            name,
            metadata={"name": args.ingress_name or name, "namespace": args.namespace, "annotations": annotations},
            spec={"ingress_class_name": ingress_class, "tls": tls, "rules": rules},
            opts=child,
        )
        if args.mode == "alb":
            # Without depends_on the lookup would run when the program runs - before the
            # controller has created the ALB on the first `up`.
            alb = aws.lb.get_load_balancer_output(
                name=args.load_balancer_name,
                opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[ingress]))
            # carried with the Ingress as their dependency (an unknown invoke result carries none): a record
            # aliasing them then depends on the Ingress, which a preview's policy can follow
            self.load_balancer_dns_name, self.load_balancer_zone_id = (
                pulumi.Output.all(ingress.urn, value).apply(lambda pair: pair[1]) for value in (alb.dns_name, alb.zone_id))
        self.register_outputs({"webAclArn": self.web_acl_arn,
                               "loadBalancerDnsName": self.load_balancer_dns_name,
                               "ingress": ingress.metadata.name})

    def _web_acl(self, name: str, args: WafIngressArgs, opts: pulumi.ResourceOptions) -> aws.wafv2.WebAcl:
        account_id, region = args.account_id, args.region
        assert account_id and region  # WafIngressArgs requires both in alb mode
        allowlist = aws.wafv2.IpSet(
            f"{name}-allowlist",
            scope="REGIONAL",
            ip_address_version="IPV4",
            addresses=list(args.allowlist_cidrs),
            description="Clients exempt from the rate limit",
            opts=opts,
        )
        rules: list[aws.wafv2.WebAclRuleArgsDict] = [
            *[self._managed(group, priority) for priority, group in enumerate(MANAGED_RULE_GROUPS)],
            {
                "name": "rate-limit-per-ip",
                "priority": 10,
                "action": {"block": {}},
                "statement": {"rate_based_statement": {
                    "limit": rate_limit_per_window(args.requests_per_second),
                    "evaluation_window_sec": RATE_WINDOW_SECONDS,
                    "aggregate_key_type": "IP",
                    # allowlisted networks are never rate limited
                    "scope_down_statement": {"not_statement": {"statement": {
                        "ip_set_reference_statement": {"arn": allowlist.arn}}}},
                }},
                "visibility_config": _visibility("rate-limit-per-ip"),
            },
            {
                "name": "body-size-limit",
                "priority": 20,
                "action": {"block": {}},
                "statement": {"regex_match_statement": {
                    "regex_string": greater_than_regex(args.max_body_bytes),
                    "field_to_match": {"single_header": {"name": "content-length"}},
                    "text_transformations": [{"priority": 0, "type": "NONE"}],
                }},
                "visibility_config": _visibility("body-size-limit"),
            },
        ]
        acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            scope="REGIONAL",
            description=f"Edge protection for {args.host}",
            default_action={"allow": {}},
            rules=rules,
            visibility_config=_visibility(f"{name}-acl"),
            opts=opts,
        )
        # WAF requires the "aws-waf-logs-" prefix on its log destinations.
        logs = aws.cloudwatch.LogGroup(
            f"{name}-waf-logs",
            name=f"aws-waf-logs-{name}",
            retention_in_days=args.log_retention_days,
            # WAF logs carry client addresses and URIs
            kms_key_id=log_key(f"{name}-waf-logs", opts, account_id=account_id, region=region).arn,
            opts=opts,
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-waf-logging",
            resource_arn=acl.arn,
            log_destination_configs=[logs.arn],
            # credentials never reach the logs (docs/decisions/010-log-scrubbing-fields.md)
            redacted_fields=[{"single_header": {"name": "authorization"}},
                             {"single_header": {"name": "cookie"}}],
            opts=opts,
        )
        return acl

    @staticmethod
    def _managed(group: str, priority: int) -> aws.wafv2.WebAclRuleArgsDict:
        statement: aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgsDict = {"vendor_name": "AWS", "name": group}
        if group == "AWSManagedRulesCommonRuleSet":
            # 8 KB body rule would block legitimate bodies up to the 2 MB limit (see module doc)
            statement["rule_action_overrides"] = [{"name": "SizeRestrictions_BODY", "action_to_use": {"count": {}}}]
        return {
            "name": group,
            "priority": priority,
            "override_action": {"none": {}},
            "statement": {"managed_rule_group_statement": statement},
            "visibility_config": _visibility(group),
        }


def _visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgsDict:
    return {"cloudwatch_metrics_enabled": True, "sampled_requests_enabled": True, "metric_name": metric}
