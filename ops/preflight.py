"""Does the live account and each region's cluster hold what the program assumes? Read-only.

    python -m ops.preflight --stack prod                 # both regions
    python -m ops.preflight --stack prod --region dr     # one region (and the stack-wide checks)

The program creates no cluster add-on: the EKS clusters, their IRSA providers, the controllers,
CRDs, StorageClasses, VPC endpoints and Alertmanager Secrets are prerequisites, and a missing one
fails a deploy late (a CRD), or never fails at all (without network policy enforcement every
NetworkPolicy is silently ignored; an unselected ServiceMonitor is silently never scraped).
Each check below reads what its prerequisite must look like, and on failure says what to install
or change. PREREQUISITES is the one list: the README's "Prerequisites" table is rendered from it
(`python -m ops.preflight --table`) and a test holds the two together.

Kubernetes is read through ``kubectl --context <ctx> get ... -o json`` (only ``get``), AWS through
boto3 in each role's region (only Describe/Get/Simulate calls). Exit 0 when every check passes,
1 when any fails (warnings do not fail), 2 on bad input: an unknown stack, invalid stack config,
no AWS credentials or credentials of another account, no kubectl.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from ops._common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Grant, InputError, Permissions, cause, load_settings
from ops._common import run as run_command
from ops.s3_path import check_s3_path

Status = Literal["PASS", "FAIL", "WARN", "INFO"]

EBS_CSI_DRIVER = "ebs.csi.aws.com"
# The AWS Load Balancer Controller's IngressClass controller name (its docs, "IngressClass").
ALB_CONTROLLER = "ingress.k8s.aws/alb"
TARGET_GROUP_BINDING_CRD = "targetgroupbindings.elbv2.k8s.aws"
SNAPSHOT_CRDS = tuple(f"{plural}.snapshot.storage.k8s.io"
                      for plural in ("volumesnapshots", "volumesnapshotclasses", "volumesnapshotcontents"))
# What the program creates of kube-prometheus-stack's kinds: ServiceMonitors and PrometheusRules
# (helpers/kube.py), a PodMonitor (the log shipper), AlertmanagerConfigs (components/alertmanager.py).
MONITORING_CRDS = tuple(f"{plural}.monitoring.coreos.com"
                        for plural in ("servicemonitors", "podmonitors", "prometheusrules", "alertmanagerconfigs"))
# The STS audience IRSA tokens carry (EKS user guide, "Create an IAM OIDC provider for your cluster").
STS_AUDIENCE = "sts.amazonaws.com"
# The interface endpoints the program's flows dial: service -> settings.RegionNetwork field.
# interface endpoints at configured addresses; S3's path (interface or gateway) is network.<role>.s3,
# checked by ops.s3_path
ENDPOINTS = (("sts", "sts_endpoint_cidrs"), ("secretsmanager", "secretsmanager_endpoint_cidrs"))


# --- reading the clusters and the account -------------------------------------------------------


class ClusterError(Exception):
    """kubectl could not answer (cluster unreachable, no such resource type, forbidden)."""


class Kubectl:
    """``kubectl get`` against one cluster, by its context or kubeconfig; answers are cached."""

    def __init__(self, context: Optional[str], kubeconfig: Optional[str], binary: str = "kubectl"):
        self.target = ["--context", context] if context else ["--kubeconfig", str(kubeconfig)]
        self.binary = binary
        self._cache: dict[tuple, Optional[dict]] = {}

    def get(self, resource: str, name: Optional[str] = None, namespace: Optional[str] = None) -> Optional[dict]:
        """The object (None when it does not exist), or with no name the List of them (namespace
        None: across all namespaces, for a namespaced resource)."""
        key = (resource, name, namespace)
        if key not in self._cache:
            where = ["-n", namespace] if namespace else ([] if name else ["--all-namespaces"])
            argv = [self.binary, *self.target, "get", resource, *([name] if name else []), *where,
                    "-o", "json", "--request-timeout=30s"]
            run = subprocess.run(argv, capture_output=True, text=True)
            if run.returncode != 0:
                message = (run.stderr.strip().splitlines() or ["kubectl failed"])[-1]
                if "(NotFound)" in message and name:
                    self._cache[key] = None
                    return None
                raise ClusterError(message)
            self._cache[key] = json.loads(run.stdout)
        return self._cache[key]

    def items(self, resource: str, namespace: Optional[str] = None) -> list[dict]:
        listed = self.get(resource, namespace=namespace) or {}
        return list(listed.get("items") or [])


ClientFactory = Callable[[str, str], Any]


class Aws:
    """boto3 clients by (service, region), one each; tests pass a factory of moto/stubbed clients."""

    def __init__(self, factory: Optional[ClientFactory] = None):
        self._factory = factory or (lambda service, region: boto3.client(service, region_name=region))
        self._clients: dict[tuple[str, str], Any] = {}

    def __call__(self, service: str, region: str) -> Any:
        if (service, region) not in self._clients:
            self._clients[service, region] = self._factory(service, region)
        return self._clients[service, region]


@dataclass
class Target:
    """What one check reads: the stack's settings, the role (None: stack-wide), its cluster and the account."""

    cfg: Any  # settings.StackSettings
    role: Optional[str]
    kube: Optional[Kubectl]
    aws: Aws

    @property
    def region(self) -> str:
        return self.cfg.aws.region(self.role or "primary")

    @property
    def cluster(self) -> Any:
        return self.cfg.kubernetes.of(self.role)


@dataclass(frozen=True)
class Finding:
    status: Status
    detail: str
    fix: str = ""  # a more specific remedy than the prerequisite's install text


def ok(detail: str) -> list[Finding]:
    return [Finding("PASS", detail)]


def fail(detail: str, fix: str = "") -> Finding:
    return Finding("FAIL", detail, fix)


