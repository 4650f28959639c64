"""Every CloudWatch log group the stack creates or causes expires and is encrypted with a customer
key CloudWatch Logs may really use; RDS finds its export groups already there; the PostgreSQL log
masks personal data; pgaudit records DDL and role changes."""

from __future__ import annotations

import fnmatch
import json

import pytest

import settings
from components import postgres_dr
from helpers.log_groups import PII_IDENTIFIERS, RETENTION_DAYS, data_protection_policy
from synth import engine
from tests.conftest import STACKS, region_of, synthesized

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KEY = "aws:kms/key:Key"
INSTANCE = "aws:rds/instance:Instance"



@pytest.mark.parametrize("stack", STACKS)
def test_every_log_group_expires_and_its_key_lets_cloudwatch_logs_encrypt_it(stack):
    synthesis = synthesized(stack)
    cfg = settings.validate(engine.stack_config(stack))
    retention = cfg.logs.retention_days
    keys = {k.outputs["arn"]: k for k in synthesis.of_type(KEY)}
    groups = synthesis.of_type(LOG_GROUP)
    assert {g.inputs["name"] for g in groups} >= {
        "/aws/rds/instance/intelgraph-pg-primary/postgresql", "/aws/rds/instance/intelgraph-pg-replica/upgrade",
        "aws-waf-logs-api"}
    for group in groups:
        assert group.inputs["retentionInDays"] == retention and retention in RETENTION_DAYS
        key = keys[group.inputs["kmsKeyId"]]
        region = region_of(synthesis, group)
        assert region_of(synthesis, key) == region  # a log group can only use a key of its region
        # CloudWatch Logs calls KMS as logs.<region>.amazonaws.com with the encryption context
        # aws:logs:arn = the log group's ARN ("Encrypt log data in CloudWatch Logs using AWS KMS")
        group_arn = f"arn:aws:logs:{region}:{cfg.aws.account_id}:log-group:{group.inputs['name']}"
        statements = json.loads(key.inputs["policy"])["Statement"]
        [logs] = [s for s in statements if s["Principal"].get("Service") == f"logs.{region}.amazonaws.com"]
        assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(logs["Action"])
        assert fnmatch.fnmatchcase(group_arn, logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])


@pytest.mark.parametrize("stack", STACKS)
def test_rds_instances_wait_for_their_export_log_groups(stack):
    # RDS creates /aws/rds/instance/<id>/<log> itself (no expiry, AWS key) if it exports first
    synthesis = synthesized(stack)
    groups = {g.inputs["name"]: g for g in synthesis.of_type(LOG_GROUP)}
    for instance in synthesis.of_type(INSTANCE):
        for export in instance.inputs["enabledCloudwatchLogsExports"]:
            group = groups[f"/aws/rds/instance/{instance.inputs['identifier']}/{export}"]
            assert group.urn in instance.dependencies
            assert region_of(synthesis, group) == region_of(synthesis, instance)


def test_the_postgresql_log_masks_personal_data(prod):
    [policy] = [p for p in prod.of_type("aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy")
                if p.inputs["logGroupName"] == "/aws/rds/instance/intelgraph-pg-primary/postgresql"]
    document = json.loads(policy.inputs["policyDocument"])
    assert_valid_data_protection_policy(document)
    names = {arn.rsplit("/", 1)[1] for arn in document["Statement"][1]["DataIdentifier"]}
    assert {"EmailAddress", "CreditCardNumber", "AwsSecretKey"} <= names
    groups_with_policy = {p.inputs["logGroupName"] for p in prod.of_type(
        "aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy")}
    assert "/aws/rds/instance/intelgraph-pg-replica/postgresql" in groups_with_policy


