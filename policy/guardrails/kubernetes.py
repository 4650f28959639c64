"""Kubernetes: hardened workloads, bounded CronJobs, clean Secrets, and no egress to the whole
internet (the edge's TLS and WAF: edge.py). A Helm release is judged twice: synth renders it and judges the
objects with these rules; the engine only sees the release, so its values are judged too."""

from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

from pulumi_policy import EnforcementLevel

from . import config_keys
from ._rules import depends_on, dig, each, is_unknown, peek, resource_rule, stack_rule

DEPLOYMENT, STATEFULSET, DAEMONSET = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
                                      "kubernetes:apps/v1:DaemonSet")
JOB, CRONJOB = "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob"
WORKLOADS = (DEPLOYMENT, STATEFULSET, DAEMONSET, JOB, CRONJOB)
LONG_RUNNING = (DEPLOYMENT, STATEFULSET, DAEMONSET)
SECRET = "kubernetes:core/v1:Secret"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
# The container rules, kept undecorated too so that a release's values can be judged by them.
CONTAINER_CHECKS: list = []


def _container_check(check):
    CONTAINER_CHECKS.append(check)
    return check


def pod_spec(props: Any, resource_type: str) -> Any:
    if resource_type == CRONJOB:
        return dig(props, "spec", "jobTemplate", "spec", "template", "spec", default={})
    return dig(props, "spec", "template", "spec", default={})


def containers(props: Any, resource_type: str) -> Iterator[tuple[Any, Any]]:
    """(pod spec, container) for every container and init container of a workload."""
    pod = pod_spec(props, resource_type)
    for key in ("initContainers", "containers"):
        for container in each(pod, key):
            yield pod, container


def _effective(pod: Any, container: Any, *path: str) -> Any:
    """A container security setting, falling back to the pod's."""
    own = dig(container, "securityContext", *path)
    return own if own is not None else dig(pod, "securityContext", *path)


@resource_rule("k8s-image-pinned", "Images are pinned to a version tag or digest, never :latest.", WORKLOADS)
@_container_check
def image_pinned(props, args):
    for _, c in containers(props, args.resource_type):
        image = dig(c, "image", default="")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in image and (not tag or tag == "latest"):
            yield (f"container {dig(c, 'name')}: pin {image!r} to a version tag or @sha256 digest."
                   + config_keys.where(config_keys.image_key(image)))


DIGEST_PIN = re.compile(r"^[^@]+:[^:/@]+@sha256:[0-9a-f]{64}$")


def _workload_images(props: Any, resource_type: str) -> Iterator[tuple[Any, str]]:
    workload = release_pod(props) if resource_type == RELEASE else props
    for _, c in containers(workload or {}, STATEFULSET if resource_type == RELEASE else resource_type):
        yield dig(c, "name"), str(dig(c, "image", default=""))


def docker_official(image: str) -> bool:
    """A Docker official image (Docker Hub's library/ namespace): no registry, no namespace, or
    spelled docker.io/library/... (Docker's reference rules: a first component is a registry only
    with a '.' or ':' or as 'localhost'). docker-library/repo-info publishes each of its tags'
    index digest (repos/<image>/remote/<tag>.md), so its pin can always be verified."""
    head, _, last = image.split("@", 1)[0].rpartition("/")  # a registry's ":port" is not a tag
    name = f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return bool(name) and "/" not in name


def _unpinned(props: Any, resource_type: str, official: bool) -> Iterator[str]:
    for name, image in _workload_images(props, resource_type):
        if docker_official(image) is official and not DIGEST_PIN.match(image):
            yield (f"container {name}: pin {image!r} as name:tag@sha256:<digest> (settings accept that form)."
                   + config_keys.where(config_keys.image_key(image)))


# A tag can be pushed again with other content; only a digest names the image that was reviewed.
# The tag stays for people (Docker resolves name:tag@digest by the digest).
@resource_rule("k8s-image-digest", "Docker official images are pinned by digest, their tag kept beside it "
               "(name:tag@sha256:...; docker-library/repo-info publishes every tag's digest).", (*WORKLOADS, RELEASE))
def image_digest(props, args):
    yield from _unpinned(props, args.resource_type, official=True)


@resource_rule("k8s-image-digest-unverified", "Other images are pinned by digest too, once their digest can be "
               "verified (advisory: no offline source publishes it).", (*WORKLOADS, RELEASE),
               level=EnforcementLevel.ADVISORY)
def image_digest_unverified(props, args):
    yield from _unpinned(props, args.resource_type, official=False)


