"""Neo4jSnapshots: EBS snapshots of every Neo4j server's data volume, on a schedule and before
each change of its release.

The chart keeps each server's store on a claim named from its StatefulSet's claim template
(`data`) and the release (one pod): `data-<release>-0`. A CronJob snapshots each claim through
the EBS CSI driver's VolumeSnapshotClass and keeps the newest `retain` of each kind. The class's
deletionPolicy is Retain: deleting a VolumeSnapshot (or the namespace holding it) keeps the EBS
snapshot; only the CronJob's own expiry flips a content to Delete first.

Before a release changes, ``before_change`` gives the Neo4j cluster a Job per server, named after
the change (a hash of the chart version and the server's values): the cluster chains it between
the previous server's release and this server's, so the deploy snapshots each server just before
restarting it and waits until the snapshot is ready (pulumi-kubernetes awaits a Job until it is
Complete). An unchanged release keeps its Job's name, so nothing runs; a changed one renames it,
which replaces the Job and runs it. A server that does not exist yet has nothing to snapshot.
A snapshot of a running server is crash-consistent; Neo4j recovers such a store from its
transaction logs on start, as after a power loss.

A snapshot is never put back under a member of the running cluster: it holds that member's Raft
state too, and an older one forgets entries the member acknowledged (docs/runbooks.md, "Neo4j:
restoring data safely": replace a failed server, restore the whole cluster from a backup).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.neo4j_backup import JOB_LABEL
from helpers.dr_budget import cron_gaps_seconds, cron_max_gap_seconds
from helpers.flows import Flow, Neighbours
from helpers.kube import container_security_context, cron_job, job_spec, labels_for, prometheus_rule, resources
from helpers.validation import require

SCRIPT = Path(__file__).parent / "scripts" / "neo4j_volume_snapshot.sh"
EBS_CSI_DRIVER = "ebs.csi.aws.com"
SNAPSHOT_API = "snapshot.storage.k8s.io"
NOBODY = 65534
# Before a change: one try and one retry, each waiting READY_TIMEOUT until the snapshot is cut (EBS
# takes the point in time at once); the deploy waits a bit longer.
READY_TIMEOUT_MINUTES = 15
PRE_CHANGE_DEADLINE_SECONDS = 2 * READY_TIMEOUT_MINUTES * 60
# Scheduled: every volume's snapshot is polled at once until its EBS copy completes. A volume's first
# snapshot is a full copy that "can take several hours", later ones copy only the blocks changed since
# (Amazon EBS User Guide, "Create Amazon EBS snapshots", "How Amazon EBS snapshots work"), so a run waits
# as long as the schedule allows - until MARGIN before the next run - and a copy still going on then is
# waited on by the next run instead of starting another full copy.
SCHEDULED_MARGIN_SECONDS = 15 * 60
# a snapshot whose status.error outlives this has failed: the snapshot controller retries and clears
# the error on success (external-snapshotter VolumeSnapshotStatus.error); a few of its retries
ERROR_GRACE_SECONDS = 5 * 60


def scheduled_wait_seconds(schedule: str) -> int:
    """How long a scheduled run waits for its snapshots: until shortly before the next run is due."""
    return max(min(cron_gaps_seconds(schedule)) - SCHEDULED_MARGIN_SECONDS, 5 * 60)


def scheduled_deadline_seconds(schedule: str) -> int:
    # the wait, plus creating the snapshots and pruning (a few API calls per volume)
    return scheduled_wait_seconds(schedule) + 10 * 60


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
    prometheus_release_label: str

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
        self._args, self._labels = args, labels
        self.snapshot_class_name = f"{args.cluster_name}-ebs-retain"
        # A VolumeSnapshotClass keeps driver and deletionPolicy at the top level, which
        # apiextensions.CustomResource (spec only) cannot carry: register it by its type token, as
        # that class itself does ("kubernetes:<apiVersion>:<kind>").
        snapshot_class = pulumi.CustomResource(
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
                # a pre-change snapshot tells a server not created yet from one that lost its claim
                {"api_groups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]},
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
        self._access = [snapshot_class, account, role, contents, *bindings]
        cron_job(args.job_name, resource_name=f"{name}-job", namespace=args.namespace, schedule=args.schedule,
                 time_zone=args.time_zone,
                 container=self._container({"MODE": "scheduled",
                                            "CLAIMS": " ".join(data_claim(r) for r in args.release_names),
                                            "RETAIN": str(args.retain),
                                            "READY_TIMEOUT": f"{scheduled_wait_seconds(args.schedule)}s"}),
                 # every claim's snapshot is waited for at once, within one wait
                 **self._job(active_deadline_seconds=scheduled_deadline_seconds(args.schedule)),
                 labels={**labels, JOB_LABEL: args.job_name},
                 opts=pulumi.ResourceOptions(parent=self, depends_on=self._access))
        prometheus_rule(f"{name}-rules", namespace=args.namespace, release_label=args.prometheus_release_label,
                        groups=snapshot_rule_groups(args), opts=child)
        self.register_outputs({"snapshotClassName": self.snapshot_class_name})

    def before_change(self, resource_name: str, release: str, change: str,
                      after: Sequence[pulumi.Resource]) -> k8s.batch.v1.Job:
        """The Job ``resource_name`` (the caller's: one per cluster and server) that snapshots
        ``release``'s server before ``change`` (neo4j_cluster.change_id) reaches it, once ``after``
        (the previous server in the roll) is done. The object's name holds the change (at most
        53 + 9 characters: a Job name must be a label value, 63)."""
        args = self._args
        name = f"{release}-{change}"
        pod_labels = {**self._labels, JOB_LABEL: args.job_name, "app.kubernetes.io/name": args.job_name}
        return k8s.batch.v1.Job(
            resource_name,
            metadata={"name": name, "namespace": args.namespace, "labels": pod_labels,
                      # a Job that failed is replaced (and runs again) on the next `pulumi up`, instead
                      # of being awaited forever (pulumi-kubernetes: replaceUnready)
                      "annotations": {"pulumi.com/replaceUnready": "true"}},
            spec=job_spec(  # pyright: ignore[reportArgumentType]  # camelCase API keys: tests/test_types.py
                container=self._container({"MODE": "pre-change", "RELEASE": release, "CHANGE": change},
                                          job_uid=True),
                pod_labels=pod_labels, **self._job(active_deadline_seconds=PRE_CHANGE_DEADLINE_SECONDS)),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*self._access, *after],
                # pulumi-kubernetes waits 10 minutes for a Job by default; this one may take two tries
                custom_timeouts=pulumi.CustomTimeouts(create=f"{PRE_CHANGE_DEADLINE_SECONDS // 60 + 5}m",
                                                      update=f"{PRE_CHANGE_DEADLINE_SECONDS // 60 + 5}m")),
        )

    def _container(self, env: dict[str, str], job_uid: bool = False) -> dict[str, Any]:
        args = self._args
        return {
            "name": "snapshot",
            "image": args.kubectl_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", "-c", SCRIPT.read_text()],
            "env": [{"name": k, "value": v} for k, v in {
                "NAMESPACE": args.namespace, "SNAPSHOT_CLASS": self.snapshot_class_name,
                "READY_TIMEOUT": f"{READY_TIMEOUT_MINUTES}m", "ERROR_GRACE": str(ERROR_GRACE_SECONDS),
                # kubectl keeps its discovery cache under $HOME; the root filesystem is read-only
                "HOME": "/tmp", **env}.items()]
            # the Job controller labels each pod with its Job's uid, the same for every retry
            + ([{"name": "JOB_UID", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}}}] if job_uid else []),
            "resources": resources("50m", "200m", "128Mi"),
            "securityContext": container_security_context(read_only_root=True),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }

    def _job(self, active_deadline_seconds: int) -> dict[str, Any]:
        # its own job identity (as every job here): the API flow opens for these pods alone, and
        # kubectl needs the service account's token
        return {"service_account": self._args.job_name, "run_as_user": NOBODY,
                "active_deadline_seconds": active_deadline_seconds, "kubernetes_api": True,
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}


def snapshot_rule_groups(args: Neo4jSnapshotsArgs) -> list[dict]:
    """The scheduled snapshots' failures and staleness, from kube-state-metrics' Job and CronJob series.

    A failed run: one of the CronJob's Jobs (the CronJob controller names them ``<cronjob>-<scheduled
    minute>``, pkg/controller/cronjob/utils.go getJobName) has failed pods (``kube_job_status_failed``)
    or the Failed condition (``kube_job_failed{condition="true"}``: also a run its activeDeadlineSeconds
    stopped) and was created after the CronJob's last success, so the alert clears with the next good
    run rather than when the failed Job leaves the history. Labels namespace and job_name
    (kube-state-metrics docs/job-metrics.md).
    ``kube_cronjob_status_last_successful_time`` exists only after a first success (kube-state-metrics
    internal/store/cronjob.go), hence the absent() rule beside the staleness one.
    """
    where = f'namespace="{args.namespace}"'
    cronjob = f'{where}, cronjob="{args.job_name}"'
    jobs = f'{where}, job_name=~"{args.job_name}-[0-9]+"'
    success = f"kube_cronjob_status_last_successful_time{{{cronjob}}}"
    failed_jobs = (f"max by (namespace) (kube_job_created{{{jobs}}} and on (namespace, job_name) "
                   f"(kube_job_status_failed{{{jobs}}} > 0 or kube_job_failed{{{jobs}, condition=\"true\"}} > 0))")
    # one missed run is tolerated (a first full copy may outlast its run): two periods and a run's deadline
    stale = 2 * cron_max_gap_seconds(args.schedule) + scheduled_deadline_seconds(args.schedule)
    created = f"kube_cronjob_created{{{cronjob}}}"
    return [{"name": "neo4j-volume-snapshots", "rules": [
        {"alert": "Neo4jVolumeSnapshotFailed",
         "expr": f"{failed_jobs} > on (namespace) group_left max by (namespace) ({success}) "
                 f"or ({failed_jobs} unless on (namespace) {success})",
         "annotations": {"summary": "A scheduled Neo4j volume snapshot run failed",
                         "description": f"{args.job_name} in {args.namespace} failed after its last success: a "
                                        "snapshot failed (status.error) or was not ready in time; see the job log."}},
        {"alert": "Neo4jVolumeSnapshotsStale",
         "expr": f"time() - {success} > {stale}",
         "for": "10m",
         "annotations": {"summary": "No scheduled Neo4j volume snapshot has completed for two periods",
                         "description": f"{args.job_name} in {args.namespace} has not succeeded for {stale}s."}},
        {"alert": "Neo4jVolumeSnapshotsMissing",
         "expr": f"absent({success}) and on () (absent({created}) or time() - {created} > {stale})",
         "for": "10m",
         "annotations": {"summary": "Scheduled Neo4j volume snapshots have never succeeded (or are not scraped)",
                         "description": f"{args.job_name} in {args.namespace} has no successful run {stale}s "
                                        "after it was created."}},
    ]}]


def snapshot_flows(cluster_name: str, around: Neighbours) -> tuple[Flow, ...]:
    """The snapshot CronJob talks only to the Kubernetes API: at the kubernetes Service's ClusterIP
    and at the control plane's addresses, as cluster_flows allows it (either may be matched)."""
    return (Flow("neo4j-snapshots-api", "egress", around.kubernetes_api, (443,),
                 pods={JOB_LABEL: f"{cluster_name}-volume-snapshots"},
                 reason="the snapshot CronJob creates and expires VolumeSnapshots through the API"),)
