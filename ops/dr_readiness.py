"""Is the DR path ready right now? Checks the live account against the stack's outputs.

    python -m ops.dr_readiness --stack prod            # the outputs' copy in the DR region
    python -m ops.dr_readiness --outputs outputs.json  # `pulumi stack output --json` saved earlier

Checks: the DR replica is available and follows the primary; its current lag is under the
alarm threshold; the Route 53 health check sees the primary healthy; each backup bucket's newest
object is younger than its freshness limit; each backup bucket replicates to its DR twin, and
the newest object of each top-level folder (each writer) really reached it
(ReplicationStatus COMPLETED, or PENDING within the 15-minute Replication Time Control SLA);
automated backups are replicated to the DR region (PITR there). Prints a table; exit 1 on any
failure, 2 on bad input.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional

# boto3 and botocore are imported where AWS is called, not here: the Pulumi program imports this
# module for its IAM actions (ops/oncall.py) and must not pay for boto3 (ops/_common.py)
from ops._common import (
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

# What the checks below call, on what (tests/iam_oracle.py records the calls and compares).
IAM = Permissions((
    READ_OUTPUTS,
    Grant(("rds:DescribeDBInstances",), "databases", "replica status, PITR replication of the primary"),
    # GetMetricStatistics has no resource type (Service Authorization Reference, Amazon CloudWatch)
    Grant(("cloudwatch:GetMetricStatistics",), "*", "ReplicaLag"),
    Grant(("route53:GetHealthCheckStatus",), "health-check", "the primary's health check"),
    Grant(("s3:GetReplicationConfiguration", "s3:ListBucket"), "backup-buckets", "replication rule, newest object"),
    Grant(("s3:GetObject",), "backup-objects", "HeadObject: the newest object's replication status"),
))

# S3 Replication Time Control replicates 99.99% of objects within 15 minutes.
REPLICATION_SLA_SECONDS = 15 * 60

# Route 53 considers an endpoint healthy when more than 18% of its checkers report it healthy.
ROUTE53_HEALTHY_FRACTION = 0.18


def describe(db: DbRef) -> Optional[dict]:
    """The instance as RDS describes it, or None when it does not exist."""
    import boto3

    rds = boto3.client("rds", region_name=db.region)
    try:
        [found] = rds.describe_db_instances(DBInstanceIdentifier=db.identifier)["DBInstances"]
    except rds.exceptions.DBInstanceNotFoundFault:
        return None
    return found


def replica_status(primary: DbRef, replica: DbRef) -> Check:
    db = describe(replica)
    if db is None:
        return Check("replica-status", False, f"{replica.identifier} does not exist in {replica.region}")
    source = db.get("ReadReplicaSourceDBInstanceIdentifier")
    if db["DBInstanceStatus"] != "available":
        return Check("replica-status", False, f"{replica.identifier} is {db['DBInstanceStatus']}")
    if source != primary.arn:
        return Check("replica-status", False,
                     f"{replica.identifier} replicates from {source or 'nothing (promoted?)'}, "
                     f"not {primary.arn}")
    return Check("replica-status", True, f"{replica.identifier} available, following {primary.identifier}")


def latest_lag_seconds(replica: DbRef, minutes: int = 10) -> Optional[float]:
    """The highest ReplicaLag over the last ``minutes``; None when RDS reported nothing."""
    import boto3

    cloudwatch = boto3.client("cloudwatch", region_name=replica.region)
    now = datetime.now(timezone.utc)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": replica.identifier}],
        StartTime=now - timedelta(minutes=minutes), EndTime=now, Period=60, Statistics=["Maximum"],
    )["Datapoints"]
    return max((p["Maximum"] for p in points), default=None)


def replica_lag(replica: DbRef, threshold_seconds: float) -> Check:
    lag = latest_lag_seconds(replica)
    if lag is None:
        return Check("replica-lag", False, "no ReplicaLag datapoints in 10 minutes: replication may be stopped")
    return Check("replica-lag", lag <= threshold_seconds,
                 f"max {lag:.0f}s over 10 minutes (threshold {threshold_seconds:.0f}s)")


def health_check(check_id: str) -> Check:
    import boto3

    route53 = boto3.client("route53")
    try:
        observations = route53.get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
    except route53.exceptions.NoSuchHealthCheck:
        return Check("health-check", False, f"health check {check_id} does not exist")
    healthy = sum(o["StatusReport"]["Status"].startswith("Success") for o in observations)
    fraction = healthy / len(observations) if observations else 0.0
    return Check("health-check", fraction > ROUTE53_HEALTHY_FRACTION,
                 f"{healthy}/{len(observations)} checkers see the primary healthy")


def _newest(s3, bucket: str, prefix: str = "") -> Optional[dict]:
    newest = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if newest is None or obj["LastModified"] > newest["LastModified"]:
                newest = obj
    return newest


def newest_object_age(bucket: str, region: str, max_age_seconds: int) -> Check:
    import boto3

    s3 = boto3.client("s3", region_name=region)
    found = _newest(s3, bucket)
    name = f"backup-freshness {bucket}"
    if found is None:
        return Check(name, False, "bucket is empty: no backup has ever been written")
    age = (datetime.now(timezone.utc) - found["LastModified"]).total_seconds()
    return Check(name, age <= max_age_seconds,
                 f"newest object {age / 60:.0f} min old (limit {max_age_seconds / 60:.0f} min)")


def bucket_replication(bucket: str, region: str, replica_arn: str) -> Check:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", region_name=region)
    name = f"bucket-replication {bucket}"
    try:
        rules = s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"]
    except ClientError as exc:
        return Check(name, False, f"no replication configuration ({exc.response['Error']['Code']})")
    enabled = [r for r in rules if r["Status"] == "Enabled" and r["Destination"]["Bucket"] == replica_arn]
    return Check(name, bool(enabled),
                 f"replicating to {replica_arn.rsplit(':', 1)[-1]}" if enabled
                 else f"no enabled rule replicates to {replica_arn}")


def _top_prefixes(s3, bucket: str) -> list[str]:
    """The bucket's top-level folders ("" for objects at the root): one per writer here."""
    prefixes, root = [], False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/"):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        root = root or bool(page.get("Contents"))
    return ([""] if root else []) + prefixes