# --- label selectors (Kubernetes LabelSelector semantics) ------------------------------------------


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Does a (non-null) LabelSelector match these labels? {} matches everything; a NotIn or
    DoesNotExist expression matches an absent key (apimachinery labels.Selector)."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        matched = {"In": key in labels and labels[key] in values,
                   "NotIn": key not in labels or labels[key] not in values,
                   "Exists": key in labels,
                   "DoesNotExist": key not in labels}.get(operator, False)
        if not matched:
            return False
    return True


def _object_selector(spec: dict, field: str, labels: dict[str, str]) -> Optional[str]:
    """prometheus-operator: a null object selector selects nothing; {} selects all. None when it
    selects ``labels``, else why not."""
    selector = spec.get(field)
    if selector is None:
        return f"{field} is null (selects nothing)"
    return None if selects(selector, labels) else f"{field} {json.dumps(selector)} does not select labels {labels}"


def _namespace_selector(spec: dict, field: str, own: str, namespaces: dict[str, dict]) -> Optional[str]:
    """prometheus-operator: a null namespace selector means only the object's own namespace."""
    selector = spec.get(field)
    outside = [ns for ns, labels in namespaces.items()
               if not (ns == own if selector is None else selects(selector, labels))]
    if not outside:
        return None
    shown = "null (only its own namespace)" if selector is None else json.dumps(selector)
    return f"{field} {shown} leaves out {', '.join(outside)}"


# --- what the program deploys per region (mirrors __main__.tier_args) ------------------------------


def tier_namespaces(cfg: Any, role: str) -> list[str]:
    """The namespaces of a region's tier: each gets an AlertmanagerConfig whose receivers read the
    pager and chat Secrets there (components/regional_tier.py: AlertRouting over every namespace)."""
    names = [cfg.neo4j.namespace]
    if role == "dr":  # both restore rehearsals run in the DR cluster (components/neo4j_dr.py, __main__.py)
        names += [cfg.neo4j.restore_namespace, cfg.pg_restore_rehearsal.namespace]
    names.append(cfg.redis.namespace)
    if role == "primary":  # reviewed allowlist flows are the primary tier's
        names += [entry.namespace for entry in cfg.egress.allowlist]
    names.append(cfg.logs.shipper.namespace)
    return list(dict.fromkeys(names))


def _program_namespace_labels(target: Target) -> dict[str, dict[str, str]]:
    """Each tier namespace's labels: live when it exists, else those the program will give it."""
    from helpers.kube import labels_for

    assert target.kube is not None and target.role is not None
    found = {}
    for ns in tier_namespaces(target.cfg, target.role):
        live = target.kube.get("namespaces", ns)
        found[ns] = (live or {}).get("metadata", {}).get("labels") or {
            "kubernetes.io/metadata.name": ns, **labels_for(ns, "namespace")}
    return found


# --- the checks ----------------------------------------------------------------------------------


