"""ops.preflight against fakes that answer both ways: a kubectl stub on PATH serving each cluster's
objects (tests/kubectl_stub.py: it refuses any verb but `get` and checks the context and the
resource), moto for EKS, IAM, EC2 and STS, and, for what moto lacks (EKS DescribeAddon, IAM
SimulatePrincipalPolicy, Route 53's hosted zone Features), answers that botocore checks like its
Stubber does: the request against the service model before it is "sent", the answer against the
operation's output shape.

The world starts as the prod stack describes it and every check passes; each test of
``test_each_check_fails_alone`` then breaks one prerequisite in one region and expects exactly that
check to fail, with its fix printed, and exit 1.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters
from moto import mock_aws
from moto.ec2.models import ec2_backends
from moto.eks.models import eks_backends

from components.alertmanager import alertmanager_config
from ops import preflight
from settings import Role
from tests.conftest import fake_aws_credentials, stack_settings, synthesized

ROOT = Path(__file__).resolve().parent.parent
STACK = "prod"
CFG = stack_settings(STACK)
ACCOUNT = CFG.aws.account_id
ROLES: tuple[Role, ...] = ("primary", "dr")
EBS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ebs-csi-controller"


# --- answers botocore checks, for the operations moto does not implement ---------------------------


class Refusal(Exception):
    def __init__(self, code: str, message: str = "refused"):
        super().__init__(message)
        self.code, self.message = code, message


def answer(client: Any, operation: str, respond: Callable[[dict], dict]) -> list[dict]:
    """Answer ``operation`` of this client from ``respond(params)`` (raise Refusal for an AWS error);
    every other operation still goes to moto. The params reach ``respond`` after botocore validated
    them against the service model (``before-call`` fires after that), and the answer is validated
    against the output shape, as botocore.stub.Stubber does. Returns the calls' params."""
    calls: list[dict] = []
    output = client.meta.service_model.operation_model(operation).output_shape

    def record(params, model, **_):
        if model.name == operation:
            calls.append(copy.deepcopy(params))

    def respond_to(model, **_):
        if model.name != operation:
            return None
        try:
            result = respond(calls[-1])
        except Refusal as refusal:
            return AWSResponse(None, 400, {}, None), {
                "Error": {"Code": refusal.code, "Message": refusal.message},
                "ResponseMetadata": {"HTTPStatusCode": 400}}
        validate_parameters(result, output)
        return AWSResponse(None, 200, {}, None), result

    client.meta.events.register_first("before-parameter-build.*.*", record)
    client.meta.events.register_first("before-call.*.*", respond_to)
    return calls


# --- the healthy world -------------------------------------------------------------------------------


def _obj(api: str, kind: str, name: str, namespace: str | None = None, **rest) -> dict:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta.update(rest.pop("metadata", {}))
    return {"apiVersion": api, "kind": kind, "metadata": meta, **rest}