@resource_rule("k8s-resources-set", "Containers request and limit CPU and memory.", WORKLOADS)
@_container_check
def resources_set(props, args):
    for _, c in containers(props, args.resource_type):
        for kind in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if not dig(c, "resources", kind, r)]
            if missing:
                yield f"container {dig(c, 'name')}: set resources.{kind}.{' and '.join(missing)}."


@resource_rule("k8s-probes", "Long-running containers have liveness and readiness probes.", LONG_RUNNING)
def probes(props, args):
    for c in each(pod_spec(props, args.resource_type), "containers"):
        missing = [p for p in ("livenessProbe", "readinessProbe") if not dig(c, p)]
        if missing:
            yield f"container {dig(c, 'name')}: add {' and '.join(missing)}."


@resource_rule("k8s-non-root", "Containers run as a non-root user.", WORKLOADS)
@_container_check
def non_root(props, args):
    for pod, c in containers(props, args.resource_type):
        if _effective(pod, c, "runAsNonRoot") is not True or _effective(pod, c, "runAsUser") == 0:
            yield f"container {dig(c, 'name')}: set securityContext.runAsNonRoot: true and a non-zero runAsUser."


@resource_rule("k8s-no-privilege-escalation", "Containers cannot gain privileges.", WORKLOADS)
@_container_check
def no_escalation(props, args):
    for _, c in containers(props, args.resource_type):
        if dig(c, "securityContext", "allowPrivilegeEscalation") is not False:
            yield f"container {dig(c, 'name')}: set securityContext.allowPrivilegeEscalation: false."


@resource_rule("k8s-not-privileged", "No privileged containers.", WORKLOADS)
@_container_check
def not_privileged(props, args):
    for _, c in containers(props, args.resource_type):
        if dig(c, "securityContext", "privileged") is True:
            yield f"container {dig(c, 'name')}: remove securityContext.privileged."


@resource_rule("k8s-seccomp-runtime-default", "Containers run under the RuntimeDefault seccomp profile.", WORKLOADS)
@_container_check
def seccomp(props, args):
    for pod, c in containers(props, args.resource_type):
        if _effective(pod, c, "seccompProfile", "type") not in ("RuntimeDefault", "Localhost"):
            yield f"container {dig(c, 'name')}: set securityContext.seccompProfile.type: RuntimeDefault."


@resource_rule("k8s-capabilities-dropped", "Containers drop all Linux capabilities.", WORKLOADS)
@_container_check
def capabilities(props, args):
    for _, c in containers(props, args.resource_type):
        if "ALL" not in list(dig(c, "securityContext", "capabilities", "drop", default=[])):
            yield f"container {dig(c, 'name')}: set securityContext.capabilities.drop: [ALL]."


@resource_rule("k8s-cronjob-bounded", "CronJobs never overlap, skip stale runs and end.", (CRONJOB,))
def cronjob_bounded(props, args):
    spec = dig(props, "spec", default={})
    if dig(spec, "concurrencyPolicy") != "Forbid":
        yield "Set spec.concurrencyPolicy: Forbid (overlapping backups or checks corrupt each other's result)."
    if not dig(spec, "startingDeadlineSeconds"):
        yield "Set spec.startingDeadlineSeconds so missed runs are skipped, not piled up."
    if not dig(spec, "jobTemplate", "spec", "activeDeadlineSeconds"):
        yield "Set jobTemplate.spec.activeDeadlineSeconds so a hung run ends."
    if dig(spec, "jobTemplate", "spec", "backoffLimit", default=6) > 3:
        yield "Set jobTemplate.spec.backoffLimit to 3 or less."


def _neo4j_pod(props: Any) -> dict:
    """The server pod the Neo4j chart renders from a release's values (neo4j/neo4j 5.x,
    templates/neo4j-statefulset.yaml: image.customImage - else the chart's own neo4j:<version>
    image - securityContext for the pod, containerSecurityContext and neo4j.resources for the
    server container, podSpec.containers and initContainers verbatim). Helm merges the values over
    the chart's defaults, which the pack cannot see: the values must say what is required."""
    values = dig(props, "values", default={}) or {}
    server = {"name": "neo4j",
              "image": dig(values, "image", "customImage") or f"neo4j:{dig(props, 'version', default='')}",
              "securityContext": dig(values, "containerSecurityContext", default={}),
              "resources": dig(values, "neo4j", "resources", default={})}
    return {"securityContext": dig(values, "securityContext", default={}),
            "containers": [server, *each(values, "podSpec", "containers")],
            "initContainers": list(each(values, "podSpec", "initContainers"))}


# Charts whose values the pack knows: chart name -> the pod template its values produce.
CHART_PODS = {"neo4j": _neo4j_pod}


class _AsStatefulSet:
    resource_type = STATEFULSET


