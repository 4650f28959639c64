"""Neo4jBackup: hourly online backups to S3 in bounded chains, a freshness check and whole-chain
retention. The weekly restore rehearsal of those backups runs in the DR cluster, from the DR copy
of the bucket (components/neo4j_dr.py); its job and alerts are built from this module's pieces.

Not the design notes' static AWS keys, 4.x host name and existence-only "verify"
(docs/decisions/002-neo4j-backups-irsa-and-age.md): IRSA roles scoped to the bucket's ``neo4j/`` prefix (the
backup may write, the checks may only read, the retention job may only delete), the 5.x
``neo4j-admin database backup`` against the servers' admin services (secondaries first, so backups
never load a primary) into ``neo4j/chains/<start date>/`` - a full backup every ``chain_days``,
differentials onto it - a freshness check on the *age* of the newest backup, a daily job that
deletes chains whole once past retention; and the pieces of the rehearsal that restores the
newest chain into a scratch namespace and fails unless the restored graph has nodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi

from components.neo4j_cluster import BACKUP_PORT
from helpers.dr_budget import cron_max_gap_seconds
from helpers.flows import Flow, Neighbours, Peer
from helpers.irsa import irsa_role
from helpers.kube import container_security_context, cron_job, prometheus_rule, resources
from helpers.validation import require

SCRIPTS = Path(__file__).parent / "scripts"
NEO4J_UID = 7474
NOBODY_UID = 65534
MIB = 2**20
BACKUP_JOB = "neo4j-backup"
FRESHNESS_JOB = "neo4j-backup-freshness"
PRUNE_JOB = "neo4j-backup-prune"
REHEARSAL_JOB = "neo4j-restore-rehearsal"
FRESHNESS_SCHEDULE = "*/15 * * * *"
FRESHNESS_DEADLINE_SECONDS = 300
PRUNE_SCHEDULE = "30 4 * * *"  # daily, away from the hour the chains start
MIN_REHEARSAL_DEADLINE_SECONDS = 2 * 3600
# Backup and restore stage artifacts on a scratch volume from the cluster's gp3 storage class,
# whose baseline throughput is 125 MiB/s (Amazon EBS User Guide, "General Purpose SSD volumes":
# gp3 baseline 125 MiB/s). A full backup writes the artifact there and reads it back for the upload
# (two passes over the store); a restore downloads it, then reads it into the data volume (three).
SCRATCH_BYTES_PER_SECOND = 125 * MIB
ARTIFACT_FILE = "/work/artifact"
# Every backup pod carries this label (S3 and STS are open to it); each job's pods also carry
# their own JOB_LABEL, so a flow only one job needs (the servers' backup port) opens for it alone.
POD_LABELS = {"intelgraph.io/backup": "neo4j"}
JOB_LABEL = "intelgraph.io/job"


def job_labels(job: str) -> dict[str, str]:
    return {**POD_LABELS, JOB_LABEL: job}


def passes_seconds(store_bytes: int, passes: int) -> int:
    return -(-passes * store_bytes // SCRATCH_BYTES_PER_SECOND)


def full_backup_seconds(store_bytes: int) -> int:
    """Upper bound of a chain's first run (a closing differential, then the full backup)."""
    return passes_seconds(store_bytes, 2) + 600


def rehearsal_deadline_seconds(store_bytes: int) -> int:
    # the download and restore passes, then Neo4j's start and recovery of the replayed chain
    return max(MIN_REHEARSAL_DEADLINE_SECONDS, passes_seconds(store_bytes, 3) + 1800)


def script(name: str) -> str:
    """What a job's bash runs: the shared helpers, then the script (tests run exactly this)."""
    return (SCRIPTS / "lib.sh").read_text() + (SCRIPTS / name).read_text()


def small(volume: str, size: str) -> dict:
    return {"name": volume, "emptyDir": {"sizeLimit": size}}


def scratch_volume(volume: str, storage_class: str, size: str) -> dict:
    """Sized for the whole store, on a volume of its own: never the node's root disk."""
    return {"name": volume, "ephemeral": {"volumeClaimTemplate": {"spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
        "resources": {"requests": {"storage": size}}}}}}


def mounts(**paths: str) -> list[dict]:
    return [{"name": volume, "mountPath": path} for volume, path in paths.items()]


def job_container(image: str, script_name: str, env: list[dict], size: tuple[str, str, str],
                  volume_mounts: list[dict]) -> dict:
    """A hardened container that runs one of components/scripts (after lib.sh) with bash."""
    return {
        "name": script_name.removesuffix(".sh").replace("_", "-"),
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", "-c", script(script_name)],
        "env": env,
        "resources": resources(*size),
        "securityContext": container_security_context(read_only_root=True),
        "volumeMounts": volume_mounts,
    }


