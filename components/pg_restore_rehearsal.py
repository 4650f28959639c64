"""PgRestoreRehearsal: the weekly PostgreSQL point-in-time restore rehearsal in the DR region.

It runs in the DR region's cluster, so it keeps running when the primary region is lost, and it
restores the writer's backups: the primary's automated backups replicated to the DR region while
the writer is there, the DR writer's own after a failover
(docs/decisions/018-active-region-is-state.md).

A CronJob runs the runbook itself (``python -m ops.pg_restore_rehearsal``: the repository's
``ops/`` files mounted from a ConfigMap, the stack outputs it needs as a JSON file next to them)
on an image that ships Python 3 and boto3. Its IRSA role may restore into, and delete, only DB
instances whose identifier starts with ``PREFIX``, from replicated automated backups, into the DR
subnet and parameter groups, with the DR key only through RDS. Alerts fire when the newest run
failed, when it has never succeeded a week after the CronJob was created, and when the last
success is older than a period plus a day.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from helpers.dr_budget import cron_max_gap_seconds
from helpers.flows import Flow, Neighbours, Peer
from helpers.irsa import irsa_role
from helpers.kube import container_security_context, cron_job, prometheus_rule, resources
from helpers.validation import require
from ops._common import PINNED_BOTOCORE_ENV, STS_REGION_ENV

# Every instance the rehearsal creates is named with this prefix; its IAM role can restore into and
# delete only instances whose identifier starts with it.
PREFIX = "pgrehearsal-"
JOB = "pg-restore-rehearsal"
NOBODY_UID = 65534
OPS_DIR = Path(__file__).resolve().parent.parent / "ops"
# The runbook and what it imports: mounted as the ``ops`` package.
OPS_FILES = ("__init__.py", "_common.py", "pg_restore_rehearsal.py")
CODE_ROOT = "/opt/intelgraph"
OUTPUTS_FILE = "/etc/pg-restore-rehearsal/outputs.json"
REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"


def pinned_botocore() -> str:
    """requirements.txt's botocore: what the tests ran against, and what the runbook refuses to run without."""
    [version] = re.findall(r"^botocore==(\S+)$", REQUIREMENTS.read_text(), re.M)
    return version
POD_LABELS = {"intelgraph.io/job": JOB}


@dataclass(frozen=True)
class PgRestoreRehearsalArgs:
    namespace: str
    schedule: str
    time_zone: str
    image: str
    timeout_minutes: int
    account_id: str
    primary_region: str  # named in its outputs file, with the account its runbook checks
    dr_region: str  # where it runs (the DR cluster: STS for IRSA there) and restores
    writer_arn: pulumi.Input[str]  # whose backups it restores (the writer, in either region)
    # The DR region's instance: the writer after a failover, whose own backups are restored then.
    # Named in the role whatever the state, so a failover changes no IAM policy (IAM's control
    # plane is in us-east-1: AWS whitepaper "AWS Fault Isolation Boundaries", global services).
    dr_instance_arn: pulumi.Input[str]
    restore_target: dict  # PostgresDr.dr_restore_target: kmsKeyArn, subnetGroup, securityGroupId, ...
    oidc_provider_arn: str
    oidc_issuer: str
    prometheus_release_label: str
    # the DR region's RDS interface endpoint by its own DNS name (https://vpce-….rds.<dr>.vpce…)
    dr_rds_endpoint_url: str

    def __post_init__(self) -> None:
        require("PgRestoreRehearsalArgs", [
            "" if f".rds.{self.dr_region}.vpce.amazonaws.com" in self.dr_rds_endpoint_url
            else "dr_rds_endpoint_url must be an RDS interface endpoint of dr_region",
            "" if {"kmsKeyArn", "subnetGroup", "securityGroupId", "parameterGroup", "instanceClass"}
            <= set(self.restore_target) else "restore_target lacks keys ops.pg_restore_rehearsal reads",
        ])

    @property
    def deadline_seconds(self) -> int:
        # the runbook's own timeout, plus time to delete the instance and report
        return 60 * self.timeout_minutes + 1800


