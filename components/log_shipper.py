"""LogShipper: Fluent Bit as a DaemonSet, shipping the workload namespaces' container logs to the
logs bucket - scrubbed on the node by components/scripts/scrub.lua before anything leaves it.

Only the files of the configured namespaces are read (kubelet names them
``/var/log/containers/<pod>_<namespace>_<container>-<id>.log``), so no Kubernetes API access is
needed. Fluent Bit runs as a non-root user with the root *group* as a supplementary group:
containerd writes container logs 0640 root:root, group-readable; nothing else is granted. Reading
the node's log directory needs a hostPath volume, which only the "privileged" Pod Security level
admits; the namespace enforces that level and still warns and audits at "restricted".

The logs bucket has S3 Object Lock with a default retention in prod: S3 then requires an integrity
checksum (Content-MD5) on every PutObject, so the s3 output sends it.

The s3 output buffers in its own store_dir and uploads later (Fluent Bit manual, "Amazon S3": its
success/retry/error metrics "are meaningless for S3 output"). Both on-disk buffers are bounded below
the state volume's sizeLimit, so a long S3 outage discards the oldest logs instead of getting the
pod evicted with everything it buffered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from helpers.flows import Flow, Neighbours, Peer
from helpers.irsa import irsa_role
from helpers.kube import (
    MONITORING_API,
    container_security_context,
    labels_for,
    pod_security_context,
    prometheus_rule,
    resources,
)
from helpers.validation import require

SCRUBBER = Path(__file__).parent / "scripts" / "scrub.lua"
NAME = "fluent-bit"
UID = 10001
HTTP_PORT = 2020
CONFIG_DIR = "/fluent-bit/etc/intelgraph"
STATE_DIR = "/fluent-bit/state"
# what tail's Tag "kube.*" becomes for /var/log/containers/<file> (the kubernetes filter's default)
TAG_PREFIX = "kube.var.log.containers."
POD_LABELS = labels_for(NAME, "log-shipper")
# The shipper's own PriorityClass. Above every workload (pods without a class have priority 0), so
# on a full node the scheduler preempts a workload pod to place it (Kubernetes, "Pod Priority and
# Preemption"; DaemonSet pods go through the default scheduler); below system-cluster-critical
# (2000000000) and system-node-critical (2000001000), so it never displaces the node's CNI, kube-
# proxy or CSI pods. Not system-node-critical itself: that ranks a log shipper with the node's
# networking, and some distributions admit the system-* classes only in kube-system (OpenShift) or
# with a ResourceQuota (GKE); a class the program creates works on any cluster. User-defined
# classes may go up to 1000000000.
PRIORITY_CLASS = "intelgraph-node-logging"
PRIORITY = 1_000_000
# The state emptyDir holds the tail offsets, the engine's filesystem chunks (bounded per output by
# storage.total_limit_size) and the s3 output's upload buffer (bounded by store_dir_limit_size);
# the kubelet evicts a pod whose emptyDir exceeds its sizeLimit (buffer and offsets lost with it).
STATE_SIZE_LIMIT_MIB = 2048
S3_STORE_LIMIT_MIB = 1024
ENGINE_QUEUE_LIMIT_MIB = 512


@dataclass(frozen=True)
class LogShipperArgs:
    namespace: str
    image: str
    source_namespaces: tuple[str, ...]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    region: str
    oidc_provider_arn: str
    oidc_issuer: str
    prometheus_namespace: str
    prometheus_release_label: str
    prefix: str = "containers/"

    def __post_init__(self) -> None:
        require("LogShipperArgs", [
            "" if self.source_namespaces else "source_namespaces must name at least one namespace",
            "" if self.namespace not in self.source_namespaces else "the shipper must not ship its own logs (a loop)",
            "" if self.prefix.endswith("/") and not self.prefix.startswith("/") else "prefix must look like 'containers/'",
        ])


def tail_paths(namespaces: tuple[str, ...]) -> str:
    return ",".join(f"/var/log/containers/*_{ns}_*.log" for ns in namespaces)


def fluent_bit_conf(args: LogShipperArgs, bucket: str) -> str:
    # Filters run in the order written. Every record first gets kubernetes.{namespace_name,
    # pod_name, container_name, docker_id} from its tag - tail expands "kube.*" to the file's path
    # with "/" as "." and the kubelet names the file <pod>_<namespace>_<container>-<id>.log;
    # Use_Tag_For_Meta reads only the tag, never the API (Fluent Bit manual, "Kubernetes" filter),
    # so the shipper stays without API access. JSON lines are then parsed into fields, so the
    # scrubber sees (and can remove) keys like "email", and everything is scrubbed before the output.
    return f"""[SERVICE]
    Flush             5
    Daemon            Off
    Log_Level         info
    Parsers_File      {CONFIG_DIR}/parsers.conf
    HTTP_Server       On
    HTTP_Listen       0.0.0.0
    HTTP_Port         {HTTP_PORT}
    Health_Check      On
    storage.path      {STATE_DIR}/buffer
    storage.sync      normal