@dataclass(frozen=True)
class Neo4jBackupArgs:
    namespace: str
    admin_services: tuple[str, ...]  # release names, secondaries first
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    region: str
    image: str
    # Enterprise 5.4+ runs (neo4j-admin included) only with the license accepted: the servers' value
    accept_license_agreement: str
    aws_cli_image: str
    backup_schedule: str
    freshness_slack_minutes: int
    time_zone: str
    oidc_provider_arn: str
    oidc_issuer: str
    prometheus_release_label: str
    chain_days: int
    retention_days: int
    storage_class: str  # scratch volumes for backup and restore come from it
    store_size: str  # the servers' data volume: the largest store a backup copies
    store_bytes: int
    prefix: str = "neo4j/"
    database: str = "neo4j"

    def __post_init__(self) -> None:
        problems = []
        if not self.admin_services:
            problems.append("admin_services must name at least one server to back up from")
        if not self.prefix.endswith("/") or self.prefix.startswith("/"):
            problems.append("prefix must look like 'neo4j/' (no leading slash, trailing slash)")
        if not 1 <= self.chain_days <= 7:
            problems.append("chain_days must be 1..7: a full backup at least weekly")
        require("Neo4jBackupArgs", problems)

    @property
    def interval_seconds(self) -> int:
        return cron_max_gap_seconds(self.backup_schedule)

    @property
    def full_backup_seconds(self) -> int:
        return full_backup_seconds(self.store_bytes)

    @property
    def max_age_seconds(self) -> int:
        # a chain's first run takes the full backup: nothing newer lands for that long
        return max(self.interval_seconds, self.full_backup_seconds) + 60 * self.freshness_slack_minutes


class Neo4jBackup(pulumi.ComponentResource):
    max_age_seconds: int
    full_backup_seconds: int

    def __init__(self, name: str, args: Neo4jBackupArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:graph:Neo4jBackup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def role(suffix: str, subjects: list[tuple[str, str]], access: str, what: str):
            return irsa_role(
                f"{name}-{suffix}", subjects=subjects,
                policy=pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                    lambda a: json.dumps(prefix_policy(a[0], a[1], args.prefix, args.region, access))),
                description=f"Neo4j {what}: {access} s3 {args.prefix} only",
                oidc_provider_arn=args.oidc_provider_arn, oidc_issuer=args.oidc_issuer, opts=child)[0]

        writer = role("writer", [(args.namespace, BACKUP_JOB)], "write", "backups")
        reader = role("reader", [(args.namespace, FRESHNESS_JOB)], "read", "backup checks")
        pruner = role("pruner", [(args.namespace, PRUNE_JOB)], "delete", "backup retention")

        common_env = [
            {"name": "BACKUP_BUCKET", "value": args.bucket_name},
            {"name": "BACKUP_PREFIX", "value": args.prefix},
            {"name": "AWS_REGION", "value": args.region},
        ]
        chain_env = [{"name": "CHAIN_DAYS", "value": str(args.chain_days)}]
        aws_home = [{"name": "HOME", "value": "/tmp"}]
        license_env = {"name": "NEO4J_ACCEPT_LICENSE_AGREEMENT", "value": args.accept_license_agreement}

        def scratch(volume: str) -> dict:
            return scratch_volume(volume, args.storage_class, args.store_size)

        admin = [f"{s}-admin.{args.namespace}.svc.cluster.local:{BACKUP_PORT}" for s in args.admin_services]

        cron_job(
            BACKUP_JOB, resource_name=name, namespace=args.namespace, schedule=args.backup_schedule,
            time_zone=args.time_zone, service_account=BACKUP_JOB, run_as_user=NEO4J_UID,
            # every run must be able to finish a chain's first, full backup of the whole store
            active_deadline_seconds=max(args.interval_seconds - 300, args.full_backup_seconds),
            container=job_container(args.image, "neo4j_backup.sh", [
                *common_env, *chain_env, {"name": "BACKUP_FROM", "value": ",".join(admin)},
                {"name": "INTERVAL_SECONDS", "value": str(args.interval_seconds)},
                {"name": "SCRATCH", "value": "/scratch"}, license_env],
                ("500m", "2", "2Gi"), mounts(tmp="/tmp", scratch="/scratch", logs="/var/lib/neo4j/logs")),
            volumes=[small("tmp", "1Gi"), scratch("scratch"), small("logs", "1Gi")], labels=job_labels(BACKUP_JOB),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[writer]),
        )
        cron_job(
            FRESHNESS_JOB, resource_name=f"{name}-freshness", namespace=args.namespace, schedule=FRESHNESS_SCHEDULE,
            time_zone=args.time_zone, service_account=FRESHNESS_JOB, run_as_user=NOBODY_UID,
            active_deadline_seconds=FRESHNESS_DEADLINE_SECONDS,
            container=job_container(args.aws_cli_image, "neo4j_backup_freshness.sh", [
                *common_env, {"name": "MAX_AGE_SECONDS", "value": str(args.max_age_seconds)}, *aws_home],
                ("50m", "200m", "128Mi"), mounts(tmp="/tmp")),
            volumes=[small("tmp", "64Mi")], labels=job_labels(FRESHNESS_JOB),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[reader]),
        )
        cron_job(
            PRUNE_JOB, resource_name=f"{name}-prune", namespace=args.namespace, schedule=PRUNE_SCHEDULE,
            time_zone=args.time_zone, service_account=PRUNE_JOB, run_as_user=NOBODY_UID,
            active_deadline_seconds=1800,
            container=job_container(args.aws_cli_image, "neo4j_backup_prune.sh", [
                *common_env, *chain_env, {"name": "RETENTION_DAYS", "value": str(args.retention_days)},
                *aws_home], ("50m", "500m", "256Mi"), mounts(tmp="/tmp")),
            volumes=[small("tmp", "64Mi")], labels=job_labels(PRUNE_JOB),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pruner]),
        )
        prometheus_rule(
            f"{name}-rules", namespace=args.namespace, release_label=args.prometheus_release_label,
            groups=backup_rule_groups(args), opts=child)
        self.max_age_seconds = args.max_age_seconds  # ops/dr_readiness holds the bucket to it
        self.full_backup_seconds = args.full_backup_seconds  # the DR budget's RTO counts it
        self.register_outputs({"maxBackupAgeSeconds": args.max_age_seconds})