def release_pod(props: Any) -> Any:
    """A release's pod template as a StatefulSet's props, or None for a chart the pack does not know."""
    pod = CHART_PODS.get(str(dig(props, "chart", default="")).rsplit("/", 1)[-1])
    return None if pod is None else {"spec": {"template": {"spec": pod(props)}}}


@resource_rule("k8s-helm-values-hardened",
               "Helm release values run pinned, bounded, unprivileged non-root pods.", (RELEASE,))
def release_values(props, args):
    workload = release_pod(props)
    if workload is None:
        yield (f"chart {dig(props, 'chart')!r}: the pack does not know which of its values decide pod security, "
               "resources and images; add the chart to CHART_PODS before deploying it.")
        return
    for check in CONTAINER_CHECKS:
        for message in check(workload, _AsStatefulSet):
            yield f"values: {message}"


AWS_KEY_NAMES = re.compile(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", re.I)
AWS_KEY_VALUE = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
PLACEHOLDER = re.compile(r"<[a-z0-9_-]+:[^>]*>|\bCHANGE_?ME\b|\bTODO\b", re.I)


SECRET_FIELDS = ("stringData", "data")
# What may feed a Secret whose data is still unknown at preview: values generated by the stack.
GENERATORS = ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString",
              "random:index/randomId:RandomId", "random:index/randomBytes:RandomBytes",
              "tls:index/privateKey:PrivateKey")
ACCESS_KEY = "aws:iam/accessKey:AccessKey"
GENERATED_ONLY = ("its data is unknown until the values it is generated from exist; "
                  "k8s-secret-generated judges where it comes from")


def _secret_entries(props: Any, args: Any) -> Iterator[tuple[str, Any]]:
    for field in SECRET_FIELDS:
        if is_unknown(peek(props, field)):
            # pulumi-kubernetes makes the data one secret: at a first preview it is unknown as a
            # whole, keys included, and only its property dependencies tell where it comes from
            args.not_applicable(GENERATED_ONLY)
        values = dig(props, field)
        if isinstance(values, Mapping):
            yield from values.items()


@resource_rule("k8s-secret-no-aws-keys", "No AWS access keys in Kubernetes Secrets (use IRSA).", (SECRET,))
def no_aws_keys(props, args):
    for key, value in _secret_entries(props, args):
        if AWS_KEY_NAMES.search(key) or (isinstance(value, str) and AWS_KEY_VALUE.search(value)):
            yield f"Secret key {key} holds an AWS credential; remove it and give the pod an IRSA role."


@resource_rule("k8s-secret-no-placeholders", "Secret values are real, not placeholders like <ssm:...>.", (SECRET,))
def no_placeholders(props, args):
    for key, value in _secret_entries(props, args):
        if isinstance(value, str) and PLACEHOLDER.search(value):
            # never echo the value: it may be a real secret that merely looks like a placeholder
            yield f"Secret key {key} holds a placeholder, not a secret; feed it from a generated secret."


@stack_rule("k8s-secret-generated", "Secret data comes from generated values, never from an AWS access key.",
            judges=(SECRET,))
def secret_generated(resources, args):
    for secret in (r for r in resources if r.resource_type == SECRET):
        sources = [d for field in SECRET_FIELDS for d in (secret.property_dependencies or {}).get(field, [])]
        for key in (d for field in SECRET_FIELDS for d in depends_on(secret, field, ACCESS_KEY)):
            yield (f"Secret {secret.name} holds the AWS access key {key.name}; delete the key and give the pod "
                   "an IRSA role.", secret.urn)
        unknown = any(is_unknown(peek(secret.props, field)) for field in SECRET_FIELDS)
        others = sorted({d.resource_type for d in sources if d.resource_type not in GENERATORS + (ACCESS_KEY,)})
        if unknown and others:
            # not only generated: the values must be read, and at preview they cannot be
            for field in SECRET_FIELDS:
                dig(secret.props, field)


@resource_rule("k8s-netpol-no-internet-egress", "No NetworkPolicy allows egress to the whole internet.",
               (NETWORK_POLICY,))
def no_internet(props, args):
    for rule in each(props, "spec", "egress"):
        for peer in each(rule, "to"):
            if dig(peer, "ipBlock", "cidr") in ("0.0.0.0/0", "::/0"):
                yield "Replace the 0.0.0.0/0 ipBlock with the destination's own CIDR (e.g. a VPC endpoint)."


POLICIES = [image_pinned, resources_set, probes, non_root, no_escalation, not_privileged, seccomp,
            capabilities, cronjob_bounded, no_aws_keys, no_placeholders, no_internet,
            secret_generated,
            release_values, image_digest, image_digest_unverified]