[INPUT]
    Name              tail
    Alias             containers
    Path              {tail_paths(args.source_namespaces)}
    Tag               kube.*
    multiline.parser  cri
    DB                {STATE_DIR}/tail.db
    Mem_Buf_Limit     32MB
    Skip_Long_Lines   On
    Refresh_Interval  10
    storage.type      filesystem

[FILTER]
    Name              kubernetes
    Alias             kube_meta
    Match             kube.*
    Kube_Tag_Prefix   {TAG_PREFIX}
    Use_Tag_For_Meta  On
    Labels            Off
    Annotations       Off

[FILTER]
    Name              parser
    Alias             json
    Match             kube.*
    Key_Name          log
    Parser            json
    Reserve_Data      On

[FILTER]
    Name              lua
    Alias             scrub
    Match             kube.*
    script            {CONFIG_DIR}/scrub.lua
    call              scrub

[OUTPUT]
    Name              s3
    Alias             s3
    Match             kube.*
    bucket            {bucket}
    region            {args.region}
    s3_key_format     /{args.prefix}%Y/%m/%d/%H/$UUID.gz
    total_file_size   50M
    upload_timeout    5m
    use_put_object    On
    send_content_md5  On
    compression       gzip
    store_dir         {STATE_DIR}/s3
    store_dir_limit_size {S3_STORE_LIMIT_MIB}M
    storage.total_limit_size {ENGINE_QUEUE_LIMIT_MIB}M
    Retry_Limit       5
"""


PARSERS_CONF = """[PARSER]
    Name        json
    Format      json
"""


def writer_policy(bucket_arn: str, key_arn: str, prefix: str, region: str) -> dict:
    """Write-only to one prefix: the shipper never reads logs back (single PutObject uploads need
    only kms:GenerateDataKey on the bucket key, through S3)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PutLogs", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": f"{bucket_arn}/{prefix}*"},
            {"Sid": "BucketKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey"], "Resource": key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}},
        ],
    }


def shipper_flows(around: Neighbours) -> tuple[Flow, ...]:
    return (
        Flow("shipper-s3", "egress", Peer(cidrs=around.s3_cidrs), (443,), pods=POD_LABELS,
             reason="container logs go to the logs bucket at the addresses of network.<region>.s3"),
        Flow("shipper-sts", "egress", Peer(cidrs=around.sts_cidrs), (443,), pods=POD_LABELS,
             reason="IRSA exchanges the pod's token for AWS credentials at the STS endpoint"),
        Flow("shipper-metrics", "ingress", Peer(namespace=around.monitoring_namespace), (HTTP_PORT,), pods=POD_LABELS,
             reason="Prometheus scrapes Fluent Bit's metrics (scrubber drops, output failures)"),
    )


