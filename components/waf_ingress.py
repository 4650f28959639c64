"""WafIngress: the platform's public edge - TLS at a load balancer protected by a web application firewall.

Default mode ``alb``: the program owns the region's Application Load Balancer (docs/decisions/020):
an internet-facing ALB in the region's public subnets with one HTTPS listener (the region's ACM
certificate, a TLS 1.2+ policy; no HTTP listener: nothing listens on 80), host rules forwarding to a
target group of type ``ip``, and the region's WAFv2 WebACL associated with it. The application's
Service (``ingress.serviceName``, which this program does not create) is bound to the target group
by a ``TargetGroupBinding`` (elbv2.k8s.aws/v1beta1): the AWS Load Balancer Controller registers the
Service's pods as targets when the Service appears and opens the pods' security group to the ALB's
(``spec.networking``). Nothing here waits for the application - pulumi-kubernetes awaits no custom
resource without a ``pulumi.com/waitFor`` annotation - so a first deploy does not depend on it, and
Route 53 aliases the ALB resource's own DNS name and zone (no lookup reaches any region at deploy).
A regional WebACL protects only its own region's ALBs, so each region's tier builds its own
WafIngress (components/regional_tier.py). The ACL runs AWS's managed rule groups (common, known bad
inputs, SQL injection), a per-IP rate limit that exempts an allowlist, and a request-size limit;
every rule emits CloudWatch metrics and sampled requests, and the ACL logs to CloudWatch Logs with
credentials redacted.

Compatibility mode ``nginx``, for clusters still on ingress-nginx (retired in March 2026: no more
security fixes): an Ingress with the controller's non-snippet annotations only.
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

import re
from dataclasses import dataclass
from typing import Literal, Optional

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.egress_policy import flow_policy
from helpers.flows import Flow, Peer
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
class EdgeNetwork:
    """alb mode: where the region's ALB lives and whom it sends to."""

    vpc_id: str
    vpc_cidr: str  # the pods the ALB sends to are in the VPC (target type ip)
    public_subnet_ids: tuple[str, ...]
    public_subnet_cidrs: tuple[str, ...]  # the ALB's nodes' addresses: what the pods see


# The app's pods that take the ALB's traffic carry this label: the NetworkPolicy admitting the ALB
# selects them only, so no other pod of the application's namespace changes (a policy isolates
# every pod it selects).
EDGE_BACKEND_LABEL = {"intelgraph.io/edge-backend": "api"}


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
    network: Optional[EdgeNetwork] = None  # alb mode
    pod_port: Optional[int] = None  # alb mode: the Service's targetPort (default service_port)
    # A host served only for the health check: Route 53 probes the primary ALB by this name.
    health_host: Optional[str] = None
    health_path: str = "/healthz"
    # the Kubernetes objects' name (default: the component's): one name in every region's cluster
    ingress_name: Optional[str] = None
    # the region of the cluster (and so of its ALB), stated on the Kubernetes objects for readers
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
        if self.mode == "alb" and (self.network is None or len(self.network.public_subnet_ids) < 2):
            problems.append("alb mode needs network with public subnets in at least two availability zones")
        if self.health_host == self.host:
            problems.append("health_host must differ from host: the health check must reach the primary itself")
        if not self.health_path.startswith("/"):
            problems.append("health_path must start with '/'")
        if self.mode == "alb" and not (self.region and self.account_id):
            problems.append("alb mode needs region and account_id (the WAF log group's key policy names both)")
        require("WafIngressArgs", problems)

    @property
    def target_port(self) -> int:
        return self.pod_port or self.service_port


