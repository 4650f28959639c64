"""The AWS contract: what the stack would send to AWS, sent to moto's AWS instead.

Every IAM document goes through moto's IAM policy validator; every bucket setting goes through
botocore's request validation and moto's S3 rules (replication needs versioning on both sides,
Object Lock needs a lock-enabled bucket, ...). A document or setting AWS would reject fails here.
Later components add their own documents to ``iam_documents``.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from synth.engine import Synthesis
from tests.aws_shapes import to_aws
from tests.conftest import fake_aws_credentials, stack_settings

S3 = "aws:s3/"


@pytest.fixture
def aws(monkeypatch):
    fake_aws_credentials(monkeypatch)
    with mock_aws():
        yield


def test_every_iam_role_and_policy_is_accepted_by_iam(any_stack, aws):
    iam = boto3.client("iam", region_name="us-east-1")
    roles = any_stack.of_type("aws:iam/role:Role")
    assert {r.name for r in roles} >= {"neo4j-backups-replication", "logs-backups-replication",
                                       "intelgraph-pg-monitoring"}
    for role in roles:
        iam.create_role(RoleName=role.outputs["name"], AssumeRolePolicyDocument=role.inputs["assumeRolePolicy"])
    for policy in any_stack.of_type("aws:iam/rolePolicy:RolePolicy"):
        iam.put_role_policy(RoleName=policy.inputs["role"], PolicyName=policy.outputs["name"],
                            PolicyDocument=policy.inputs["policy"])
        iam.create_policy(PolicyName=f"{policy.name}-standalone", PolicyDocument=policy.inputs["policy"])
    for attachment in any_stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        assert aws_managed_policy_exists(attachment.inputs["policyArn"]), attachment.inputs["policyArn"]


def aws_managed_policy_exists(arn: str) -> bool:
    """Check against the catalogue of AWS-managed policies that moto ships (loading them into
    moto's IAM takes seconds per test; the catalogue answers the same question at once)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    prefix = "arn:aws:iam::aws:policy"
    if not arn.startswith(prefix):
        return False
    path, _, name = arn[len(prefix):].rpartition("/")
    entry = json.loads(aws_managed_policies_data).get(name)
    return entry is not None and entry["Path"] == f"{path}/"


def test_a_mistyped_managed_policy_would_be_caught():
    assert aws_managed_policy_exists("arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole")
    assert not aws_managed_policy_exists("arn:aws:iam::aws:policy/AmazonRDSEnhancedMonitoringRole")


def test_every_kms_key_policy_is_accepted_by_kms(any_stack, aws):
    with_policy = [k for k in any_stack.of_type("aws:kms/key:Key") if k.inputs.get("policy")]
    assert with_policy, "the alert topics' keys carry explicit policies"
    for key in with_policy:
        region = key.outputs["arn"].split(":")[3]
        kms = boto3.client("kms", region_name=region)
        created = kms.create_key(Policy=key.inputs["policy"], Description=key.inputs["description"])
        assert json.loads(kms.get_key_policy(KeyId=created["KeyMetadata"]["KeyId"], PolicyName="default")["Policy"])


def test_a_malformed_document_would_be_rejected(aws):
    iam = boto3.client("iam", region_name="us-east-1")
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.create_policy(PolicyName="broken", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Action": "s3:GetObject",
                                                     "Resource": "*"}]}))


def _settings_of(synthesis: Synthesis, bucket) -> dict[str, dict]:
    """Each bucket sub-resource that names this bucket, by its type's short name."""
    found = {}
    for r in synthesis.resources:
        if r.type.startswith(S3) and r.type != f"{S3}bucket:Bucket" and r.inputs.get("bucket") == bucket.id:
            found[r.type.rsplit(":", 1)[-1]] = r.inputs
    return found


def test_every_bucket_setting_is_accepted_by_s3(any_stack, aws, monkeypatch):
    # the stack's own account: S3 refuses an account regional name of another account
    monkeypatch.setenv("MOTO_ACCOUNT_ID", stack_settings(any_stack.stack).aws.account_id)
    buckets = any_stack.of_type(f"{S3}bucket:Bucket")
    kms_keys = {}
    for key in any_stack.of_type("aws:kms/key:Key"):
        region = key.outputs["arn"].split(":")[3]
        kms_keys[key.outputs["arn"]] = boto3.client("kms", region_name=region).create_key()["KeyMetadata"]["Arn"]

    # Create every bucket first: replication needs its destination to exist.
    for bucket in buckets:
        region = bucket.outputs["region"]
        # us-east-1 is the one region S3 refuses an explicit LocationConstraint for.
        location = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        boto3.client("s3", region_name=region).create_bucket(
            Bucket=bucket.id, ObjectLockEnabledForBucket=bucket.inputs["objectLockEnabled"],
            BucketNamespace=bucket.inputs["bucketNamespace"], **location)

    applied = 0
    for bucket in buckets:
        s3 = boto3.client("s3", region_name=bucket.outputs["region"])
        name = bucket.id
        settings = _settings_of(any_stack, bucket)
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls={"Rules": [
            to_aws(settings["BucketOwnershipControls"]["rule"])]})
        block = {k: v for k, v in to_aws(settings["BucketPublicAccessBlock"]).items() if k != "Bucket"}
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=to_aws(
            settings["BucketVersioning"]["versioningConfiguration"]))
        rules = to_aws(settings["BucketServerSideEncryptionConfiguration"]["rules"])
        for rule in rules:
            default = rule["ApplyServerSideEncryptionByDefault"]
            default["KMSMasterKeyID"] = kms_keys[default["KMSMasterKeyID"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        s3.put_bucket_policy(Bucket=name, Policy=settings["BucketPolicy"]["policy"])
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={
            "Rules": to_aws(settings["BucketLifecycleConfiguration"]["rules"])})
        if "BucketObjectLockConfiguration" in settings:
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": to_aws(settings["BucketObjectLockConfiguration"]["rule"])})
        applied += 1

    for bucket in buckets:
        settings = _settings_of(any_stack, bucket)
        if "BucketReplicationConfig" not in settings:
            continue
        replication = settings["BucketReplicationConfig"]
        s3 = boto3.client("s3", region_name=bucket.outputs["region"])
        s3.put_bucket_replication(Bucket=bucket.id, ReplicationConfiguration={
            "Role": replication["role"], "Rules": to_aws(replication["rules"])})
        stored = s3.get_bucket_replication(Bucket=bucket.id)["ReplicationConfiguration"]["Rules"][0]
        [twin] = [b for b in buckets if b.name == f"{bucket.name}-replica"]
        assert stored["Destination"]["Bucket"] == f"arn:aws:s3:::{twin.id}"
        applied += 1

    assert applied == 4 + 2  # four buckets configured, two replication configurations


def test_replication_without_versioning_would_be_rejected(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="unversioned")
    with pytest.raises(s3.exceptions.ClientError, match="Versioning must be 'Enabled'"):
        s3.put_bucket_replication(Bucket="unversioned", ReplicationConfiguration={
            "Role": "arn:aws:iam::123456789012:role/r",
            "Rules": [{"ID": "x", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
                       "DeleteMarkerReplication": {"Status": "Enabled"},
                       "Destination": {"Bucket": "arn:aws:s3:::elsewhere"}}]})
