"""PostgreSQL major upgrades: the path AWS supports for this topology, refused in settings when
it cannot be taken in one step, prepared by a runbook that checks the preconditions and takes
the manual snapshot first (moto's RDS; DescribeDBEngineVersions, which moto lacks, from a fake
that validates every request and response against botocore's rds service model).

Facts: RDS blue/green deployments support neither Secrets Manager-managed master passwords nor
cross-Region read replicas (RDS User Guide, "Limitations for blue/green deployments"); an
in-place major upgrade of the primary upgrades its *in-Region* read replicas ("Upgrades of the RDS
for PostgreSQL DB engine"; "How to perform a major version upgrade for RDS for PostgreSQL", step
"Handle read replicas") - nothing promises it for a cross-Region replica; a replica's custom
parameter group can be applied only after its upgrade completes (same step); RDS refuses a new
major engineVersion unless AllowMajorVersionUpgrade is set, and given a major version only it
picks the default minor (ModifyDBInstance, EngineVersion), which need not be a valid upgrade
target (terraform-aws-modules/terraform-aws-rds #627): DescribeDBEngineVersions lists the valid
ones (ValidUpgradeTarget, IsMajorVersionUpgrade)."""

from __future__ import annotations

import json
import re

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters
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


RDS_MODEL = botocore.session.get_session().get_service_model("rds")

# What DescribeDBEngineVersions answers for 16.4 in this test's world: a minor and two majors.
# 17.1 exists but is no target of 16.4 (released before it), the case #627 ran into.
CATALOGUE = {"16.4": [("16.6", False), ("17.2", True), ("17.4", True)]}


class EngineVersions:
    """A client whose describe_db_engine_versions answers from CATALOGUE; the request and the
    response must fit botocore's rds model (a wrong parameter name fails as it would at AWS),
    every other call goes to moto."""

    def __init__(self, real):
        self._real, self.requests = real, []

    def describe_db_engine_versions(self, **params):
        operation = RDS_MODEL.operation_model("DescribeDBEngineVersions")
        validate_parameters(params, operation.input_shape)
        self.requests.append(params)
        version = params.get("EngineVersion")
        response = {"DBEngineVersions": [{
            "Engine": params["Engine"], "EngineVersion": version, "DBParameterGroupFamily": f"postgres{version.split('.')[0]}",
            "ValidUpgradeTarget": [{"Engine": "postgres", "EngineVersion": v, "IsMajorVersionUpgrade": m,
                                    "AutoUpgrade": False} for v, m in CATALOGUE[version]],
        }] if version in CATALOGUE else []}
        validate_parameters(response, operation.output_shape)
        return response

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_the_fake_refuses_what_rds_would_refuse():
    fake = EngineVersions(None)
    with pytest.raises(botocore.exceptions.ParamValidationError, match="Version"):
        fake.describe_db_engine_versions(Engine="postgres", Version="16.4")


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
            # the stack's own secret holds the password, not RDS (decision 014)
            MasterUserPassword="bootstrap-password-0123", BackupRetentionPeriod=14)["DBInstance"]
        west.create_db_instance_read_replica(DBInstanceIdentifier="intelgraph-pg-replica",
                                             SourceDBInstanceIdentifier=primary["DBInstanceArn"])
        fakes = {"us-east-1": EngineVersions(east), "us-west-2": EngineVersions(west)}
        monkeypatch.setattr(pg_major_upgrade, "rds_client", lambda region: fakes[region])
        yield east, west


def snapshots(east) -> list[dict]:
    return east.describe_db_snapshots(DBInstanceIdentifier="intelgraph-pg-primary", SnapshotType="manual")["DBSnapshots"]


def test_a_dry_run_checks_everything_and_takes_no_snapshot(world, outputs_file, capsys):
    east, _ = world
    code = pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", "17.2", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "6 of 6 checks pass" in out and "blue/green is unsupported" in out
    assert "16.4 -> 17.2: a major upgrade target RDS lists for 16.4" in out
    assert snapshots(east) == []