def backup_flows(around: Neighbours, servers: Optional[dict[str, str]] = None) -> tuple[Flow, ...]:
    """S3 and STS (for IRSA) through the VPC endpoints only; in the cluster's namespace, where
    ``servers`` selects the server pods (Neo4jCluster.pod_selector), also their backup port."""
    flows = [
        Flow("backup-s3", "egress", Peer(cidrs=around.s3_cidrs), (443,), pods=POD_LABELS,
             reason="backups go to S3 at the addresses of network.<region>.s3 (the endpoint the VPC resolves S3 to)"),
        Flow("backup-sts", "egress", Peer(cidrs=around.sts_cidrs), (443,), pods=POD_LABELS,
             reason="IRSA exchanges the pod's token for AWS credentials at the STS endpoint"),
    ]
    if servers is not None:
        backup_job = {JOB_LABEL: BACKUP_JOB}  # not the freshness, prune or rehearsal pods
        flows += [
            Flow("backup-from-servers", "egress", Peer(pods=servers), (BACKUP_PORT,), pods=backup_job,
                 reason="neo4j-admin backup reads from the servers' backup port"),
            Flow("backup-to-servers", "ingress", Peer(pods=backup_job), (BACKUP_PORT,), pods=servers,
                 reason="the servers' backup port is unauthenticated: only the backup job may reach it"),
        ]
    return tuple(flows)


def prefix_policy(bucket_arn: str, key_arn: str, prefix: str, region: str, access: str) -> dict:
    """Least privilege on one prefix of one bucket, and its KMS key only through S3.

    ``read``: list and get; ``write``: also put (backups never delete); ``delete``: list and delete
    only (whole-chain retention; deleting needs no key)."""
    object_actions = {"read": ["s3:GetObject"],
                      "write": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                      "delete": ["s3:DeleteObject"]}[access]
    key_actions = {"read": ["kms:Decrypt"], "write": ["kms:Decrypt", "kms:GenerateDataKey"], "delete": []}[access]
    statements = [
        {"Sid": "ListPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}}},
        {"Sid": "Objects", "Effect": "Allow", "Action": object_actions, "Resource": f"{bucket_arn}/{prefix}*"},
    ]
    if key_actions:
        statements.append(
            {"Sid": "BucketKey", "Effect": "Allow", "Action": key_actions, "Resource": key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}})
    return {"Version": "2012-10-17", "Statement": statements}


# kube-state-metrics emits ``kube_cronjob_status_last_successful_time`` only once a CronJob has
# succeeded (kube-state-metrics internal/store/cronjob.go appends the sample only when
# ``status.lastSuccessfulTime`` is set), so every "too long ago" rule is blind to a job that never
# succeeded: each job also gets an ``absent()`` rule, armed once the CronJob has existed for longer
# than its first run may take (or at once, when the CronJob itself is not seen).

def cron_series(namespace: str, job: str, metric: str) -> str:
    return f'{metric}{{namespace="{namespace}", cronjob="{job}"}}'


def last_success(namespace: str, job: str) -> str:
    return cron_series(namespace, job, "kube_cronjob_status_last_successful_time")