def newest_object_replicated(bucket: str, region: str) -> Check:
    """S3 reports per object whether replication finished: PENDING, COMPLETED or FAILED on the
    source (S3 User Guide, "Getting replication status information"); a configured rule proves
    nothing if the objects never arrive (a KMS permission, say, fails every one).

    Judged per top-level folder: writers encrypt differently (CloudTrail's log files under
    cloudtrail/ with the trail's key, everything else with the bucket's), so replication can fail
    for one writer only, and a frequent writer's newest object would hide the other's failures."""
    import boto3

    s3 = boto3.client("s3", region_name=region)
    name = f"object-replicated {bucket}"
    verdicts = [_replicated(s3, bucket, prefix) for prefix in _top_prefixes(s3, bucket)]
    if not verdicts:
        return Check(name, False, "bucket is empty: nothing to replicate yet")
    failed = [detail for ok, detail in verdicts if not ok]
    return Check(name, not failed, "; ".join(failed or [detail for _, detail in verdicts]))


def _replicated(s3, bucket: str, prefix: str) -> tuple[bool, str]:
    found = _newest(s3, bucket, prefix)
    if found is None:  # emptied since it was listed
        return True, f"{prefix or '/'} is empty now"
    status = s3.head_object(Bucket=bucket, Key=found["Key"]).get("ReplicationStatus")
    age = (datetime.now(timezone.utc) - found["LastModified"]).total_seconds()
    if status == "COMPLETED":
        return True, f"{found['Key']} replicated to the DR twin"
    if status == "PENDING" and age <= REPLICATION_SLA_SECONDS:
        return True, f"{found['Key']} pending, {age / 60:.0f} min old (within the 15-minute RTC SLA)"
    return False, (f"{found['Key']} replication status {status or 'none (no rule matched it)'}, "
                   f"{age / 60:.0f} min old: the DR copy is missing")


def pitr_replication(primary: DbRef, dr_region: str) -> Check:
    db = describe(primary)
    if db is None:
        return Check("pitr-replication", False, f"primary {primary.identifier} not found in {primary.region}")
    replications = [r["DBInstanceAutomatedBackupsArn"] for r in db.get("DBInstanceAutomatedBackupsReplications", [])]
    in_dr = [arn for arn in replications if f":rds:{dr_region}:" in arn]
    return Check("pitr-replication", bool(in_dr),
                 f"automated backups replicated to {dr_region}" if in_dr
                 else f"automated backups of {primary.identifier} are not replicated to {dr_region}")


def run_checks(outputs: dict) -> list[Check]:
    primary = DbRef.parse(stack_output(outputs, "postgres", "primaryArn"), "postgres.primaryArn")
    replica = DbRef.parse(stack_output(outputs, "postgres", "replicaArn"), "postgres.replicaArn")
    threshold = stack_output(outputs, "postgres", "lagAlarmThresholdSeconds")
    check_id = stack_output(outputs, "dnsFailover", "healthCheckId")
    buckets = stack_output(outputs, "backupBuckets")
    if not isinstance(threshold, (int, float)) or threshold <= 0:
        raise InputError(f"postgres.lagAlarmThresholdSeconds must be a positive number (given: {threshold!r})")

    # (name, check): the name is the row an AWS error inside the check is reported under
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("replica-status", lambda: replica_status(primary, replica)),
        ("replica-lag", lambda: replica_lag(replica, threshold)),
        ("health-check", lambda: health_check(check_id)),
        ("pitr-replication", lambda: pitr_replication(primary, replica.region)),
    ]
    for purpose, bucket in sorted(buckets.items()):
        name = stack_output(outputs, "backupBuckets", purpose, "bucket")
        region = stack_output(outputs, "backupBuckets", purpose, "region")
        replica_arn = stack_output(outputs, "backupBuckets", purpose, "replicaBucketArn")
        checks.append((f"bucket-replication {name}", lambda n=name, r=region, a=replica_arn: bucket_replication(n, r, a)))
        checks.append((f"object-replicated {name}", lambda n=name, r=region: newest_object_replicated(n, r)))
        if bucket.get("maxBackupAgeSeconds"):
            checks.append((f"backup-freshness {name}",
                           lambda n=name, r=region, m=bucket["maxBackupAgeSeconds"]: newest_object_age(n, r, m)))
    return [_guarded(name, check) for name, check in checks]


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """An AWS error in one check is that check's failure, not the end of the report."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return check()
    except (ClientError, BotoCoreError) as exc:
        return Check(name, False, f"AWS error: {exc}")


def main(argv: Optional[list[str]] = None) -> int:
    args = parser("dr_readiness", __doc__, IAM).parse_args(argv)
    return run("dr_readiness", lambda: readiness(args.stack, args.outputs))


def readiness(stack: Optional[str], outputs_file: Optional[Path]) -> int:
    checks = run_checks(stack_outputs(stack, outputs_file))
    print_table(f"DR readiness of {stack or outputs_file}:", checks)
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
