"""The edge: the program's WAF-protected ALB per region by default, and the ingress-nginx compatibility mode."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import pytest
import yaml

import settings
from components.waf_ingress import (
    EDGE_BACKEND_LABEL,
    EDGE_FLOW,
    NGINX_WARNING,
    TLS_POLICY,
    greater_than_regex,
    rate_limit_per_window,
)
from synth import engine
from synth.engine import Resource
from tests.conftest import ROOT, config_with, stack_settings

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NGINX = {"ingress.mode": "nginx", "ingress.tlsSecretName": "api-tls",
         "dns.primaryLoadBalancer": {"dnsName": "ingress-nginx-4f1c2a9b7e-1736402215.us-east-1.elb.amazonaws.com",
                                     "zoneId": "Z35SXDOTRQ7X7K"},
         # each region's ingress-nginx controller has its own load balancer (us-west-2's canonical zone)
         "dns.drLoadBalancer": {"dnsName": "ingress-nginx-8d2e5f1a3c-2039485716.us-west-2.elb.amazonaws.com",
                                "zoneId": "Z1H1FL5HABSF5"}}
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
RULE = "aws:lb/listenerRule:ListenerRule"
BINDING = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"


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


def edge(synthesis, role: str = "primary") -> dict[str, Resource]:
    """One region's edge: its ALB, security group, listener, host rules, target group, WebACL association,
    TargetGroupBinding and NetworkPolicy, by kind."""
    prefix = "api" if role == "primary" else "api-dr"
    found = {kind: synthesis.named(f"{prefix}-{suffix}", type_) for kind, (suffix, type_) in {
        "alb": ("alb", LOAD_BALANCER), "sg": ("alb-sg", "aws:ec2/securityGroup:SecurityGroup"),
        "listener": ("https", "aws:lb/listener:Listener"), "targets": ("targets", "aws:lb/targetGroup:TargetGroup"),
        "host": ("host", RULE), "association": ("waf", "aws:wafv2/webAclAssociation:WebAclAssociation"),
        "binding": ("binding", BINDING), "policy": (f"{EDGE_FLOW}", "kubernetes:networking.k8s.io/v1:NetworkPolicy"),
        "acl": ("acl", WEB_ACL)}.items()}
    if role == "primary":
        found["health"] = synthesis.named("api-health", RULE)
    return found


@pytest.mark.parametrize("role", ["primary", "dr"])
def test_each_region_s_alb_is_tls_only_in_its_public_subnets_behind_its_web_acl(any_stack, role):
    """ELB User Guide, "Security policies for your Application Load Balancer":
    ELBSecurityPolicy-TLS13-1-2-2021-06 negotiates TLS 1.3 and 1.2 only. One HTTPS listener and a
    security group open on 443 only: nothing answers plain HTTP. An ALB takes only a certificate of
    its own region (ACM), and a REGIONAL WebACL protects only resources of its region (AWS WAF
    Developer Guide), so each region's ALB gets its own of both."""
    from tests.test_postgres_dr import region_of

    cfg = stack_settings(any_stack.stack)
    region, net = cfg.aws.region(role), cfg.network.of(role)
    e = edge(any_stack, role)
    alb = e["alb"].inputs
    assert alb["loadBalancerType"] == "application" and alb["internal"] is False
    assert alb["subnets"] == net.public_subnet_ids and alb["securityGroups"] == [e["sg"].id]
    assert alb["dropInvalidHeaderFields"] is True and alb["enableWafFailOpen"] is False
    assert alb["name"] == f"intelgraph-{any_stack.stack}-edge" + ("" if role == "primary" else "-dr")
    assert {region_of(any_stack, r) for r in e.values() if r.type.startswith("aws:")} == {region}
    [listener] = [r for r in any_stack.of_type("aws:lb/listener:Listener")
                  if r.inputs["loadBalancerArn"] == e["alb"].outputs["arn"]]
    assert listener.inputs["protocol"] == "HTTPS" and listener.inputs["port"] == 443
    assert listener.inputs["sslPolicy"] == TLS_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listener.inputs["certificateArn"] == (cfg.ingress.certificate_arn if role == "primary"
                                                 else cfg.ingress.dr_certificate_arn)
    assert listener.inputs["certificateArn"].startswith(f"arn:aws:acm:{region}:")
    assert [(r["fromPort"], r["toPort"]) for r in e["sg"].inputs["ingress"]] == [(443, 443)]
    port = cfg.ingress.pod_port or cfg.ingress.service_port
    assert [(r["fromPort"], r["toPort"], r["cidrBlocks"]) for r in e["sg"].inputs["egress"]] == [
        (port, port, [net.vpc_cidr])]
    assert e["association"].inputs == {"resourceArn": e["alb"].outputs["arn"], "webAclArn": e["acl"].outputs["arn"]}