def _deployment(namespace: str, name: str, containers: list[tuple[str, str]]) -> dict:
    return _obj("apps/v1", "Deployment", name, namespace,
                spec={"template": {"spec": {"containers": [{"name": n, "image": i} for n, i in containers]}}},
                status={"availableReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]})


def cluster_objects(role: Role) -> list[dict]:
    """A cluster that holds every prerequisite, as the installers leave it."""
    monitoring, release = CFG.observability.prometheus_namespace, CFG.observability.prometheus_release_label
    crds = (*preflight.SNAPSHOT_CRDS, *preflight.MONITORING_CRDS,
            "prometheuses.monitoring.coreos.com", "alertmanagers.monitoring.coreos.com")
    objects = [_obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", n) for n in crds]
    objects += [
        _deployment("kube-system", "aws-load-balancer-controller",
                    [("aws-load-balancer-controller", "public.ecr.aws/eks/aws-load-balancer-controller:v2.13.3")]),
        _obj("networking.k8s.io/v1", "IngressClass", "alb", spec={"controller": "ingress.k8s.aws/alb"}),
        _obj("storage.k8s.io/v1", "CSIDriver", "ebs.csi.aws.com", spec={"attachRequired": True}),
        # the EKS add-on's controller: csi-snapshotter runs beside the plugin
        _deployment("kube-system", "ebs-csi-controller", [
            ("ebs-plugin", "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/aws-ebs-csi-driver:v1.45.0"),
            ("csi-provisioner", "x/csi-provisioner:v5.3.0"), ("csi-attacher", "x/csi-attacher:v4.9.0"),
            ("csi-snapshotter", "x/csi-snapshotter:v8.3.0"), ("csi-resizer", "x/csi-resizer:v1.14.0")]),
        _obj("v1", "ServiceAccount", "ebs-csi-controller-sa", "kube-system",
             metadata={"annotations": {"eks.amazonaws.com/role-arn": EBS_ROLE}}),
        _deployment("kube-system", "snapshot-controller",
                    [("snapshot-controller", "registry.k8s.io/sig-storage/snapshot-controller:v8.3.0")]),
        _obj("storage.k8s.io/v1", "StorageClass", CFG.neo4j.storage_class, provisioner="ebs.csi.aws.com",
             allowVolumeExpansion=True, volumeBindingMode="WaitForFirstConsumer",
             parameters={"type": "gp3", "encrypted": "true"}),
        # VPC CNI 1.14+: the node agent container, enforcement on, the policy controller on
        _obj("apps/v1", "DaemonSet", "aws-node", "kube-system", spec={"template": {"spec": {"containers": [
            {"name": "aws-node", "image": "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.20.4"},
            {"name": "aws-eks-nodeagent",
             "image": "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon/aws-network-policy-agent:v1.2.7",
             "args": ["--enable-ipv6=false", "--enable-network-policy=true", "--enable-cloudwatch-logs=false",
                      "--metrics-bind-addr=:8162", "--health-probe-bind-addr=:8163"]}]}}}),
        _obj("v1", "ConfigMap", "amazon-vpc-cni", "kube-system",
             data={"enable-network-policy-controller": "true", "enable-windows-ipam": "false"}),
        # kube-prometheus-stack's defaults (…SelectorNilUsesHelmValues: true)
        _obj("monitoring.coreos.com/v1", "Prometheus", "kube-prometheus-stack-prometheus", monitoring, spec={
            "serviceMonitorSelector": {"matchLabels": {"release": release}}, "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": {"matchLabels": {"release": release}}, "podMonitorNamespaceSelector": {},
            "ruleSelector": {"matchLabels": {"release": release}}, "ruleNamespaceSelector": {}}),
        _obj("monitoring.coreos.com/v1", "Alertmanager", "kube-prometheus-stack-alertmanager", monitoring, spec={
            "alertmanagerConfigSelector": {}, "alertmanagerConfigNamespaceSelector": {}}),
    ]
    am = CFG.alerting.alertmanager
    for ns in preflight.tier_namespaces(CFG, role):
        objects += [_obj("v1", "Secret", ref.name, ns, type="Opaque", data={ref.key: "c2VjcmV0"})
                    for ref in (am.pager_secret, am.chat_secret)]
    return objects


def find(objects: list[dict], kind: str, name: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def drop(objects: list[dict], kind: str, name: str) -> None:
    objects.remove(find(objects, kind, name))


@dataclass
class World:
    tmp: Path
    clusters: dict[Role, list[dict]]
    aws_clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    denied: set[tuple[str, str]] = field(default_factory=set)  # (region, action) the EBS CSI role is denied
    addon_role: dict[Role, str | None] = field(default_factory=dict)  # role -> the add-on's role (None: no add-on)
    accelerated_recovery: str = "ENABLED"
    private_zone: bool = False
    simulated: list[dict] = field(default_factory=list)
    zone_calls: list[dict] = field(default_factory=list)

    def client(self, service: str, region: str) -> Any:
        if (service, region) not in self.aws_clients:
            client = boto3.client(service, region_name=region)
            if service == "eks":
                answer(client, "DescribeAddon", self._addon(region))
            if service == "iam":
                answer(client, "SimulatePrincipalPolicy", lambda params: self._simulate(params))
            if service == "route53":
                answer(client, "GetHostedZone", lambda params: self._zone(params))
            self.aws_clients[service, region] = client
        return self.aws_clients[service, region]

    def _addon(self, region: str) -> Callable[[dict], dict]:
        role: Role = next(r for r in ROLES if CFG.aws.region(r) == region)

        def respond(params: dict) -> dict:
            assert params == {"clusterName": CFG.kubernetes.of(role).cluster_name, "addonName": "aws-ebs-csi-driver"}
            if self.addon_role.get(role) is None:
                raise Refusal("ResourceNotFoundException", "No addon: aws-ebs-csi-driver found in cluster")
            return {"addon": {"addonName": "aws-ebs-csi-driver", "clusterName": params["clusterName"],
                              "status": "ACTIVE", "addonVersion": "v1.45.0-eksbuild.1",
                              "serviceAccountRoleArn": self.addon_role[role]}}
        return respond

    def _simulate(self, params: dict) -> dict:
        self.simulated.append(params)
        [action], [resource] = params["ActionNames"], params["ResourceArns"]
        region = resource.split(":")[3]
        decision = ("implicitDeny" if (region, action) in self.denied or params["PolicySourceArn"] != EBS_ROLE
                    else "allowed")
        return {"EvaluationResults": [{"EvalActionName": action, "EvalResourceName": params["ResourceArns"][0],
                                       "EvalDecision": decision}], "IsTruncated": False}

    def _zone(self, params: dict) -> dict:
        self.zone_calls.append(params)
        return {"HostedZone": {"Id": f"/hostedzone/{params['Id']}", "Name": "intelgraph.example.com.",
                               "CallerReference": "bootstrap", "Config": {"PrivateZone": self.private_zone},
                               "Features": {"AcceleratedRecoveryStatus": self.accelerated_recovery}},
                "DelegationSet": {"NameServers": ["ns-1.awsdns-01.org"]}}

    def run(self, capsys, *args: str) -> tuple[int, str]:
        clusters = {CFG.kubernetes.of(role).context: objects for role, objects in self.clusters.items()}
        (self.tmp / "clusters.json").write_text(json.dumps(clusters))
        code = preflight.main(["--stack", STACK, "--stack-file", str(self.tmp / "stack.yaml"), *args],
                              clients=self.client)
        return code, capsys.readouterr().out

    def kubectl_calls(self) -> list[list[str]]:
        log = self.tmp / "kubectl.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _build_network(role: Role) -> str:
    """The region's VPC with its three interface endpoints, listening at the stack's addresses."""
    net, region = CFG.network.of(role), CFG.aws.region(role)
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock=net.vpc_cidr)["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{net.vpc_cidr.split('.')[0]}.{net.vpc_cidr.split('.')[1]}.{i}.0/24",
                                 AvailabilityZone=f"{region}{zone}")["Subnet"]["SubnetId"]
               for i, zone in ((1, "a"), (2, "b"), (3, "c"))]
    backend = ec2_backends[ACCOUNT][region]
    # the stacks reach S3 through an interface endpoint too (network.<role>.s3.mode interface)
    for service, cidrs in [*((service, getattr(net, key)) for service, key in preflight.ENDPOINTS), ("s3", net.s3.cidrs)]:
        endpoint = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{region}.{service}",
                                           VpcEndpointType="Interface", SubnetIds=subnets,
                                           PrivateDnsEnabled=True)["VpcEndpoint"]
        # moto gives an endpoint's ENIs random addresses outside its subnets; AWS picks one in each
        # subnet, which the operator copies into the config: place them there.
        for eni_id, cidr in zip(endpoint["NetworkInterfaceIds"], cidrs, strict=True):
            eni = backend.enis[eni_id]
            eni.private_ip_address = cidr.split("/")[0]
            eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": eni.private_ip_address}]
    return vpc


@pytest.fixture
def world(monkeypatch, tmp_path):
    fake_aws_credentials(monkeypatch, ACCOUNT)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # no AMIs needed: seconds per region saved
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "kubectl"
    stub.write_text(f"#!/bin/sh\nexec {sys.executable} -S {ROOT / 'tests' / 'kubectl_stub.py'} \"$@\"\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("KUBECTL_STUB_CLUSTERS", str(tmp_path / "clusters.json"))
    monkeypatch.setenv("KUBECTL_STUB_LOG", str(tmp_path / "kubectl.log"))
    with mock_aws():
        document = yaml.safe_load((ROOT / f"Pulumi.{STACK}.yaml").read_text())
        for role in ROLES:
            region, cluster = CFG.aws.region(role), CFG.kubernetes.of(role)
            eks = boto3.client("eks", region_name=region)
            eks.create_cluster(name=cluster.cluster_name, version=CFG.kubernetes.version,
                               roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-cluster",
                               resourcesVpcConfig={"subnetIds": []})
            # moto invents an issuer; the real cluster's is the one the stack names
            eks_backends[ACCOUNT][region].clusters[cluster.cluster_name].identity = {
                "oidc": {"issuer": f"https://{cluster.oidc_issuer}"}}
            created = boto3.client("iam").create_open_id_connect_provider(
                Url=f"https://{cluster.oidc_issuer}", ClientIDList=["sts.amazonaws.com"],
                ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
            assert created["OpenIDConnectProviderArn"] == cluster.oidc_provider_arn
            # moto's VPC ids are its own: the stack file names them (nothing else changes)
            document["config"]["intelgraph-platform:network"][role]["vpcId"] = _build_network(role)
        (tmp_path / "stack.yaml").write_text(yaml.safe_dump(document))
        yield World(tmp_path, {role: cluster_objects(role) for role in ROLES},
                    addon_role={role: None for role in ROLES})


def lines(out: str, status: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith(status)]


def checks_with(out: str, status: str) -> set[tuple[str, str]]:
    """(scope, check) of every line with this status."""
    found, scope = set(), None
    for line in out.splitlines():
        if not line.startswith(" ") and line in (*ROLES, "stack"):
            scope = line
        match = re.match(r"\s+(PASS|FAIL|WARN|INFO)\s+(\S+)", line)
        if match and match[1] == status:
            found.add((scope, match[2]))
    return found


# --- both ways ----------------------------------------------------------------------------------------


def test_a_world_that_holds_every_prerequisite_passes(world, capsys):
    code, out = world.run(capsys)
    assert code == preflight.EXIT_OK, out
    expected = {(role, p.name) for role in ROLES for p in preflight.PREREQUISITES if p.scope == "region"}
    expected |= {("stack", p.name) for p in preflight.PREREQUISITES if p.scope == "stack"}
    assert checks_with(out, "PASS") == expected, out
    assert not lines(out, "FAIL") and not lines(out, "WARN"), out
    # read-only, and each region's checks went to its own cluster
    calls = world.kubectl_calls()
    assert calls and all(call[2] == "get" for call in calls)
    assert {call[1] for call in calls} == {CFG.kubernetes.of(role).context for role in ROLES}
    # the EBS CSI role came from the ServiceAccount's IRSA annotation (no add-on): three simulations per region
    assert [s["PolicySourceArn"] for s in world.simulated] == [EBS_ROLE] * 6
    assert world.zone_calls == [{"Id": CFG.dns.hosted_zone_id}]


def test_one_region(world, capsys):
    code, out = world.run(capsys, "--region", "dr")
    assert code == preflight.EXIT_OK, out
    assert {scope for scope, _ in checks_with(out, "PASS")} == {"dr", "stack"}
    assert {call[1] for call in world.kubectl_calls()} == {CFG.kubernetes.dr.context}


def test_the_ebs_csi_addons_role_is_the_one_simulated(world, capsys):
    world.addon_role["primary"] = "arn:aws:iam::481236059412:role/some-other-role"
    code, out = world.run(capsys, "--region", "primary")
    assert code == preflight.EXIT_FAILED
    assert checks_with(out, "FAIL") == {("primary", "ebs-csi-snapshot-permissions")}
    assert "some-other-role (the aws-ebs-csi-driver add-on's role) is denied ec2:CreateSnapshot" in out
    assert "AmazonEBSCSIDriverPolicy" in out


def _version(world: World, role: Role) -> None:
    eks_backends[ACCOUNT][CFG.aws.region(role)].clusters[CFG.kubernetes.of(role).cluster_name].version = "1.32"


def _audience(world: World, role: Role) -> None:
    iam, cluster = boto3.client("iam"), CFG.kubernetes.of(role)
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=cluster.oidc_provider_arn)
    iam.create_open_id_connect_provider(Url=f"https://{cluster.oidc_issuer}", ClientIDList=["other-audience"],
                                        ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])


def _alb_unavailable(world: World, role: Role) -> None:
    find(world.clusters[role], "Deployment", "aws-load-balancer-controller")["status"] = {
        "conditions": [{"type": "Available", "status": "False"}]}


def _no_csi_driver(world: World, role: Role) -> None:
    drop(world.clusters[role], "CSIDriver", "ebs.csi.aws.com")


def _snapshot_denied(world: World, role: Role) -> None:
    world.denied.add((CFG.aws.region(role), "ec2:DeleteSnapshot"))


def _no_snapshot_crd(world: World, role: Role) -> None:
    drop(world.clusters[role], "CustomResourceDefinition", "volumesnapshotcontents.snapshot.storage.k8s.io")


def _no_snapshotter(world: World, role: Role) -> None:
    containers = find(world.clusters[role], "Deployment", "ebs-csi-controller")["spec"]["template"]["spec"]["containers"]
    containers[:] = [c for c in containers if c["name"] != "csi-snapshotter"]


def _not_expandable(world: World, role: Role) -> None:
    del find(world.clusters[role], "StorageClass", CFG.neo4j.storage_class)["allowVolumeExpansion"]


def _policy_off(world: World, role: Role) -> None:
    [agent] = [c for c in find(world.clusters[role], "DaemonSet", "aws-node")["spec"]["template"]["spec"]["containers"]
               if c["name"] == "aws-eks-nodeagent"]
    agent["args"] = [a.replace("--enable-network-policy=true", "--enable-network-policy=false") for a in agent["args"]]


def _no_alertmanagerconfig_crd(world: World, role: Role) -> None:
    drop(world.clusters[role], "CustomResourceDefinition", "alertmanagerconfigs.monitoring.coreos.com")


def _other_release(world: World, role: Role) -> None:
    prometheus = find(world.clusters[role], "Prometheus", "kube-prometheus-stack-prometheus")
    prometheus["spec"]["ruleSelector"] = {"matchLabels": {"release": "monitoring"}}


def _endpoint_moved(world: World, role: Role) -> None:
    net, region = CFG.network.of(role), CFG.aws.region(role)
    ec2 = boto3.client("ec2", region_name=region)
    [endpoint] = [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                  if e["ServiceName"] == f"com.amazonaws.{region}.sts"]
    eni = ec2_backends[ACCOUNT][region].enis[endpoint["NetworkInterfaceIds"][0]]
    eni.private_ip_address = str(net.sts_endpoint_cidrs[0]).split("/")[0].rsplit(".", 1)[0] + ".250"
    eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": eni.private_ip_address}]


def _no_chat_secret(world: World, role: Role) -> None:
    chat = CFG.alerting.alertmanager.chat_secret
    [secret] = [o for o in world.clusters[role] if o["kind"] == "Secret" and o["metadata"]["name"] == chat.name
                and o["metadata"]["namespace"] == CFG.redis.namespace]
    secret["data"] = {"other": "eA=="}


def _zone_private(world: World, role: Role) -> None:
    world.private_zone = True


# check -> (how to break it in one region, what the failure says)
BREAK: dict[str, tuple[Callable[[World, Role], None], str]] = {
    "eks-cluster": (_version, "runs Kubernetes 1.32, kubernetes.version says 1.33"),
    "iam-oidc-provider": (_audience, "lacks client id sts.amazonaws.com"),
    "ingress-controller": (_alb_unavailable, "kube-system/aws-load-balancer-controller is not Available"),
    "ebs-csi-driver": (_no_csi_driver, "no CSIDriver ebs.csi.aws.com"),
    "ebs-csi-snapshot-permissions": (_snapshot_denied, "is denied ec2:DeleteSnapshot on snapshot (implicitDeny)"),
    "snapshot-controller": (_no_snapshot_crd, "missing CRDs volumesnapshotcontents.snapshot.storage.k8s.io"),
    "volume-snapshot-class": (_no_snapshotter, "has no csi-snapshotter container"),
    "storage-class": (_not_expandable, "has no allowVolumeExpansion: true"),
    "vpc-cni-network-policy": (_policy_off, "runs without --enable-network-policy=true"),
    "prometheus-operator-crds": (_no_alertmanagerconfig_crd, "missing CRDs alertmanagerconfigs.monitoring.coreos.com"),
    "prometheus-selectors": (_other_release, 'ruleSelector {"matchLabels": {"release": "monitoring"}} does not select'),
    "vpc-endpoints": (_endpoint_moved, "(sts) listens on"),
    "alertmanager-secrets": (_no_chat_secret,
                             f"Secret {CFG.redis.namespace}/{CFG.alerting.alertmanager.chat_secret.name} has no key"),
    "route53-accelerated-recovery": (_zone_private, "is private; dns.hostedZoneId must be the public zone"),
}


def test_every_check_has_a_failing_case():
    assert set(BREAK) == {p.name for p in preflight.PREREQUISITES}


@pytest.mark.parametrize("check", [p for p in preflight.PREREQUISITES], ids=lambda p: p.name)
def test_each_check_fails_alone(world, capsys, check):
    role = "dr"  # the new region: what the DR tier needs is checked as the primary's is
    breaker, says = BREAK[check.name]
    breaker(world, role)
    code, out = world.run(capsys, "--region", role)  # the stack-wide checks run with either region
    scope = role if check.scope == "region" else "stack"
    assert code == preflight.EXIT_FAILED, out
    assert checks_with(out, "FAIL") == {(scope, check.name)}, out
    [failure] = [line for line in lines(out, "FAIL") if check.name in line]
    assert says in failure, out
    assert "fix: " in out.split(failure, 1)[1].splitlines()[1], out


def test_a_missing_storage_class_says_which_key_names_it(world, capsys):
    drop(world.clusters["primary"], "StorageClass", CFG.neo4j.storage_class)
    code, out = world.run(capsys, "--region", "primary")
    assert code == preflight.EXIT_FAILED
    assert f"no StorageClass {CFG.neo4j.storage_class} (neo4j.storageClass)" in out
    assert "allowVolumeExpansion: true" in out


def test_private_dns_off_fails(world, capsys):
    region = CFG.aws.region("primary")
    for endpoint in ec2_backends[ACCOUNT][region].vpc_end_points.values():
        if endpoint.service_name.endswith(".secretsmanager"):
            endpoint.private_dns_enabled = False
    code, out = world.run(capsys, "--region", "primary")
    assert code == preflight.EXIT_FAILED
    assert checks_with(out, "FAIL") == {("primary", "vpc-endpoints")}
    assert "(secretsmanager) has private DNS off" in out and "--private-dns-enabled" in out


def test_network_policy_controller_off_fails(world, capsys):
    del find(world.clusters["primary"], "ConfigMap", "amazon-vpc-cni")["data"]["enable-network-policy-controller"]
    code, out = world.run(capsys, "--region", "primary")
    assert code == preflight.EXIT_FAILED
    assert "lacks enable-network-policy-controller" in out and "enableNetworkPolicy" in out


def test_null_namespace_selector_means_only_its_own_namespace(world, capsys):
    # prometheus-operator: a null *NamespaceSelector selects only the Prometheus object's namespace
    del find(world.clusters["primary"], "Prometheus", "kube-prometheus-stack-prometheus")["spec"][
        "serviceMonitorNamespaceSelector"]
    code, out = world.run(capsys, "--region", "primary")
    assert code == preflight.EXIT_FAILED
    assert f"serviceMonitorNamespaceSelector null (only its own namespace) leaves out {CFG.neo4j.namespace}" in out


def test_an_unreachable_cluster_fails_its_checks_not_the_run(world, capsys):
    world.clusters = {"primary": world.clusters["primary"]}  # the DR context is not in the kubeconfig
    code, out = world.run(capsys)
    assert code == preflight.EXIT_FAILED
    failed = checks_with(out, "FAIL")
    assert failed == {("dr", p.name) for p in preflight.PREREQUISITES if p.scope == "region" and p.needs_cluster}
    assert f'cannot read the cluster: error: context "{CFG.kubernetes.dr.context}" does not exist' in out


def test_accelerated_recovery_off_warns_and_passes(world, capsys):
    world.accelerated_recovery = "DISABLED"
    code, out = world.run(capsys)
    assert code == preflight.EXIT_OK, out
    [warning] = lines(out, "WARN")
    assert "route53-accelerated-recovery" in warning and "is DISABLED" in warning
    assert "--enable-accelerated-recovery" in out


@pytest.mark.parametrize("stack", ["prod", "stage"])
def test_the_alert_secrets_are_checked_where_the_program_routes_alerts(stack):
    """Every namespace where the synthesized program puts an AlertmanagerConfig (whose receivers read
    the Secrets there), in that region's cluster, and no other."""
    cfg, synthesis = stack_settings(stack), synthesized(stack)
    providers = {role: next(r.urn for r in synthesis.resources if r.type == "pulumi:providers:kubernetes"
                            and r.inputs.get("context") == cfg.kubernetes.of(role).context) for role in ROLES}
    for role in ROLES:
        routed = {r.inputs["metadata"]["namespace"] for r in synthesis.resources
                  if r.type.endswith(":AlertmanagerConfig") and (r.provider or "").startswith(providers[role] + "::")}
        assert routed and set(preflight.tier_namespaces(cfg, role)) == routed, role


def test_the_secrets_are_read_in_each_namespace_of_each_cluster(world, capsys):
    world.run(capsys)
    asked = {(call[4], call[6], call[1]) for call in world.kubectl_calls() if call[3] == "secrets"}
    am = CFG.alerting.alertmanager
    assert asked == {(ref.name, ns, CFG.kubernetes.of(role).context) for role in ROLES
                     for ns in preflight.tier_namespaces(CFG, role) for ref in (am.pager_secret, am.chat_secret)}


def test_answers_are_checked_against_the_service_model(world):
    """The answers standing in for what moto lacks are held to botocore's model both ways, as its
    Stubber's are: a malformed request never reaches them, a malformed answer is refused."""
    iam = world.client("iam", "us-east-1")
    with pytest.raises(ParamValidationError):
        iam.simulate_principal_policy(PolicySourceArn=EBS_ROLE, ActionNames="ec2:CreateSnapshot")
    assert world.simulated == []
    world.private_zone = "no"  # PrivateZone is a boolean in the model
    with pytest.raises(ParamValidationError):
        world.client("route53", "us-east-1").get_hosted_zone(Id=CFG.dns.hosted_zone_id)


def test_the_routing_labels_are_the_programs():
    """The Alertmanager check judges the labels components/alertmanager.py really puts on its config."""
    from components.alertmanager import AlertRoutingArgs, SecretRef

    args = AlertRoutingArgs(("a",), SecretRef("p", "k"), SecretRef("c", "k"), "#c", "kube-prometheus-stack")
    config = alertmanager_config(args, "a")
    assert preflight.selects({"matchLabels": {"app.kubernetes.io/part-of": "intelgraph"}}, config["metadata"]["labels"])
    assert not preflight.selects({"matchLabels": {"release": "x"}}, config["metadata"]["labels"])


@pytest.mark.parametrize("selector, labels, expected", [
    ({}, {}, True),
    ({"matchLabels": {"release": "a"}}, {"release": "a", "x": "y"}, True),
    ({"matchLabels": {"release": "a"}}, {"release": "b"}, False),
    ({"matchExpressions": [{"key": "release", "operator": "In", "values": ["a", "b"]}]}, {"release": "b"}, True),
    ({"matchExpressions": [{"key": "release", "operator": "In", "values": ["a"]}]}, {}, False),
    # NotIn and DoesNotExist match an absent key (apimachinery pkg/labels/selector.go, Requirement.Matches)
    ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}, {}, True),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"team": "x"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"team": ""}, True),
])
def test_label_selectors(selector, labels, expected):
    assert preflight.selects(selector, labels) is expected