class LogShipper(pulumi.ComponentResource):
    def __init__(self, name: str, args: LogShipperArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:observability:LogShipper", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role, _ = irsa_role(
            f"{name}-writer", oidc_provider_arn=args.oidc_provider_arn, oidc_issuer=args.oidc_issuer,
            subjects=[(args.namespace, NAME)],
            policy=pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                lambda a: json.dumps(writer_policy(a[0], a[1], args.prefix, args.region))),
            description=f"Fluent Bit: write container logs to s3 {args.prefix} only", opts=child)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": f"{NAME}-config", "namespace": args.namespace},
            data={"fluent-bit.conf": pulumi.Output.from_input(args.bucket_name).apply(
                      lambda bucket: fluent_bit_conf(args, bucket)),
                  "parsers.conf": PARSERS_CONF,
                  "scrub.lua": SCRUBBER.read_text()},
            opts=child)
        priority = k8s.scheduling.v1.PriorityClass(
            f"{name}-priority",
            metadata={"name": PRIORITY_CLASS},
            value=PRIORITY,
            global_default=False,
            preemption_policy="PreemptLowerPriority",
            description="Fluent Bit on every node, full ones too: every container log is scrubbed and shipped",
            opts=child)
        probe = {"httpGet": {"path": "/api/v1/health", "port": HTTP_PORT}, "periodSeconds": 30,
                 "timeoutSeconds": 5, "failureThreshold": 3}
        k8s.apps.v1.DaemonSet(
            name,
            metadata={"name": NAME, "namespace": args.namespace, "labels": POD_LABELS},
            spec={  # pyright: ignore[reportArgumentType]  # camelCase API keys: tests/test_types.py
                "selector": {"matchLabels": POD_LABELS},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "20%"}},
                "template": {
                    "metadata": {"labels": POD_LABELS},
                    "spec": {
                        "serviceAccountName": NAME,
                        "priorityClassName": PRIORITY_CLASS,
                        # IRSA projects its own token; the shipper never calls the Kubernetes API
                        "automountServiceAccountToken": False,
                        # every node, also tainted ones: their workloads' logs must be scrubbed too
                        "tolerations": [{"operator": "Exists"}],
                        "securityContext": {**pod_security_context(UID), "supplementalGroups": [0]},
                        "containers": [{
                            "name": NAME,
                            "image": args.image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/fluent-bit/bin/fluent-bit", "-c", f"{CONFIG_DIR}/fluent-bit.conf"],
                            "ports": [{"name": "http", "containerPort": HTTP_PORT}],
                            "resources": resources("50m", "500m", "256Mi"),
                            "securityContext": container_security_context(read_only_root=True),
                            "livenessProbe": {**probe, "initialDelaySeconds": 10},
                            "readinessProbe": probe,
                            "volumeMounts": [
                                {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
                                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                {"name": "state", "mountPath": STATE_DIR},
                            ],
                        }],
                        "volumes": [
                            {"name": "varlog", "hostPath": {"path": "/var/log", "type": "Directory"}},
                            {"name": "config", "configMap": {"name": f"{NAME}-config"}},
                            # offsets and the upload buffer (a hostPath for them would need root):
                            # a replaced pod starts at each file's end, lines written meanwhile are lost
                            {"name": "state", "emptyDir": {"sizeLimit": f"{STATE_SIZE_LIMIT_MIB}Mi"}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role, config, priority]),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-metrics", api_version=MONITORING_API, kind="PodMonitor",
            metadata={"name": NAME, "namespace": args.namespace, "labels": {"release": args.prometheus_release_label}},
            spec={"selector": {"matchLabels": POD_LABELS},
                  "podMetricsEndpoints": [{"port": "http", "path": "/api/v1/metrics/prometheus", "interval": "30s"}]},
            opts=child)
        prometheus_rule(f"{name}-rules", namespace=args.namespace, release_label=args.prometheus_release_label,
                        groups=shipper_rule_groups(args.namespace), opts=child)
        self.register_outputs({})


def shipper_rule_groups(namespace: str) -> list[dict]:
    """Fluent Bit's own counters (v1 metrics API; labelled with each plugin's Alias) and
    kube-state-metrics' DaemonSet status."""
    return [{"name": "log-shipper", "rules": [
        {"alert": "LogScrubberDroppingRecords",
         "expr": f'rate(fluentbit_filter_drop_records_total{{namespace="{namespace}", name="scrub"}}[10m]) > 0',
         "for": "10m",
         "annotations": {"summary": "The log scrubber drops records it cannot scrub (logs are being lost)"}},
        # The s3 output's own retry/error counters never move (Fluent Bit manual, "Amazon S3").
        # Its flush buffers each chunk into store_dir and counts it processed; once uploads have
        # failed long enough to fill store_dir_limit_size, the flush returns FLB_RETRY
        # (plugins/out_s3/s3.c cb_s3_flush, s3_store_buffer_put "Buffer is full") and processed
        # records stop while the tail input keeps reading: logs are about to be discarded.
        {"alert": "LogShipperOutputFailing",
         "expr": (f'increase(fluentbit_input_records_total{{namespace="{namespace}", name="containers"}}[15m]) > 0'
                  f' and on(namespace, pod) '
                  f'increase(fluentbit_output_proc_records_total{{namespace="{namespace}", name="s3"}}[15m]) == 0'),
         "for": "15m",
         "annotations": {"summary": "Fluent Bit reads logs but its S3 upload buffer is full: uploads are failing "
                                    "and the oldest buffered logs are being discarded"}},
        {"alert": "LogShipperUnavailable",
         "expr": f'kube_daemonset_status_number_unavailable{{namespace="{namespace}", daemonset="{NAME}"}} > 0',
         "for": "15m",
         "annotations": {"summary": "Fluent Bit is not running on every node: those nodes' logs are not shipped"}},
    ]}]