def test_the_host_and_the_health_name_forward_to_ip_targets_and_nothing_else(prod):
    """The Ingress's rules, kept: the API's host on every path, the checked name on the health path
    only (Route 53 sends it as Host and SNI); any other host gets the listener's fixed 404."""
    cfg = stack_settings("prod")
    e = edge(prod)
    targets = e["targets"].inputs
    assert targets["targetType"] == "ip" and targets["protocol"] == "HTTP" and targets["vpcId"] == cfg.network.primary.vpc_id
    assert targets["port"] == cfg.ingress.service_port and targets["healthCheck"]["path"] == "/healthz"
    assert targets["healthCheck"]["port"] == "traffic-port"
    forward = [{"type": "forward", "targetGroupArn": e["targets"].outputs["arn"]}]
    assert e["host"].inputs["actions"] == forward and e["health"].inputs["actions"] == forward
    assert e["host"].inputs["conditions"] == [{"hostHeader": {"values": [cfg.ingress.host]}}]
    assert e["health"].inputs["conditions"] == [{"hostHeader": {"values": [cfg.dns.health_check.fqdn]}},
                                                {"pathPattern": {"values": ["/healthz"]}}]
    assert e["listener"].inputs["defaultActions"][0]["fixedResponse"]["statusCode"] == "404"
    with pytest.raises(KeyError):  # the DR region is checked by nobody: no health name there
        prod.named("api-dr-health", RULE)