def never_succeeded(alert: str, namespace: str, job: str, grace_seconds: int, summary: str) -> dict:
    created = cron_series(namespace, job, "kube_cronjob_created")
    return {"alert": alert,
            "expr": f"absent({last_success(namespace, job)}) and on() "
                    f"(absent({created}) or time() - {created} > {grace_seconds})",
            "for": "10m", "labels": {"severity": "critical"},
            "annotations": {"summary": summary,
                            "description": f"{job} in {namespace} has no successful run on record "
                                           f"{grace_seconds}s after it was created (or it is not scraped)."}}


def backup_rule_groups(args: Neo4jBackupArgs) -> list[dict]:
    """Backup freshness and the freshness check itself, from kube-state-metrics' CronJob series."""
    last_backup = last_success(args.namespace, BACKUP_JOB)
    freshness_period = cron_max_gap_seconds(FRESHNESS_SCHEDULE)
    # two missed checks in a row, plus the time one run may take
    freshness_limit = 2 * freshness_period + FRESHNESS_DEADLINE_SECONDS
    return [{
        "name": "neo4j-backup",
        "rules": [
            {"alert": "Neo4jBackupStale",
             "expr": f"time() - {last_backup} > {args.max_age_seconds}",
             "for": "5m", "labels": {"severity": "critical"},
             "annotations": {
                 "summary": "Neo4j has no successful backup within its freshness limit",
                 "description": f"The last successful {BACKUP_JOB} run is older than "
                                f"{args.max_age_seconds}s: the graph's RPO is being exceeded."}},
            never_succeeded("Neo4jBackupMissing", args.namespace, BACKUP_JOB, args.max_age_seconds,
                            f"{BACKUP_JOB} has never succeeded (or is not scraped)"),
            {"alert": "Neo4jBackupFreshnessCheckFailing",
             "expr": f"time() - {last_success(args.namespace, FRESHNESS_JOB)} > {freshness_limit}",
             "for": "5m", "labels": {"severity": "critical"},
             "annotations": {
                 "summary": "The Neo4j backup freshness check keeps failing",
                 "description": f"{FRESHNESS_JOB} has not succeeded for {freshness_limit}s: either the "
                                "newest backup in S3 is too old or the check cannot list the bucket; "
                                "see its job logs."}},
            never_succeeded("Neo4jBackupFreshnessCheckMissing", args.namespace, FRESHNESS_JOB, freshness_limit,
                            f"{FRESHNESS_JOB} has never succeeded (or is not scraped)"),
            {"alert": "Neo4jBackupPruneFailing",
             "expr": f"time() - {last_success(args.namespace, PRUNE_JOB)} > {2 * 86400}",
             "for": "1h", "labels": {"severity": "warning"},
             "annotations": {
                 "summary": "Neo4j backup chains past retention are not being deleted",
                 "description": f"{PRUNE_JOB} has not succeeded for two days; the bucket's lifecycle "
                                "expiry is only a backstop behind it."}},
            never_succeeded("Neo4jBackupPruneMissing", args.namespace, PRUNE_JOB, 2 * 86400,
                            f"{PRUNE_JOB} has never succeeded (or is not scraped)"),
        ],
    }]


def rehearsal_rules(restore_namespace: str, schedule: str, store_bytes: int) -> list[dict]:
    """The weekly restore rehearsal failed, is stale, or never succeeded."""
    succeeded = last_success(restore_namespace, REHEARSAL_JOB)
    scheduled = cron_series(restore_namespace, REHEARSAL_JOB, "kube_cronjob_status_last_schedule_time")
    period, deadline = cron_max_gap_seconds(schedule), rehearsal_deadline_seconds(store_bytes)
    return [
        {"alert": "Neo4jRestoreRehearsalFailed",
         # the newest scheduled rehearsal has not succeeded once its deadline passed
         "expr": f"{scheduled} > {succeeded}",
         "for": f"{deadline // 3600 + 1}h", "labels": {"severity": "critical"},
         "annotations": {"summary": "The weekly Neo4j restore rehearsal failed",
                         "description": "Backups in the DR bucket did not restore to a non-empty graph; "
                                        f"see the {REHEARSAL_JOB} job logs in {restore_namespace}."}},
        {"alert": "Neo4jRestoreRehearsalStale",
         "expr": f"time() - {succeeded} > {period + 86400}",
         "for": "1h", "labels": {"severity": "warning"},
         "annotations": {"summary": "No successful Neo4j restore rehearsal for over a week"}},
        never_succeeded("Neo4jRestoreRehearsalMissing", restore_namespace, REHEARSAL_JOB,
                        period + deadline + 3600, f"{REHEARSAL_JOB} has never succeeded (or is not scraped)"),
    ]