def check_eks_cluster(t: Target) -> list[Finding]:
    name = t.cluster.cluster_name
    try:
        cluster = t.aws("eks", t.region).describe_cluster(name=name)["cluster"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return [fail(f"no EKS cluster {name} in {t.region}")]
        raise
    problems = []
    if cluster.get("status") != "ACTIVE":
        problems.append(fail(f"{name} is {cluster.get('status')}, not ACTIVE", "wait until the cluster is ACTIVE"))
    if cluster.get("version") != t.cfg.kubernetes.version:
        problems.append(fail(
            f"{name} runs Kubernetes {cluster.get('version')}, kubernetes.version says {t.cfg.kubernetes.version}",
            "upgrade the cluster or set kubernetes.version to what it runs (manifests are validated against it)"))
    issuer = (cluster.get("identity") or {}).get("oidc", {}).get("issuer", "")
    if issuer.removeprefix("https://") != t.cluster.oidc_issuer:
        problems.append(fail(f"{name}'s OIDC issuer is {issuer or 'none'}, kubernetes.{t.role}.oidcIssuer says "
                             f"{t.cluster.oidc_issuer}", f"set kubernetes.{t.role}.oidcIssuer to the cluster's issuer"))
    return problems or ok(f"{name} ACTIVE, Kubernetes {cluster['version']}, issuer matches")


def check_oidc_provider(t: Target) -> list[Finding]:
    arn = t.cluster.oidc_provider_arn
    try:
        provider = t.aws("iam", t.region).get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchEntity", "NoSuchEntityException"):
            return [fail(f"no IAM OIDC provider {arn}")]
        raise
    problems = []
    url = provider.get("Url", "").removeprefix("https://")
    if url != t.cluster.oidc_issuer:
        problems.append(fail(f"{arn} is for {url}, not the cluster's issuer {t.cluster.oidc_issuer}",
                             f"set kubernetes.{t.role}.oidcProviderArn to the provider of the cluster's issuer"))
    if STS_AUDIENCE not in provider.get("ClientIDList", []):
        problems.append(fail(f"{arn} lacks client id {STS_AUDIENCE} (has {provider.get('ClientIDList', [])})",
                             f"aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn "
                             f"{arn} --client-id {STS_AUDIENCE}"))
    return problems or ok(f"{arn.rsplit('/', 1)[-1]}: issuer matches, audience {STS_AUDIENCE}")


def check_ingress_controller(t: Target) -> list[Finding]:
    assert t.kube is not None
    if t.cfg.ingress.mode == "nginx":
        ingress_class = t.kube.get("ingressclasses.networking.k8s.io", "nginx")
        return ok("IngressClass nginx exists") if ingress_class else [
            fail("no IngressClass nginx (ingress.mode nginx)", "install ingress-nginx, or set ingress.mode alb")]
    problems = []
    deployment = t.kube.get("deployments.apps", "aws-load-balancer-controller", "kube-system")
    if deployment is None:
        problems.append(fail("no Deployment kube-system/aws-load-balancer-controller"))
    elif not any(c.get("type") == "Available" and c.get("status") == "True"
                 for c in (deployment.get("status") or {}).get("conditions") or []):
        problems.append(fail("kube-system/aws-load-balancer-controller is not Available",
                             "kubectl -n kube-system describe deployment aws-load-balancer-controller"))
    ingress_class = t.kube.get("ingressclasses.networking.k8s.io", "alb")
    controller = ((ingress_class or {}).get("spec") or {}).get("controller")
    if controller != ALB_CONTROLLER:
        found = "does not exist" if ingress_class is None else f"has controller {controller}"
        problems.append(fail(f"IngressClass alb {found}",
                             f"the controller's chart creates IngressClass alb (controller {ALB_CONTROLLER}) "
                             "with createIngressClassResource=true"))
    # the edge binds the application's Service to its ALB's target group with this kind
    if _missing_crds(t, (TARGET_GROUP_BINDING_CRD,)):
        problems.append(fail(f"missing CRD {TARGET_GROUP_BINDING_CRD}: the edge's TargetGroupBinding cannot be created",
                             "install the controller's CRDs (the chart's crds/crds.yaml; helm does on install)"))
    return problems or ok(f"aws-load-balancer-controller Available, IngressClass alb, CRD {TARGET_GROUP_BINDING_CRD}")


def check_edge_service(t: Target) -> list[Finding]:
    """The application's Service the edge sends to. Its namespace must exist (the TargetGroupBinding,
    or nginx mode's Ingress, is created there); the Service itself need not, in mode alb: the
    controller registers its pods whenever it appears, so a missing one is information. When it
    exists, its port must be ingress.servicePort and that port's targetPort ingress.podPort (the
    target group's port, the security group rule and the NetworkPolicy flow)."""
    assert t.kube is not None
    edge = t.cfg.ingress
    where = f"{edge.namespace}/{edge.service_name}"
    if t.kube.get("namespaces", edge.namespace) is None:
        return [fail(f"no namespace {edge.namespace} (ingress.namespace): the edge's "
                     f"{'TargetGroupBinding' if edge.mode == 'alb' else 'Ingress'} is created there",
                     f"create namespace {edge.namespace} (the application's deploy owns it), or set ingress.namespace")]
    service = t.kube.get("services", edge.service_name, edge.namespace)
    if service is None:
        if edge.mode == "nginx":
            return [Finding("WARN", f"no Service {where} (ingress.serviceName): in mode nginx the deploy waits for "
                                    "its endpoints (pulumi-kubernetes' Ingress await)", "deploy the application first")]
        return [Finding("INFO", f"no Service {where} (ingress.serviceName) yet: the deploy does not need it; the "
                                "ALB has no targets (503) until the application creates it")]
    ports = [p for p in (service.get("spec") or {}).get("ports") or [] if p.get("port") == edge.service_port]
    if not ports:
        found = ", ".join(str(p.get("port")) for p in (service.get("spec") or {}).get("ports") or []) or "none"
        return [fail(f"Service {where} has no port {edge.service_port} (ingress.servicePort; it has {found}): "
                     "the binding would register no target", "set ingress.servicePort to the Service's port")]
    target = ports[0].get("targetPort", edge.service_port)
    pod_port = edge.pod_port or edge.service_port
    if isinstance(target, str):
        return [Finding("INFO", f"Service {where} port {edge.service_port} targets the named port {target!r}: "
                                f"the ALB reaches the pods on ingress.podPort {pod_port}; make sure that is its number")]
    if target != pod_port:
        return [fail(f"Service {where} port {edge.service_port} targets port {target}, ingress.podPort is {pod_port}: "
                     "the ALB's security group and the NetworkPolicy open the wrong port",
                     f"set ingress.podPort to {target}")]
    return ok(f"Service {where}: port {edge.service_port} -> pods' {pod_port}")


def check_ebs_csi_driver(t: Target) -> list[Finding]:
    assert t.kube is not None
    if t.kube.get("csidrivers.storage.k8s.io", EBS_CSI_DRIVER) is None:
        return [fail(f"no CSIDriver {EBS_CSI_DRIVER}")]
    return ok(f"CSIDriver {EBS_CSI_DRIVER}")


def _ebs_csi_role(t: Target) -> tuple[Optional[str], str]:
    """The EBS CSI controller's IAM role: the EKS add-on's, else its ServiceAccount's IRSA annotation."""
    assert t.kube is not None
    try:
        addon = t.aws("eks", t.region).describe_addon(
            clusterName=t.cluster.cluster_name, addonName="aws-ebs-csi-driver")["addon"]
        if addon.get("serviceAccountRoleArn"):
            return addon["serviceAccountRoleArn"], "the aws-ebs-csi-driver add-on's role"
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    account = t.kube.get("serviceaccounts", "ebs-csi-controller-sa", "kube-system")
    role = ((account or {}).get("metadata", {}).get("annotations") or {}).get("eks.amazonaws.com/role-arn")
    return role, "ebs-csi-controller-sa's eks.amazonaws.com/role-arn"


def check_ebs_snapshot_permissions(t: Target) -> list[Finding]:
    role, source = _ebs_csi_role(t)
    if not role:
        return [fail("the EBS CSI controller has no IAM role (no add-on role, no IRSA annotation on "
                     "kube-system/ebs-csi-controller-sa): it cannot create volumes or snapshots",
                     "set the aws-ebs-csi-driver add-on's service account role to one with the "
                     "AmazonEBSCSIDriverPolicy managed policy")]
    account, region = t.cfg.aws.account_id, t.region
    # What the driver does for a VolumeSnapshot, with the tags it sends (AmazonEBSCSIDriverPolicy
    # allows CreateSnapshot on snapshots only with these request tags, DeleteSnapshot only on
    # snapshots tagged CSIVolumeSnapshotName).
    tag = {"ContextKeyType": "string", "ContextKeyValues": ["preflight"]}
    cases = (
        ("ec2:CreateSnapshot", f"arn:aws:ec2:{region}:{account}:volume/vol-0123456789abcdef0", []),
        ("ec2:CreateSnapshot", f"arn:aws:ec2:{region}::snapshot/snap-0123456789abcdef0",
         [{"ContextKeyName": "aws:RequestTag/CSIVolumeSnapshotName", **tag},
          {"ContextKeyName": "aws:RequestTag/ebs.csi.aws.com/cluster", "ContextKeyType": "string",
           "ContextKeyValues": ["true"]}]),
        ("ec2:DeleteSnapshot", f"arn:aws:ec2:{region}::snapshot/snap-0123456789abcdef0",
         [{"ContextKeyName": "ec2:ResourceTag/CSIVolumeSnapshotName", **tag}]),
    )
    iam = t.aws("iam", t.region)
    denied = []
    for action, resource, context in cases:
        [result] = iam.simulate_principal_policy(
            PolicySourceArn=role, ActionNames=[action], ResourceArns=[resource], ContextEntries=context,
        )["EvaluationResults"]
        if result["EvalDecision"] != "allowed":
            denied.append(f"{action} on {resource.rsplit(':', 1)[-1].split('/')[0]} ({result['EvalDecision']})")
    if denied:
        return [fail(f"{role} ({source}) is denied {', '.join(denied)}",
                     f"attach arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy to {role.rsplit('/', 1)[-1]}")]
    return ok(f"{role.rsplit('/', 1)[-1]} ({source}) may create and delete snapshots")


def _missing_crds(t: Target, names: Sequence[str]) -> list[str]:
    assert t.kube is not None
    return [n for n in names if t.kube.get("customresourcedefinitions.apiextensions.k8s.io", n) is None]


def _runs_image(workloads: list[dict], image_part: str) -> list[dict]:
    return [w for w in workloads
            if any(image_part in c.get("image", "")
                   for c in w.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []))]