@pytest.mark.parametrize("target, words", [
    ("17", "'17' is a major version only: RDS would pick its default 17.x, which need not be a valid "
           "target from 16.4; valid 17.x targets: 17.2, 17.4"),
    ("17.1", "RDS lists 17.1 as no major upgrade target of 16.4; valid 17.x targets: 17.2, 17.4"),
])
def test_a_target_rds_does_not_list_is_refused_with_the_valid_ones(world, outputs_file, capsys, target, words):
    east, _ = world
    code = pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", target])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL  valid-target" in out and words in out and snapshots(east) == []


def test_the_runbook_asks_rds_about_the_running_version(monkeypatch):
    fake = EngineVersions(None)
    monkeypatch.setattr(pg_major_upgrade, "rds_client", lambda region: fake)
    assert pg_major_upgrade.major_targets("us-east-1", "16.4") == ["17.2", "17.4"]  # the minor 16.6 is none
    assert fake.requests == [{"Engine": "postgres", "EngineVersion": "16.4"}]


def test_the_run_takes_a_manual_snapshot_and_prints_settings_the_stack_accepts(world, outputs_file, capsys):
    east, _ = world
    code = pg_major_upgrade.main(["--outputs", str(outputs_file), "--stack", "prod", "--target-version", "17.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    [snapshot] = snapshots(east)
    assert snapshot["SnapshotType"] == "manual" and snapshot["Status"] == "available"
    assert snapshot["EngineVersion"] == "16.4"
    assert re.fullmatch(r"intelgraph-pg-primary-pre-pg17-\d{12}", snapshot["DBSnapshotIdentifier"])
    # the printed settings are exactly what settings/database.py accepts: the chain from runbook to stack
    version = re.search(r'engineVersion: "([^"]+)"', out)[1]
    assert version == "17.2"  # the exact target the runbook checked, not "17"
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


def test_a_declared_upgrade_names_the_exact_target():
    """Given "17", RDS picks its default 17.x (ModifyDBInstance, EngineVersion), which need not be a
    valid target from the running minor (terraform-aws-rds #627)."""
    with pytest.raises(settings.SettingsError) as caught:
        settings.validate(config_with("stage", {"postgres.engineVersion": "17", "postgres.majorUpgrade": {
            "fromVersion": "16.4", "snapshotIdentifier": "pre-17"}}))
    assert "postgres: engineVersion '17' with majorUpgrade: name the exact target version" in str(caught.value)


def test_a_declared_upgrade_lets_rds_take_it_and_the_plan_flags_it_for_review():
    before = export.to_export(synthesized("stage"))
    upgraded = engine.synthesize("stage", config_with("stage", {"postgres.engineVersion": "17.2", "postgres.majorUpgrade": {
        "fromVersion": "16.4", "snapshotIdentifier": "intelgraph-pg-primary-pre-pg17-202612011800"}}))
    primary = upgraded.named("intelgraph-pg-primary", "aws:rds/instance:Instance").inputs
    assert primary["allowMajorVersionUpgrade"] is True and primary["applyImmediately"] is True
    assert primary["engineVersion"] == "17.2"
    plan = {c.urn.rsplit("::", 1)[-1]: c for c in diff.compare(before, export.to_export(upgraded))}
    assert plan["intelgraph-pg-primary"].reason == "major engine upgrade 16 -> 17"
    assert plan["intelgraph-pg-primary"].dangerous  # a named approval, like any stateful replace
    # the primary's parameter group follows the family: replaced, so the protected old one needs retiring
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


def test_the_replica_parameter_group_moves_only_in_the_deploy_after_the_upgrade():
    """RDS applies a custom parameter group to a read replica only after the replica's upgrade
    completes ("How to perform a major version upgrade for RDS for PostgreSQL", "Handle read
    replicas"); a postgres17 group on a replica still running 16 would be refused. Deploy 1 keeps
    the DR group; deploy 2 (majorUpgrade removed, after --after passed) moves it."""
    before = export.to_export(synthesized("stage"))
    deploy1 = engine.synthesize("stage", config_with("stage", {"postgres.engineVersion": "17.2", "postgres.majorUpgrade": {
        "fromVersion": "16.4", "snapshotIdentifier": "intelgraph-pg-primary-pre-pg17-202612011800"}}))
    assert deploy1.named("intelgraph-pg-dr-params", "aws:rds/parameterGroup:ParameterGroup").inputs["family"] == "postgres16"
    assert deploy1.named("intelgraph-pg-primary-params", "aws:rds/parameterGroup:ParameterGroup").inputs["family"] == "postgres17"
    plan1 = {c.urn.rsplit("::", 1)[-1]: c for c in diff.compare(before, export.to_export(deploy1))}
    assert "intelgraph-pg-dr-params" not in plan1 and "intelgraph-pg-replica" not in plan1
    deploy2 = engine.synthesize("stage", config_with("stage", {"postgres.engineVersion": "17"}))
    assert deploy2.named("intelgraph-pg-dr-params", "aws:rds/parameterGroup:ParameterGroup").inputs["family"] == "postgres17"
    plan2 = {c.urn.rsplit("::", 1)[-1]: c for c in diff.compare(export.to_export(deploy1), export.to_export(deploy2))}
    assert plan2["intelgraph-pg-dr-params"].action == "replace"
    assert "intelgraph-pg-primary-params" not in plan2  # the primary's moved in deploy 1


def test_after_the_upgrade_a_replica_left_behind_is_named_and_a_followed_one_passes(world, outputs_file, capsys):
    east, west = world
    east.modify_db_instance(DBInstanceIdentifier="intelgraph-pg-primary", EngineVersion="17.2",
                            AllowMajorVersionUpgrade=True, ApplyImmediately=True)
    args = ["--outputs", str(outputs_file), "--target-version", "17.2", "--after"]
    assert pg_major_upgrade.main(args) == 1
    out = capsys.readouterr().out
    assert "PASS  primary-version" in out and "FAIL  replica-version" in out
    assert "RDS did not upgrade this cross-Region replica" in out and "recreate it" in out
    west.modify_db_instance(DBInstanceIdentifier="intelgraph-pg-replica", EngineVersion="17.2", ApplyImmediately=True)
    assert pg_major_upgrade.main(args) == 0, capsys.readouterr().out
    assert "deploy 2 of 2 may move the DR parameter group to postgres17" in capsys.readouterr().out


def test_the_upgrade_calls_exactly_what_its_help_lists(world, outputs_file, capsys, monkeypatch):
    from tests.iam_oracle import assert_exactly_covered, help_lists, recorded

    east, _ = world
    with recorded(monkeypatch) as calls:
        # clients of the recording session; the fake answers DescribeDBEngineVersions outside
        # botocore: count its (model-checked) requests
        fakes = {region: EngineVersions(boto3.client("rds", region)) for region in ("us-east-1", "us-west-2")}
        monkeypatch.setattr(pg_major_upgrade, "rds_client", lambda region: fakes[region])
        assert pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", "17.2"]) == 0
        east.modify_db_instance(DBInstanceIdentifier="intelgraph-pg-primary", EngineVersion="17.2",
                                AllowMajorVersionUpgrade=True, ApplyImmediately=True)
        pg_major_upgrade.main(["--outputs", str(outputs_file), "--target-version", "17.2", "--after"])
    capsys.readouterr()
    if any(f.requests for f in fakes.values()):
        calls.add("rds:DescribeDBEngineVersions")
    calls -= {"rds:ModifyDBInstance"}  # the test's own call, standing in for the deploy
    # read from a file here; the DR copy is read with ssm:GetParameter (tests/test_ops_runbooks.py)
    assert_exactly_covered(pg_major_upgrade.IAM, calls | {"ssm:GetParameter"})
    help_lists(pg_major_upgrade, pg_major_upgrade.IAM, capsys)