def assert_valid_data_protection_policy(document: dict) -> None:
    """PutDataProtectionPolicy's rules (CloudWatch Logs API Reference): Version 2021-06-01, exactly
    one Audit block (with a FindingsDestination object) first, then the Deidentify block with
    MaskConfig, both over the same managed data identifiers."""
    assert document["Version"] == "2021-06-01" and document["Name"]
    audit, mask = document["Statement"]
    assert "FindingsDestination" in audit["Operation"]["Audit"]
    assert mask["Operation"] == {"Deidentify": {"MaskConfig": {}}}
    assert audit["DataIdentifier"] == mask["DataIdentifier"]
    assert all(i.startswith("arn:aws:dataprotection::aws:data-identifier/") for i in audit["DataIdentifier"])


def test_the_policy_check_fails_on_a_policy_cloudwatch_would_refuse():
    broken = data_protection_policy("x")
    broken["Statement"].reverse()
    with pytest.raises((AssertionError, KeyError)):
        assert_valid_data_protection_policy(broken)
    assert len(PII_IDENTIFIERS) == len(set(PII_IDENTIFIERS))


@pytest.mark.parametrize("stack", STACKS)
def test_pgaudit_records_ddl_and_role_changes_and_needs_a_reboot(stack):
    for group in synthesized(stack).of_type("aws:rds/parameterGroup:ParameterGroup"):
        params = {p["name"]: p for p in group.inputs["parameters"]}
        preload = params["shared_preload_libraries"]
        assert "pgaudit" in preload["value"].split(",")
        # static parameter: RDS refuses apply_method "immediate" ("cannot use immediate apply
        # method for static parameter"); pgaudit loads only at server start
        assert preload["applyMethod"] == "pending-reboot"
        assert params["pgaudit.log"]["value"] == "ddl,role"
        assert params["pgaudit.log_parameter"]["value"] == "0"  # parameter values are the data
    assert postgres_dr.STATIC >= {"rds.force_ssl", "shared_preload_libraries"}


def test_settings_refuse_a_retention_cloudwatch_does_not_accept():
    from tests.conftest import config_with

    with pytest.raises(settings.SettingsError) as error:
        settings.validate(config_with("prod", {"logs.retentionDays": 45}))
    assert any("intelgraph-platform:logs.retentionDays: CloudWatch Logs accepts only 1, 3" in p
               for p in error.value.problems), error.value.problems


@pytest.mark.parametrize("stack", STACKS)
def test_the_operator_guide_imports_exactly_the_rds_log_groups_rds_may_already_have_created(stack):
    """RDS creates /aws/rds/instance/<id>/<type> on its first export; on a stack deployed before
    the program managed them, CreateLogGroup fails with ResourceAlreadyExistsException
    (terraform-provider-aws #42858), so the operator guide's one-time `pulumi import` loop (docs/operator.md) must expand to
    every RDS log group of the export: its logical name, its physical name, its parent and its
    region's provider."""
    import re
    import shlex

    from tests.conftest import ROOT

    guide = (ROOT / "docs" / "operator.md").read_text()
    [loop] = [b for b in re.findall(r"```bash\n(.*?)```", guide, re.S) if "pulumi import" in b]
    assert "ResourceAlreadyExistsException" in guide and "#42858" in guide
    # expand the documented loop with the shell itself, `pulumi` replaced by echo
    script = loop.replace("s=prod", f"s={stack}").replace("pulumi import", "echo import")
    import subprocess
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    imported = {}
    for line in run.stdout.splitlines():
        words = shlex.split(line)
        name, physical = words[6], words[7]
        parent = words[words.index("--parent") + 1].split("=", 1)[1]
        provider = words[words.index("--provider") + 1].split("=", 1)[1]
        imported[name] = (physical, parent, provider)
    synthesis = synthesized(stack)
    rds_groups = {g.urn.rsplit("::", 1)[1]: (g.inputs["name"], g.parent, g.provider.rsplit("::", 1)[0])
                  for g in synthesis.of_type(LOG_GROUP) if g.inputs["name"].startswith("/aws/rds/")}
    assert imported == rds_groups
