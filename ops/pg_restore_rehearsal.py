"""Rehearse a point-in-time restore of PostgreSQL in the DR region, and always clean up.

    python -m ops.pg_restore_rehearsal --outputs outputs.json [--timeout-seconds 5400]
    python -m ops.pg_restore_rehearsal --stack prod --restore-time 2026-12-01T03:00:00Z

It restores the writer's backups in the DR region: the primary's automated backups *replicated to
the DR region* (aws.rds.InstanceAutomatedBackupsReplication) while the writer is in the primary
region, the DR writer's own automated backups after a failover (``postgres.primaryArn`` names the
writer wherever it is: docs/decisions/018-active-region-is-state.md), to the latest restorable time (or --restore-time)
into a throwaway instance named ``<prefix><UTC timestamp>``: the DR region's private subnet group,
security group and parameter group, no public access, no deletion protection, single-AZ. It waits
until the instance is available, verifies it (encrypted with the DR key the replicated backups
use, private, in the expected subnet group), and deletes it - in a ``finally``, so also after a
failed verification or a restore that never becomes available. The time from the restore call to
"available" is the PITR restore time: record it as dr.postgresPitrRestoreEstimateSeconds.

A SIGTERM (eviction, the Job's activeDeadlineSeconds) raises SystemExit, so the ``finally`` still
deletes the instance (Python's default SIGTERM action ends the process without unwinding). What a
SIGKILL leaves behind, the next run sweeps first: every instance named with the prefix *and*
tagged by a rehearsal is deleted before a new one is created.

Exit 0: restored, verified and deleted. 1: refused (no replicated backups), timed out or failed
verification, or the delete failed (then delete the instance by hand; the message names it).
2: bad input, or a botocore other than the one the job pins (``INTELGRAPH_BOTOCORE_VERSION``,
requirements.txt's pin): an older one lacks parameters the restore sends (docs/decisions/016).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import boto3
import botocore
from botocore.exceptions import BotoCoreError, ClientError

from ops._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    PINNED_BOTOCORE_ENV,
    READ_OUTPUTS,
    Check,
    DbRef,
    Grant,
    InputError,
    Permissions,
    parser,
    print_table,
    run,
    stack_output,
    stack_outputs,
)

POLL_SECONDS = 30
TAG = {"Key": "intelgraph:purpose", "Value": "pitr-rehearsal"}


@dataclass(frozen=True)
class Target:
    """Where the throwaway instance goes: all of it from the DR region's stack outputs."""

    region: str
    kms_key_arn: str
    subnet_group: str
    security_group_id: str
    parameter_group: str
    instance_class: str
    prefix: str


class Failed(Exception):
    """The rehearsal failed; the message says at which step."""


# The weekly Job's IRSA role grants these (components/pg_restore_rehearsal.py, rehearsal_policy);
# tests/iam_oracle.py records the calls and compares with both.
IAM = Permissions((
    READ_OUTPUTS,
    Grant(("rds:DescribeDBInstances", "rds:DescribeDBInstanceAutomatedBackups"), "dr-region-rds",
          "the replicated backups, leftovers, the restored instance"),
    Grant(("rds:RestoreDBInstanceToPointInTime",), "rehearsal-restore", "the throwaway instance"),
    Grant(("rds:DeleteDBInstance",), "rehearsal-instances", "always deleted"),
    # tags on create are authorized as AddTagsToResource (RDS User Guide, "Tagging Amazon RDS resources")
    Grant(("rds:AddTagsToResource",), "rehearsal-instances", "the restore's Tags", implied=True),
    # an encrypted restore: RDS uses the DR key with the caller's permissions
    Grant(("kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey*"), "rehearsal-key",
          "the restore's encryption", implied=True),
))


# DescribeDBInstanceAutomatedBackups Status (RDS API Reference): "creating" has no snapshot to
# restore yet, "retained" is what is left after the source was deleted or replication stopped (a
# stale chain proves nothing about today's); the live replicated chain reports "replicating" (RDS
# User Guide, "Finding information about replicated backups").
USABLE_BACKUP_STATUSES = ("replicating", "active")


