"""Every ops command: one line and exit 2 for a cause it cannot run for (no credentials, no endpoint,
wrong account, missing outputs), never a traceback; the state-backend bootstrap on moto; the DR
copy of the outputs and the on-call role as the program declares them (issue 21, docs/decisions/022)."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from ops import (
    bootstrap_backend,
    dr_promote,
    dr_readiness,
    oncall,
    pg_major_upgrade,
    pg_restore_rehearsal,
    preflight,
    region_switch,
)
from ops._common import outputs_parameter, runbook_document
from tests.conftest import ROOT, fake_aws_credentials, region_of, synthesized
from tests.iam_oracle import assert_exactly_covered, help_lists, recorded

ACCOUNT = "481236059412"  # prod's aws.accountId


@pytest.fixture
def outputs_file(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(synthesized("prod").outputs))
    return path


def commands(outputs_file) -> dict:
    """Each command with arguments that get it to its first AWS call."""
    return {
        dr_readiness: ["--outputs", str(outputs_file)],
        dr_promote: ["--outputs", str(outputs_file), "--dry-run"],
        region_switch: ["--outputs", str(outputs_file), "--activate", "dr", "--dry-run"],
        pg_major_upgrade: ["--outputs", str(outputs_file), "--target-version", "17.2", "--dry-run"],
        pg_restore_rehearsal: ["--outputs", str(outputs_file)],
        preflight: ["--stack", "prod"],
        bootstrap_backend: ["--stack", "prod"],
    }


COMMANDS = (dr_readiness, dr_promote, region_switch, pg_major_upgrade, pg_restore_rehearsal, preflight, bootstrap_backend)


@pytest.fixture
def kubectl_on_path(tmp_path, monkeypatch):
    # the preflight looks for kubectl before it checks the credentials
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text("#!/bin/sh\nexit 9\n")
    (bin_dir / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def no_credentials(monkeypatch, tmp_path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def no_endpoint(monkeypatch) -> None:
    """No network: every request fails where botocore sends it, with botocore's own error."""
    fake_aws_credentials(monkeypatch, ACCOUNT)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore retries connection errors; once is enough here

    def refuse(request, **_):
        raise EndpointConnectionError(endpoint_url=request.url)

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-send", refuse)


