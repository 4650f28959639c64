"""Prepare a PostgreSQL major version upgrade: check the preconditions, take the manual snapshot.

    python -m ops.pg_major_upgrade --outputs outputs.json --target-version 17.2 --dry-run
    python -m ops.pg_major_upgrade --outputs outputs.json --target-version 17.2
    python -m ops.pg_major_upgrade --outputs outputs.json --target-version 17.2 --after

The path for this topology is the in-place upgrade of the primary: RDS blue/green deployments
support neither Secrets Manager-managed master passwords nor cross-Region read replicas (RDS User
Guide, "Limitations for blue/green deployments"). The target is an exact version RDS lists as a
major ValidUpgradeTarget of the running one (DescribeDBEngineVersions): a bare major ("17") makes
RDS pick its default minor (ModifyDBInstance, EngineVersion), which need not be a valid target
from the running minor (terraform-aws-modules/terraform-aws-rds #627).

The User Guide promises the replica upgrade only for *in-Region* read replicas ("Upgrades of the
RDS for PostgreSQL DB engine"; "How to perform a major version upgrade", step "Handle read
replicas"); this stack's replica is cross-Region, so the runbook does not assume it: ``--after``
checks what the replica runs once the primary is upgraded. A replica's custom parameter group can
be applied only after its upgrade completes (same step), so the DR parameter group moves to the
new family in a second deploy, after ``--after`` passes (docs/runbooks.md, "PostgreSQL major
upgrade").

Preconditions, all of which must hold or nothing is changed: the primary is available with no
pending modifications, the target is a valid major upgrade target of its exact version, it keeps
no RDS-managed password (blue/green would be out anyway), and its cross-Region replica is
available and following it. Then a manual snapshot (automated backups expire with the retention
window; a manual one stays until deleted), waited for until available, and the stack settings to
set.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import Callable, Optional

import boto3

from ops._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
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
from ops.dr_readiness import describe, replica_status

# Planned maintenance, run by whoever deploys (not the on-call role). tests/iam_oracle.py
# records the calls and compares.
IAM = Permissions((
    READ_OUTPUTS,
    Grant(("rds:DescribeDBInstances",), "databases", "preconditions, --after"),
    Grant(("rds:DescribeDBEngineVersions",), "*", "the running version's valid upgrade targets"),
    Grant(("rds:CreateDBSnapshot", "rds:DescribeDBSnapshots"), "primary-database-and-snapshots",
          "the manual snapshot"),
    # tags on create are authorized as AddTagsToResource (RDS User Guide, "Tagging Amazon RDS resources")
    Grant(("rds:AddTagsToResource",), "primary-database-and-snapshots", "CreateDBSnapshot's Tags", implied=True),
))


def major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise InputError(f"not a PostgreSQL version: {version!r} (e.g. 17.2)") from None


def rds_client(region: str):
    return boto3.client("rds", region_name=region)


def major_targets(region: str, current: str) -> list[str]:
    """The exact versions RDS can upgrade ``current`` to across a major version, oldest first
    (DescribeDBEngineVersions for the running version: ValidUpgradeTarget, IsMajorVersionUpgrade)."""
    rds = rds_client(region)
    response = rds.describe_db_engine_versions(Engine="postgres", EngineVersion=current)
    targets = {t["EngineVersion"] for v in response["DBEngineVersions"] for t in v.get("ValidUpgradeTarget", [])
               if t.get("IsMajorVersionUpgrade") and t.get("Engine") == "postgres"}
    return sorted(targets, key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))


def target_check(current: str, target: str, targets: list[str]) -> Check:
    if target in targets:
        return Check("valid-target", True, f"{current} -> {target}: a major upgrade target RDS lists for {current}")
    same_major = [t for t in targets if major(t) == major(target)]
    if "." not in target:
        why = (f"{target!r} is a major version only: RDS would pick its default {target}.x, which need not "
               f"be a valid target from {current}")
    else:
        why = f"RDS lists {target} as no major upgrade target of {current}"
    offer = (f"valid {major(target)}.x targets: {', '.join(same_major)}" if same_major else
             f"valid major targets from {current}: {', '.join(targets) or 'none'}")
    return Check("valid-target", False, f"{why}; {offer}")


def preconditions(primary: DbRef, replica: DbRef, target: str) -> tuple[list[Check], Optional[dict]]:
    db = describe(primary)
    if db is None:
        return [Check("primary", False, f"{primary.identifier} does not exist in {primary.region}")], None
    current = db["EngineVersion"]
    pending = {k: v for k, v in (db.get("PendingModifiedValues") or {}).items() if v}
    one_step = major(target) == major(current) + 1
    checks = [
        Check("primary", db["DBInstanceStatus"] == "available" and db["Engine"] == "postgres",
              f"{primary.identifier}: {db['Engine']} {current}, {db['DBInstanceStatus']}"),
        Check("no-pending-changes", not pending,
              f"pending: {sorted(pending)}; let them apply first" if pending else "none pending"),
        Check("one-major-step", one_step,
              f"{current} -> {target}" + ("" if one_step else
                                          f": upgrade to {major(current) + 1}.x first, one major per step")),
        target_check(current, target, major_targets(primary.region, current)),
        # the stack's master secret is its own (decision 014): an RDS-managed one means this is
        # not the declared topology; blue/green is out either way (the cross-Region replica)
        Check("in-place-path", not db.get("MasterUserSecret"),
              "cross-Region read replica: blue/green is unsupported, in-place it is"
              if not db.get("MasterUserSecret") else
              "RDS manages the master password: this is not the topology the stack declares (decision 014)"),
        replica_status(primary, replica),
    ]
    return checks, db


def after_upgrade(primary: DbRef, replica: DbRef, target: str) -> list[Check]:
    """Once the primary's upgrade is applied: is the primary on the exact target, and did RDS
    upgrade the cross-Region replica too (documented only for in-Region replicas)?"""
    checks = []
    for ref, label in ((primary, "primary"), (replica, "replica")):
        db = describe(ref)
        if db is None:
            checks.append(Check(f"{label}-version", False, f"{ref.identifier} does not exist in {ref.region}"))
            continue
        version, status = db["EngineVersion"], db["DBInstanceStatus"]
        wanted = version == target if label == "primary" else major(version) == major(target)
        detail = f"{ref.identifier}: {version}, {status}"
        if label == "replica" and not wanted:
            detail += (f"; RDS did not upgrade this cross-Region replica (the User Guide promises it for "
                       f"in-Region replicas only) and it cannot follow a {major(target)}.x primary: recreate it "
                       "(docs/runbooks.md, 'PostgreSQL major upgrade', step 4)")
        checks.append(Check(f"{label}-version", wanted and status == "available", detail))
    checks.append(replica_status(primary, replica))
    return checks


def take_snapshot(primary: DbRef, identifier: str, timeout_seconds: float,
                  sleep: Callable[[float], None] = time.sleep) -> dict:
    rds = rds_client(primary.region)
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
Snapshot {snapshot} is available. Now, in one pull request (deploy 1 of 2):
  1. Pulumi.{stack}.yaml, intelgraph-platform:postgres:
       engineVersion: "{target}"   # the exact target checked above, while majorUpgrade is declared
       majorUpgrade: {{fromVersion: "{current}", snapshotIdentifier: {snapshot}}}
  2. The primary's parameter group follows the engine family, so it is replaced (the plan lists
     it; get the stateful-change approval, in prod retire the old group first:
     docs/contributor.md, "Retiring a protected resource"). The DR parameter group keeps the {major(current)} family
     for now: RDS applies a replica's custom parameter group only after the replica's upgrade.
  3. After `pulumi up`: python -m ops.pg_major_upgrade --stack {stack} --target-version {target} --after
  4. Then (deploy 2 of 2): engineVersion back to "{major(target)}" if autoMinorVersionUpgrade is on, remove
     majorUpgrade: the DR parameter group moves to the {major(target)} family and the replica onto it.
     Keep the snapshot until the new version is proven.
"""