class WafIngress(pulumi.ComponentResource):
    web_acl_arn: Optional[pulumi.Output[str]]
    load_balancer_dns_name: Optional[pulumi.Output[str]]  # alb mode: the program's ALB
    load_balancer_zone_id: Optional[pulumi.Output[str]]
    warnings: list[str]

    def __init__(self, name: str, args: WafIngressArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:edge:WafIngress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.web_acl_arn = None
        self.load_balancer_dns_name = self.load_balancer_zone_id = None
        self.warnings = []
        if args.mode == "alb":
            acl = self._web_acl(name, args, pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                aliases=[pulumi.Alias(parent=args.acl_moved_from)] if args.acl_moved_from else None)))
            self.web_acl_arn = acl.arn
            alb = self._load_balancer(name, args, acl, child)
            # Route 53 aliases the resource's own outputs: no lookup, and a record's dependency on
            # the ALB (which a preview's policy follows to the WebACL association) comes with them
            self.load_balancer_dns_name, self.load_balancer_zone_id = alb.dns_name, alb.zone_id
        else:
            self.warnings.append(NGINX_WARNING)
            pulumi.log.warn(NGINX_WARNING, resource=self)
            self._nginx_ingress(name, args, child)
        self.register_outputs({"webAclArn": self.web_acl_arn, "loadBalancerDnsName": self.load_balancer_dns_name})

    def _load_balancer(self, name: str, args: WafIngressArgs, acl: aws.wafv2.WebAcl,
                       opts: pulumi.ResourceOptions) -> aws.lb.LoadBalancer:
        """The region's ALB, its HTTPS listener and host rules, the WebACL on it, and the binding
        of the application's Service to its targets."""
        net, port = args.network, args.target_port
        assert net is not None and args.load_balancer_name is not None  # WafIngressArgs requires both in alb mode
        group = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            # no port in it: a description is ForceNew (synth/forcenew.py), a new podPort only edits the rule
            description=f"ALB {args.load_balancer_name}: HTTPS from clients, the pod port to the pods behind it",
            vpc_id=net.vpc_id,
            ingress=[{"description": "HTTPS from clients (the WebACL filters them)", "protocol": "tcp",
                      "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}],
            # target type ip: the ALB opens connections to pod addresses in the VPC, for requests
            # and health checks alike ("traffic-port"); the TargetGroupBinding opens the pods' side
            egress=[{"description": "requests and health checks to the pods (target type ip)", "protocol": "tcp",
                     "from_port": port, "to_port": port, "cidr_blocks": [net.vpc_cidr]}],
            tags={"Name": f"{args.load_balancer_name}-alb"},
            opts=opts,
        )
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=args.load_balancer_name,
            load_balancer_type="application",
            internal=False,
            ip_address_type="ipv4",
            subnets=list(net.public_subnet_ids),
            security_groups=[group.id],
            drop_invalid_header_fields=True,  # headers that are not valid HTTP never reach the app
            enable_waf_fail_open=False,  # AWS WAF unreachable: refuse, never pass unfiltered
            tags={"Name": args.load_balancer_name},
            opts=opts,
        )
        targets = aws.lb.TargetGroup(
            f"{name}-targets",
            target_type="ip",
            ip_address_type="ipv4",
            protocol="HTTP",  # TLS ends at the ALB, as it did behind the Ingress
            port=port,
            vpc_id=net.vpc_id,
            health_check={"enabled": True, "protocol": "HTTP", "port": "traffic-port", "path": args.health_path,
                          "matcher": "200"},
            opts=opts,
        )
        listener = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=args.certificate_arn,
            # a host no rule names gets a 404, as the controller's ALB answered it
            default_actions=[{"type": "fixed-response", "fixed_response": {
                "content_type": "text/plain", "status_code": "404", "message_body": "not found"}}],
            opts=opts,
        )
        forward: list[aws.lb.ListenerRuleActionArgsDict] = [{"type": "forward", "target_group_arn": targets.arn}]
        aws.lb.ListenerRule(f"{name}-host", listener_arn=listener.arn, priority=10, actions=forward,
                            conditions=[{"host_header": {"values": [args.host]}}], opts=opts)
        if args.health_host:
            # Route 53 sends the checked name as Host and SNI: only the health path answers there
            aws.lb.ListenerRule(f"{name}-health", listener_arn=listener.arn, priority=20, actions=forward,
                                conditions=[{"host_header": {"values": [args.health_host]}},
                                            {"path_pattern": {"values": [args.health_path]}}], opts=opts)
        aws.wafv2.WebAclAssociation(f"{name}-waf", resource_arn=alb.arn, web_acl_arn=acl.arn, opts=opts)

        # The application's Service into the target group, whenever it exists: the controller
        # watches Services and registers their pods' addresses (target type ip); a missing Service is
        # an event on the binding, not an error, and no await here waits for it.
        object_name = args.ingress_name or name
        k8s.apiextensions.CustomResource(
            f"{name}-binding",
            api_version="elbv2.k8s.aws/v1beta1",
            kind="TargetGroupBinding",
            metadata={"name": object_name, "namespace": args.namespace, "annotations": {
                # never awaited, even where PULUMI_K8S_AWAIT_ALL=true awaits every object's Ready
                # condition (pulumi-kubernetes metadata/overrides.go: SkipAwaitLogic comes first)
                "pulumi.com/skipAwait": "true",
                **({REGION_ANNOTATION: args.region} if args.region else {})}},
            spec={
                "serviceRef": {"name": args.service_name, "port": args.service_port},
                "targetGroupARN": targets.arn,
                "targetType": "ip",
                "ipAddressType": "ipv4",
                "vpcID": net.vpc_id,
                # the controller adds this rule to the pods' security group: from the ALB's only
                "networking": {"ingress": [{"from": [{"securityGroup": {"groupID": group.id}}],
                                            "ports": [{"protocol": "TCP", "port": port}]}]},
            },
            # the controller's webhook refuses a change of these (targetgroupbinding_validator.go,
            # checkImmutableFields): a new target group (a new port) replaces the binding, deleted
            # first since its name stays (pulumi-kubernetes provider.go, deleteBeforeReplace)
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(replace_on_changes=[
                "spec.targetGroupARN", "spec.targetType", "spec.ipAddressType", "spec.vpcID"])),
        )
        flow_policy(f"{name}-{EDGE_FLOW}", args.namespace, edge_flow(net, port), opts)
        return alb

    def _nginx_ingress(self, name: str, args: WafIngressArgs, opts: pulumi.ResourceOptions) -> None:
        hosts = [args.host, *([args.health_host] if args.health_host else [])]
        annotations = {
            "nginx.ingress.kubernetes.io/enable-modsecurity": "true",
            "nginx.ingress.kubernetes.io/enable-owasp-core-rules": "true",
            "nginx.ingress.kubernetes.io/limit-rps": str(args.requests_per_second),
            "nginx.ingress.kubernetes.io/limit-burst-multiplier": str(args.burst_multiplier),
            "nginx.ingress.kubernetes.io/limit-allowlist": ",".join(args.allowlist_cidrs),
            "nginx.ingress.kubernetes.io/proxy-body-size": f"{args.max_body_bytes // 2**20}m",
            "nginx.ingress.kubernetes.io/force-ssl-redirect": "true",
        }
        backend: k8s.networking.v1.IngressBackendArgsDict = {
            "service": {"name": args.service_name, "port": {"number": args.service_port}}}
        rules: list[k8s.networking.v1.IngressRuleArgsDict] = [
            {"host": args.host, "http": {"paths": [{"path": "/", "path_type": "Prefix", "backend": backend}]}}]
        if args.health_host:
            # Route 53 sends the checked name as Host and SNI: a host no rule matches is a failure
            rules.append({"host": args.health_host, "http": {"paths": [
                {"path": args.health_path, "path_type": "Exact", "backend": backend}]}})
        k8s.networking.v1.Ingress(
            name,
            metadata={"name": args.ingress_name or name, "namespace": args.namespace, "annotations": annotations},
            spec={"ingress_class_name": "nginx", "tls": [{"hosts": hosts, "secret_name": args.tls_secret_name}],
                  "rules": rules},
            opts=opts,
        )

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


EDGE_FLOW = "from-load-balancer"


def edge_flow(net: EdgeNetwork, port: int) -> Flow:
    """The ALB's requests and health checks into the application's pods that carry EDGE_BACKEND_LABEL:
    with target type ip they arrive from the ALB's nodes, whose addresses lie in its subnets."""
    return Flow(EDGE_FLOW, "ingress", Peer(cidrs=net.public_subnet_cidrs), (port,), pods=dict(EDGE_BACKEND_LABEL),
                reason="the edge ALB (target type ip) reaches the API's pods from its public subnets")