def one_line(capsys, prog: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"{prog}: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_no_credentials_is_one_line(command, outputs_file, monkeypatch, tmp_path, capsys, kubectl_on_path):
    no_credentials(monkeypatch, tmp_path)
    assert command.main(commands(outputs_file)[command]) == 2
    assert "no AWS credentials" in one_line(capsys, command.__name__.rsplit(".", 1)[-1])


@pytest.mark.parametrize("command", COMMANDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_no_endpoint_is_one_line(command, outputs_file, monkeypatch, capsys, kubectl_on_path):
    no_endpoint(monkeypatch)
    assert command.main(commands(outputs_file)[command]) == 2
    line = one_line(capsys, command.__name__.rsplit(".", 1)[-1])
    # the account check goes to STS in the DR region, never the global endpoint (served in us-east-1)
    assert "no endpoint: cannot reach https://sts.us-west-2.amazonaws.com" in line, line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_another_accounts_credentials_are_one_line(command, outputs_file, monkeypatch, capsys, kubectl_on_path):
    fake_aws_credentials(monkeypatch, "123456789012")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with mock_aws():
        assert command.main(commands(outputs_file)[command]) == 2
    line = one_line(capsys, command.__name__.rsplit(".", 1)[-1])
    assert "123456789012" in line and ACCOUNT in line, line


def test_a_denied_call_names_the_permission_in_one_line(outputs_file, monkeypatch, capsys):
    from botocore.exceptions import ClientError

    fake_aws_credentials(monkeypatch, ACCOUNT)

    def deny(model, **_):
        if model.name == "DescribeDBInstances":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)

    with mock_aws():  # moto resets boto3's default session when it starts: the hook goes on after
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call", deny)
        assert dr_promote.main(commands(outputs_file)[dr_promote]) == 2
    assert "not permitted: DescribeDBInstances was denied" in one_line(capsys, "dr_promote")


def test_the_cli_prints_one_line_not_a_traceback(outputs_file, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    run = subprocess.run([sys.executable, "-m", "ops.dr_promote", "--outputs", str(outputs_file), "--dry-run"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("dr_promote: no AWS credentials"), run.stderr


# --- the state backend and the secrets key survive a region loss ------------------------------------------


@pytest.fixture
def aws_account(monkeypatch):
    fake_aws_credentials(monkeypatch, ACCOUNT)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with mock_aws():
        yield


def test_bootstrap_creates_a_replicated_state_bucket_and_a_multi_region_key(aws_account, capsys, monkeypatch):
    with recorded(monkeypatch) as calls:
        assert bootstrap_backend.main(["--stack", "prod"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert_exactly_covered(bootstrap_backend.IAM, calls)
    help_lists(bootstrap_backend, bootstrap_backend.IAM, capsys)

    east, west = boto3.client("kms", "us-east-1"), boto3.client("kms", "us-west-2")
    primary = east.describe_key(KeyId=bootstrap_backend.KEY_ALIAS)["KeyMetadata"]
    replica = west.describe_key(KeyId=bootstrap_backend.KEY_ALIAS)["KeyMetadata"]
    # a replica shares the key ID (and the material): what one encrypts the other decrypts
    assert primary["MultiRegion"] and replica["KeyId"] == primary["KeyId"] and replica["Arn"].startswith(
        "arn:aws:kms:us-west-2:")
    assert east.get_key_rotation_status(KeyId=primary["KeyId"])["KeyRotationEnabled"]
    # (decrypting the primary's ciphertext with the replica is AWS's promise, which moto does not model)

    backend = bootstrap_backend.Backend(ACCOUNT, "us-east-1", "us-west-2")
    for region, key in (("us-east-1", primary["Arn"]), ("us-west-2", replica["Arn"])):
        s3, name = boto3.client("s3", region), backend.bucket(region)
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
        [rule] = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
        blocks = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert all(blocks.values()) and len(blocks) == 4
        assert '"aws:SecureTransport": "false"' in s3.get_bucket_policy(Bucket=name)["Policy"]
    [rule] = boto3.client("s3", "us-east-1").get_bucket_replication(
        Bucket=backend.bucket("us-east-1"))["ReplicationConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["Destination"]["Bucket"] == f"arn:aws:s3:::{backend.bucket('us-west-2')}"
    assert rule["Destination"]["EncryptionConfiguration"]["ReplicaKmsKeyID"] == replica["Arn"]
    assert rule["Destination"]["ReplicationTime"]["Status"] == "Enabled"
    # the commands: log in to either copy; the secrets provider's URL names no region (AWS_REGION picks the copy)
    assert f"pulumi login 's3://{backend.bucket('us-east-1')}?region=us-east-1&awssdk=v2'" in out
    assert f"pulumi login 's3://{backend.bucket('us-west-2')}?region=us-west-2&awssdk=v2'" in out
    assert "--secrets-provider 'awskms://alias/intelgraph-pulumi-secrets'" in out
    assert "pulumi stack change-secrets-provider --stack prod 'awskms://alias/intelgraph-pulumi-secrets?region=us-west-2'" in out

    # idempotent: a re-run completes nothing new and changes no key
    assert bootstrap_backend.main(["--stack", "prod"]) == 0
    assert len(east.list_keys()["Keys"]) == 1


# --- what the program declares -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_every_deploy_writes_the_runbook_outputs_into_the_dr_region(stack):
    synthesis = synthesized(stack)
    parameter = synthesis.named("runbook-outputs", "aws:ssm/parameter:Parameter")
    assert region_of(synthesis, parameter) == "us-west-2" == synthesis.outputs["aws"]["drRegion"]
    assert parameter.inputs["name"] == outputs_parameter(stack) and parameter.inputs["type"] == "String"
    document = json.loads(parameter.inputs["insecureValue"])
    assert document == runbook_document(synthesis.outputs)
    # Standard tier: values up to 4 KB (Systems Manager User Guide, "Managing parameter tiers")
    assert len(parameter.inputs["insecureValue"].encode()) < 4096 * 0.8, "leave room: move to the Advanced tier"
    assert "password" not in parameter.inputs["insecureValue"].lower()  # ARNs and names only, no secret


def _statements(synthesis) -> list[dict]:
    policy = synthesis.named("oncall-runbooks", "aws:iam/rolePolicy:RolePolicy")
    return json.loads(policy.inputs["policy"])["Statement"]


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_on_call_role_grants_exactly_the_dr_runbooks_actions_on_the_stacks_resources(stack):
    synthesis = synthesized(stack)
    statements = _statements(synthesis)
    granted = {a for s in statements for a in s["Action"]}
    assert granted == dr_readiness.IAM.actions | region_switch.IAM.actions | dr_promote.IAM.actions
    assert all(s["Effect"] == "Allow" for s in statements)
    outputs = synthesis.outputs
    for statement in statements:
        for resource in statement["Resource"]:
            if resource == "*":  # only actions with no resource type (Service Authorization Reference)
                assert statement["Action"] == ["cloudwatch:GetMetricStatistics"]
            else:
                global_arn = resource.startswith(("arn:aws:s3:::", "arn:aws:route53:::"))
                assert outputs["aws"]["accountId"] in resource or global_arn, resource
            assert "Condition" not in statement  # no KMS grant left: DescribeSecret decrypts nothing
    # the promotion acts on either region's instance (the way back promotes the primary region's):
    # named per region, not per role, so a failover changes no policy
    [promote] = [s for s in statements if "rds:PromoteReadReplica" in s["Action"]]
    assert promote["Resource"] == [outputs["postgres"]["instanceArns"]["primary"], outputs["postgres"]["instanceArns"]["dr"]]
    # the master secrets by name, in both regions: the writer's secret, whichever writes, and its copy
    [secrets] = [s for s in statements if any(a.startswith("secretsmanager:") for a in s["Action"])]
    assert secrets["Action"] == ["secretsmanager:DescribeSecret"]
    assert secrets["Resource"] == [f"arn:aws:secretsmanager:{region}:{outputs['aws']['accountId']}:secret:"
                                   "intelgraph-pg-*master-??????" for region in ("us-east-1", "us-west-2")]
    named = [arn for key, arn in outputs["postgres"].items() if key.endswith("SecretArn")]
    assert outputs["postgres"]["writerSecretArn"] in named
    for arn in named:
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in secrets["Resource"]), arn


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_on_call_role_is_assumed_through_the_identity_center_permission_set_only(stack):
    synthesis = synthesized(stack)
    role = synthesis.named("oncall", "aws:iam/role:Role")
    assert role.inputs["name"] == f"intelgraph-{stack}-oncall" == oncall.role_name(stack)
    [statement] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    account = synthesis.outputs["aws"]["accountId"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"} and statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{account}:role/aws-reserved/"
                                                                      "sso.amazonaws.com/*AWSReservedSSO_IntelGraphOnCall_*"}}
    # no static keys: no IAM user, no access key anywhere in the program
    assert not synthesis.of_type("aws:iam/user:User") and not synthesis.of_type("aws:iam/accessKey:AccessKey")
    assert synthesis.outputs["onCall"]["permissionSet"] == "IntelGraphOnCall"


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_a_failed_over_deploy_changes_no_iam(stack):
    """IAM's control plane is in us-east-1 (IAM User Guide, "Resilience in AWS Identity and Access
    Management"): the on-call role and its policy must come out of dr.activeRegion: dr byte for byte
    as they were, or the failed-over deploy would call it. The DR copy of the outputs may change."""
    from tests.test_failed_over_deploy import failed_over, normal

    for name, kind in (("oncall", "aws:iam/role:Role"), ("oncall-runbooks", "aws:iam/rolePolicy:RolePolicy")):
        assert failed_over(stack).named(name, kind).inputs == normal(stack).named(name, kind).inputs, name
    parameter = failed_over(stack).named("runbook-outputs", "aws:ssm/parameter:Parameter")
    assert region_of(failed_over(stack), parameter) == "us-west-2"


def test_a_permission_set_identity_center_cannot_name_exits_2_naming_the_key(tmp_path, monkeypatch, capsys):
    # permission set names: 1-32 characters of [\w+=,.@-] (IAM Identity Center API Reference, CreatePermissionSet)
    from tests.conftest import config_with
    from tests.test_settings import run_synth

    code, out, err, registered = run_synth(tmp_path, monkeypatch, capsys, "prod",
                                           config_with("prod", {"dr.onCallPermissionSet": "on call/*"}))
    assert code == 2 and registered == ["pulumi:pulumi:Stack"], (out, err)
    assert "intelgraph-platform:dr.onCallPermissionSet" in err


def test_sts_pointed_at_the_global_endpoint_is_refused_by_name(outputs_file, monkeypatch, capsys):
    # botocore's legacy setting sends STS calls to sts.amazonaws.com, which us-east-1 serves
    # (IAM User Guide, "Manage AWS STS in an AWS Region"); the account check would fail with the primary
    fake_aws_credentials(monkeypatch, ACCOUNT)
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with mock_aws():
        assert dr_readiness.main(["--outputs", str(outputs_file)]) == 2
    assert "STS is configured to use the global endpoint" in one_line(capsys, "dr_readiness")
