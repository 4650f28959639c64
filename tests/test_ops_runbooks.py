"""The DR runbooks against moto's AWS, fed with the real prod stack's outputs.

A fixture builds the live world those outputs describe (primary and cross-region replica, health
check, backup buckets with replication and fresh backups, lag metrics); each test then breaks one
thing and expects the runbook to notice, or to refuse and change nothing.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from ops import dr_promote, dr_readiness
from ops._common import instance_urn, outputs_parameter, runbook_document
from tests.conftest import fake_aws_credentials, stack_settings, synthesized
from tests.iam_oracle import assert_exactly_covered, help_lists, recorded

ACCOUNT = stack_settings("prod").aws.account_id  # moto must be the account the outputs name


@pytest.fixture
def outputs(tmp_path) -> dict:
    document = json.loads(json.dumps(synthesized("prod").outputs))  # a private copy
    return document


@pytest.fixture
def world(monkeypatch, outputs, tmp_path):
    fake_aws_credentials(monkeypatch, ACCOUNT)
    with mock_aws():
        _fix_moto_promotion(monkeypatch)
        _report_replication_status(monkeypatch)
        pg = outputs["postgres"]
        east, west = boto3.client("rds", "us-east-1"), boto3.client("rds", "us-west-2")
        east.create_db_instance(
            DBInstanceIdentifier="intelgraph-pg-primary", Engine="postgres", DBInstanceClass="db.r6g.xlarge",
            AllocatedStorage=200, MasterUsername="intelgraph_admin", MasterUserPassword="bootstrap-rotated-away",
            BackupRetentionPeriod=14)
        west.create_db_instance_read_replica(DBInstanceIdentifier="intelgraph-pg-replica",
                                             SourceDBInstanceIdentifier=pg["primaryArn"])
        _replicate_automated_backups("intelgraph-pg-primary")
        _master_secret(pg, east.describe_db_instances(
            DBInstanceIdentifier="intelgraph-pg-primary")["DBInstances"][0]["Endpoint"]["Address"])
        put_lag(30)

        check = boto3.client("route53").create_health_check(CallerReference="synth", HealthCheckConfig={
            "Type": "HTTPS", "FullyQualifiedDomainName": "primary.api.intelgraph.example.com",
            "Port": 443, "ResourcePath": "/healthz", "RequestInterval": 10, "FailureThreshold": 3})
        outputs["dnsFailover"]["healthCheckId"] = check["HealthCheck"]["Id"]

        for bucket in outputs["backupBuckets"].values():
            s3, dr_s3 = boto3.client("s3", "us-east-1"), boto3.client("s3", "us-west-2")
            s3.create_bucket(Bucket=bucket["bucket"])
            dr_s3.create_bucket(Bucket=bucket["replicaBucket"],
                                CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
            for client, name in ((s3, bucket["bucket"]), (dr_s3, bucket["replicaBucket"])):
                client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_replication(Bucket=bucket["bucket"], ReplicationConfiguration={
                "Role": f"arn:aws:iam::{ACCOUNT}:role/replication",
                "Rules": [{"ID": "to-dr-region", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
                           "DeleteMarkerReplication": {"Status": "Enabled"},
                           "Destination": {"Bucket": bucket["replicaBucketArn"]}}]})
            s3.put_object(Bucket=bucket["bucket"], Key="graph/backup-latest.tar", Body=b"backup")
            REPLICATION_STATUS[(bucket["bucket"], "graph/backup-latest.tar")] = "COMPLETED"
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        yield path


MASTER_PASSWORD = "set-by-the-last-rotation"


def _master_secret(pg: dict, primary_host: str) -> None:
    """The writer's master secret in its region, replicated to the DR region under a DR key (one
    secret per writer: components/postgres_dr.py). ``replicaSecretArn`` is the copy in the replica's
    region, which ops.dr_promote checks; moto's ARN suffix is its own, so the outputs take moto's."""
    east, west = boto3.client("secretsmanager", "us-east-1"), boto3.client("secretsmanager", "us-west-2")
    dr_key = boto3.client("kms", "us-west-2").create_key(Description="intelgraph-pg-dr-secret-key")["KeyMetadata"]
    created = east.create_secret(Name="intelgraph-pg-master", SecretString=json.dumps({
        "engine": "postgres", "host": primary_host, "port": 5432, "dbname": "intelgraph",
        "username": "intelgraph_admin", "password": MASTER_PASSWORD, "ssl": "true"}),
        AddReplicaRegions=[{"Region": "us-west-2", "KmsKeyId": dr_key["Arn"]}])
    copy = west.describe_secret(SecretId="intelgraph-pg-master")["ARN"]
    pg.update(writerSecretArn=created["ARN"], replicaSecretArn=copy)


def put_lag(seconds: float, replica: str = "intelgraph-pg-replica", region: str = "us-west-2") -> None:
    boto3.client("cloudwatch", region).put_metric_data(Namespace="AWS/RDS", MetricData=[{
        "MetricName": "ReplicaLag", "Value": seconds, "Unit": "Seconds",
        "Timestamp": datetime.now(timezone.utc) - timedelta(minutes=1),
        "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": replica}]}])


def _replicate_automated_backups(identifier: str) -> None:
    # moto has no StartDBInstanceAutomatedBackupsReplication; set what RDS then reports.
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT]["us-east-1"].databases[identifier].db_instance_automated_backups_replications = [
        {"DBInstanceAutomatedBackupsArn": f"arn:aws:rds:us-west-2:{ACCOUNT}:auto-backup:ab-synth"}]


REPLICATION_STATUS: dict[tuple[str, str], str] = {}


def _report_replication_status(monkeypatch) -> None:
    # moto does not replicate, so it never sends the x-amz-replication-status header S3 puts on
    # every object a replication rule matches (PENDING, then COMPLETED or FAILED). Send it as S3
    # would, so boto3 parses it into ReplicationStatus through its real response model.
    from moto.s3.models import FakeKey

    REPLICATION_STATUS.clear()
    original = FakeKey.response_dict.fget

    def response_dict(self):
        headers = original(self)
        status = REPLICATION_STATUS.get((self.bucket_name, self.name))
        if status:
            headers["x-amz-replication-status"] = status
        return headers

    monkeypatch.setattr(FakeKey, "response_dict", property(response_dict))


def _fix_moto_promotion(monkeypatch) -> None:
    # moto keeps ReadReplicaSourceDBInstanceIdentifier after promotion, and the source keeps listing
    # the replica; RDS clears both (a standalone instance replicates nothing).
    from moto.rds.models import RDSBackend

    original = RDSBackend.promote_read_replica

    def promote(self, db_kwargs):
        source = self.databases[db_kwargs["db_instance_identifier"]].source_db_instance_identifier
        database = original(self, db_kwargs)
        if source:
            with contextlib.suppress(Exception):  # a source already gone (deleted) lists nothing
                replicas = self.find_db_from_id(source).replicas
                for name in (database.db_instance_arn, database.db_instance_identifier):
                    if name in replicas:
                        replicas.remove(name)
        database.source_db_instance_identifier = None
        return database

    monkeypatch.setattr(RDSBackend, "promote_read_replica", promote)


def readiness(world, capsys) -> tuple[int, str]:
    code = dr_readiness.main(["--outputs", str(world)])
    return code, capsys.readouterr().out


def test_healthy_world_passes_every_check(world, capsys):
    code, out = readiness(world, capsys)
    assert code == 0, out
    for name in ("replica-status", "replica-lag", "health-check", "pitr-replication",
                 "bucket-replication intelgraph-prod-neo4j-backups", "backup-freshness intelgraph-prod-neo4j"):
        assert f"PASS  {name}" in out
    assert "FAIL" not in out


def test_lagging_replica_fails(world, capsys):
    put_lag(900)
    code, out = readiness(world, capsys)
    assert code == 1 and "FAIL  replica-lag" in out and "max 900s" in out


def test_missing_replica_fails(world, capsys):
    # moto cannot delete a cross-region replica (its bookkeeping of the primary's replicas
    # breaks); make the replica vanish from the DR region directly.
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT]["us-west-2"].databases.pop("intelgraph-pg-replica")
    code, out = readiness(world, capsys)
    assert code == 1 and "FAIL  replica-status" in out and "does not exist in us-west-2" in out


def test_stale_backup_fails(world, capsys, monkeypatch):
    later = datetime.now(timezone.utc) + timedelta(hours=3)

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(dr_readiness, "datetime", Clock)
    code, out = readiness(world, capsys)
    assert code == 1
    assert "FAIL  backup-freshness intelgraph-prod-neo4j" in out and "limit 95 min" in out


def test_bucket_without_replication_fails(world, capsys, outputs):
    boto3.client("s3", "us-east-1").delete_bucket_replication(Bucket=outputs["backupBuckets"]["logs"]["bucket"])
    code, out = readiness(world, capsys)
    assert code == 1 and "FAIL  bucket-replication intelgraph-prod-logs" in out


@pytest.mark.parametrize("status,passes", [("COMPLETED", True), ("FAILED", False), ("PENDING", True), (None, False)])
def test_newest_backup_must_have_reached_the_dr_twin(world, capsys, outputs, status, passes):
    from moto.s3.models import s3_backends

    bucket = outputs["backupBuckets"]["neo4j"]["bucket"]
    older = s3_backends[ACCOUNT]["aws"].buckets[bucket].keys["graph/backup-latest.tar"]
    older.last_modified -= timedelta(minutes=10)  # S3 lists LastModified in whole seconds
    boto3.client("s3", "us-east-1").put_object(Bucket=bucket, Key="graph/backup-newer.tar", Body=b"newer")
    if status:
        REPLICATION_STATUS[(bucket, "graph/backup-newer.tar")] = status
    code, out = readiness(world, capsys)
    line = next(x for x in out.splitlines() if f"object-replicated {bucket}" in x)
    assert line.strip().startswith("PASS" if passes else "FAIL"), line
    assert "graph/backup-newer.tar" in line  # the newest object, not any object
    assert code == (0 if passes else 1), out


def test_a_writer_whose_objects_fail_to_replicate_is_not_hidden_by_another_writer(world, capsys, outputs):
    # The logs bucket has two writers with two keys: CloudTrail (its own key, under cloudtrail/)
    # and the log shipper (the bucket's key). The replication role needs kms:Decrypt on the key of
    # each object (S3 User Guide, "Replicating objects created with server-side encryption"), so
    # one writer's objects can all fail while the other's, newer and more frequent, replicate.
    from moto.s3.models import s3_backends

    bucket = outputs["backupBuckets"]["logs"]["bucket"]
    s3 = boto3.client("s3", "us-east-1")
    s3.put_object(Bucket=bucket, Key="containers/app/2026/12/01/part-0001.gz", Body=b"log")
    keys = s3_backends[ACCOUNT]["aws"].buckets[bucket].keys
    keys["containers/app/2026/12/01/part-0001.gz"].last_modified -= timedelta(minutes=10)
    s3.put_object(Bucket=bucket, Key="cloudtrail/AWSLogs/x/CloudTrail/us-east-1/f.json.gz", Body=b"trail")
    REPLICATION_STATUS[(bucket, "containers/app/2026/12/01/part-0001.gz")] = "FAILED"
    REPLICATION_STATUS[(bucket, "cloudtrail/AWSLogs/x/CloudTrail/us-east-1/f.json.gz")] = "COMPLETED"
    code, out = readiness(world, capsys)
    line = next(x for x in out.splitlines() if f"object-replicated {bucket}" in x)
    assert code == 1 and line.strip().startswith("FAIL"), line
    assert "containers/app/2026/12/01/part-0001.gz replication status FAILED" in line


def test_a_pending_replica_past_the_rtc_sla_fails(world, capsys, monkeypatch):
    for key in list(REPLICATION_STATUS):
        REPLICATION_STATUS[key] = "PENDING"
    later = datetime.now(timezone.utc) + timedelta(minutes=20)

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(dr_readiness, "datetime", Clock)
    code, out = readiness(world, capsys)
    assert code == 1 and "FAIL  object-replicated intelgraph-prod-neo4j" in out and "PENDING" in out


def test_an_aws_error_fails_the_check_it_happened_in_by_name(world, capsys, outputs):
    # ListObjectsV2 on a bucket that is gone answers 404 NoSuchBucket (Amazon S3 API Reference,
    # ListObjectsV2 "Errors"): a ClientError inside the check, reported as that check's row.
    outputs["backupBuckets"]["neo4j"]["bucket"] = "intelgraph-prod-neo4j-gone"
    world.write_text(json.dumps(outputs))
    code, out = readiness(world, capsys)
    assert code == 1, out
    for name in ("object-replicated intelgraph-prod-neo4j-gone", "backup-freshness intelgraph-prod-neo4j-gone"):
        line = next(x for x in out.splitlines() if name in x)
        assert line.strip().startswith("FAIL") and "AWS error" in line and "NoSuchBucket" in line, line
    assert "<lambda>" not in out
    assert "PASS  replica-status" in out  # the other checks still ran


def test_missing_output_is_a_clear_input_error(tmp_path, capsys, monkeypatch):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"postgres": {}}))
    assert dr_readiness.main(["--outputs", str(path)]) == 2
    assert "missing outputs: stack output aws is missing" in capsys.readouterr().err  # whose, before anything
    fake_aws_credentials(monkeypatch, ACCOUNT)
    path.write_text(json.dumps({"aws": {"accountId": ACCOUNT, "drRegion": "us-west-2"}, "postgres": {}}))
    with mock_aws():
        assert dr_readiness.main(["--outputs", str(path)]) == 2
    assert "missing outputs: stack output postgres.primaryArn is missing" in capsys.readouterr().err


def test_malformed_arn_and_unreadable_file_are_clear_input_errors(tmp_path, capsys):
    assert dr_promote.main(["--writer-arn", "db-primary", "--replica-arn", "x", "--max-lag-seconds", "60",
                            "--replica-secret-arn", f"arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:s"]) == 2
    assert "must be an RDS instance ARN" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert dr_readiness.main(["--outputs", str(tmp_path / "bad.json")]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert dr_readiness.main([]) == 2
    assert "--stack NAME (reads the outputs from the DR region) or --outputs FILE" in capsys.readouterr().err


def _replica():
    [db] = boto3.client("rds", "us-west-2").describe_db_instances(
        DBInstanceIdentifier="intelgraph-pg-replica")["DBInstances"]
    return db


def test_promotion_happy_path(world, capsys):
    code = dr_promote.main(["--outputs", str(world), "--timeout-seconds", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert not _replica().get("ReadReplicaSourceDBInstanceIdentifier")
    assert "is now a standalone writer" in out
    # the refresh names the promoted instance's URN as the engine has it (the deploy after must not
    # call PromoteReadReplica on a standalone instance: rds/instance.go resourceInstanceUpdate)
    assert f"pulumi refresh --stack <stack> --target '{instance_urn(None, 'intelgraph-pg-replica')}'" in out
    assert instance_urn("prod", "intelgraph-pg-replica") in {r.urn for r in synthesized("prod").resources}



def test_the_next_steps_never_swap_the_stack_regions(world, capsys):
    # A provider whose region changes replaces every resource it manages (pulumi/pulumi-aws#4000;
    # synth diff marks them, prod's protect refuses), and a standalone instance cannot be made a
    # replica again (terraform-provider-aws #16054, "cannot elect new source database for
    # replication"): the printed steps must not advise a region swap, and must hold `up` back.
    assert dr_promote.main(["--outputs", str(world), "--timeout-seconds", "5"]) == 0
    out = capsys.readouterr().out
    assert "primaryRegion=" not in out and "drRegion=" not in out
    assert "Do NOT swap aws.primaryRegion/drRegion" in out and "Commit `dr.activeRegion: dr`" in out
    assert out.index("pulumi refresh") < out.index("Do NOT swap")


def test_the_promotion_changes_no_secret_and_says_where_the_password_is_until_the_deploy(world, capsys, outputs):
    # One secret per writer (components/postgres_dr.py): the promoted instance keeps the writer's
    # password until the failed-over deploy creates its own secret, sets the password from it and
    # rotates it in the DR region. The writer's secret and its DR copy stay as they are: the copy
    # is a replica (read-only), and the writer's region may be down.
    pg = outputs["postgres"]
    west = boto3.client("secretsmanager", "us-west-2")
    before = west.describe_secret(SecretId=pg["replicaSecretArn"])
    assert before["PrimaryRegion"] == "us-east-1"
    assert dr_promote.main(["--outputs", str(world), "--timeout-seconds", "5"]) == 0
    out = capsys.readouterr().out
    after = west.describe_secret(SecretId=pg["replicaSecretArn"])
    assert after["PrimaryRegion"] == "us-east-1" and after["ARN"] == before["ARN"]
    assert after.get("LastChangedDate") == before.get("LastChangedDate") and not after.get("RotationEnabled")
    value = json.loads(west.get_secret_value(SecretId=pg["replicaSecretArn"])["SecretString"])
    assert value["password"] == MASTER_PASSWORD  # the database replicated it: the promoted instance has it
    # the copy, and that the failed-over deploy (by its target list) gives the writer its own secret
    assert "PASS  writer-secret" in out and pg["replicaSecretArn"] in out
    assert "python -m synth targets --stack <stack> --state failed-over" in out
    assert "own master secret in us-west-2" in out and "postgres.writerSecretArn" in out


def test_an_unreadable_secret_copy_stops_the_promotion_before_anything_changes(world, capsys, outputs):
    # the copy is where the promoted instance's password is read until the next deploy: without
    # it, promoting would leave a writer nobody can log in to
    boto3.client("secretsmanager", "us-east-1").remove_regions_from_replication(
        SecretId=outputs["postgres"]["writerSecretArn"], RemoveReplicaRegions=["us-west-2"])
    assert dr_promote.main(["--outputs", str(world), "--timeout-seconds", "5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  writer-secret" in out and "is not readable in us-west-2" in out and "nothing was changed" in out
    assert _replica()["ReadReplicaSourceDBInstanceIdentifier"]  # still a replica


def test_nothing_to_promote_without_a_replica_in_the_outputs(world, capsys, outputs):
    # between a failover and the rebuild the outputs name no replica (docs/decisions/018)
    del outputs["postgres"]["replicaArn"]
    world.write_text(json.dumps(outputs))
    assert dr_promote.main(["--outputs", str(world), "--dry-run"]) == 2
    assert "nothing to promote: the outputs name no replica" in capsys.readouterr().err


def test_a_secret_from_another_region_is_refused_before_anything_changes(world, capsys, outputs):
    # the primary region's secret is exactly what may be unreachable during the failover
    pg = outputs["postgres"]
    args = ["--writer-arn", pg["writerArn"], "--replica-arn", pg["replicaArn"], "--max-lag-seconds", "60",
            "--replica-secret-arn", pg["writerSecretArn"]]
    assert dr_promote.main(args) == 2
    assert "the writer's secret's copy in the replica's region must be a secretsmanager ARN in us-west-2" in \
        capsys.readouterr().err
    assert _replica()["ReadReplicaSourceDBInstanceIdentifier"]  # still a replica


def test_dry_run_checks_and_changes_nothing(world, capsys):
    assert dr_promote.main(["--outputs", str(world), "--dry-run"]) == 0
    assert "Dry run: would promote" in capsys.readouterr().out
    assert _replica()["ReadReplicaSourceDBInstanceIdentifier"].endswith(":db:intelgraph-pg-primary")


def test_promotion_refused_when_lag_exceeds_the_limit(world, capsys):
    put_lag(900)
    assert dr_promote.main(["--outputs", str(world)]) == 1
    out = capsys.readouterr().out
    assert "Refusing to promote: nothing was changed." in out and "FAIL  replica-lag" in out
    assert _replica()["ReadReplicaSourceDBInstanceIdentifier"]  # still a replica


def test_promotion_refused_for_a_replica_of_something_else(world, capsys, outputs):
    args = ["--writer-arn", f"arn:aws:rds:us-east-1:{ACCOUNT}:db:another-primary",
            "--replica-arn", outputs["postgres"]["replicaArn"], "--max-lag-seconds", "180",
            "--replica-secret-arn", outputs["postgres"]["replicaSecretArn"]]
    assert dr_promote.main(args) == 1
    out = capsys.readouterr().out
    assert "replicates from" in out and "Refusing to promote" in out
    assert _replica()["ReadReplicaSourceDBInstanceIdentifier"].endswith(":db:intelgraph-pg-primary")


def test_accept_data_loss_promotes_despite_lag(world, capsys):
    put_lag(900)
    assert dr_promote.main(["--outputs", str(world), "--accept-data-loss", "--timeout-seconds", "5"]) == 0
    assert not _replica().get("ReadReplicaSourceDBInstanceIdentifier")


def test_the_way_back_promotes_the_primary_regions_replica_of_the_dr_writer(world, capsys, outputs):
    # rebuilt (docs/decisions/018): B writes in the DR region, C replicates it in the primary region,
    # and B's own secret has its copy there. The same runbook promotes C, and its next steps are the
    # switched-back state's, not the failed-over one's.
    west, east = boto3.client("rds", "us-west-2"), boto3.client("rds", "us-east-1")
    west.promote_read_replica(DBInstanceIdentifier="intelgraph-pg-replica")
    b = _replica()["DBInstanceArn"]
    east.create_db_instance_read_replica(DBInstanceIdentifier="intelgraph-pg-primary-g2", SourceDBInstanceIdentifier=b)
    secret = boto3.client("secretsmanager", "us-west-2").create_secret(
        Name="intelgraph-pg-replica-master", SecretString=json.dumps({"password": MASTER_PASSWORD}),
        AddReplicaRegions=[{"Region": "us-east-1"}])
    c = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:intelgraph-pg-primary-g2"
    outputs["postgres"].update(writerArn=b, writerRegion="us-west-2", replicaArn=c, writerSecretArn=secret["ARN"],
                               replicaSecretArn=secret["ARN"].replace(":us-west-2:", ":us-east-1:"))
    world.write_text(json.dumps(outputs))
    put_lag(5, "intelgraph-pg-primary-g2", "us-east-1")
    code = dr_promote.main(["--outputs", str(world), "--timeout-seconds", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS  writer-secret" in out and "intelgraph-pg-replica-master: readable in us-east-1" in out
    [promoted] = east.describe_db_instances(DBInstanceIdentifier="intelgraph-pg-primary-g2")["DBInstances"]
    assert not promoted.get("ReadReplicaSourceDBInstanceIdentifier")
    assert "Commit the switched-back state" in out and "dr.activeRegion: primary" in out
    assert "--state failed-over" not in out


# --- issue 21: the outputs come from the DR region; the calls are the ones --help lists ----------------


def _publish(world, region: str = "us-west-2") -> dict:
    """What the deploy writes into the DR region (__main__.py): the runbook outputs as JSON."""
    document = runbook_document(json.loads(world.read_text()))
    boto3.client("ssm", region).put_parameter(Name=outputs_parameter("prod"), Type="String",
                                              Value=json.dumps(document))
    return document


class Outage:
    """Every endpoint of ``region`` refuses the connection while the outage lasts, as in a region
    outage: the call fails where botocore would send it (before-send), with the error botocore
    raises for it. The global endpoints served from us-east-1 (Route 53's and IAM's control planes,
    STS's legacy global endpoint: AWS whitepaper "AWS Fault Isolation Boundaries", Appendix B) go
    down with it. Registered on boto3's default session, which every runbook's client uses; start
    it inside ``mock_aws`` (moto resets that session when it starts)."""

    GLOBAL = ("https://route53.amazonaws.com", "https://iam.amazonaws.com", "https://sts.amazonaws.com")

    def __init__(self, monkeypatch, region: str = "us-east-1"):
        from botocore.exceptions import EndpointConnectionError

        self.region, self.down, self.refused = region, True, []

        def refuse(request, **_):
            if self.down and (region in request.url or (region == "us-east-1" and request.url.startswith(self.GLOBAL))):
                self.refused.append(request.url)
                raise EndpointConnectionError(endpoint_url=request.url)

        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-send", refuse)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    def end(self) -> None:
        self.down = False


def _primary_region_down(monkeypatch) -> list[str]:
    return Outage(monkeypatch).refused


def test_the_runbooks_read_the_outputs_from_the_dr_region(world, capsys):
    _publish(world)
    assert dr_readiness.main(["--stack", "prod"]) == 0, capsys.readouterr()
    assert "PASS  replica-status" in capsys.readouterr().out


def test_without_the_dr_copy_the_outputs_are_missing_in_one_line(world, capsys):
    assert dr_readiness.main(["--stack", "prod"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dr_readiness: missing outputs: no parameter /intelgraph/prod/runbook-outputs in us-west-2")
    assert len(err.strip().splitlines()) == 1


def test_a_promotion_needs_nothing_from_the_lost_primary_region(world, capsys, monkeypatch):
    # the state backend and the Pulumi CLI are out of reach too: --stack reads the DR copy only
    _publish(world)
    refused = _primary_region_down(monkeypatch)
    code = dr_promote.main(["--stack", "prod", "--accept-data-loss", "--timeout-seconds", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "is now a standalone writer" in out and refused == []  # not one call went to us-east-1
    assert not _replica().get("ReadReplicaSourceDBInstanceIdentifier")


def test_readiness_with_the_primary_region_down_fails_those_checks_in_its_table(world, capsys, monkeypatch):
    _publish(world)
    refused = _primary_region_down(monkeypatch)
    assert dr_readiness.main(["--stack", "prod"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  pitr-replication" in out and "Could not connect to the endpoint URL" in out
    assert "PASS  replica-status" in out and refused


def test_readiness_calls_exactly_what_its_help_lists(world, capsys, monkeypatch):
    _publish(world)
    with recorded(monkeypatch) as calls:
        assert dr_readiness.main(["--stack", "prod"]) == 0, capsys.readouterr()
    assert_exactly_covered(dr_readiness.IAM, calls)
    help_lists(dr_readiness, dr_readiness.IAM, capsys)


def test_promotion_calls_exactly_what_its_help_lists(world, capsys, monkeypatch):
    _publish(world)
    with recorded(monkeypatch) as calls:
        assert dr_promote.main(["--stack", "prod", "--timeout-seconds", "5"]) == 0, capsys.readouterr()
    assert_exactly_covered(dr_promote.IAM, calls)
    help_lists(dr_promote, dr_promote.IAM, capsys)