def check_snapshot_controller(t: Target) -> list[Finding]:
    assert t.kube is not None
    problems = []
    missing = _missing_crds(t, SNAPSHOT_CRDS)
    if missing:
        problems.append(fail(f"missing CRDs {', '.join(missing)}"))
    controllers = _runs_image(t.kube.items("deployments.apps"), "/snapshot-controller")
    if not controllers:
        problems.append(fail("no Deployment runs the snapshot-controller image: VolumeSnapshots would "
                             "stay unbound"))
    elif not any((d.get("status") or {}).get("availableReplicas") for d in controllers):
        problems.append(fail(f"{controllers[0]['metadata']['namespace']}/{controllers[0]['metadata']['name']} "
                             "has no available replica"))
    return problems or ok(f"snapshot CRDs, controller {controllers[0]['metadata']['namespace']}/"
                          f"{controllers[0]['metadata']['name']}")


def check_snapshot_class(t: Target) -> list[Finding]:
    """The program creates its own VolumeSnapshotClass (components/neo4j_snapshots.py) with driver
    ebs.csi.aws.com: what must exist is a driver that takes snapshots (the EBS CSI controller's
    csi-snapshotter sidecar), and no other class under the program's class name."""
    assert t.kube is not None
    problems = []
    controller = t.kube.get("deployments.apps", "ebs-csi-controller", "kube-system")
    containers = [c.get("name") for c in
                  ((controller or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [])]
    if controller is None:
        problems.append(fail("no Deployment kube-system/ebs-csi-controller"))
    elif "csi-snapshotter" not in containers:
        problems.append(fail(f"kube-system/ebs-csi-controller has no csi-snapshotter container ({', '.join(containers)}): "
                             f"driver {EBS_CSI_DRIVER} would never cut a snapshot",
                             "the driver's chart and add-on add csi-snapshotter only when the snapshot CRDs "
                             "exist at install: update the add-on after installing them, or set "
                             "sidecars.snapshotter.forceEnable: true"))
    name = f"{t.cfg.neo4j.cluster_name}-ebs-retain"
    existing = t.kube.get("volumesnapshotclasses.snapshot.storage.k8s.io", name) if not _missing_crds(
        t, SNAPSHOT_CRDS[1:2]) else None
    if existing is not None and existing.get("driver") != EBS_CSI_DRIVER:
        problems.append(fail(f"VolumeSnapshotClass {name} exists with driver {existing.get('driver')}",
                             f"delete it: the program creates {name} with driver {EBS_CSI_DRIVER}"))
    return problems or ok(f"{EBS_CSI_DRIVER} takes snapshots (csi-snapshotter); class {name} "
                          f"{'has driver ' + EBS_CSI_DRIVER if existing else 'is created by the program'}")


def check_storage_classes(t: Target) -> list[Finding]:
    assert t.kube is not None
    wanted = {t.cfg.neo4j.storage_class: "neo4j.storageClass"}
    if t.cfg.redis.storage_class:
        wanted.setdefault(t.cfg.redis.storage_class, "redis.storageClass")
    problems = []
    for name, key in wanted.items():
        found = t.kube.get("storageclasses.storage.k8s.io", name)
        fix = (f"create StorageClass {name} (provisioner {EBS_CSI_DRIVER}, allowVolumeExpansion: true, "
               f"parameters type gp3, encrypted \"true\"), or set {key} to one that exists")
        if found is None:
            problems.append(fail(f"no StorageClass {name} ({key})", fix))
            continue
        if found.get("provisioner") != EBS_CSI_DRIVER:
            problems.append(fail(f"StorageClass {name} provisions with {found.get('provisioner')}, "
                                 f"not {EBS_CSI_DRIVER} (no CSI snapshots)", fix))
        if found.get("allowVolumeExpansion") is not True:
            problems.append(fail(f"StorageClass {name} has no allowVolumeExpansion: true: a full data "
                                 "volume cannot be grown in place",
                                 f"kubectl patch storageclass {name} -p '{{\"allowVolumeExpansion\": true}}'"))
    return problems or ok(", ".join(f"{n} ({k})" for n, k in wanted.items()) +
                          f": {EBS_CSI_DRIVER}, expandable")


def check_network_policy(t: Target) -> list[Finding]:
    """VPC CNI enforces NetworkPolicies only when its node agent (container aws-eks-nodeagent, image
    amazon/aws-network-policy-agent) runs with --enable-network-policy=true and the EKS network
    policy controller is on (ConfigMap kube-system/amazon-vpc-cni enable-network-policy-controller);
    the managed add-on's configuration value enableNetworkPolicy: "true" sets both (EKS user guide,
    "Restrict Pod network traffic with Kubernetes network policies")."""
    assert t.kube is not None
    fix = ("aws eks update-addon --cluster-name " + t.cluster.cluster_name + " --addon-name vpc-cni "
           "--configuration-values '{\"enableNetworkPolicy\": \"true\"}' (VPC CNI 1.14 or later)")
    daemonset = t.kube.get("daemonsets.apps", "aws-node", "kube-system")
    if daemonset is None:
        return [fail("no DaemonSet kube-system/aws-node: the VPC CNI is not installed", fix)]
    containers = daemonset["spec"]["template"]["spec"].get("containers") or []
    agents = [c for c in containers
              if c.get("name") == "aws-eks-nodeagent" or "aws-network-policy-agent" in c.get("image", "")]
    if not agents:
        return [fail("aws-node has no network policy agent container (VPC CNI older than 1.14?): "
                     "every NetworkPolicy is silently ignored", fix)]
    problems = []
    if "--enable-network-policy=true" not in (agents[0].get("args") or []):
        problems.append(fail(f"{agents[0]['name']} runs without --enable-network-policy=true: every "
                             "NetworkPolicy is silently ignored", fix))
    config = t.kube.get("configmaps", "amazon-vpc-cni", "kube-system")
    if ((config or {}).get("data") or {}).get("enable-network-policy-controller") != "true":
        problems.append(fail("ConfigMap kube-system/amazon-vpc-cni lacks enable-network-policy-controller: "
                             "\"true\": no PolicyEndpoints are computed", fix))
    return problems or ok(f"{agents[0]['name']} --enable-network-policy=true, policy controller on")


def check_monitoring_crds(t: Target) -> list[Finding]:
    missing = _missing_crds(t, MONITORING_CRDS)
    return [fail(f"missing CRDs {', '.join(missing)}")] if missing else ok(", ".join(
        n.split(".")[0] for n in MONITORING_CRDS))


def check_monitoring_selectors(t: Target) -> list[Finding]:
    """kube-prometheus-stack's Prometheus must select the program's ServiceMonitors, PodMonitors and
    PrometheusRules (label release: <observability.prometheusReleaseLabel>) in the tier's
    namespaces, and its Alertmanager the AlertmanagerConfigs there (prometheus-operator API
    reference: a null object selector selects nothing, a null namespace selector only the object's
    own namespace; matcher strategy OnNamespace is what components/alertmanager.py relies on)."""
    from components.alertmanager import AlertRoutingArgs, SecretRef, alertmanager_config

    assert t.kube is not None
    ns = t.cfg.observability.prometheus_namespace
    release = {"release": t.cfg.observability.prometheus_release_label}
    namespaces = _program_namespace_labels(t)
    problems = []
    prometheuses = t.kube.items("prometheuses.monitoring.coreos.com", ns)
    reasons = []
    for prometheus in prometheuses:
        spec = prometheus.get("spec") or {}
        why = [w for w in (
            _object_selector(spec, "serviceMonitorSelector", release),
            _object_selector(spec, "podMonitorSelector", release),
            _object_selector(spec, "ruleSelector", release),
            _namespace_selector(spec, "serviceMonitorNamespaceSelector", ns, namespaces),
            _namespace_selector(spec, "podMonitorNamespaceSelector", ns, namespaces),
            _namespace_selector(spec, "ruleNamespaceSelector", ns, namespaces)) if w]
        if not why:
            break
        reasons.append(f"{prometheus['metadata']['name']}: {'; '.join(why)}")
    else:
        problems.append(fail(f"no Prometheus in {ns} selects the program's monitors and rules"
                             + (f" ({' | '.join(reasons)})" if reasons else ""),
                             f"install kube-prometheus-stack in {ns} with release name "
                             f"{release['release']}, or set observability.prometheusReleaseLabel to its release; "
                             "its ...SelectorNilUsesHelmValues=false or the namespace selectors {} widen the scope"))
    routing = alertmanager_config(AlertRoutingArgs(namespaces=(ns,), pager_secret=SecretRef("p", "k"),
                                                   chat_secret=SecretRef("c", "k"), chat_channel="#x",
                                                   prometheus_release_label=release["release"]), ns)
    routing_labels = routing["metadata"]["labels"]
    reasons = []
    for alertmanager in t.kube.items("alertmanagers.monitoring.coreos.com", ns):
        spec = alertmanager.get("spec") or {}
        strategy = (spec.get("alertmanagerConfigMatcherStrategy") or {}).get("type", "OnNamespace")
        why = [w for w in (
            _object_selector(spec, "alertmanagerConfigSelector", routing_labels),
            _namespace_selector(spec, "alertmanagerConfigNamespaceSelector", ns, namespaces),
            None if strategy == "OnNamespace" else f"alertmanagerConfigMatcherStrategy is {strategy}, "
                                                   "not OnNamespace") if w]
        if not why:
            break
        reasons.append(f"{alertmanager['metadata']['name']}: {'; '.join(why)}")
    else:
        problems.append(fail(f"no Alertmanager in {ns} takes the program's AlertmanagerConfigs"
                             + (f" ({' | '.join(reasons)})" if reasons else ""),
                             "kube-prometheus-stack's defaults select every AlertmanagerConfig in every "
                             "namespace (alertmanagerConfigSelector: {}, alertmanagerConfigNamespaceSelector: {})"))
    return problems or ok(f"Prometheus and Alertmanager in {ns} select release={release['release']} "
                          f"and AlertmanagerConfigs in {len(namespaces)} namespaces")


def check_vpc_endpoints(t: Target) -> list[Finding]:
    assert t.role is not None
    net = t.cfg.network.of(t.role)
    ec2 = t.aws("ec2", t.region)
    endpoints = [e for page in ec2.get_paginator("describe_vpc_endpoints").paginate(
        Filters=[{"Name": "vpc-id", "Values": [net.vpc_id]}]) for e in page["VpcEndpoints"]]
    problems, seen = [], []
    for service, field in ENDPOINTS:
        name = f"com.amazonaws.{t.region}.{service}"
        config_key = f"network.{t.role}.{type(net).model_fields[field].alias}"
        cidrs = [ipaddress.ip_network(c) for c in getattr(net, field)]
        found = [e for e in endpoints if e["ServiceName"] == name and e["VpcEndpointType"] == "Interface"]
        if not found:
            problems.append(fail(f"no {service} interface endpoint in {net.vpc_id}",
                                 f"create an interface endpoint for {name} in {net.vpc_id} with private DNS, "
                                 f"and set {config_key} to its addresses"))
            continue
        endpoint = found[0]
        if endpoint.get("State", "").lower() != "available":
            problems.append(fail(f"{endpoint['VpcEndpointId']} ({service}) is {endpoint.get('State')}"))
        if not endpoint.get("PrivateDnsEnabled"):
            problems.append(fail(f"{endpoint['VpcEndpointId']} ({service}) has private DNS off: "
                                 f"{service}.{t.region}.amazonaws.com resolves to public addresses the "
                                 "NetworkPolicies do not admit",
                                 f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {endpoint['VpcEndpointId']} "
                                 "--private-dns-enabled"))
        interfaces = endpoint.get("NetworkInterfaceIds") or []
        addresses = [ipaddress.ip_address(n["PrivateIpAddress"]) for n in ec2.describe_network_interfaces(
            NetworkInterfaceIds=interfaces)["NetworkInterfaces"]] if interfaces else []
        stray = [str(a) for a in addresses if not any(a in c for c in cidrs)]
        unused = [str(c) for c in cidrs if not any(a in c for a in addresses)]
        if stray or unused:
            problems.append(fail(
                f"{endpoint['VpcEndpointId']} ({service}) listens on {', '.join(map(str, addresses)) or 'no address'}; "
                f"{config_key} is {', '.join(map(str, cidrs))}",
                f"set {config_key} to [{', '.join(f'{a}/32' for a in addresses)}]: the flows admit only these"))
        seen.append(f"{service} {', '.join(map(str, addresses))}")
    s3 = check_s3_path(ec2, region=t.region, vpc_id=net.vpc_id, mode=net.s3.mode, cidrs=list(net.s3.cidrs))
    problems += [fail(c.detail, f"network.{t.role}.s3 must describe how pods reach S3") for c in s3 if not c.ok]
    seen.append(f"s3 {net.s3.mode}")
    return problems or ok("; ".join(seen) + ", private DNS on")


def check_alertmanager_secrets(t: Target) -> list[Finding]:
    assert t.kube is not None and t.role is not None
    refs = (("pagerSecret", t.cfg.alerting.alertmanager.pager_secret),
            ("chatSecret", t.cfg.alerting.alertmanager.chat_secret))
    problems, namespaces = [], tier_namespaces(t.cfg, t.role)
    for ns in namespaces:
        for key, ref in refs:
            secret = t.kube.get("secrets", ref.name, ns)
            fix = (f"have the secrets pipeline create Secret {ref.name} with key {ref.key} in {ns} "
                   f"(alerting.alertmanager.{key}): the operator drops an AlertmanagerConfig whose "
                   "receiver Secret is missing")
            if secret is None:
                problems.append(fail(f"no Secret {ns}/{ref.name} (alerting.alertmanager.{key})", fix))
            elif ref.key not in ((secret.get("data") or {}) | (secret.get("stringData") or {})):
                problems.append(fail(f"Secret {ns}/{ref.name} has no key {ref.key}", fix))
    return problems or ok(f"{t.cfg.alerting.alertmanager.pager_secret.name} and "
                          f"{t.cfg.alerting.alertmanager.chat_secret.name} in {', '.join(namespaces)}")


def check_accelerated_recovery(t: Target) -> list[Finding]:
    """Route 53 accelerated recovery lets the public zone's records be changed from us-west-2 while
    us-east-1 (Route 53's control plane) is impaired: botocore's route53 model has it as
    HostedZone.Features.AcceleratedRecoveryStatus (UpdateHostedZoneFeatures turns it on)."""
    route53 = t.aws("route53", "us-east-1")
    zone_id = t.cfg.dns.hosted_zone_id
    members = route53.meta.service_model.shape_for("HostedZone").members
    zone = route53.get_hosted_zone(Id=zone_id)["HostedZone"]
    if (zone.get("Config") or {}).get("PrivateZone"):
        return [fail(f"hosted zone {zone_id} is private; dns.hostedZoneId must be the public zone")]
    if "Features" not in members:
        return [Finding("INFO", f"this botocore ({_botocore_version()}) cannot read accelerated recovery; "
                                "check it in the Route 53 console")]
    status = (zone.get("Features") or {}).get("AcceleratedRecoveryStatus", "DISABLED")
    if status == "ENABLED":
        return ok(f"{zone['Name']} accelerated recovery ENABLED")
    return [Finding("WARN", f"{zone['Name']} accelerated recovery is {status}: while us-east-1 is impaired "
                            "its records cannot be changed (failover records still answer)",
                    f"aws route53 update-hosted-zone-features --hosted-zone-id {zone_id} "
                    "--enable-accelerated-recovery")]


def _botocore_version() -> str:
    import botocore

    return botocore.__version__


# --- the one list: what runs, and what the README's table says ------------------------------------


@dataclass(frozen=True)
class Prerequisite:
    name: str
    what: str  # what must exist (README)
    install: str  # how to install or change it (README, and printed when the check fails)
    run: Callable[[Target], list[Finding]]
    scope: Literal["region", "stack"] = "region"
    needs_cluster: bool = True  # reads the region's cluster (through kubectl); else only AWS


PREREQUISITES: tuple[Prerequisite, ...] = (
    Prerequisite("eks-cluster", "The region's EKS cluster (`kubernetes.<role>.clusterName`): ACTIVE, "
                 "running `kubernetes.version`, with the OIDC issuer `kubernetes.<role>.oidcIssuer`.",
                 "Create it (eksctl, Terraform, console); upgrade it or fix the config to match.",
                 check_eks_cluster, needs_cluster=False),
    Prerequisite("iam-oidc-provider", "The cluster's IAM OIDC provider (`kubernetes.<role>.oidcProviderArn`) "
                 "for its issuer, with client id `sts.amazonaws.com`: every IRSA role trusts it.",
                 "`eksctl utils associate-iam-oidc-provider --cluster <name> --approve`.",
                 check_oidc_provider, needs_cluster=False),
    Prerequisite("ingress-controller", "The AWS Load Balancer Controller (Deployment "
                 "`kube-system/aws-load-balancer-controller` Available), IngressClass `alb` and the CRD "
                 "`targetgroupbindings.elbv2.k8s.aws`; in `ingress.mode: nginx`, IngressClass `nginx`.",
                 "Helm chart `eks/aws-load-balancer-controller` (IRSA role with its IAM policy).",
                 check_ingress_controller),
    Prerequisite("edge-service", "The namespace `ingress.namespace`. The application's Service "
                 "`ingress.serviceName` need not exist yet (reported as information); when it does, its port "
                 "`ingress.servicePort` targets `ingress.podPort`.",
                 "The application's deploy creates the namespace and the Service; fix the config to match them.",
                 check_edge_service),
    Prerequisite("ebs-csi-driver", "The EBS CSI driver (CSIDriver `ebs.csi.aws.com`).",
                 "EKS add-on `aws-ebs-csi-driver`.", check_ebs_csi_driver),
    Prerequisite("ebs-csi-snapshot-permissions", "The EBS CSI controller's IAM role (the add-on's, or "
                 "the IRSA annotation on `kube-system/ebs-csi-controller-sa`) may create and delete "
                 "snapshots (`iam simulate-principal-policy`).",
                 "Give the add-on a service account role with `AmazonEBSCSIDriverPolicy`.",
                 check_ebs_snapshot_permissions),
    Prerequisite("snapshot-controller", "The CSI snapshot controller and its CRDs "
                 "(`volumesnapshots`, `volumesnapshotclasses`, `volumesnapshotcontents`"
                 ".snapshot.storage.k8s.io).",
                 "EKS add-on `snapshot-controller` (or kubernetes-csi/external-snapshotter's CRDs and controller).",
                 check_snapshot_controller),
    Prerequisite("volume-snapshot-class", "Driver `ebs.csi.aws.com` takes snapshots (the controller's "
                 "`csi-snapshotter` sidecar) for the VolumeSnapshotClass `<neo4j.clusterName>-ebs-retain` "
                 "the program creates; no other class holds that name.",
                 "Install the snapshot CRDs before the EBS CSI add-on (its chart adds the sidecar only "
                 "when they exist), or update the add-on after them.",
                 check_snapshot_class),
    Prerequisite("storage-class", "The StorageClass `neo4j.storageClass` (and `redis.storageClass` when "
                 "set): provisioner `ebs.csi.aws.com`, `allowVolumeExpansion: true`.",
                 "`kubectl apply` a StorageClass (gp3, encrypted, WaitForFirstConsumer, allowVolumeExpansion).",
                 check_storage_classes),
    Prerequisite("vpc-cni-network-policy", "VPC CNI network policy enforcement: the `aws-node` agent runs "
                 "with `--enable-network-policy=true` and the policy controller is on. Without it every "
                 "NetworkPolicy is silently ignored.",
                 "VPC CNI add-on 1.14+ with configuration value `enableNetworkPolicy: \"true\"`.",
                 check_network_policy),
    Prerequisite("prometheus-operator-crds", "kube-prometheus-stack's CRDs: `servicemonitors`, `podmonitors`, "
                 "`prometheusrules`, `alertmanagerconfigs`.monitoring.coreos.com.",
                 "Helm chart `prometheus-community/kube-prometheus-stack`.", check_monitoring_crds),
    Prerequisite("prometheus-selectors", "A Prometheus in `observability.prometheusNamespace` selecting "
                 "`release: <observability.prometheusReleaseLabel>` monitors and rules in the tier's "
                 "namespaces; an Alertmanager selecting the program's AlertmanagerConfigs there (OnNamespace).",
                 "Install the chart under that release name (or set the label to its release); "
                 "chart defaults select every AlertmanagerConfig.",
                 check_monitoring_selectors),
    Prerequisite("vpc-endpoints", "Interface endpoints for STS and Secrets Manager in "
                 "`network.<role>.vpcId`, available, private DNS on, at exactly the addresses in "
                 "`network.<role>.*EndpointCidrs`; S3 reached as `network.<role>.s3` says (an interface "
                 "endpoint with private DNS, or a gateway endpoint and the region's S3 prefix list).",
                 "Create the endpoints (private DNS on), then copy their ENI addresses into the config.",
                 check_vpc_endpoints, needs_cluster=False),
    Prerequisite("alertmanager-secrets", "Secrets `alerting.alertmanager.pagerSecret` and `chatSecret` "
                 "(name and key) in every namespace the tier routes alerts from.",
                 "The secrets pipeline (External Secrets, sealed secrets) creates them; never this program.",
                 check_alertmanager_secrets),
    Prerequisite("route53-accelerated-recovery", "Route 53 accelerated recovery on the public zone "
                 "`dns.hostedZoneId` (a warning when off: records stay frozen while us-east-1 is impaired).",
                 "`aws route53 update-hosted-zone-features --hosted-zone-id <id> --enable-accelerated-recovery`.",
                 check_accelerated_recovery, scope="stack", needs_cluster=False),
)


def table() -> str:
    """The README's prerequisites table, rendered from PREREQUISITES."""
    rows = ["| Check | What must exist | How to install or change it |", "|---|---|---|"]
    rows += [f"| `{p.name}` | {p.what} | {p.install} |" for p in PREREQUISITES]
    return "\n".join(rows) + "\n"


# --- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    check: Prerequisite
    scope: str  # the role, or "stack"
    finding: Finding


def run(target: Target, prerequisite: Prerequisite) -> list[Finding]:
    try:
        findings = prerequisite.run(target)
    except ClusterError as exc:
        findings = [fail(f"cannot read the cluster: {exc}")]
    except NoCredentialsError:
        raise
    except BotoCoreError as exc:  # one region's API unreachable fails its checks, not the run
        findings = [fail(f"cannot reach AWS: {exc}")]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        findings = [fail(f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}",
                         "the preflight needs read access (e.g. ReadOnlyAccess plus iam:SimulatePrincipalPolicy)")]
    return findings