def replicated_backup(source: DbRef, region: str) -> dict:
    """The source's live automated backups replicated to ``region``, or Failed (refusal)."""
    rds = boto3.client("rds", region_name=region)
    backups = [b for page in rds.get_paginator("describe_db_instance_automated_backups").paginate()
               for b in page["DBInstanceAutomatedBackups"]
               if b.get("DBInstanceArn") == source.arn and b.get("Region") == source.region]
    if not backups:
        raise Failed(f"no automated backups of {source.arn} are replicated to {region}: point-in-time "
                     "restore in the DR region is impossible (is InstanceAutomatedBackupsReplication "
                     "deployed and replicating?). Nothing was created.")
    usable = [b for b in backups if b.get("Status") in USABLE_BACKUP_STATUSES]
    if not usable:
        found = ", ".join(f"{b.get('DBInstanceAutomatedBackupsArn')} ({b.get('Status')})" for b in backups)
        raise Failed(f"the automated backups of {source.arn} in {region} are not being replicated: {found}. "
                     "Nothing was created.")
    # the chain that reaches furthest (a restarted replication leaves the old one retained)
    return max(usable, key=lambda b: str(b.get("RestoreWindow", {}).get("LatestTime", "")))


def restore_source(source: DbRef, region: str) -> dict[str, str]:
    """What RestoreDBInstanceToPointInTime reads from (RDS API Reference): the writer's own automated
    backups when it is in ``region`` (SourceDBInstanceIdentifier), else its backups replicated there
    (SourceDBInstanceAutomatedBackupsArn), or Failed."""
    if source.region == region:
        return {"SourceDBInstanceIdentifier": source.identifier}
    return {"SourceDBInstanceAutomatedBackupsArn": replicated_backup(source, region)["DBInstanceAutomatedBackupsArn"]}


def sweep_leftovers(rds, prefix: str) -> list[str]:
    """Delete what an earlier run left (killed before its finally): instances named with the
    prefix AND tagged by a rehearsal - never anything else, and not one already being deleted."""
    swept = []
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            ours = db["DBInstanceIdentifier"].startswith(prefix) and TAG in db.get("TagList", [])
            if ours and db["DBInstanceStatus"] != "deleting":
                print(f"sweeping {db['DBInstanceIdentifier']}, left by an earlier rehearsal")
                delete(rds, db["DBInstanceIdentifier"])
                swept.append(db["DBInstanceIdentifier"])
    return swept


def wait_available(rds, identifier: str, timeout_seconds: float, sleep: Callable[[float], None]) -> dict:
    deadline = time.monotonic() + timeout_seconds
    while True:
        [db] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        if db["DBInstanceStatus"] == "available":
            return db
        if db["DBInstanceStatus"] in ("failed", "incompatible-restore", "incompatible-parameters"):
            raise Failed(f"restore of {identifier} ended in status {db['DBInstanceStatus']}")
        if time.monotonic() >= deadline:
            raise Failed(f"{identifier} not available after {timeout_seconds:.0f}s "
                         f"(status {db['DBInstanceStatus']}): restore timed out")
        sleep(POLL_SECONDS)


def verify(db: dict, target: Target) -> list[Check]:
    groups = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])]
    return [
        Check("available", db["DBInstanceStatus"] == "available", db["DBInstanceStatus"]),
        Check("encrypted-with-dr-key", bool(db.get("StorageEncrypted")) and db.get("KmsKeyId") == target.kms_key_arn,
              f"KmsKeyId {db.get('KmsKeyId')}"),
        Check("private", db.get("PubliclyAccessible") is False, f"PubliclyAccessible {db.get('PubliclyAccessible')}"),
        Check("dr-subnet-group", db.get("DBSubnetGroup", {}).get("DBSubnetGroupName") == target.subnet_group,
              db.get("DBSubnetGroup", {}).get("DBSubnetGroupName", "none")),
        Check("dr-security-group", groups == [target.security_group_id], ",".join(groups) or "none"),
        Check("endpoint", bool(db.get("Endpoint", {}).get("Address")), db.get("Endpoint", {}).get("Address", "none")),
    ]


