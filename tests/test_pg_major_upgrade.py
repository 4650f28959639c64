"""PostgreSQL major upgrades: the path AWS supports for this topology, refused in settings when
it cannot be taken in one step, prepared by a runbook that checks the preconditions and takes
the manual snapshot first (moto's RDS).

Facts: RDS blue/green deployments support neither Secrets Manager-managed master passwords nor
cross-Region read replicas (RDS User Guide, "Limitations for blue/green deployments"); an
in-place major upgrade of the primary upgrades its read replicas too ("Choosing a major version
for an RDS for PostgreSQL upgrade"); RDS refuses a new major engineVersion unless
AllowMajorVersionUpgrade is set (ModifyDBInstance)."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from moto import mock_aws

import settings
from ops import pg_major_upgrade
from synth import diff, engine, export
from tests.conftest import config_with, stack_settings, synthesized

ACCOUNT = stack_settings("prod").aws.account_id  # moto must be the account the outputs name


@pytest.fixture
def outputs_file(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(synthesized("prod").outputs))
    return path


@pytest.fixture
def world(monkeypatch):
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("MOTO_ACCOUNT_ID", ACCOUNT)):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        east, west = boto3.client("rds", "us-east-1"), boto3.client("rds", "us-west-2")
        primary = east.create_db_instance(
            DBInstanceIdentifier="intelgraph-pg-primary", Engine="postgres", EngineVersion="16.4",
            DBInstanceClass="db.r6g.xlarge", AllocatedStorage=200, MasterUsername="intelgraph_admin",
            ManageMasterUserPassword=True, BackupRetentionPeriod=14)["DBInstance"]
        west.create_db_instance_read_replica(DBInstanceIdentifier="intelgraph-pg-replica",
                                             SourceDBInstanceIdentifier=primary["DBInstanceArn"])
        yield east, west


def snapshots(east) -> list[dict]:
    return east.describe_db_snapshots(DBInstanceIdentifier="intelgraph-pg-primary", SnapshotType="manual")["DBSnapshots"]


def test_a_dry_run_checks_everything_and_takes_no_snapshot(world, outputs_file, capsys):
    east, _ = world
    code = pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", "17.2", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5 of 5 checks pass" in out and "blue/green is unsupported" in out
    assert snapshots(east) == []


def test_the_run_takes_a_manual_snapshot_and_prints_settings_the_stack_accepts(world, outputs_file, capsys):
    east, _ = world
    code = pg_major_upgrade.main(["--outputs", str(outputs_file), "--stack", "prod", "--target-version", "17.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    [snapshot] = snapshots(east)
    assert snapshot["SnapshotType"] == "manual" and snapshot["Status"] == "available"
    assert snapshot["EngineVersion"] == "16.4"
    assert re.fullmatch(r"intelgraph-pg-primary-pre-pg17-\d{12}", snapshot["DBSnapshotIdentifier"])
    # the printed settings are exactly what settings.py accepts: the chain from runbook to stack
    version = re.search(r'engineVersion: "([^"]+)"', out)[1]
    upgrade = re.search(r'majorUpgrade: \{fromVersion: "([^"]+)", snapshotIdentifier: ([^}]+)\}', out)
    cfg = settings.validate(config_with("prod", {"postgres.engineVersion": version, "postgres.majorUpgrade": {
        "fromVersion": upgrade[1], "snapshotIdentifier": upgrade[2]}}))
    assert cfg.postgres.major_upgrade.snapshot_identifier == snapshot["DBSnapshotIdentifier"]


@pytest.mark.parametrize("target, words", [("18.1", "upgrade to 17.x first"), ("16.6", "upgrade to 17.x first")])
def test_a_target_the_path_cannot_take_in_one_step_is_refused(world, outputs_file, capsys, target, words):
    east, _ = world
    code = pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", target])
    out = capsys.readouterr().out
    assert code == 1 and words in out and "FAIL  one-major-step" in out and snapshots(east) == []


def test_a_missing_dr_replica_stops_the_upgrade(world, outputs_file, capsys):
    """The replica is upgraded with the primary: one that is not there (or not following) is a
    DR gap to close first, not something to upgrade around."""
    east, _ = world
    document = json.loads(outputs_file.read_text())
    document["postgres"]["replicaArn"] = document["postgres"]["replicaArn"].replace("intelgraph-pg-replica", "lost")
    outputs_file.write_text(json.dumps(document))
    code = pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", "17.2"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL  replica-status" in out and snapshots(east) == []


def test_a_missing_primary_and_bad_input_change_nothing(world, outputs_file, capsys, tmp_path):
    east, _ = world
    assert pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", "seventeen"]) == 2
    document = json.loads(outputs_file.read_text())
    document["postgres"]["primaryArn"] = document["postgres"]["primaryArn"].replace("intelgraph-pg-primary", "gone")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(document))
    assert pg_major_upgrade.main(["--outputs", str(other), "--target-version", "17.2"]) == 1
    assert "does not exist" in capsys.readouterr().out and snapshots(east) == []


def test_settings_refuse_a_major_change_the_path_cannot_take():
    def problem(upgrade: dict, version: str = "17.2") -> str:
        with pytest.raises(settings.SettingsError) as caught:
            settings.validate(config_with("prod", {"postgres.engineVersion": version, "postgres.majorUpgrade": upgrade}))
        return str(caught.value)

    assert "postgres.majorUpgrade.method: RDS blue/green deployments do not support cross-Region read replicas" in problem(
        {"fromVersion": "16.4", "snapshotIdentifier": "pre-17", "method": "blue-green"})
    assert "postgres.majorUpgrade: 15.7 -> 17.2 skips a major version" in problem(
        {"fromVersion": "15.7", "snapshotIdentifier": "pre-17"})
    assert "not a major upgrade" in problem({"fromVersion": "17.1", "snapshotIdentifier": "pre-17"})
    assert "cannot downgrade" in problem({"fromVersion": "18.0", "snapshotIdentifier": "pre-17"})
    assert "postgres.majorUpgrade.snapshotIdentifier" in problem({"fromVersion": "16.4"})


def test_a_declared_upgrade_lets_rds_take_it_and_the_plan_flags_it_for_review():
    before = export.to_export(synthesized("stage"))
    # major only: the stacks let RDS apply minor versions (autoMinorVersionUpgrade)
    upgraded = engine.synthesize("stage", config_with("stage", {"postgres.engineVersion": "17", "postgres.majorUpgrade": {
        "fromVersion": "16.4", "snapshotIdentifier": "intelgraph-pg-primary-pre-pg17-202612011800"}}))
    primary = upgraded.named("intelgraph-pg-primary", "aws:rds/instance:Instance").inputs
    assert primary["allowMajorVersionUpgrade"] is True and primary["applyImmediately"] is True
    assert primary["engineVersion"] == "17"
    plan = {c.urn.rsplit("::", 1)[-1]: c for c in diff.compare(before, export.to_export(upgraded))}
    assert plan["intelgraph-pg-primary"].reason == "major engine upgrade 16 -> 17"
    assert plan["intelgraph-pg-primary"].dangerous  # a named approval, like any stateful replace
    # the parameter groups follow the family: replaced, so the protected old ones need retiring
    assert plan["intelgraph-pg-primary-params"].action == "replace"
    assert "family" in plan["intelgraph-pg-primary-params"].reason
    # without the declaration RDS would refuse the new major version (no AllowMajorVersionUpgrade)
    assert "allowMajorVersionUpgrade" not in synthesized("stage").named(
        "intelgraph-pg-primary", "aws:rds/instance:Instance").inputs


def test_a_major_engine_version_change_without_the_declaration_is_refused_with_the_command(tmp_path, capsys):
    """Settings see only config, never the version running: the change is judged where both exist, by
    `synth diff` between the deployed stack's export and the change's (or `--engine` on the engine's
    plan). RDS refuses the new major version without AllowMajorVersionUpgrade (ModifyDBInstance), so the
    plan refuses it (exit 1, no approval lifts it) and names the runbook that prepares the declaration."""
    from synth import __main__ as synth_cli

    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(export.to_export(synthesized("stage"))))
    after.write_text(json.dumps(export.to_export(engine.synthesize(
        "stage", config_with("stage", {"postgres.engineVersion": "17"})))))
    assert synth_cli.main(["diff", str(before), str(after), "--approved-by", "dba-lead"]) == 1
    out = capsys.readouterr().out
    refusal = next(line for line in out.splitlines() if line.lstrip().startswith("x ") and "intelgraph-pg-primary" in line)
    assert "engineVersion 16 → 17 is a major upgrade without allowMajorVersionUpgrade: RDS refuses it" in refusal
    assert "python -m ops.pg_major_upgrade --outputs outputs.json --target-version 17" in refusal
    assert "intelgraph-platform:postgres.majorUpgrade {fromVersion, snapshotIdentifier}" in refusal
