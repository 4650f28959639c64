"""ops.pg_restore_rehearsal against moto, fed with the real prod stack's outputs.

moto restores point-in-time only from a source instance in its own region and has no replicated
automated backups, so the fixture teaches it exactly those two RDS behaviours - and the fake checks
what it receives: RestoreDBInstanceToPointInTime must name the *replicated* backup's ARN
(``SourceDBInstanceAutomatedBackupsArn``, RDS API Reference), the DR subnet group and no public
access; the restored instance is encrypted with the key of the replicated backups, as RDS does
(a PITR restore takes the backup's key; the API has no KmsKeyId for it).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from ops import pg_restore_rehearsal
from tests.conftest import fake_aws_credentials, synthesized

ACCOUNT = "481236059412"
BACKUP_ARN = f"arn:aws:rds:us-west-2:{ACCOUNT}:auto-backup:ab-rehearsal"


@pytest.fixture
def outputs() -> dict:
    return json.loads(json.dumps(synthesized("prod").outputs))


@pytest.fixture
def world(monkeypatch, outputs, tmp_path):
    fake_aws_credentials(monkeypatch, ACCOUNT)
    from moto.rds.models import RDSBackend

    target = outputs["pgRestoreRehearsal"]
    state = SimpleNamespace(replicated=True, never_available=False, restores=[], kms_key=target["kmsKeyArn"],
                            status="replicating", older_backups=[], on_describe=None, own_source=None)

    def backup(arn: str, status: str) -> SimpleNamespace:
        return SimpleNamespace(
            db_instance_arn=outputs["postgres"]["primaryArn"], region="us-east-1", status=status,
            db_instance_automated_backups_arn=arn, kms_key_id=target["kmsKeyArn"],
            db_instance_identifier="intelgraph-pg-primary")

    def describe_automated_backups(self, db_instance_identifier=None, **_):
        if self.region_name != "us-west-2" or not state.replicated:
            return []
        return [backup(arn, status) for arn, status in state.older_backups] + [backup(BACKUP_ARN, state.status)]

    describe_instances = RDSBackend.describe_db_instances

    def describe_db_instances(self, db_instance_identifier=None, filters=None):
        if db_instance_identifier and state.on_describe:
            state.on_describe()
        return describe_instances(self, db_instance_identifier, filters)

    def restore(self, source_db_identifier, target_db_identifier, overrides):
        state.restores.append(dict(overrides, region=self.region_name, source=source_db_identifier))
        if state.own_source:  # after a failover: the DR writer's own backups, by its identifier
            assert source_db_identifier == state.own_source and self.region_name == "us-west-2"
            assert not overrides.get("source_db_instance_automated_backups_arn")
        elif source_db_identifier is not None or overrides.get("source_db_instance_automated_backups_arn") != BACKUP_ARN:
            raise AssertionError(f"restore from an unknown backup: {source_db_identifier} {overrides}")
        assert overrides["publicly_accessible"] is False
        assert overrides["db_subnet_group_name"] == target["subnetGroup"]
        db = self.create_db_instance({
            "db_instance_identifier": target_db_identifier, "engine": "postgres",
            "db_instance_class": overrides["db_instance_class"], "allocated_storage": 200,
            "master_username": "intelgraph_admin", "master_user_password": "unused-by-restore",
            "db_subnet_group_name": overrides["db_subnet_group_name"],
            "vpc_security_group_ids": overrides["vpc_security_group_ids"],
            "publicly_accessible": False, "storage_encrypted": True, "kms_key_id": state.kms_key,
            "tags": overrides.get("tags", [])})
        if state.never_available:
            db.status = "creating"
        return db

    monkeypatch.setattr(RDSBackend, "describe_db_instance_automated_backups", describe_automated_backups)
    monkeypatch.setattr(RDSBackend, "restore_db_instance_to_point_in_time", restore)
    monkeypatch.setattr(RDSBackend, "describe_db_instances", describe_db_instances)
    monkeypatch.setattr(pg_restore_rehearsal, "POLL_SECONDS", 0)
    with mock_aws():
        ec2 = boto3.client("ec2", "us-west-2")
        vpc = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.41.{i}.0/24", AvailabilityZone=f"us-west-2{z}")
                   ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
        boto3.client("rds", "us-west-2").create_db_subnet_group(
            DBSubnetGroupName=target["subnetGroup"], DBSubnetGroupDescription="DR", SubnetIds=subnets)
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        state.path = path
        yield state


def instances() -> list[dict]:
    return boto3.client("rds", "us-west-2").describe_db_instances()["DBInstances"]


def test_rehearsal_restores_verifies_deletes_and_prints_the_time(world, capsys):
    code = pg_restore_rehearsal.main(["--outputs", str(world.path)])
    out = capsys.readouterr().out
    assert code == 0, out
    [restore] = world.restores
    assert restore["region"] == "us-west-2" and restore["use_latest_restorable_time"] is True
    assert restore["target_db_instance_identifier"].startswith("pgrehearsal-")
    assert restore["deletion_protection"] is False and restore["multi_az"] is False
    for check in ("available", "encrypted-with-dr-key", "private", "dr-subnet-group", "dr-security-group"):
        assert f"PASS  {check}" in out
    assert "PITR rehearsal passed: restore took" in out and "deleted pgrehearsal-" in out
    assert instances() == []  # nothing left behind


def test_after_a_failover_it_restores_the_dr_writers_own_backups(world, capsys):
    """The stack's postgres.primaryArn names the writer wherever it is: failed over, the DR instance.
    Its own automated backups are in its region, so the restore names the instance
    (SourceDBInstanceIdentifier, RDS API Reference RestoreDBInstanceToPointInTime); no replicated
    backup is looked for (there is none: the primary region is down)."""
    outputs = json.loads(world.path.read_text())
    outputs["postgres"]["primaryArn"] = f"arn:aws:rds:us-west-2:{ACCOUNT}:db:intelgraph-pg-replica"
    world.path.write_text(json.dumps(outputs))
    world.replicated, world.own_source = False, "intelgraph-pg-replica"
    code = pg_restore_rehearsal.main(["--outputs", str(world.path)])
    out = capsys.readouterr().out
    assert code == 0, out
    [restore] = world.restores
    assert restore["source"] == "intelgraph-pg-replica" and "restoring pgrehearsal-" in out
    assert "from intelgraph-pg-replica" in out and "PASS  encrypted-with-dr-key" in out
    assert instances() == []


def test_a_restore_that_never_becomes_available_times_out_and_is_still_deleted(world, capsys):
    world.never_available = True
    code = pg_restore_rehearsal.main(["--outputs", str(world.path), "--timeout-seconds", "0"])
    out = capsys.readouterr().out
    assert code == 1
    assert "restore timed out" in out and "status creating" in out and "deleted pgrehearsal-" in out
    assert instances() == []


def test_refuses_when_the_replicated_backups_are_missing(world, capsys):
    world.replicated = False
    code = pg_restore_rehearsal.main(["--outputs", str(world.path)])
    out = capsys.readouterr().out
    assert code == 1 and "are replicated to us-west-2" in out and "Nothing was created" in out
    assert world.restores == [] and instances() == []


def test_a_verification_failure_still_deletes(world, capsys):
    # RDS restored with a key other than the DR key the stack exports (e.g. the backups were
    # replicated with another key): the rehearsal fails and still cleans up
    world.kms_key = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    code = pg_restore_rehearsal.main(["--outputs", str(world.path)])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL  encrypted-with-dr-key" in out and "failed verification" in out
    assert "deleted pgrehearsal-" in out and instances() == []


def test_missing_rehearsal_outputs_are_a_clear_input_error(tmp_path, capsys, outputs, monkeypatch):
    del outputs["pgRestoreRehearsal"]
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    fake_aws_credentials(monkeypatch, ACCOUNT)  # the account check passes; the outputs do not
    with mock_aws():
        assert pg_restore_rehearsal.main(["--outputs", str(path)]) == 2
    assert "stack output pgRestoreRehearsal is missing" in capsys.readouterr().err


def test_a_sigterm_during_the_restore_still_deletes_the_instance(world, capsys):
    """Kubernetes stops a Job's pod with SIGTERM (eviction, activeDeadlineSeconds: Kubernetes docs,
    "Pod termination"); Python's default SIGTERM action ends the process without running finally
    blocks (Python docs, "signal": SIGTERM is not handled by default). The runbook turns it into
    SystemExit, so the instance is deleted and the run exits 1."""
    import os
    import signal

    world.never_available = True
    world.on_describe = lambda: os.kill(os.getpid(), signal.SIGTERM)  # while it waits for "available"
    # stands in for the default action (which would end pytest): the runbook must replace it
    kept = []

    def record(*_):
        kept.append("the default action would have ended the process here")

    previous = signal.signal(signal.SIGTERM, record)
    try:
        with pytest.raises(SystemExit) as exited:
            pg_restore_rehearsal.main(["--outputs", str(world.path), "--timeout-seconds", "5"])
        assert signal.getsignal(signal.SIGTERM) is record  # the runbook restores the handler it found
    finally:
        signal.signal(signal.SIGTERM, previous)
    out = capsys.readouterr().out
    assert exited.value.code == 1 and kept == []
    assert "terminated (SIGTERM)" in out and "deleted pgrehearsal-" in out
    assert instances() == []


def test_leftovers_of_a_killed_run_are_swept_by_prefix_and_tag_only(world, capsys):
    """A SIGKILL (or a lost node) skips every handler, and the Job's retry creates a second
    instance: each run first deletes instances named with the prefix AND carrying the rehearsal
    tag. A prefixed instance without the tag, and a tagged one without the prefix, are not ours."""
    rds = boto3.client("rds", "us-west-2")
    tag = pg_restore_rehearsal.TAG
    subnet_group = json.loads(world.path.read_text())["pgRestoreRehearsal"]["subnetGroup"]
    for name, tags in (("pgrehearsal-20261124050000", [tag]), ("pgrehearsal-by-hand", []),
                       ("intelgraph-pg-scratch", [tag])):
        rds.create_db_instance(DBInstanceIdentifier=name, Engine="postgres", DBInstanceClass="db.t4g.micro",
                               AllocatedStorage=20, MasterUsername="x", MasterUserPassword="unused-12345",
                               DBSubnetGroupName=subnet_group, Tags=tags)
    code = pg_restore_rehearsal.main(["--outputs", str(world.path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "sweeping pgrehearsal-20261124050000" in out
    assert sorted(db["DBInstanceIdentifier"] for db in instances()) == ["intelgraph-pg-scratch", "pgrehearsal-by-hand"]


def test_the_live_replicated_backup_is_chosen_not_the_first_listed(world, capsys):
    """DescribeDBInstanceAutomatedBackups lists a retained chain (replication stopped and
    restarted, RDS API Reference: "retained") next to the live one: restore from the live one."""
    world.older_backups = [(f"arn:aws:rds:us-west-2:{ACCOUNT}:auto-backup:ab-stopped-last-month", "retained")]
    code = pg_restore_rehearsal.main(["--outputs", str(world.path)])
    out = capsys.readouterr().out
    assert code == 0, out
    [restore] = world.restores
    assert restore["source_db_instance_automated_backups_arn"] == BACKUP_ARN


def test_refuses_when_no_replicated_backup_is_live(world, capsys):
    world.status = "retained"
    code = pg_restore_rehearsal.main(["--outputs", str(world.path)])
    out = capsys.readouterr().out
    assert code == 1 and "are not being replicated" in out and f"{BACKUP_ARN} (retained)" in out
    assert world.restores == [] and instances() == []


def test_the_rehearsal_calls_exactly_what_its_help_lists_and_its_job_role_grants(world, capsys, monkeypatch):
    from components.pg_restore_rehearsal import rehearsal_policy
    from tests.iam_oracle import assert_exactly_covered, help_lists, recorded

    with recorded(monkeypatch) as calls:
        assert pg_restore_rehearsal.main(["--outputs", str(world.path)]) == 0, capsys.readouterr()
    permissions = pg_restore_rehearsal.IAM
    # the Job reads a file, not the parameter: every other listed action is called or implied
    assert_exactly_covered(permissions, calls | {"ssm:GetParameter"})
    help_lists(pg_restore_rehearsal, permissions, capsys)
    target = synthesized("prod").outputs["pgRestoreRehearsal"]
    job_role = rehearsal_policy(ACCOUNT, "us-west-2", target["kmsKeyArn"], target["subnetGroup"],
                                target["parameterGroup"], f"arn:aws:rds:us-west-2:{ACCOUNT}:db:intelgraph-pg-replica")
    granted = {a for s in job_role["Statement"] for a in s["Action"]}
    assert permissions.actions - {"ssm:GetParameter"} == granted
