"""The audit trail as CloudTrail would receive it: delivery into the logs bucket is granted by the
bucket policy for exactly this trail and every key CloudTrail writes, the trail key's conditions
match what CloudTrail sends, and the data-event selectors cover every backup - sent to moto's
CloudTrail, KMS and S3 through boto3 (botocore validates every field name and shape)."""

from __future__ import annotations

import fnmatch
import json
import re

import boto3
import pytest
from moto import mock_aws

from components import audit_trail
from tests.aws_shapes import to_aws
from tests.conftest import ROOT, STACKS, fake_aws_credentials, region_of, stack_settings, synthesized

TRAIL = "aws:cloudtrail/trail:Trail"



def expected_trail_arn(synthesis, trail) -> str:
    # CloudTrail names a trail arn:aws:cloudtrail:<home region>:<account>:trail/<name>
    account = synthesis.outputs["postgres"]["primaryArn"].split(":")[4]
    return f"arn:aws:cloudtrail:{region_of(synthesis, trail)}:{account}:trail/{trail.inputs['name']}"


@pytest.mark.parametrize("stack", STACKS)
def test_the_trail_is_tamper_evident_encrypted_multi_region_and_delivers_to_the_logs_bucket(stack):
    synthesis = synthesized(stack)
    [trail] = synthesis.of_type(TRAIL)
    i = trail.inputs
    assert i["enableLogFileValidation"] is True and i["isMultiRegionTrail"] is True
    assert i["includeGlobalServiceEvents"] is True  # IAM/STS events live in us-east-1 as global events
    assert i["kmsKeyId"] == synthesis.named("audit-trail-key", "aws:kms/key:Key").outputs["arn"]
    assert i["s3BucketName"] == synthesis.named("logs-backups", "aws:s3/bucket:Bucket").outputs["bucket"]
    assert synthesis.outputs["audit"]["trailArn"] == expected_trail_arn(synthesis, trail)
    # CloudTrail checks the bucket policy at CreateTrail: the trail waits for the logs bucket
    assert any(dep.endswith("::logs-backups") for dep in trail.dependencies)
    component = synthesis.named("audit-trail", "intelgraph:audit:AuditTrail")
    assert synthesis.named("logs-backups-tls-only", "aws:s3/bucketPolicy:BucketPolicy").urn in component.dependencies


def delivery_keys(account: str, prefix: str) -> list[str]:
    """Where CloudTrail writes (CloudTrail User Guide, "Finding your CloudTrail log files"): log
    files per region of a multi-region trail, and the hourly digests of log file validation."""
    return [f"{prefix}/AWSLogs/{account}/CloudTrail/{region}/2026/12/01/{account}_CloudTrail_{region}_20261201T1805Z_a1b2.json.gz"
            for region in ("us-east-1", "us-west-2")] + [
            f"{prefix}/AWSLogs/{account}/CloudTrail-Digest/us-east-1/2026/12/01/"
            f"{account}_CloudTrail-Digest_us-east-1_intelgraph-prod-audit_us-east-1_20261201T180000Z.json.gz"]


