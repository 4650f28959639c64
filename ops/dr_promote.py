"""Promote the DR read replica to a standalone primary (regional failover of PostgreSQL).

    python -m ops.dr_promote --stack prod --dry-run
    python -m ops.dr_promote --outputs outputs.json
    python -m ops.dr_promote --primary-arn ARN --replica-arn ARN --max-lag-seconds 180

Preconditions (all must hold, or nothing is changed): the replica exists, is available, and
replicates from the expected primary; its lag over the last 10 minutes is within the limit
(pass --accept-data-loss when the primary region is down and the lag metric is gone or high).
Then it promotes, waits until the instance is a standalone, available primary, and turns on an
RDS-managed master password there: the primary's managed secret lives only in the primary region
and a read replica cannot have one, so without this the promoted database has no credentials
anyone can read in its region. It prints how long promotion took (record it as
dr.replicaPromotionEstimateSeconds), the new secret and what to change in the stack.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import boto3

from ops._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    Check,
    DbRef,
    InputError,
    print_table,
    stack_output,
    stack_outputs,
)
from ops.dr_readiness import describe, latest_lag_seconds, replica_status

_KMS_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):[0-9]{12}:key/.+$")


def preconditions(primary: DbRef, replica: DbRef, max_lag: float, accept_data_loss: bool) -> list[Check]:
    status = replica_status(primary, replica)
    checks = [status]
    if not status.ok:
        return checks  # nothing else is meaningful about a replica that is not one
    lag = latest_lag_seconds(replica)
    if accept_data_loss:
        checks.append(Check("replica-lag", True, f"not enforced (--accept-data-loss); last known lag {lag}"))
    elif lag is None:
        checks.append(Check("replica-lag", False, "no ReplicaLag datapoints in 10 minutes; if the primary "
                                                  "region is down, re-run with --accept-data-loss"))
    else:
        checks.append(Check("replica-lag", lag <= max_lag, f"max {lag:.0f}s over 10 minutes (limit {max_lag:.0f}s)"))
    return checks


def promote(replica: DbRef, retention_days: int, timeout_seconds: float,
            sleep: Callable[[float], None] = time.sleep) -> float:
    """Promote and wait until RDS reports a standalone, available instance; return seconds taken."""
    rds = boto3.client("rds", region_name=replica.region)
    started = time.monotonic()
    rds.promote_read_replica(DBInstanceIdentifier=replica.identifier, BackupRetentionPeriod=retention_days)
    while True:
        db = describe(replica) or {"DBInstanceStatus": "missing"}
        # "available" alone is not enough: right after the call RDS may still report the old state.
        if db["DBInstanceStatus"] == "available" and not db.get("ReadReplicaSourceDBInstanceIdentifier"):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_seconds:
            raise TimeoutError(f"{replica.identifier} is still {db['DBInstanceStatus']} after "
                               f"{timeout_seconds:.0f}s; promotion continues in AWS - watch the console")
        sleep(15)


def manage_master_secret(replica: DbRef, kms_key_arn: str, timeout_seconds: float,
                         sleep: Callable[[float], None] = time.sleep) -> str:
    """Have RDS create and manage the promoted instance's master password in Secrets Manager in
    its own region, under our DR-region key (ModifyDBInstance ManageMasterUserPassword; RDS User
    Guide, "Password management with Amazon RDS and AWS Secrets Manager": not possible on a read
    replica, possible once promoted). Returns the secret's ARN."""
    rds = boto3.client("rds", region_name=replica.region)
    rds.modify_db_instance(DBInstanceIdentifier=replica.identifier, ManageMasterUserPassword=True,
                           MasterUserSecretKmsKeyId=kms_key_arn, ApplyImmediately=True)
    started = time.monotonic()
    while True:
        secret = (describe(replica) or {}).get("MasterUserSecret") or {}
        if secret.get("SecretArn"):
            if f":secretsmanager:{replica.region}:" not in secret["SecretArn"]:
                raise RuntimeError(f"the master secret {secret['SecretArn']} is not in {replica.region}")
            return secret["SecretArn"]
        if time.monotonic() - started > timeout_seconds:
            raise TimeoutError(f"{replica.identifier} has no managed master secret after {timeout_seconds:.0f}s")
        sleep(15)


