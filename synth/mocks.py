"""Realistic mock outputs: what AWS, Kubernetes and random would hand back for each resource.

The point is wiring you can read in stack.json: ARNs carry the account and the region of the
provider that creates the resource (a DR-region key says us-west-2), buckets keep their names,
databases get endpoints and managed-secret ARNs. Values are derived from a hash of the resource's
type and name, so two runs of synth write byte-identical artifacts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pulumi
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

Outputs = dict[str, Any]


@dataclass(frozen=True)
class Invoke:
    """One function call the program made, as the engine receives it: the token, the provider
    reference it is bound to (`<provider urn>::<id>`, empty for a default provider) and the args."""

    token: str
    provider: str
    args: dict

    @property
    def provider_urn(self) -> str:
        return self.provider.rsplit("::", 1)[0] if self.provider else ""


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def _hex(seed: str, length: int) -> str:
    return _digest(seed).hex()[:length]


def _uuid(seed: str) -> str:
    return str(uuid.UUID(bytes=_digest(seed)[:16], version=4))


class PlatformMocks(pulumi.runtime.Mocks):
    """Mock engine responses for the AWS, Kubernetes and random providers this program uses."""

    def __init__(self, account_id: str, default_region: str, preview: bool = False):
        self.account_id = account_id
        self.default_region = default_region
        self.preview = preview  # a stack's first preview: nothing exists yet
        self._provider_regions: dict[str, str] = {}
        self._alb_names: set[tuple[str, str]] = set()  # (region, name) of the ALBs the controller would create
        self._switch_plans: dict[str, Outputs] = {}  # Region switch plans by name: their inputs
        self.invokes: list[Invoke] = []  # every function call, in order (tests/test_failed_over_deploy.py)
        self._lock = threading.Lock()

    # -- engine callbacks ------------------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Optional[str], Outputs]:
        seed = f"{args.typ}::{args.name}"
        if args.typ == "pulumi:providers:aws":
            provider_id = _uuid(seed)
            with self._lock:
                self._provider_regions[provider_id] = args.inputs.get("region", self.default_region)
            return provider_id, dict(args.inputs)
        if args.typ == "pulumi:providers:kubernetes":
            # an EKS cluster lives in one region: its kubeconfig context is the cluster's ARN
            # (aws eks update-kubeconfig names it so), arn:aws:eks:<region>:<account>:cluster/<name>
            provider_id = _uuid(seed)
            context = str(args.inputs.get("context") or "")
            if context.startswith("arn:aws:eks:"):
                with self._lock:
                    self._provider_regions[provider_id] = context.split(":")[3]
            return provider_id, dict(args.inputs)
        if args.typ.startswith("pulumi:providers:"):
            return _uuid(seed), dict(args.inputs)

        outputs = dict(args.inputs)
        region = args.inputs.get("region") or self._region_of(args.provider)
        ctx = _Context(self.account_id, region, args.name, seed, outputs)
        shape = _SHAPES.get(args.typ)
        if shape is not None:
            resource_id = shape(ctx)
        elif args.typ.startswith("aws:"):
            resource_id = _generic_aws(ctx, args.typ)
        elif args.typ.startswith("kubernetes:"):
            resource_id = _kubernetes(ctx)
            self._controller_sees(args.typ, outputs, region)
        else:
            resource_id = f"{args.name}-{_hex(seed, 8)}"
        if args.typ == "aws:arcregionswitch/plan:Plan":
            with self._lock:
                self._switch_plans[str(args.inputs.get("name"))] = outputs
        if self.preview:
            return _first_preview(args, outputs)
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[Outputs, list]:
        # The second element is the list of check failures; the mock monitor iterates it.
        with self._lock:
            self.invokes.append(Invoke(args.token, args.provider or "", dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            arn = f"arn:aws:sts::{self.account_id}:assumed-role/deployer/synth"
            return {"accountId": self.account_id, "arn": arn, "userId": "AROASYNTH:synth"}, []
        if args.token == "aws:index/getRegion:getRegion":
            region = self._region_of(args.provider)
            return {"name": region, "region": region, "id": region}, []
        if args.token == "aws:lb/getLoadBalancer:getLoadBalancer":
            return self._load_balancer(args), []
        if args.token == "aws:arcregionswitch/getRoute53HealthChecks:getRoute53HealthChecks":
            plan = str(args.args.get("planArn", "")).split("/", 1)[-1].rsplit(":", 1)[0]
            return {"planArn": args.args.get("planArn"), "healthChecks": self._switch_checks(plan)}, []
        if args.token == "aws:ssm/getParameter:getParameter":
            return self._parameter(args), []
        raise NotImplementedError(
            f"synth has no mock for the function {args.token}; add one to synth/mocks.py"
        )

    def _controller_sees(self, type_: str, outputs: Outputs, region: str) -> None:
        """The AWS Load Balancer Controller creates one ALB per `alb`-class Ingress, in its cluster's
        region, named by the alb.ingress.kubernetes.io/load-balancer-name annotation (else
        k8s-<ns>-<name>-<hash>)."""
        if type_ != "kubernetes:networking.k8s.io/v1:Ingress":
            return
        if (outputs.get("spec") or {}).get("ingressClassName") != "alb":
            return
        metadata = outputs.get("metadata") or {}
        name = (metadata.get("annotations") or {}).get("alb.ingress.kubernetes.io/load-balancer-name")
        if not name:  # the controller's own scheme: k8s-%.8s-%.8s-%.10s (namespace, name, hash)
            namespace, ingress = str(metadata.get("namespace")), str(metadata.get("name"))
            name = f"k8s-{namespace[:8]}-{ingress[:8]}-{_hex(f'{namespace}/{ingress}', 10)}"
        with self._lock:
            self._alb_names.add((region, name))

    def _load_balancer(self, args: pulumi.runtime.MockCallArgs) -> Outputs:
        """elbv2 DescribeLoadBalancers by name: only an ALB that exists, i.e. one whose Ingress the
        controller has reconciled - a lookup that runs before its Ingress fails, as in AWS."""
        name = args.args.get("name")
        region = args.args.get("region") or self._region_of(args.provider)
        with self._lock:
            exists = (region, name) in self._alb_names
        if not exists:
            raise Exception(
                f"LoadBalancerNotFound: no load balancer named {name!r} in {region} (the controller creates "
                "it only after it has reconciled an Ingress carrying alb.ingress.kubernetes.io/load-balancer-name, "
                "in its own cluster's region)")
        suffix = _hex(f"alb::{region}::{name}", 16)
        arn = f"arn:aws:elasticloadbalancing:{region}:{self.account_id}:loadbalancer/app/{name}/{suffix}"
        return {
            "id": arn, "arn": arn, "name": name, "loadBalancerType": "application",
            "internal": False, "region": region,
            "dnsName": f"{name}-{int(suffix[:8], 16) % 10**10}.{region}.elb.amazonaws.com",
            "zoneId": ALB_CANONICAL_ZONES[region],
        }

    def _switch_checks(self, plan_name: str) -> list[Outputs]:
        """ListRoute53HealthChecks: the health check Region switch owns for each region of the plan's
        Route53HealthCheck steps (their ids are Route 53's: UUIDs)."""
        with self._lock:
            plan = self._switch_plans.get(plan_name)
        if plan is None:
            raise Exception(f"ResourceNotFoundException: no Region switch plan {plan_name!r}")
        checks = {}
        for workflow in plan.get("workflows") or []:
            for step in workflow.get("steps") or []:
                for config in step.get("route53HealthCheckConfigs") or []:
                    for region in plan.get("regions") or []:
                        checks[(config["recordName"], region)] = {
                            "hostedZoneId": config["hostedZoneId"], "recordName": config["recordName"],
                            "region": region, "status": "healthy" if region == plan.get("primaryRegion") else "unhealthy",
                            "healthCheckId": _uuid(f"route53-health-check::{plan_name}::{region}")}
        return list(checks.values())

    def _parameter(self, args: pulumi.runtime.MockCallArgs) -> Outputs:
        """SSM GetParameter: only the copy of a Region switch plan's health checks, as the deploy
        before (with the plan's checks) wrote it."""
        name = str(args.args.get("name"))
        match = re.fullmatch(r"/intelgraph/region-switch/([A-Za-z0-9-]+)/route53-health-checks", name)
        if match is None:
            raise Exception(f"ParameterNotFound: {name}")
        checks = {c["region"]: c["healthCheckId"] for c in self._switch_checks(match[1])}
        value = json.dumps(checks, sort_keys=True)
        return {"id": name, "name": name, "type": "String", "value": value, "insecureValue": value,
                "arn": f"arn:aws:ssm:{self._region_of(args.provider)}:{self.account_id}:parameter{name}"}

    # -- helpers ---------------------------------------------------------------------------------

    def _region_of(self, provider_ref: Optional[str]) -> str:
        if not provider_ref:
            return self.default_region
        provider_id = provider_ref.rsplit("::", 1)[-1]
        with self._lock:
            return self._provider_regions.get(provider_id, self.default_region)


def _first_preview(args: pulumi.runtime.MockResourceArgs, outputs: Outputs) -> tuple[str, Outputs]:
    """What a first preview knows of a resource that does not exist yet: its inputs. Every output
    the provider computes (ids, ARNs, generated names, random values) is unknown, and so is the
    id. Kubernetes names are the exception: the provider auto-names objects in Check, at preview."""
    known = {k: _unknowns(v) for k, v in args.inputs.items()}
    for key in outputs:
        known.setdefault(key, UNKNOWN)
    if args.typ.startswith("kubernetes:") and isinstance(known.get("metadata"), dict):
        known["metadata"] = {**(known.get("metadata") or {}), "name": outputs["metadata"]["name"]}
    return "", known


def _unknowns(value: Any) -> Any:
    """An input that is itself unknown (it comes from another new resource) stays unknown."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {k: _unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknowns(v) for v in value]
    return value


# Route 53 alias targets: each region's Application Load Balancer hosted zone (AWS General
# Reference, "Elastic Load Balancing endpoints and quotas").
ALB_CANONICAL_ZONES = {
    "us-east-1": "Z35SXDOTRQ7X7K", "us-east-2": "Z3AADJGX6KTTL2", "us-west-1": "Z368ELLRRE2KJ0",
    "us-west-2": "Z1H1FL5HABSF5", "eu-west-1": "Z32O12XQLNTSW2", "eu-central-1": "Z215JYRZR1TBD5",
}


class _Context:
    """What a shape function needs to invent outputs for one resource."""

    def __init__(self, account: str, region: str, name: str, seed: str, outputs: Outputs):
        self.account, self.region, self.name, self.seed, self.outputs = (
            account, region, name, seed, outputs,
        )

    def physical_name(self, key: str = "name") -> str:
        """The name AWS would use: the given one, or Pulumi's auto-name (logical name + suffix)."""
        value = self.outputs.get(key)
        if not value:
            prefix = self.outputs.get(f"{key}Prefix") or f"{self.name}-"
            value = f"{prefix}{_hex(self.seed, 7)}"
            self.outputs[key] = value
        return value

    def arn(self, service: str, resource: str, regional: bool = True, account: bool = True) -> str:
        value = (
            f"arn:aws:{service}:{self.region if regional else ''}:"
            f"{self.account if account else ''}:{resource}"
        )
        self.outputs["arn"] = value
        return value


def _bucket(ctx: _Context) -> str:
    name = ctx.physical_name("bucket")
    ctx.arn("s3", name, regional=False, account=False)
    ctx.outputs.update(
        bucketDomainName=f"{name}.s3.amazonaws.com",
        bucketRegionalDomainName=f"{name}.s3.{ctx.region}.amazonaws.com",
        region=ctx.region,
        hostedZoneId="Z3AQBSTGFYJSTF",
    )
    return name


def _kms_key(ctx: _Context) -> str:
    key_id = _uuid(ctx.seed)
    ctx.outputs["keyId"] = key_id
    ctx.arn("kms", f"key/{key_id}")
    return key_id


def _kms_alias(ctx: _Context) -> str:
    name = ctx.physical_name()
    ctx.arn("kms", name)
    return name


def _iam(kind: str) -> Callable[[_Context], str]:
    def shape(ctx: _Context) -> str:
        name = ctx.physical_name()
        ctx.arn("iam", f"{kind}/{name}", regional=False)
        ctx.outputs.setdefault("uniqueId", "AROA" + _hex(ctx.seed, 17).upper())
        return name

    return shape


def _role_policy(ctx: _Context) -> str:
    return f"{ctx.outputs.get('role')}:{ctx.physical_name()}"


def _db_instance(ctx: _Context) -> str:
    identifier = ctx.physical_name("identifier")
    address = f"{identifier}.c{_hex(ctx.seed, 12)}.{ctx.region}.rds.amazonaws.com"
    ctx.arn("rds", f"db:{identifier}")
    ctx.outputs.update(
        address=address,
        endpoint=f"{address}:5432",
        port=ctx.outputs.get("port", 5432),
        resourceId="db-" + _hex(ctx.seed, 26).upper(),
        hostedZoneId="Z2R2ITUGPM61AM",
    )
    if ctx.outputs.get("manageMasterUserPassword"):
        secret = f"rds!db-{_uuid(ctx.seed)}"
        ctx.outputs["masterUserSecrets"] = [{
            "secretArn": f"arn:aws:secretsmanager:{ctx.region}:{ctx.account}:secret:{secret}-{_hex(ctx.seed, 6)}",
            "kmsKeyId": ctx.outputs.get("masterUserSecretKmsKeyId", ""),
            "secretStatus": "active",
        }]
    return identifier


def _secret(ctx: _Context) -> str:
    # Secrets Manager appends six random characters to the name; a replica's ARN is the same with
    # its region (API Reference, StopReplicationToReplica).
    arn = ctx.arn("secretsmanager", f"secret:{ctx.physical_name()}-{_hex(ctx.seed, 6)}")
    ctx.outputs["replicas"] = [{**replica, "status": "InSync", "statusMessage": "Replication succeeded"}
                               for replica in ctx.outputs.get("replicas") or []]
    return arn


def _serverless_application(ctx: _Context) -> str:
    # The rotation applications' template outputs the function's ARN as RotationLambdaARN.
    name = ctx.physical_name()
    function = (ctx.outputs.get("parameters") or {}).get("functionName", name)
    ctx.outputs["outputs"] = {"RotationLambdaARN": f"arn:aws:lambda:{ctx.region}:{ctx.account}:function:{function}"}
    return f"arn:aws:cloudformation:{ctx.region}:{ctx.account}:stack/serverlessrepo-{name}/{_uuid(ctx.seed)}"


def _rds_named(kind: str) -> Callable[[_Context], str]:
    def shape(ctx: _Context) -> str:
        name = ctx.physical_name()
        ctx.arn("rds", f"{kind}:{name}")
        return name

    return shape


def _security_group(ctx: _Context) -> str:
    group_id = "sg-" + _hex(ctx.seed, 17)
    ctx.physical_name()
    ctx.arn("ec2", f"security-group/{group_id}")
    return group_id


def _sns_topic(ctx: _Context) -> str:
    return ctx.arn("sns", ctx.physical_name())


def _alarm(ctx: _Context) -> str:
    name = ctx.physical_name()
    ctx.arn("cloudwatch", f"alarm:{name}")
    return name


def _log_group(ctx: _Context) -> str:
    name = ctx.physical_name()
    ctx.arn("logs", f"log-group:{name}")
    return name


def _health_check(ctx: _Context) -> str:
    check_id = _uuid(ctx.seed)
    ctx.arn("route53", f"healthcheck/{check_id}", regional=False, account=False)
    return check_id


def _record(ctx: _Context) -> str:
    name = ctx.outputs.get("name", ctx.name)
    ctx.outputs["fqdn"] = name
    parts = [ctx.outputs.get("zoneId", ""), name, ctx.outputs.get("type", "A")]
    if ctx.outputs.get("setIdentifier"):
        parts.append(ctx.outputs["setIdentifier"])
    return "_".join(parts)


def _wafv2(kind: str) -> Callable[[_Context], str]:
    def shape(ctx: _Context) -> str:
        resource_id = _uuid(ctx.seed)
        scope = "regional" if ctx.outputs.get("scope", "REGIONAL") == "REGIONAL" else "global"
        ctx.arn("wafv2", f"{scope}/{kind}/{ctx.physical_name()}/{resource_id}")
        ctx.outputs["lockToken"] = _uuid(ctx.seed + "lock")
        return resource_id

    return shape


def _random_id(ctx: _Context) -> str:
    raw = _digest(ctx.seed)[: int(ctx.outputs.get("byteLength", 4))]
    ctx.outputs.update(
        hex=raw.hex(),
        b64Url=base64.urlsafe_b64encode(raw).decode().rstrip("="),
        b64Std=base64.b64encode(raw).decode(),
        dec=str(int.from_bytes(raw, "big")),
    )
    return ctx.outputs["b64Url"]


def _random_password(ctx: _Context) -> str:
    length = int(ctx.outputs.get("length", 32))
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    stream = _digest(ctx.seed, "password") * (length // 32 + 1)
    ctx.outputs["result"] = "".join(alphabet[b % len(alphabet)] for b in stream[:length])
    ctx.outputs["bcryptHash"] = "$2a$10$" + _hex(ctx.seed + "bcrypt", 53)
    return "none"


def _switch_plan(ctx: _Context) -> str:
    # arn:aws:arc-region-switch::<account>:plan/<name>:<6 characters> (ARC API Reference, Plan)
    return ctx.arn("arc-region-switch", f"plan/{ctx.physical_name()}:{_hex(ctx.seed, 6)}", regional=False)


def _generic_aws(ctx: _Context, type_: str) -> str:
    # Attachments and bucket sub-configurations have no ARN of their own: AWS ids them by the
    # parent's name (a bucket) or by their own name.
    return ctx.outputs.get("bucket") or ctx.outputs.get("name") or f"{ctx.name}-{_hex(ctx.seed, 7)}"


def _kubernetes(ctx: _Context) -> str:
    metadata = dict(ctx.outputs.get("metadata") or {})
    # Pulumi auto-names Kubernetes objects that have no explicit metadata.name.
    metadata.setdefault("name", f"{ctx.name}-{_hex(ctx.seed, 8)}")
    metadata.setdefault("uid", _uuid(ctx.seed))
    ctx.outputs["metadata"] = metadata
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else metadata["name"]


_SHAPES: dict[str, Callable[[_Context], str]] = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:iam/role:Role": _iam("role"),
    "aws:iam/policy:Policy": _iam("policy"),
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:rds/instance:Instance": _db_instance,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:serverlessrepository/cloudFormationStack:CloudFormationStack": _serverless_application,
    "aws:rds/subnetGroup:SubnetGroup": _rds_named("subgrp"),
    "aws:rds/parameterGroup:ParameterGroup": _rds_named("pg"),
    "aws:ec2/securityGroup:SecurityGroup": _security_group,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:route53/healthCheck:HealthCheck": _health_check,
    "aws:route53/record:Record": _record,
    "aws:arcregionswitch/plan:Plan": _switch_plan,
    "aws:wafv2/webAcl:WebAcl": _wafv2("webacl"),
    "aws:wafv2/ipSet:IpSet": _wafv2("ipset"),
    "random:index/randomId:RandomId": _random_id,
    "random:index/randomPassword:RandomPassword": _random_password,
}