def test_the_bucket_policy_grants_exactly_this_trail_every_key_it_writes(prod):
    [trail] = prod.of_type(TRAIL)
    arn = expected_trail_arn(prod, trail)
    bucket = prod.named("logs-backups", "aws:s3/bucket:Bucket").outputs["arn"]
    statements = json.loads(prod.named("logs-backups-tls-only", "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])[
        "Statement"]
    by_action = {s["Action"]: s for s in statements if s["Effect"] == "Allow"}
    acl, write = by_action["s3:GetBucketAcl"], by_action["s3:PutObject"]
    assert acl["Resource"] == bucket and acl["Condition"]["StringEquals"]["aws:SourceArn"] == arn
    assert write["Condition"]["StringEquals"] == {"aws:SourceArn": arn, "s3:x-amz-acl": "bucket-owner-full-control"}
    for key in delivery_keys(stack_settings("prod").aws.account_id, trail.inputs["s3KeyPrefix"]):
        assert fnmatch.fnmatchcase(f"{bucket}/{key}", write["Resource"]), key
    assert not fnmatch.fnmatchcase(f"{bucket}/containers/x.gz", write["Resource"])
    # the TLS-only deny is still there, first
    assert statements[0]["Sid"] == "DenyInsecureTransport"


def test_the_trail_key_policy_matches_what_cloudtrail_sends(prod):
    [trail] = prod.of_type(TRAIL)
    arn = expected_trail_arn(prod, trail)
    policy = json.loads(prod.named("audit-trail-key", "aws:kms/key:Key").inputs["policy"])
    [encrypt] = [s for s in policy["Statement"] if s["Action"] == "kms:GenerateDataKey*"]
    # CloudTrail calls GenerateDataKey with encryption context aws:cloudtrail:arn = the trail ARN
    # and aws:SourceArn = the trail ARN ("Configure AWS KMS key policies for CloudTrail")
    assert fnmatch.fnmatchcase(arn, encrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:cloudtrail:arn"])
    assert encrypt["Condition"]["StringEquals"]["aws:SourceArn"] == arn
    assert region_of(prod, prod.named("audit-trail-key", "aws:kms/key:Key")) == region_of(
        prod, prod.named("logs-backups", "aws:s3/bucket:Bucket"))  # key and bucket in one region


def test_every_backup_object_is_audited_but_not_the_trails_own_deliveries(prod):
    [trail] = prod.of_type(TRAIL)
    [_, data, _] = trail.inputs["advancedEventSelectors"]
    fields = {f["field"]: f for f in data["fieldSelectors"]}
    assert fields["eventCategory"]["equals"] == ["Data"] and fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    prefixes = fields["resources.ARN"]["startsWiths"]

    def audited(arn: str) -> bool:
        return any(arn.startswith(p) for p in prefixes)

    for name in ("neo4j-backups", "neo4j-backups-replica"):
        assert audited(prod.named(name, "aws:s3/bucket:Bucket").outputs["arn"] + "/neo4j/graph-2026-12-01.backup")
    logs = prod.named("logs-backups", "aws:s3/bucket:Bucket").outputs["arn"]
    assert audited(f"{logs}/containers/2026/12/01/18/x.gz")
    # recording CloudTrail's own PutObjects would deliver them again ("recursive events")
    account = stack_settings("prod").aws.account_id
    assert not audited(f"{logs}/{trail.inputs['s3KeyPrefix']}/AWSLogs/{account}/CloudTrail/x.json.gz")


def test_reads_of_the_audit_log_are_recorded_in_both_regions_but_not_its_deliveries(prod):
    """Nobody should read the audit trail unrecorded (CIS AWS Foundations, access logging on the
    CloudTrail bucket; Security Hub CloudTrail.7): read data events on cloudtrail/ of the logs
    bucket and its DR copy. readOnly = true leaves out CloudTrail's own PutObject deliveries
    (CloudTrail User Guide, "Logging data events": the readOnly field of advanced event selectors)."""
    [trail] = prod.of_type(TRAIL)
    [_, _, reads] = trail.inputs["advancedEventSelectors"]
    fields = {f["field"]: f for f in reads["fieldSelectors"]}
    assert fields["eventCategory"]["equals"] == ["Data"] and fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert fields["readOnly"]["equals"] == ["true"]
    assert sorted(fields["resources.ARN"]["startsWiths"]) == sorted(
        f"{prod.named(name, 'aws:s3/bucket:Bucket').outputs['arn']}/{audit_trail.PREFIX}/"
        for name in ("logs-backups", "logs-backups-replica"))
    assert trail.inputs["isMultiRegionTrail"] is True  # the DR copy is in the other region


def test_cloudtrail_kms_and_s3_accept_what_the_stack_sends(prod, monkeypatch):
    fake_aws_credentials(monkeypatch, stack_settings("prod").aws.account_id)
    [trail] = prod.of_type(TRAIL)
    bucket = prod.named("logs-backups", "aws:s3/bucket:Bucket").outputs["bucket"]
    policy = prod.named("logs-backups-tls-only", "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
    key_policy = prod.named("audit-trail-key", "aws:kms/key:Key").inputs["policy"]
    with mock_aws():
        s3 = boto3.client("s3", "us-east-1")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)
        key = boto3.client("kms", "us-east-1").create_key(Policy=key_policy)["KeyMetadata"]["Arn"]
        cloudtrail = boto3.client("cloudtrail", "us-east-1")
        i = trail.inputs
        created = cloudtrail.create_trail(
            Name=i["name"], S3BucketName=bucket, S3KeyPrefix=i["s3KeyPrefix"], KmsKeyId=key,
            IsMultiRegionTrail=i["isMultiRegionTrail"], EnableLogFileValidation=i["enableLogFileValidation"],
            IncludeGlobalServiceEvents=i["includeGlobalServiceEvents"])
        assert created["TrailARN"] == expected_trail_arn(prod, trail)  # the ARN the policies name
        cloudtrail.put_event_selectors(TrailName=i["name"],
                                       AdvancedEventSelectors=to_aws(i["advancedEventSelectors"]))
        selectors = cloudtrail.get_event_selectors(TrailName=i["name"])["AdvancedEventSelectors"]
        assert [s["Name"] for s in selectors] == [s["name"] for s in i["advancedEventSelectors"]]
        assert audit_trail.PREFIX == i["s3KeyPrefix"]


def test_the_deploy_role_can_decrypt_with_the_trail_key(prod):
    """CloudTrail requires kms:Decrypt of the principal creating or updating a trail with SSE-KMS
    when the bucket uses an S3 Bucket Key (CloudTrail User Guide, "Configure AWS KMS key policies for
    CloudTrail", required sections for trails, item 2). The logs bucket uses one; the key policy
    delegates to IAM; the deploy role's statement in docs/cicd.md grants Decrypt by the key's tag."""
    bucket_sse = prod.named("logs-backups-encryption",
                            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert [r["bucketKeyEnabled"] for r in bucket_sse.inputs["rules"]] == [True]
    key = prod.named("audit-trail-key", "aws:kms/key:Key")
    [root] = [s for s in json.loads(key.inputs["policy"])["Statement"] if s["Sid"] == "AccountAdministersKeyThroughIam"]
    assert root["Action"] == "kms:*" and root["Principal"]["AWS"].endswith(":root")  # IAM policies count
    doc = (ROOT / "docs" / "cicd.md").read_text()
    [snippet] = re.findall(r"<!-- deploy-role-trail-key -->\s*```json\n(.*?)```", doc, re.S)
    statement = json.loads(snippet)
    assert statement["Effect"] == "Allow" and statement["Action"] == "kms:Decrypt"
    account = prod.outputs["postgres"]["primaryArn"].split(":")[4]
    assert fnmatch.fnmatchcase(key.outputs["arn"], statement["Resource"].replace("<account>", account))
    [(condition_key, wanted)] = statement["Condition"]["StringEquals"].items()
    tag = condition_key.removeprefix("aws:ResourceTag/")
    assert key.inputs["tags"][tag] == wanted == dict([audit_trail.DEPLOY_DECRYPT_TAG])[tag]
