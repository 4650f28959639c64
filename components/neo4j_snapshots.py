"""Neo4jSnapshots: scheduled EBS snapshots of every Neo4j server's data volume.

The chart keeps each server's store on a claim named from its StatefulSet's claim template
(`data`) and the release (one pod): `data-<release>-0`. A CronJob snapshots each claim through
the EBS CSI driver's VolumeSnapshotClass and keeps the newest `retain` of each. The class's
deletionPolicy is Retain: deleting a VolumeSnapshot (or the namespace holding it) keeps the EBS
snapshot; only the CronJob's own expiry flips a content to Delete first.

Restore (README, "Neo4j volume snapshots"): a claim with that same name whose dataSource is the
snapshot, created before the release's StatefulSet exists; the StatefulSet then adopts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.neo4j_backup import JOB_LABEL
from helpers.flows import Flow, Neighbours
from helpers.kube import container_security_context, cron_job, labels_for, resources
from helpers.validation import require

SCRIPT = Path(__file__).parent / "scripts" / "neo4j_volume_snapshot.sh"
EBS_CSI_DRIVER = "ebs.csi.aws.com"
SNAPSHOT_API = "snapshot.storage.k8s.io"
NOBODY = 65534


def data_claim(release: str) -> str:
    """The claim the chart's StatefulSet (named after the release, one replica) mounts as data."""
    return f"data-{release}-0"


@dataclass(frozen=True)
class Neo4jSnapshotsArgs:
    namespace: str
    cluster_name: str
    release_names: tuple[str, ...]
    schedule: str
    time_zone: str
    retain: int
    kubectl_image: str

    def __post_init__(self) -> None:
        problems = []
        if not self.release_names:
            problems.append("release_names must name at least one server")
        if self.retain < 1:
            problems.append("retain must keep at least one snapshot per volume")
        require("Neo4jSnapshotsArgs", problems)

    @property
    def job_name(self) -> str:
        return f"{self.cluster_name}-volume-snapshots"


class Neo4jSnapshots(pulumi.ComponentResource):
    snapshot_class_name: str

    def __init__(self, name: str, args: Neo4jSnapshotsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:graph:Neo4jSnapshots", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = labels_for(args.cluster_name, "volume-snapshots")
        self.snapshot_class_name = f"{args.cluster_name}-ebs-retain"
        # A VolumeSnapshotClass keeps driver and deletionPolicy at the top level, which
        # apiextensions.CustomResource (spec only) cannot carry: register it by its type token, as
        # that class itself does ("kubernetes:<apiVersion>:<kind>").
        pulumi.CustomResource(
            f"kubernetes:{SNAPSHOT_API}/v1:VolumeSnapshotClass",
            f"{name}-class",
            {"apiVersion": f"{SNAPSHOT_API}/v1", "kind": "VolumeSnapshotClass",
             "metadata": {"name": self.snapshot_class_name, "labels": labels},
             "driver": EBS_CSI_DRIVER, "deletionPolicy": "Retain"},
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata={"name": args.job_name, "namespace": args.namespace, "labels": labels},
            opts=child)
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata={"name": args.job_name, "namespace": args.namespace, "labels": labels},
            rules=[
                {"api_groups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]},
                {"api_groups": [SNAPSHOT_API], "resources": ["volumesnapshots"],
                 "verbs": ["get", "list", "watch", "create", "delete"]},
            ],
            opts=child,
        )
        # contents are cluster-scoped; expiry flips one to Delete before deleting its snapshot
        contents = k8s.rbac.v1.ClusterRole(
            f"{name}-contents",
            metadata={"name": f"{args.namespace}-{args.job_name}", "labels": labels},
            rules=[{"api_groups": [SNAPSHOT_API], "resources": ["volumesnapshotcontents"], "verbs": ["get", "patch"]}],
            opts=child,
        )
        subject: list[k8s.rbac.v1.SubjectArgsDict] = [
            {"kind": "ServiceAccount", "name": args.job_name, "namespace": args.namespace}]
        bindings = [
            k8s.rbac.v1.RoleBinding(
                f"{name}-binding", metadata={"name": args.job_name, "namespace": args.namespace, "labels": labels},
                role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": args.job_name},
                subjects=subject, opts=child),
            k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-contents-binding", metadata={"name": f"{args.namespace}-{args.job_name}", "labels": labels},
                role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                          "name": f"{args.namespace}-{args.job_name}"},
                subjects=subject, opts=child),
        ]
        container = {
            "name": "snapshot",
            "image": args.kubectl_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", "-c", SCRIPT.read_text()],
            "env": [{"name": "NAMESPACE", "value": args.namespace},
                    {"name": "CLAIMS", "value": " ".join(data_claim(r) for r in args.release_names)},
                    {"name": "SNAPSHOT_CLASS", "value": self.snapshot_class_name},
                    {"name": "RETAIN", "value": str(args.retain)}],
            "resources": resources("50m", "200m", "128Mi"),
            "securityContext": container_security_context(read_only_root=True),
        }
        # its own job identity (as every job here): the API flow opens for these pods alone
        cron_job(args.job_name, resource_name=f"{name}-job", namespace=args.namespace, schedule=args.schedule,
                 time_zone=args.time_zone,
                 container=container, service_account=args.job_name, run_as_user=NOBODY,
                 active_deadline_seconds=3600, labels={**labels, JOB_LABEL: args.job_name},
                 opts=pulumi.ResourceOptions(parent=self, depends_on=[account, role, contents, *bindings]))
        self.register_outputs({"snapshotClassName": self.snapshot_class_name})


def restore_claim(release: str, namespace: str, snapshot: str, storage_class: str, size: str) -> dict:
    """The claim that brings a server back from a snapshot: the chart's claim name, so the
    release's StatefulSet adopts it instead of provisioning an empty volume."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": data_claim(release), "namespace": namespace,
                     "labels": {"intelgraph.io/restored-from": snapshot}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": size}},
            "dataSource": {"apiGroup": SNAPSHOT_API, "kind": "VolumeSnapshot", "name": snapshot},
        },
    }


def snapshot_flows(cluster_name: str, around: Neighbours) -> tuple[Flow, ...]:
    """The snapshot CronJob talks only to the Kubernetes API: at the kubernetes Service's ClusterIP
    and at the control plane's addresses, as cluster_flows allows it (either may be matched)."""
    return (Flow("neo4j-snapshots-api", "egress", around.kubernetes_api, (443,),
                 pods={JOB_LABEL: f"{cluster_name}-volume-snapshots"},
                 reason="the snapshot CronJob creates and expires VolumeSnapshots through the API"),)