class PgRestoreRehearsal(pulumi.ComponentResource):
    def __init__(self, name: str, args: PgRestoreRehearsalArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:database:PgRestoreRehearsal", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        target = args.restore_target
        role, _ = irsa_role(
            f"{name}-role", oidc_provider_arn=args.oidc_provider_arn, oidc_issuer=args.oidc_issuer,
            subjects=[(args.namespace, JOB)],
            policy=pulumi.Output.all(target["kmsKeyArn"], target["subnetGroup"], target["parameterGroup"],
                                     args.dr_instance_arn).apply(
                lambda a: json.dumps(rehearsal_policy(args.account_id, args.dr_region, *a))),
            description=f"PostgreSQL PITR rehearsal: restore and delete {PREFIX}* instances in {args.dr_region}",
            opts=child)
        outputs = pulumi.Output.all(args.writer_arn, *target.values()).apply(
            lambda values: json.dumps({
                # whose: the runbook checks its credentials' account before any other call
                "aws": {"accountId": args.account_id, "primaryRegion": args.primary_region,
                        "drRegion": args.dr_region},
                "postgres": {"primaryArn": values[0]},
                "pgRestoreRehearsal": {"region": args.dr_region, "prefix": PREFIX,
                                       **dict(zip(target.keys(), values[1:], strict=True))},
            }, indent=2, sort_keys=True))
        code = k8s.core.v1.ConfigMap(
            f"{name}-code",
            metadata={"name": f"{JOB}-code", "namespace": args.namespace},
            data={**{f: (OPS_DIR / f).read_text() for f in OPS_FILES}, "outputs.json": outputs},
            opts=child)
        cron_job(
            JOB, resource_name=name, namespace=args.namespace, schedule=args.schedule, time_zone=args.time_zone,
            service_account=JOB, run_as_user=NOBODY_UID, active_deadline_seconds=args.deadline_seconds,
            container={
                "name": JOB,
                "image": args.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-m", "ops.pg_restore_rehearsal", "--outputs", OUTPUTS_FILE,
                            "--timeout-seconds", str(60 * args.timeout_minutes)],
                "workingDir": CODE_ROOT,
                "env": [
                    {"name": "PYTHONPATH", "value": CODE_ROOT},
                    {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # the code is read-only
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    # the runbook exits 2 on any other botocore (decision 016)
                    {"name": PINNED_BOTOCORE_ENV, "value": pinned_botocore()},
                    # STS for IRSA through the DR region's endpoint, where the cluster runs
                    {"name": "AWS_REGION", "value": args.dr_region},
                    # the runbook's account check too (GetCallerIdentity): the DR region's STS, the
                    # only one the pod reaches, and the one that outlives the primary region
                    {"name": STS_REGION_ENV, "value": args.dr_region},
                    # RDS through the DR region's interface endpoint by its own name: the same address
                    # from any VPC (boto3 honours AWS_ENDPOINT_URL_<SERVICE>: AWS SDKs and Tools
                    # Reference Guide, "Service-specific endpoints")
                    {"name": "AWS_ENDPOINT_URL_RDS", "value": args.dr_rds_endpoint_url},
                    {"name": "HOME", "value": "/tmp"},
                ],
                "resources": resources("50m", "250m", "256Mi"),
                "securityContext": container_security_context(read_only_root=True),
                "volumeMounts": [
                    {"name": "code", "mountPath": f"{CODE_ROOT}/ops", "readOnly": True},
                    {"name": "code", "mountPath": OUTPUTS_FILE, "subPath": "outputs.json", "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            },
            volumes=[
                {"name": "code", "configMap": {"name": f"{JOB}-code",
                                               "items": [{"key": f, "path": f} for f in (*OPS_FILES, "outputs.json")]}},
                {"name": "tmp", "emptyDir": {}},
            ],
            labels=POD_LABELS,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role, code]),
        )
        prometheus_rule(f"{name}-rules", namespace=args.namespace, release_label=args.prometheus_release_label,
                        groups=rehearsal_rule_groups(args), opts=child)
        self.register_outputs({})


def rehearsal_policy(account_id: str, region: str, key_arn: str, subnet_group: str, parameter_group: str,
                     dr_instance_arn: str) -> dict:
    """Restore-and-delete of PREFIX instances in the DR region only (RDS resource types per the
    Service Authorization Reference for Amazon RDS: RestoreDBInstanceToPointInTime is authorized
    on the target db, the source (an auto-backup, or the source db when restoring its own
    backups: the DR region's instance, the writer after a failover), the subnet, parameter and option groups; tagging on
    create needs AddTagsToResource; an encrypted restore makes RDS create a grant on the key)."""
    arn = f"arn:aws:rds:{region}:{account_id}"
    rehearsal_db = f"{arn}:db:{PREFIX}*"
    # the DR region's own instance (a source once it writes); never any other db
    own = [dr_instance_arn] if dr_instance_arn.startswith(f"{arn}:db:") else []
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow",
             "Action": ["rds:DescribeDBInstances", "rds:DescribeDBInstanceAutomatedBackups"],
             "Resource": "*", "Condition": {"StringEquals": {"aws:RequestedRegion": region}}},
            {"Sid": "RestoreIntoRehearsalInstances", "Effect": "Allow",
             "Action": ["rds:RestoreDBInstanceToPointInTime"],
             "Resource": [rehearsal_db, f"{arn}:auto-backup:*", *own, f"{arn}:subgrp:{subnet_group}",
                          f"{arn}:pg:{parameter_group}", f"{arn}:og:*"]},
            {"Sid": "TagOnCreate", "Effect": "Allow", "Action": ["rds:AddTagsToResource"], "Resource": rehearsal_db},
            {"Sid": "DeleteRehearsalInstances", "Effect": "Allow", "Action": ["rds:DeleteDBInstance"],
             "Resource": rehearsal_db},
            {"Sid": "DrKeyThroughRds", "Effect": "Allow",
             "Action": ["kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey*"],
             "Resource": key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"rds.{region}.amazonaws.com"}}},
        ],
    }