def preflight(cfg: Any, roles: Sequence[str], aws: Aws, kubectl: str = "kubectl") -> list[Result]:
    results = []
    for role in roles:
        cluster = cfg.kubernetes.of(role)
        kube = Kubectl(cluster.context, cluster.kubeconfig_path, kubectl)
        results += [Result(p, role, f) for p in PREREQUISITES if p.scope == "region"
                    for f in run(Target(cfg, role, kube if p.needs_cluster else None, aws), p)]
    stack = Target(cfg, None, None, aws)
    results += [Result(p, "stack", f) for p in PREREQUISITES if p.scope == "stack" for f in run(stack, p)]
    return results


def report(stack: str, results: list[Result]) -> int:
    print(f"preflight {stack}")
    width = max(len(r.check.name) for r in results)
    scope = None
    for result in results:
        if result.scope != scope:
            scope = result.scope
            print(scope)
        finding = result.finding
        print(f"  {finding.status}  {result.check.name:<{width}}  {finding.detail}")
        if finding.status in ("FAIL", "WARN"):
            print(f"        {'':<{width}}  fix: {finding.fix or result.check.install}")
    failed = [r for r in results if r.finding.status == "FAIL"]
    checks = {(r.scope, r.check.name) for r in results}
    bad = {(r.scope, r.check.name) for r in failed}
    print(f"{len(checks) - len(bad)} of {len(checks)} checks pass"
          + (f"; {len(failed)} problem(s) to fix" if failed else ""))
    return EXIT_FAILED if failed else EXIT_OK


