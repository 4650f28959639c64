"""Prepare a PostgreSQL major version upgrade: check the preconditions, take the manual snapshot.

    python -m ops.pg_major_upgrade --outputs outputs.json --target-version 17.2 --dry-run
    python -m ops.pg_major_upgrade --outputs outputs.json --target-version 17.2

The path for this topology is the in-place upgrade of the primary: RDS blue/green deployments
support neither Secrets Manager-managed master passwords nor cross-Region read replicas (RDS User
Guide, "Limitations for blue/green deployments"), and RDS upgrades the read replicas along with
the primary ("Choosing a major version for an RDS for PostgreSQL upgrade"). Preconditions, all of
which must hold or nothing is changed: the primary is available with no pending modifications,
runs exactly one major version below the target, keeps its password in Secrets Manager (the
reason blue/green is out), and its cross-Region replica is available and following it (it is
upgraded too). Then a manual snapshot (automated backups expire with the retention window; a
manual one stays until deleted), waited for until available, and the stack settings to set.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
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
from ops.dr_readiness import describe, replica_status


def major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise InputError(f"not a PostgreSQL version: {version!r} (e.g. 17.2)") from None


def preconditions(primary: DbRef, replica: DbRef, target: str) -> tuple[list[Check], Optional[dict]]:
    db = describe(primary)
    if db is None:
        return [Check("primary", False, f"{primary.identifier} does not exist in {primary.region}")], None
    current = db["EngineVersion"]
    pending = {k: v for k, v in (db.get("PendingModifiedValues") or {}).items() if v}
    checks = [
        Check("primary", db["DBInstanceStatus"] == "available" and db["Engine"] == "postgres",
              f"{primary.identifier}: {db['Engine']} {current}, {db['DBInstanceStatus']}"),
        Check("no-pending-changes", not pending,
              f"pending: {sorted(pending)}; let them apply first" if pending else "none pending"),
        Check("one-major-step", major(target) == major(current) + 1,
              f"{current} -> {target}" + ("" if major(target) == major(current) + 1
                                          else f": upgrade to {major(current) + 1}.x first, one major per step")),
        Check("in-place-path", bool(db.get("MasterUserSecret")),
              "master password managed by Secrets Manager: blue/green is unsupported, in-place it is"
              if db.get("MasterUserSecret") else
              "no Secrets Manager-managed password: this is not the topology the stack declares"),
        replica_status(primary, replica),
    ]
    return checks, db


def take_snapshot(primary: DbRef, identifier: str, timeout_seconds: float,
                  sleep: Callable[[float], None] = time.sleep) -> dict:
    rds = boto3.client("rds", region_name=primary.region)
    rds.create_db_snapshot(DBInstanceIdentifier=primary.identifier, DBSnapshotIdentifier=identifier,
                           Tags=[{"Key": "purpose", "Value": "pre-major-upgrade"}])
    started = time.monotonic()
    while True:
        [snapshot] = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
        if snapshot["Status"] == "available":
            return snapshot
        if time.monotonic() - started > timeout_seconds:
            raise TimeoutError(f"snapshot {identifier} is still {snapshot['Status']} after {timeout_seconds:.0f}s")
        sleep(30)


def snapshot_name(primary: DbRef, target: str, now: datetime) -> str:
    return f"{primary.identifier}-pre-pg{major(target)}-{now:%Y%m%d%H%M}"


def next_steps(stack: str, current: str, target: str, snapshot: str) -> str:
    return f"""
Snapshot {snapshot} is available. Now, in one pull request:
  1. Pulumi.{stack}.yaml, intelgraph-platform:postgres:
       engineVersion: "{major(target)}"   # major only while autoMinorVersionUpgrade is on ("{target}" when off)
       majorUpgrade: {{fromVersion: "{current}", snapshotIdentifier: {snapshot}}}
  2. The parameter groups follow the engine family, so both are replaced: the plan (synth diff)
     lists them; get the stateful-change approval, and `pulumi state unprotect` the old groups
     before `pulumi up` (docs/contributor.md, "Retiring a protected resource").
  3. After the upgrade: remove majorUpgrade again; keep the snapshot until the new version is proven.
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.pg_major_upgrade", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--stack", help="stack name (outputs read with the Pulumi CLI)")
    parser.add_argument("--outputs", type=Path, help="`pulumi stack output --json` file")
    parser.add_argument("--target-version", required=True, help="the PostgreSQL version to upgrade to, e.g. 17.2")
    parser.add_argument("--timeout-seconds", type=float, default=3600)
    parser.add_argument("--dry-run", action="store_true", help="check preconditions, take no snapshot")
    args = parser.parse_args(argv)
    try:
        major(args.target_version)
        outputs = stack_outputs(args.stack, args.outputs)
        primary = DbRef.parse(stack_output(outputs, "postgres", "primaryArn"), "postgres.primaryArn")
        replica = DbRef.parse(stack_output(outputs, "postgres", "replicaArn"), "postgres.replicaArn")
    except InputError as exc:
        print(f"pg_major_upgrade: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    checks, db = preconditions(primary, replica, args.target_version)
    print_table(f"Preconditions for upgrading {primary.identifier} to {args.target_version}:", checks)
    if db is None or not all(c.ok for c in checks):  # no db: its check failed
        print("Refusing: nothing was changed.")
        return EXIT_FAILED
    name = snapshot_name(primary, args.target_version, datetime.now(timezone.utc))
    if args.dry_run:
        print(f"Dry run: would take the manual snapshot {name}. Nothing was changed.")
        return EXIT_OK
    try:
        snapshot = take_snapshot(primary, name, args.timeout_seconds)
    except TimeoutError as exc:
        print(f"pg_major_upgrade: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(next_steps(args.stack or "<stack>", db["EngineVersion"], args.target_version, snapshot["DBSnapshotIdentifier"]))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