def next_steps(primary: DbRef, replica: DbRef, seconds: float, secret_arn: str) -> str:
    """What the operator does next. Not a swap of aws.primaryRegion/drRegion: a provider whose
    region changes replaces every resource it manages (synth diff says so; prod's `protect`
    refuses it), and a standalone instance cannot be made a replica again in place
    (terraform-provider-aws #16054, "cannot elect new source database for replication")."""
    return f"""
{replica.identifier} in {replica.region} is now a standalone primary ({seconds:.0f}s).
Its master password is managed by RDS in {secret_arn}
(the primary region's secret does not apply here).
Next:
  1. Point the database clients at {replica.identifier} (DNS fails the API over by itself).
  2. pulumi refresh --stack <stack>   (the state still describes a replica of {primary.identifier})
  3. Do NOT swap aws.primaryRegion/drRegion (or network.primary/dr) in Pulumi.<stack>.yaml: a
     provider's region change replaces every resource it manages - buckets, keys, both databases
     (prod refuses: they are protected). Run `python -m synth diff` on any stack change first.
  4. Freeze `pulumi up` for this stack until it is reconciled: the program still declares
     {replica.identifier} as a replica (replicate_source_db, no managed password), and neither RDS
     nor the provider can turn a standalone instance back into a replica in place; an `up` now
     would try, or replace it. Reconciling means changing the program so the promoted instance
     is declared standalone (no replicate_source_db; manage_master_user_password with the
     DR-region key, as this runbook set it) before the next `up` shows no diff for it.
  5. The old primary {primary.identifier} must not come back as a second writer: once its region
     returns, stop clients from reaching it; retire it deliberately (README, "Retiring a
     protected resource deliberately"), its final snapshot and replicated backups remain.
  6. If {seconds:.0f}s exceeds dr.replicaPromotionEstimateSeconds, raise it: the DR budget uses it.
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.dr_promote", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--stack", help="stack name (outputs read with the Pulumi CLI)")
    parser.add_argument("--outputs", type=Path, help="`pulumi stack output --json` file")
    parser.add_argument("--primary-arn", help="ARN of the primary the replica must follow")
    parser.add_argument("--replica-arn", help="ARN of the DR read replica to promote")
    parser.add_argument("--max-lag-seconds", type=float, help="refuse above this lag (default: the alarm threshold)")
    parser.add_argument("--retention-days", type=int, default=None, help="backup retention after promotion")
    parser.add_argument("--secret-kms-key-arn", help="DR-region KMS key for the promoted instance's master secret")
    parser.add_argument("--accept-data-loss", action="store_true", help="promote whatever the lag")
    parser.add_argument("--timeout-seconds", type=float, default=3600)
    parser.add_argument("--dry-run", action="store_true", help="check preconditions, change nothing")
    args = parser.parse_args(argv)
    try:
        if args.primary_arn or args.replica_arn:
            if not (args.primary_arn and args.replica_arn and args.max_lag_seconds and args.secret_kms_key_arn):
                raise InputError("with flags, give all of --primary-arn, --replica-arn, --max-lag-seconds "
                                 "and --secret-kms-key-arn")
            primary_arn, replica_arn = args.primary_arn, args.replica_arn
            max_lag, retention = args.max_lag_seconds, args.retention_days or 7
            secret_key = args.secret_kms_key_arn
        else:
            outputs = stack_outputs(args.stack, args.outputs)
            primary_arn = stack_output(outputs, "postgres", "primaryArn")
            replica_arn = stack_output(outputs, "postgres", "replicaArn")
            max_lag = args.max_lag_seconds or stack_output(outputs, "postgres", "lagAlarmThresholdSeconds")
            retention = args.retention_days or stack_output(outputs, "postgres", "backupRetentionDays")
            secret_key = args.secret_kms_key_arn or stack_output(outputs, "postgres", "replicaKmsKeyArn")
        primary = DbRef.parse(primary_arn, "the primary ARN")
        replica = DbRef.parse(replica_arn, "the replica ARN")
        if primary.region == replica.region:
            raise InputError(f"primary and replica are both in {primary.region}: this is not a cross-region pair")
        key = _KMS_ARN_REGION.match(secret_key) if isinstance(secret_key, str) else None
        if not key or key["region"] != replica.region:
            raise InputError(f"the master secret's KMS key must be a key ARN in {replica.region} "
                             f"(given: {secret_key!r})")
    except InputError as exc:
        print(f"dr_promote: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    checks = preconditions(primary, replica, max_lag, args.accept_data_loss)
    print_table(f"Preconditions for promoting {replica.identifier}:", checks)
    if not all(c.ok for c in checks):
        print("Refusing to promote: nothing was changed.")
        return EXIT_FAILED
    if args.dry_run:
        print(f"Dry run: would promote {replica.arn} with {retention}-day backup retention. Nothing was changed.")
        return EXIT_OK
    try:
        seconds = promote(replica, int(retention), args.timeout_seconds)
        secret_arn = manage_master_secret(replica, secret_key, args.timeout_seconds)
    except (TimeoutError, RuntimeError) as exc:
        print(f"dr_promote: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(next_steps(primary, replica, seconds, secret_arn))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