# Read-only, in each region checked (tests/iam_oracle.py records the calls and compares). Run by
# whoever deploys, before a deploy: not part of the on-call role.
IAM = Permissions((
    Grant(("eks:DescribeCluster", "eks:DescribeAddon"), "clusters", "the cluster's issuer, the EBS CSI add-on"),
    Grant(("iam:GetOpenIDConnectProvider",), "oidc-providers", "IRSA's provider"),
    Grant(("iam:SimulatePrincipalPolicy",), "ebs-csi-role", "what the EBS CSI driver's role may do"),
    # EC2's Describe* and GetManagedPrefixListEntries on AWS-managed lists take no resource ARN
    Grant(("ec2:DescribeVpcEndpoints", "ec2:DescribeNetworkInterfaces", "ec2:DescribeManagedPrefixLists",
           "ec2:GetManagedPrefixListEntries"), "*", "the endpoints' addresses, S3's prefix list"),
    Grant(("route53:GetHostedZone",), "hosted-zone", "public zone, accelerated recovery"),
))


def check_credentials(cfg: Any, aws: Aws) -> None:
    """Credentials for the stack's account, or an InputError (nothing else runs without them).
    Asked in the DR region: the check must work while the primary region is down."""
    try:
        account = aws("sts", cfg.aws.dr_region).get_caller_identity()["Account"]
    except (NoCredentialsError, NoRegionError):
        raise InputError("no AWS credentials: log in (aws sso login) or export a profile for account "
                         f"{cfg.aws.account_id}") from None
    except (ClientError, BotoCoreError) as exc:
        raise InputError(cause(exc) or f"AWS credentials do not work: {exc}") from None
    if account != cfg.aws.account_id:
        raise InputError(f"the AWS credentials are for account {account}; the stack's aws.accountId is "
                         f"{cfg.aws.account_id}")


def main(argv: Optional[list[str]] = None, clients: Optional[ClientFactory] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.preflight", description=(__doc__ or "").partition("\n")[0],
                                     epilog=IAM.help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", help="the stack whose Pulumi.<stack>.yaml names what to check")
    parser.add_argument("--region", choices=("primary", "dr"), help="one region's checks (default: both)")
    parser.add_argument("--stack-file", type=Path, help="stack config instead of Pulumi.<stack>.yaml")
    parser.add_argument("--table", action="store_true", help="print the README's prerequisites table and exit")
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(table())
        return EXIT_OK
    return run_command("preflight", lambda: checked(args, clients))


def checked(args: argparse.Namespace, clients: Optional[ClientFactory]) -> int:
    try:
        if not args.stack:
            raise InputError("say which stack: --stack NAME")
        cfg = load_settings(args.stack, args.stack_file)
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise InputError("kubectl is not on PATH; install it (the Kubernetes checks read through it)")
        import settings

        aws = Aws(clients)
        check_credentials(cfg, aws)
        roles = [args.region] if args.region else list(settings.ROLES)
        return report(args.stack, preflight(cfg, roles, aws, kubectl))
    except (InputError, NoCredentialsError) as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