# --- bad input: exit 2, one line, no traceback ------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.preflight", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture
def no_aws_env(tmp_path) -> dict[str, str]:
    """An environment without any AWS credentials and without reaching instance metadata."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text("#!/bin/sh\nexit 9\n")
    (bin_dir / "kubectl").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}


def _one_line(run: subprocess.CompletedProcess, says: str) -> None:
    assert run.returncode == preflight.EXIT_BAD_INPUT, run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert says in run.stderr, run.stderr


def test_an_unknown_stack_is_bad_input(no_aws_env):
    _one_line(_cli("--stack", "qa", env=no_aws_env), "no stack file")


def test_a_stack_name_buckets_cannot_hold_is_bad_input(no_aws_env):
    _one_line(_cli("--stack", "Prod_EU", "--stack-file", str(ROOT / "Pulumi.prod.yaml"), env=no_aws_env),
              "stack name 'Prod_EU'")


def test_invalid_settings_are_bad_input(no_aws_env, tmp_path):
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["intelgraph-platform:kubernetes"]["version"] = "1.3x"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(document))
    _one_line(_cli("--stack", "prod", "--stack-file", str(tmp_path / "bad.yaml"), env=no_aws_env),
              "intelgraph-platform:kubernetes.version")


def test_no_credentials_is_bad_input(no_aws_env):
    _one_line(_cli("--stack", "prod", env=no_aws_env), "no AWS credentials")


def test_another_accounts_credentials_are_bad_input(monkeypatch, capsys, tmp_path):
    fake_aws_credentials(monkeypatch, "123456789012")
    with mock_aws():
        assert preflight.main(["--stack", "prod"]) == preflight.EXIT_BAD_INPUT
    assert "credentials are for account 123456789012; the stack's aws.accountId is 481236059412" in capsys.readouterr().err


# --- the README's table is the list the preflight runs ------------------------------------------------------


def test_the_readme_lists_exactly_the_checks_the_preflight_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Prerequisites\n", 1)[1].split("\n## ", 1)[0]
    assert preflight.table() in section, "replace the table with the output of: python -m ops.preflight --table"
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [p.name for p in preflight.PREREQUISITES]


def test_the_preflight_calls_exactly_what_its_help_lists(world, capsys, monkeypatch):
    from tests.iam_oracle import assert_exactly_covered, help_lists, recorded

    with recorded(monkeypatch) as calls:
        code, out = world.run(capsys)
        assert code == preflight.EXIT_OK, out
        # S3 through a gateway endpoint reads the AWS-managed prefix list instead (ops/s3_path.py)
        document = yaml.safe_load((world.tmp / "stack.yaml").read_text())
        for role in ROLES:
            document["config"]["intelgraph-platform:network"][role]["s3"] = {"mode": "gateway",
                                                                              "cidrs": ["52.216.0.0/15"]}
        (world.tmp / "stack.yaml").write_text(yaml.safe_dump(document))
        code, out = world.run(capsys)
        assert "network.<region>.s3.cidrs misses" in out, out  # it read moto's prefix list (whose CIDRs differ)
    assert_exactly_covered(preflight.IAM, calls)
    help_lists(preflight, preflight.IAM, capsys)