def main(argv: Optional[list[str]] = None) -> int:
    command = parser("pg_major_upgrade", __doc__, IAM)
    command.add_argument("--target-version", required=True, help="the PostgreSQL version to upgrade to, e.g. 17.2")
    command.add_argument("--timeout-seconds", type=float, default=3600)
    command.add_argument("--dry-run", action="store_true", help="check preconditions, take no snapshot")
    command.add_argument("--after", action="store_true",
                         help="after deploy 1: check the primary runs the target and the replica followed")
    args = command.parse_args(argv)
    return run("pg_major_upgrade", lambda: upgrade(args))


def upgrade(args) -> int:
    try:
        major(args.target_version)
        outputs = stack_outputs(args.stack, args.outputs)
        primary = DbRef.parse(stack_output(outputs, "postgres", "primaryArn"), "postgres.primaryArn")
        replica = DbRef.parse(stack_output(outputs, "postgres", "replicaArn"), "postgres.replicaArn")
    except InputError as exc:
        print(f"pg_major_upgrade: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if args.after:
        checks = after_upgrade(primary, replica, args.target_version)
        print_table(f"After upgrading {primary.identifier} to {args.target_version}:", checks)
        if not all(c.ok for c in checks):
            return EXIT_FAILED
        print(f"Both run {major(args.target_version)}: deploy 2 of 2 may move the DR parameter group "
              f"to postgres{major(args.target_version)} (docs/runbooks.md, 'PostgreSQL major upgrade').")
        return EXIT_OK
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
