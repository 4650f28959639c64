"""Promote the replica of the PostgreSQL writer to a standalone writer, in the replica's region.

    python -m ops.dr_promote --stack prod --dry-run
    python -m ops.dr_promote --outputs outputs.json
    python -m ops.dr_promote --writer-arn ARN --replica-arn ARN --replica-secret-arn ARN --max-lag-seconds 180

Either way round: the failover promotes the DR region's replica; the way back, once the rebuilt
state has made a new replica of the DR writer in the primary region, promotes that one. It is the
fallback of the ARC Region switch plan (and the stage-drill tool) and does its database step.
Preconditions (all must hold, or nothing is changed): the replica exists, is available, and
replicates the writer; its lag over the last 10 minutes is within the limit (pass
--accept-data-loss when the writer's region is down and the lag metric is gone or high); the
writer's master secret has a readable copy in the replica's region (DescribeSecret): until the
next deploy the promoted instance keeps the writer's password, and that copy is where it is read.
Then it promotes and waits until the instance is a standalone, available writer. It changes no
secret: the deploy of the next state creates the new writer's own secret in its region, sets the
instance's password from it and rotates it there (components/postgres_dr.py). The outputs and the
account check are the DR region's; every other call goes to the replica's region. It prints how long promotion took (record it as
dr.replicaPromotionEstimateSeconds) and the next steps.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Callable, Optional

# boto3 and botocore are imported where AWS is called, not here: the Pulumi program imports this
# module for its IAM actions (ops/oncall.py) and must not pay for boto3 (ops/_common.py)
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
    check_account,
    instance_urn,
    load_settings,
    print_table,
    run,
    stack_output,
    stack_outputs,
)
from ops._common import (
    parser as make_parser,
)
from ops.dr_readiness import describe, latest_lag_seconds, replica_status

# In the replica's region (tests/iam_oracle.py records the calls and compares). The
# resources are both regions' (ops/oncall.py): the replica is in either, and the on-call role's
# policy must not change at a failover (IAM's control plane is in us-east-1).
IAM = Permissions((
    READ_OUTPUTS,
    Grant(("rds:DescribeDBInstances", "rds:PromoteReadReplica"), "databases", "preconditions, promotion"),
    # GetMetricStatistics has no resource type (Service Authorization Reference, Amazon CloudWatch)
    Grant(("cloudwatch:GetMetricStatistics",), "*", "ReplicaLag"),
    # metadata only: no GetSecretValue, so no KMS key either
    Grant(("secretsmanager:DescribeSecret",), "master-secrets", "the writer's secret has a copy in the replica's region"),
))

_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:(?P<service>secretsmanager):(?P<region>[a-z0-9-]+):[0-9]{12}:secret:.+$")


def arn_in(value: object, service: str, region: str, what: str) -> str:
    """``value`` if it is an ARN of ``service`` in ``region``; else an InputError naming ``what``."""
    match = _ARN_REGION.match(value) if isinstance(value, str) else None
    if not match or match["service"] != service or match["region"] != region:
        raise InputError(f"{what} must be a {service} ARN in {region} (given: {value!r})")
    return match.string


def secret_check(secret_arn: str, writer: DbRef) -> Check:
    """The writer's master secret has a copy in the replica's region, not scheduled for deletion:
    a replica of the secret in the writer's region (DescribeSecret ``PrimaryRegion``: Secrets
    Manager API Reference). Asked in the replica's region only - the writer's may be down. The
    copy stays as it is (read-only: a replica follows its primary); the promoted instance's clients
    read the password there until the next state's deploy gives the instance its own secret."""
    import boto3
    from botocore.exceptions import ClientError

    region = secret_arn.split(":")[3]
    try:
        secret = boto3.client("secretsmanager", region_name=region).describe_secret(SecretId=secret_arn)
    except ClientError as exc:
        return Check("writer-secret", False, f"{secret_arn} is not readable in {region} "
                                             f"({exc.response['Error']['Code']}): the promoted instance's "
                                             "password would be nowhere to read")
    if secret.get("DeletedDate"):
        return Check("writer-secret", False, f"{secret_arn} is scheduled for deletion")
    origin = secret.get("PrimaryRegion")
    if origin != writer.region:
        return Check("writer-secret", False, f"{secret_arn} is not a copy of the writer's secret in {writer.region} "
                                             f"(its primary region: {origin or 'none, it is standalone'})")
    return Check("writer-secret", True, f"{secret['Name']}: readable in {region}, a copy of the {origin} secret")