def rehearsal_flows(around: Neighbours, dr_rds_cidrs: tuple[str, ...]) -> tuple[Flow, ...]:
    return (
        Flow("pg-rehearsal-sts", "egress", Peer(cidrs=around.sts_cidrs), (443,), pods=POD_LABELS,
             reason="IRSA exchanges the pod's token for AWS credentials at the STS endpoint"),
        Flow("pg-rehearsal-rds-api", "egress", Peer(cidrs=dr_rds_cidrs), (443,), pods=POD_LABELS,
             reason="the rehearsal calls the RDS API of the DR region (restore, describe, delete)"),
    )


def rehearsal_rule_groups(args: PgRestoreRehearsalArgs) -> list[dict]:
    """From kube-state-metrics' CronJob series."""
    selector = f'namespace="{args.namespace}", cronjob="{JOB}"'
    period = cron_max_gap_seconds(args.schedule)
    return [{"name": "pg-restore-rehearsal", "rules": [
        {"alert": "PostgresRestoreRehearsalFailed",
         # the newest scheduled run has not succeeded once its deadline passed
         "expr": f"kube_cronjob_status_last_schedule_time{{{selector}}} > "
                 f"kube_cronjob_status_last_successful_time{{{selector}}}",
         "for": f"{args.deadline_seconds // 3600 + 1}h",
         "annotations": {"summary": "The weekly PostgreSQL point-in-time restore rehearsal failed",
                         "description": f"See the {JOB} job log in {args.namespace}."}},
        # kube-state-metrics emits last_successful_time only after a first success: absent() it is,
        # armed a period and a day after the CronJob appeared (or at once when it is not scraped)
        {"alert": "PostgresRestoreRehearsalNeverSucceeded",
         "expr": f"absent(kube_cronjob_status_last_successful_time{{{selector}}}) and on() "
                 f"(absent(kube_cronjob_created{{{selector}}}) or "
                 f"time() - kube_cronjob_created{{{selector}}} > {period + 86400})",
         "for": "1h",
         "annotations": {"summary": "The PostgreSQL restore rehearsal has never succeeded"}},
        {"alert": "PostgresRestoreRehearsalStale",
         "expr": f"time() - kube_cronjob_status_last_successful_time{{{selector}}} > {period + 86400}",
         "for": "1h",
         "annotations": {"summary": "No successful PostgreSQL restore rehearsal for over a period"}},
    ]}]