def test_the_application_s_service_is_bound_to_the_targets_without_being_awaited(any_stack):
    """TargetGroupBinding (AWS Load Balancer Controller docs, guide/targetgroupbinding): serviceRef is
    the Service and its port, in the binding's namespace; spec.networking makes the controller add the
    rule from the ALB's security group to the pods' (pkg/networking/networking_manager.go). The
    object matches the controller's CRD (tests/test_custom_resources.py) and carries no
    pulumi.com/waitFor: pulumi-kubernetes then awaits nothing for it (metadata.ReadyCondition returns
    an immediate condition unless PULUMI_K8S_AWAIT_ALL is true; pulumi.com/skipAwait covers that too)."""
    cfg = stack_settings(any_stack.stack)
    for role in ("primary", "dr"):
        e = edge(any_stack, role)
        binding = e["binding"].inputs
        assert binding["apiVersion"] == "elbv2.k8s.aws/v1beta1" and binding["kind"] == "TargetGroupBinding"
        assert binding["metadata"]["namespace"] == cfg.ingress.namespace and binding["metadata"]["name"] == "api"
        assert "pulumi.com/waitFor" not in binding["metadata"]["annotations"]
        # and not under PULUMI_K8S_AWAIT_ALL=true either: ReadyCondition checks SkipAwaitLogic first
        assert binding["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
        assert binding["spec"]["serviceRef"] == {"name": cfg.ingress.service_name, "port": cfg.ingress.service_port}
        assert binding["spec"]["targetGroupARN"] == e["targets"].outputs["arn"] and binding["spec"]["targetType"] == "ip"
        assert binding["spec"]["vpcID"] == cfg.network.of(role).vpc_id
        # the webhook's immutable fields (webhooks/elbv2/targetgroupbinding_validator.go): a change replaces
        assert set(e["binding"].replace_on_changes) == {"spec.targetGroupARN", "spec.targetType", "spec.ipAddressType",
                                                         "spec.vpcID"}
        port = cfg.ingress.pod_port or cfg.ingress.service_port
        assert binding["spec"]["networking"] == {"ingress": [{
            "from": [{"securityGroup": {"groupID": e["sg"].id}}], "ports": [{"protocol": "TCP", "port": port}]}]}


def test_pod_port_sets_the_targets_and_every_rule_that_reaches_the_pods():
    synthesis = engine.synthesize("stage", config_with("stage", {"ingress.podPort": 3000}))
    e = edge(synthesis, "dr")
    assert e["targets"].inputs["port"] == 3000
    assert e["binding"].inputs["spec"]["serviceRef"]["port"] == 8080  # the Service's port stays
    assert e["binding"].inputs["spec"]["networking"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 3000}]
    assert e["sg"].inputs["egress"][0]["fromPort"] == 3000
    assert e["policy"].inputs["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 3000}]


def test_the_network_policy_admits_the_alb_subnets_to_the_labelled_backend_pods_only(any_stack):
    """A NetworkPolicy isolates every pod it selects (Kubernetes docs, "Network Policies"): in the
    application's namespace the program selects only the pods that opt in with EDGE_BACKEND_LABEL."""
    cfg = stack_settings(any_stack.stack)
    for role in ("primary", "dr"):
        spec = edge(any_stack, role)["policy"].inputs["spec"]
        assert spec["podSelector"] == {"matchLabels": EDGE_BACKEND_LABEL} and spec["policyTypes"] == ["Ingress"]
        assert spec["ingress"][0]["from"] == [{"ipBlock": {"cidr": c}} for c in cfg.network.of(role).public_subnet_cidrs]


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


# --- DNS aliases the program's ALB: no lookup, and nothing that waits for the application

def test_dns_aliases_each_region_s_alb_resource(any_stack):
    """The records alias the ALB resources' own dns_name and zone_id: no aws.lb.get_load_balancer
    lookup, which reached the primary region on every deploy (the failed-over deploy must not)."""
    records = {r.inputs["setIdentifier"]: r for r in any_stack.of_type("aws:route53/record:Record")
               if r.inputs.get("setIdentifier")}
    for role, record in (("primary", records["primary"]), ("dr", records["secondary"])):
        alb = edge(any_stack, role)["alb"]
        assert record.inputs["aliases"][0]["name"] == alb.outputs["dnsName"]
        assert record.inputs["aliases"][0]["zoneId"] == alb.outputs["zoneId"]
        assert record.property_dependencies["aliases"] == [alb.urn]
    assert records["primary"].inputs["aliases"][0]["zoneId"] == "Z35SXDOTRQ7X7K"  # us-east-1's ALB hosted zone
    assert any_stack.outputs["edge"]["loadBalancerDnsName"] == edge(any_stack)["alb"].outputs["dnsName"]
    # the old Ingress's ALB (named by the controller) keeps its name until it is deleted: the new one differs
    assert edge(any_stack)["alb"].inputs["name"] != f"intelgraph-{any_stack.stack}-api"


def test_the_edge_makes_no_lookup(any_stack):
    """A deploy calls no ELB API through an invoke (synth records every call the program makes:
    tests/test_failed_over_deploy.py proves the recording)."""
    assert not [i for i in any_stack.invokes if i.token.startswith("aws:lb/")]


def awaited_objects(synthesis) -> dict[str, set[str]]:
    """What pulumi-kubernetes waits for before it reports each resource created, by URN
    (provider/pkg/await/awaiters.go and ingress.go): an Ingress until each path's backend Service has
    an Endpoints object (or a settlement period passes) and its status names a load balancer; a
    custom resource only when pulumi.com/waitFor says so (metadata.ReadyCondition)."""
    awaited: dict[str, set[str]] = {}
    for r in synthesis.resources:
        if r.type == INGRESS:
            awaited[r.urn] = {p["backend"]["service"]["name"] for rule in r.inputs["spec"]["rules"]
                              for p in rule["http"]["paths"]}
        elif r.type.startswith("kubernetes:") and "pulumi.com/waitFor" in (r.inputs.get("metadata") or {}).get(
                "annotations", {}):
            awaited[r.urn] = {"<a condition on the object>"}
    return awaited


def waiting_for(synthesis, service: str) -> set[str]:
    """Every resource whose creation waits, directly or through its dependencies (the export's
    dependencies and property dependencies; a dependency on a component is one on each of its
    children, as the engine expands it), for an object named ``service``."""
    by_urn = {r.urn: r for r in synthesis.resources}
    children: dict[str, list[str]] = {}
    for r in synthesis.resources:
        if r.parent:
            children.setdefault(r.parent, []).append(r.urn)
    waits = {urn for urn, names in awaited_objects(synthesis).items() if service in names}
    found: set[str] = set()

    def depends(urn: str, seen: set[str]) -> bool:
        if urn in waits:
            return True
        if urn in seen or urn not in by_urn:
            return False
        seen.add(urn)
        r = by_urn[urn]
        through = {*r.dependencies, *(u for v in r.property_dependencies.values() for u in v)}
        if not r.custom:
            through |= set(children.get(urn, ()))
        return any(depends(d, seen) for d in through)

    for urn in by_urn:
        if depends(urn, set()):
            found.add(urn)
    return found


def test_a_first_deploy_waits_for_nothing_of_the_application(any_stack):
    """Issue 22: the application's Service (ingress.serviceName) is not this program's. No resource
    of the stack waits for it, directly or through what it depends on, so a first deploy completes
    before the application exists; the binding that names it is awaited by nothing."""
    service = stack_settings(any_stack.stack).ingress.service_name
    assert waiting_for(any_stack, service) == set()
    names_it = [r for r in any_stack.resources if service in json.dumps(r.inputs)]
    assert {r.type for r in names_it} == {BINDING}


def test_the_first_deploy_check_notices_an_ingress(nginx):
    """nginx mode keeps the Ingress, and with it pulumi-kubernetes's wait for the Service's endpoints:
    the walk finds it (and everything depending on it), so the check above can fail."""
    service = stack_settings("prod").ingress.service_name
    found = waiting_for(nginx, service)
    assert {urn.rsplit("::", 1)[-1] for urn in found} >= {"api", "api-dr"}


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
    from components.waf_ingress import EdgeNetwork, WafIngressArgs

    args = dict(mode="alb", namespace="edge", host="api.example.com", service_name="api", service_port=8080,
                certificate_arn="arn:aws:acm:us-east-1:1:certificate/x", requests_per_second=10,
                burst_multiplier=2, allowlist_cidrs=(), max_body_bytes=2**21, load_balancer_name=name,
                region="us-east-1", account_id="111111111111",
                network=EdgeNetwork("vpc-1", "10.0.0.0/16", ("subnet-1", "subnet-2"), ("10.0.1.0/24", "10.0.2.0/24")))
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