def rehearse(source: DbRef, target: Target, *, restore_time: Optional[datetime], timeout_seconds: float,
             sleep: Callable[[float], None] = time.sleep, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
             ) -> float:
    """Restore, wait, verify, always delete. Return seconds from the restore call to available."""
    origin = restore_source(source, target.region)
    rds = boto3.client("rds", region_name=target.region)
    sweep_leftovers(rds, target.prefix)
    identifier = f"{target.prefix}{now():%Y%m%d%H%M%S}"
    when = {"RestoreTime": restore_time} if restore_time else {"UseLatestRestorableTime": True}
    started = time.monotonic()
    rds.restore_db_instance_to_point_in_time(
        **origin,
        TargetDBInstanceIdentifier=identifier,
        DBInstanceClass=target.instance_class,
        DBSubnetGroupName=target.subnet_group,
        VpcSecurityGroupIds=[target.security_group_id],
        DBParameterGroupName=target.parameter_group,
        PubliclyAccessible=False,
        MultiAZ=False,
        DeletionProtection=False,
        BackupRetentionPeriod=0,  # a throwaway: no backups of its own
        Tags=[TAG],
        **when,
    )
    print(f"restoring {identifier} from {next(iter(origin.values()))} "
          f"({'to ' + restore_time.isoformat() if restore_time else 'latest restorable time'})")
    try:
        db = wait_available(rds, identifier, timeout_seconds, sleep)
        took = time.monotonic() - started
        checks = verify(db, target)
        print_table(f"Restored instance {identifier}", checks)
        if not all(c.ok for c in checks):
            raise Failed(f"{identifier} restored but failed verification")
        return took
    finally:
        delete(rds, identifier)


def delete(rds, identifier: str) -> None:
    try:
        rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True,
                               DeleteAutomatedBackups=True)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, say which instance is left
        print(f"DELETE FAILED for {identifier}: {exc}; delete it by hand "
              f"(aws rds delete-db-instance --db-instance-identifier {identifier} --skip-final-snapshot)")
        raise Failed(f"could not delete {identifier}") from exc
    print(f"deleted {identifier}")


def target_from_outputs(outputs: dict) -> tuple[DbRef, Target]:
    source = DbRef.parse(stack_output(outputs, "postgres", "primaryArn"), "postgres.primaryArn")
    fields = {name: stack_output(outputs, "pgRestoreRehearsal", key) for name, key in (
        ("region", "region"), ("kms_key_arn", "kmsKeyArn"), ("subnet_group", "subnetGroup"),
        ("security_group_id", "securityGroupId"), ("parameter_group", "parameterGroup"),
        ("instance_class", "instanceClass"), ("prefix", "prefix"))}
    return source, Target(**fields)


def check_botocore(pinned: Optional[str]) -> None:
    """Refuse a botocore other than the pin before any call: an older one refuses parameters the
    restore sends (BackupRetentionPeriod) only at the call, after the sweep already ran."""
    if pinned and botocore.__version__ != pinned:
        raise InputError(f"botocore {botocore.__version__} (from {Path(botocore.__file__).parent}) is not the "
                         f"pinned {pinned}: run the image built from images/pg-restore-rehearsal "
                         "(docs/decisions/016)")


def _terminated(signum, frame) -> None:
    # unwinds through rehearse()'s finally, which deletes the instance, then exits 1
    print("REHEARSAL FAILED: terminated (SIGTERM); deleting the instance")
    raise SystemExit(EXIT_FAILED)


def main(argv: Optional[list[str]] = None) -> int:
    command = parser("pg_restore_rehearsal", __doc__, IAM)
    command.add_argument("--restore-time", help="ISO 8601 UTC time; default the latest restorable time")
    command.add_argument("--timeout-seconds", type=float, default=5400)
    args = command.parse_args(argv)
    return run("pg_restore_rehearsal", lambda: rehearsal(args))


def rehearsal(args) -> int:
    try:
        check_botocore(os.environ.get(PINNED_BOTOCORE_ENV))
        source, target = target_from_outputs(stack_outputs(args.stack, args.outputs))
        restore_time = None
        if args.restore_time:
            try:
                restore_time = datetime.fromisoformat(args.restore_time.replace("Z", "+00:00"))
            except ValueError:
                raise InputError(f"--restore-time {args.restore_time!r} is not an ISO 8601 time") from None
    except InputError as exc:
        print(f"pg_restore_rehearsal: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        took = rehearse(source, target, restore_time=restore_time, timeout_seconds=args.timeout_seconds)
    except (Failed, ClientError, BotoCoreError) as exc:
        print(f"REHEARSAL FAILED: {exc}")
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"PITR rehearsal passed: restore took {took:.0f}s "
          "(record it as dr.postgresPitrRestoreEstimateSeconds)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
