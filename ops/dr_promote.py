"""Promote the DR read replica to a standalone primary (regional failover of PostgreSQL).

    python -m ops.dr_promote --stack prod --dry-run
    python -m ops.dr_promote --outputs outputs.json
    python -m ops.dr_promote --primary-arn ARN --replica-arn ARN --max-lag-seconds 180

Preconditions (all must hold, or nothing is changed): the replica exists, is available, and
replicates from the expected primary; its lag over the last 10 minutes is within the limit
(pass --accept-data-loss when the primary region is down and the lag metric is gone or high);
the master secret's DR copy is still a replica of the primary region's secret, and the DR
region's rotation function exists. Then it promotes, waits until the instance is a standalone,
available primary, and makes the master secret's DR copy the promoted database's own: promoted
to a standalone secret (StopReplicationToReplica, called in the DR region), pointed at the
promoted instance (the rotation function logs in to the secret's host), and rotated on the same
schedule by the DR region's function. Every call goes to the DR region only. It prints how long
promotion took (record it as dr.replicaPromotionEstimateSeconds), the secret and what to change
in the stack.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Callable, Optional

import boto3
from botocore.exceptions import ClientError

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
    print_table,
    run,
    stack_output,
    stack_outputs,
)
from ops._common import (
    parser as make_parser,
)
from ops.dr_readiness import describe, latest_lag_seconds, replica_status

# Everything in the DR region (tests/iam_oracle.py records the calls and compares).
IAM = Permissions((
    READ_OUTPUTS,
    Grant(("rds:DescribeDBInstances", "rds:PromoteReadReplica"), "dr-database", "preconditions, promotion"),
    # GetMetricStatistics has no resource type (Service Authorization Reference, Amazon CloudWatch)
    Grant(("cloudwatch:GetMetricStatistics",), "*", "ReplicaLag"),
    Grant(("secretsmanager:DescribeSecret", "secretsmanager:StopReplicationToReplica",
           "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:RotateSecret"),
          "dr-master-secret", "the master secret's DR copy becomes the promoted database's own"),
    Grant(("lambda:GetFunction",), "dr-rotation-function", "the DR rotation function exists"),
    # RotateSecret: "You also need lambda:InvokeFunction" on the function (Secrets Manager API Reference)
    Grant(("lambda:InvokeFunction",), "dr-rotation-function", "RotateSecret", implied=True),
    # the secret's customer key, through Secrets Manager only, for this secret only (encryption
    # context SecretARN: Secrets Manager User Guide, "Secret encryption and decryption")
    Grant(("kms:Decrypt", "kms:GenerateDataKey"), "dr-master-secret-key", "GetSecretValue, PutSecretValue",
          implied=True),
))

_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:(?P<service>secretsmanager|lambda):(?P<region>[a-z0-9-]+):[0-9]{12}:.+$")


def arn_in(value: object, service: str, region: str, what: str) -> str:
    """``value`` if it is an ARN of ``service`` in ``region``; else an InputError naming ``what``."""
    match = _ARN_REGION.match(value) if isinstance(value, str) else None
    if not match or match["service"] != service or match["region"] != region:
        raise InputError(f"{what} must be a {service} ARN in {region} (given: {value!r})")
    return match.string


def secret_check(secret_arn: str, primary: DbRef) -> Check:
    """The master secret's DR copy exists and is still a replica of the primary region's secret:
    the state StopReplicationToReplica starts from (DescribeSecret PrimaryRegion)."""
    region = secret_arn.split(":")[3]
    try:
        secret = boto3.client("secretsmanager", region_name=region).describe_secret(SecretId=secret_arn)
    except ClientError as exc:
        return Check("master-secret", False, f"{secret_arn}: {exc.response['Error']['Code']}")
    origin = secret.get("PrimaryRegion")
    if origin != primary.region:
        return Check("master-secret", False, f"{secret_arn} is not a replica of {primary.region}'s secret "
                                             f"(primary region: {origin or 'none, already standalone'})")
    return Check("master-secret", True, f"replica of the {origin} secret")


def function_check(function_arn: str) -> Check:
    region = function_arn.split(":")[3]
    try:
        boto3.client("lambda", region_name=region).get_function(FunctionName=function_arn)
    except ClientError as exc:
        return Check("rotation-function", False, f"{function_arn}: {exc.response['Error']['Code']}")
    return Check("rotation-function", True, function_arn)


def preconditions(primary: DbRef, replica: DbRef, max_lag: float, accept_data_loss: bool,
                  secret_arn: str, function_arn: str) -> list[Check]:
    status = replica_status(primary, replica)
    checks = [status]
    if not status.ok:
        return checks  # nothing else is meaningful about a replica that is not one
    checks += [secret_check(secret_arn, primary), function_check(function_arn)]
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


def promote_secret(replica: DbRef, secret_arn: str, function_arn: str, rotation_days: int) -> str:
    """Make the master secret's DR copy the promoted instance's own, all in the DR region:
    StopReplicationToReplica ("You must call this operation from the Region in which you want to
    promote the replica": Secrets Manager API Reference), then a new current version whose host is
    the promoted instance (the password is unchanged: the database replicated it), then rotation
    with the DR region's function. Returns the secret's ARN."""
    client = boto3.client("secretsmanager", region_name=replica.region)
    client.stop_replication_to_replica(SecretId=secret_arn)
    value = json.loads(client.get_secret_value(SecretId=secret_arn)["SecretString"])
    endpoint = (describe(replica) or {}).get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise RuntimeError(f"{replica.identifier} reports no endpoint; the secret {secret_arn} is standalone "
                           "but still names the old primary: put the new host into it by hand")
    value.update(host=endpoint["Address"], port=endpoint.get("Port", value.get("port")))
    client.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(value))
    # not immediately: the password works; rotation goes on at the stack's schedule
    client.rotate_secret(SecretId=secret_arn, RotationLambdaARN=function_arn,
                         RotationRules={"AutomaticallyAfterDays": rotation_days}, RotateImmediately=False)
    return secret_arn


def next_steps(primary: DbRef, replica: DbRef, seconds: float, secret_arn: str) -> str:
    """What the operator does next. Not a swap of aws.primaryRegion/drRegion: a provider whose
    region changes replaces every resource it manages (synth diff says so; prod's `protect`
    refuses it), and a standalone instance cannot be made a replica again in place
    (terraform-provider-aws #16054, "cannot elect new source database for replication")."""
    return f"""
{replica.identifier} in {replica.region} is now a standalone primary ({seconds:.0f}s).
Its master credentials: {secret_arn}, now a standalone secret naming it and rotating in
{replica.region} (the primary region's secret no longer replicates to it).
Next:
  1. Point the database clients at {replica.identifier} (DNS fails the API over by itself).
  2. pulumi refresh --stack <stack>   (the state still describes a replica of {primary.identifier})
  3. Do NOT swap aws.primaryRegion/drRegion (or network.primary/dr) in Pulumi.<stack>.yaml: a
     provider's region change replaces every resource it manages - buckets, keys, both databases
     (prod refuses: they are protected). Run `python -m synth diff` on any stack change first.
  4. Commit `dr.activeRegion: dr` in Pulumi.<stack>.yaml before the next `pulumi up`: the stack
     file still declares {replica.identifier} a replica, and neither RDS nor the provider can turn
     a standalone instance back into one in place. With it, the program declares the promoted
     instance the writer and changes nothing in the primary region (docs/runbooks.md, "Round trip:
     the active region as configuration"; docs/decisions/018-active-region-is-state.md).
  5. The old primary {primary.identifier} must not come back as a second writer: once its region
     returns, stop clients from reaching it; retire it deliberately (docs/contributor.md, "Retiring a
     protected resource deliberately"), its final snapshot and replicated backups remain.
  6. If {seconds:.0f}s exceeds dr.replicaPromotionEstimateSeconds, raise it: the DR budget uses it.
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = command_parser()
    args = parser.parse_args(argv)
    return run("dr_promote", lambda: promote_command(args))


def command_parser():
    parser = make_parser("dr_promote", __doc__, IAM)
    parser.add_argument("--primary-arn", help="ARN of the primary the replica must follow")
    parser.add_argument("--replica-arn", help="ARN of the DR read replica to promote")
    parser.add_argument("--max-lag-seconds", type=float, help="refuse above this lag (default: the alarm threshold)")
    parser.add_argument("--retention-days", type=int, default=None, help="backup retention after promotion")
    parser.add_argument("--dr-secret-arn", help="the master secret's replica in the DR region")
    parser.add_argument("--rotation-function-arn", help="the DR region's rotation function")
    parser.add_argument("--rotation-days", type=int, help="rotation schedule after promotion (default: the stack's)")
    parser.add_argument("--accept-data-loss", action="store_true", help="promote whatever the lag")
    parser.add_argument("--timeout-seconds", type=float, default=3600)
    parser.add_argument("--dry-run", action="store_true", help="check preconditions, change nothing")
    return parser


def promote_command(args) -> int:
    try:
        if args.primary_arn or args.replica_arn:
            if not (args.primary_arn and args.replica_arn and args.max_lag_seconds and args.dr_secret_arn
                    and args.rotation_function_arn):
                raise InputError("with flags, give all of --primary-arn, --replica-arn, --max-lag-seconds, "
                                 "--dr-secret-arn and --rotation-function-arn")
            primary_arn, replica_arn = args.primary_arn, args.replica_arn
            max_lag, retention = args.max_lag_seconds, args.retention_days or 7
            secret_arn, function_arn = args.dr_secret_arn, args.rotation_function_arn
            rotation_days = args.rotation_days or 7
        else:
            outputs = stack_outputs(args.stack, args.outputs)
            primary_arn = stack_output(outputs, "postgres", "primaryArn")
            replica_arn = stack_output(outputs, "postgres", "replicaArn")
            max_lag = args.max_lag_seconds or stack_output(outputs, "postgres", "lagAlarmThresholdSeconds")
            retention = args.retention_days or stack_output(outputs, "postgres", "backupRetentionDays")
            secret_arn = args.dr_secret_arn or stack_output(outputs, "postgres", "drMasterSecretArn")
            function_arn = args.rotation_function_arn or stack_output(outputs, "postgres", "drRotationFunctionArn")
            rotation_days = args.rotation_days or stack_output(outputs, "postgres", "masterSecretRotationDays")
        primary = DbRef.parse(primary_arn, "the primary ARN")
        replica = DbRef.parse(replica_arn, "the replica ARN")
        if primary.region == replica.region:
            raise InputError(f"primary and replica are both in {primary.region}: this is not a cross-region pair")
        arn_in(secret_arn, "secretsmanager", replica.region, "the master secret's DR copy")
        arn_in(function_arn, "lambda", replica.region, "the DR rotation function")
        if not isinstance(rotation_days, int) or not 1 <= rotation_days <= 1000:
            raise InputError(f"the rotation schedule must be 1-1000 days (given: {rotation_days!r})")
        if args.primary_arn:  # the outputs' account was checked when they were read
            check_account(primary.account, replica.region)
    except InputError as exc:
        print(f"dr_promote: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    checks = preconditions(primary, replica, max_lag, args.accept_data_loss, secret_arn, function_arn)
    print_table(f"Preconditions for promoting {replica.identifier}:", checks)
    if not all(c.ok for c in checks):
        print("Refusing to promote: nothing was changed.")
        return EXIT_FAILED
    if args.dry_run:
        print(f"Dry run: would promote {replica.arn} with {retention}-day backup retention. Nothing was changed.")
        return EXIT_OK
    try:
        seconds = promote(replica, int(retention), args.timeout_seconds)
        secret_arn = promote_secret(replica, secret_arn, function_arn, rotation_days)
    except (TimeoutError, RuntimeError, ClientError) as exc:
        print(f"dr_promote: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(next_steps(primary, replica, seconds, secret_arn))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