def preconditions(writer: DbRef, replica: DbRef, max_lag: float, accept_data_loss: bool,
                  secret_arn: str) -> list[Check]:
    status = replica_status(writer, replica)
    checks = [status]
    if not status.ok:
        return checks  # nothing else is meaningful about a replica that is not one
    checks.append(secret_check(secret_arn, writer))
    lag = latest_lag_seconds(replica)
    if accept_data_loss:
        checks.append(Check("replica-lag", True, f"not enforced (--accept-data-loss); last known lag {lag}"))
    elif lag is None:
        checks.append(Check("replica-lag", False, "no ReplicaLag datapoints in 10 minutes; if the writer's "
                                                  "region is down, re-run with --accept-data-loss"))
    else:
        checks.append(Check("replica-lag", lag <= max_lag, f"max {lag:.0f}s over 10 minutes (limit {max_lag:.0f}s)"))
    return checks


def promote(replica: DbRef, retention_days: int, timeout_seconds: float,
            sleep: Callable[[float], None] = time.sleep) -> float:
    """Promote and wait until RDS reports a standalone, available instance; return seconds taken."""
    import boto3

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


def next_steps(writer: DbRef, replica: DbRef, seconds: float, secret_arn: str, stack: Optional[str],
               dr_region: Optional[str]) -> str:
    """What the operator does next: deploy the state the promotion started (docs/runbooks.md,
    "Region switch"). Never a swap of aws.primaryRegion/drRegion: a provider whose region changes
    replaces every resource it manages (synth diff says so; prod's `protect` refuses it), and a
    standalone instance cannot be made a replica again in place (terraform-provider-aws #16054,
    "cannot elect new source database for replication")."""
    name = stack or "<stack>"
    failover = (f"""  3. Commit `dr.activeRegion: dr` in Pulumi.{name}.yaml and deploy the failed-over state by its
     target list, which needs nothing from {writer.region} (docs/runbooks.md, "Deploy the failed-over
     state"): `python -m synth targets --stack {name} --state failed-over`. That deploy creates
     {replica.identifier}'s own master secret in {replica.region}, sets the instance's password
     from it and rotates it there; clients then read postgres.writerSecretArn.""",
                f"""  5. {writer.identifier} must not come back as a second writer: once its region returns, keep
     clients away from it; it is retired deliberately at the rebuild (final snapshot, named
     approval).""")
    switch_back = (f"""  3. Commit the switched-back state in Pulumi.{name}.yaml: `dr.activeRegion: primary`, the
     generations unchanged, and deploy it whole (both regions answer): it creates
     {replica.identifier}'s own master secret in {replica.region}, sets the instance's password
     from it and rotates it there; clients then read postgres.writerSecretArn. {writer.identifier}
     stays exactly as it was, still protected: a live writer is never released.""",
                   f"""  5. Then retire {writer.identifier} (prod: its URN and its secret's in `retire`, with its
     rds-deletion-protection exception: a deploy of its own) and raise postgres.generations.dr to
     postgres.generations.primary in the change that removes the entries: that deploy deletes it
     (final snapshot), schedules its secret's deletion and creates the new replica in its region.""")
    if dr_region is None:  # flags without --stack: which region is the DR one is not known here
        deploy = "\n".join([f"  If {replica.region} is the stack's DR region (a failover):", *failover,
                            "  Otherwise (the way back):", *switch_back])
        after = ""
    else:
        deploy, after = failover if replica.region == dr_region else switch_back
        after += "\n"
    return f"""
{replica.identifier} in {replica.region} is now a standalone writer ({seconds:.0f}s).
Until the next deploy it keeps {writer.identifier}'s password, readable in {replica.region} from
{secret_arn}
(the copy of {writer.identifier}'s secret: read-only, and its host names {writer.identifier} -
connect to {replica.identifier}'s endpoint).
Next (docs/runbooks.md, "Region switch: fail over, rebuild, switch back"):
  1. Traffic: the Region switch plan moves it with its move-traffic step (run from {replica.region});
     without the plan, DNS stays where it is until the failover records are changed by hand.
  2. pulumi refresh --stack {name} --target '{instance_urn(stack, replica.identifier)}'
     (the state still describes {replica.identifier} as a replica of {writer.identifier}; a call to
     {replica.region} only)
{deploy}
  4. Do NOT swap aws.primaryRegion/drRegion (or network.primary/dr) in Pulumi.{name}.yaml: a
     provider's region change replaces every resource it manages - buckets, keys, both databases
     (prod refuses: they are protected). Run `python -m synth diff` on any stack change first.
{after}  6. If {seconds:.0f}s exceeds dr.replicaPromotionEstimateSeconds, raise it: the DR budget uses it.
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = command_parser()
    args = parser.parse_args(argv)
    return run("dr_promote", lambda: promote_command(args))


def command_parser():
    parser = make_parser("dr_promote", __doc__, IAM)
    parser.add_argument("--writer-arn", "--primary-arn", dest="writer_arn",
                        help="ARN of the writer the replica must follow")
    parser.add_argument("--replica-arn", help="ARN of the read replica to promote")
    parser.add_argument("--replica-secret-arn",
                        help="the writer's master secret's copy in the replica's region")
    parser.add_argument("--max-lag-seconds", type=float, help="refuse above this lag (default: the alarm threshold)")
    parser.add_argument("--retention-days", type=int, default=None, help="backup retention after promotion")
    parser.add_argument("--accept-data-loss", action="store_true", help="promote whatever the lag")
    parser.add_argument("--timeout-seconds", type=float, default=3600)
    parser.add_argument("--dry-run", action="store_true", help="check preconditions, change nothing")
    return parser


def promote_command(args) -> int:
    try:
        if args.writer_arn or args.replica_arn:
            if not (args.writer_arn and args.replica_arn and args.max_lag_seconds and args.replica_secret_arn):
                raise InputError("with flags, give all of --writer-arn, --replica-arn, --replica-secret-arn and "
                                 "--max-lag-seconds")
            writer_arn, replica_arn, secret_arn = args.writer_arn, args.replica_arn, args.replica_secret_arn
            max_lag, retention = args.max_lag_seconds, args.retention_days or 7
            dr_region = load_settings(args.stack, None).aws.dr_region if args.stack else None
        else:
            outputs = stack_outputs(args.stack, args.outputs)
            writer_arn = stack_output(outputs, "postgres", "writerArn")
            if "replicaArn" not in (outputs.get("postgres") or {}):
                raise InputError("nothing to promote: the outputs name no replica (postgres.replicaArn): the writer "
                                 f"{writer_arn} has none until the rebuilt state is deployed")
            replica_arn = stack_output(outputs, "postgres", "replicaArn")
            # the writer's secret's copy in the replica's region (present while a replica exists)
            secret_arn = args.replica_secret_arn or stack_output(outputs, "postgres", "replicaSecretArn")
            max_lag = args.max_lag_seconds or stack_output(outputs, "postgres", "lagAlarmThresholdSeconds")
            retention = args.retention_days or stack_output(outputs, "postgres", "backupRetentionDays")
            dr_region = stack_output(outputs, "aws", "drRegion")
        writer = DbRef.parse(writer_arn, "the writer ARN")
        replica = DbRef.parse(replica_arn, "the replica ARN")
        if writer.region == replica.region:
            raise InputError(f"writer and replica are both in {writer.region}: this is not a cross-region pair")
        arn_in(secret_arn, "secretsmanager", replica.region, "the writer's secret's copy in the replica's region")
        if args.writer_arn:  # the outputs' account was checked when they were read
            check_account(writer.account, replica.region)
    except InputError as exc:
        print(f"dr_promote: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    checks = preconditions(writer, replica, max_lag, args.accept_data_loss, secret_arn)
    print_table(f"Preconditions for promoting {replica.identifier}:", checks)
    if not all(c.ok for c in checks):
        print("Refusing to promote: nothing was changed.")
        return EXIT_FAILED
    if args.dry_run:
        print(f"Dry run: would promote {replica.arn} with {retention}-day backup retention. Nothing was changed.")
        return EXIT_OK
    from botocore.exceptions import ClientError

    try:
        seconds = promote(replica, int(retention), args.timeout_seconds)
    except (TimeoutError, ClientError) as exc:
        print(f"dr_promote: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(next_steps(writer, replica, seconds, secret_arn, args.stack, dr_region))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
