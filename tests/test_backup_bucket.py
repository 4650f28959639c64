"""BackupBucket: every hardening property, on the child resources the stack really creates."""

from __future__ import annotations

import json
import re

import pytest

import settings
from components.backup_bucket import BackupBucket, BackupBucketArgs, ObjectLock
from synth.engine import Synthesis
from tests.conftest import fake_aws_credentials, region_of, run_component, stack_settings

S3 = "aws:s3/"
PURPOSES = ("neo4j-backups", "logs-backups")


def child(synthesis: Synthesis, name: str, kind: str):
    return synthesis.named(name, f"{S3}{kind[:1].lower() + kind[1:]}:{kind}")



@pytest.mark.parametrize("purpose", PURPOSES)
def test_both_buckets_are_components_of_the_stack(any_stack, purpose):
    component = any_stack.named(purpose, "intelgraph:storage:BackupBucket")
    assert component.parent == any_stack.root.urn
    assert len(any_stack.children_of(component)) >= 20


@pytest.mark.parametrize("side", ["", "-replica"])
@pytest.mark.parametrize("purpose", PURPOSES)
def test_each_side_is_encrypted_private_versioned_and_tls_only(any_stack, purpose, side):
    name = f"{purpose}{side}"
    bucket = child(any_stack, name, "Bucket")
    key = any_stack.named(f"{name}-key", "aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert bucket.inputs["forceDestroy"] is False

    sse = child(any_stack, f"{name}-encryption", "BucketServerSideEncryptionConfiguration")
    rule = sse.inputs["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": key.outputs["arn"]}
    assert rule["bucketKeyEnabled"] is True

    block = child(any_stack, f"{name}-public-access", "BucketPublicAccessBlock")
    assert all(block.inputs[flag] is True for flag in (
        "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert child(any_stack, f"{name}-ownership", "BucketOwnershipControls").inputs["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"}
    assert child(any_stack, f"{name}-versioning", "BucketVersioning").inputs[
        "versioningConfiguration"]["status"] == "Enabled"

    policy = json.loads(child(any_stack, f"{name}-tls-only", "BucketPolicy").inputs["policy"])
    statement, *others = policy["Statement"]
    # the logs bucket also grants CloudTrail its delivery (tests/test_audit_trail); nothing else does
    assert [o["Principal"] for o in others] == ([{"Service": "cloudtrail.amazonaws.com"}] * 2
                                                if name == "logs-backups" else [])
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [bucket.outputs["arn"], bucket.outputs["arn"] + "/*"]
    # No "deny unencrypted PUT": default encryption covers it and it breaks backup tools.
    assert "s3:x-amz-server-side-encryption" not in json.dumps(policy)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_lifecycle_tiers_expires_and_cleans_up_noncurrent_versions(any_stack, purpose):
    [rule] = child(any_stack, f"{purpose}-lifecycle", "BucketLifecycleConfiguration").inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["transitions"][0]["days"] < rule["expiration"]["days"]
    # each configured value at its destination, not only its shape
    bucket = getattr(stack_settings(any_stack.stack).backups, purpose.removesuffix("-backups"))
    assert rule["transitions"] == [{"days": bucket.transition_days, "storageClass": bucket.transition_storage_class}]
    assert rule["expiration"] == {"days": bucket.expiration_days}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": bucket.noncurrent_expiration_days}
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] >= 1


@pytest.mark.parametrize("purpose", PURPOSES)
def test_replica_lives_in_the_dr_region_with_its_own_dr_key(any_stack, purpose):
    source = child(any_stack, purpose, "Bucket")
    replica = child(any_stack, f"{purpose}-replica", "Bucket")
    replica_key = any_stack.named(f"{purpose}-replica-key", "aws:kms/key:Key")
    aws = stack_settings(any_stack.stack).aws
    assert region_of(any_stack, source) == aws.primary_region
    assert region_of(any_stack, replica) == region_of(any_stack, replica_key) == aws.dr_region
    assert f":{aws.dr_region}:" in replica_key.outputs["arn"]

    config = child(any_stack, f"{purpose}-replication", "BucketReplicationConfig")
    assert config.inputs["bucket"] == source.id
    [rule] = config.inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["deleteMarkerReplication"] == {"status": "Enabled"}
    assert rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}
    assert rule["destination"]["bucket"] == replica.outputs["arn"]
    assert rule["destination"]["encryptionConfiguration"] == {"replicaKmsKeyId": replica_key.outputs["arn"]}
    # S3 refuses replication until both sides are versioned: the config must wait for both.
    versionings = {child(any_stack, f"{purpose}{s}-versioning", "BucketVersioning").urn for s in ("", "-replica")}
    assert versionings <= set(config.dependencies)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_replication_role_may_only_touch_its_two_buckets_and_keys(any_stack, purpose):
    role = any_stack.named(f"{purpose}-replication", "aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "s3.amazonaws.com"}

    policy = json.loads(any_stack.named(f"{purpose}-replication", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    arns = {child(any_stack, n, "Bucket").outputs["arn"] for n in (purpose, f"{purpose}-replica")}
    keys = {any_stack.named(f"{n}-key", "aws:kms/key:Key").outputs["arn"] for n in (purpose, f"{purpose}-replica")}
    if purpose == "logs-backups":  # and the key CloudTrail encrypts its log files with
        keys.add(any_stack.named("audit-trail-key", "aws:kms/key:Key").outputs["arn"])
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(action.endswith("*") for action in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            assert resource.removesuffix("/*") in arns | keys, resource
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["DecryptSource"]["Condition"]["StringLike"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert by_sid["EncryptReplicas"]["Condition"]["StringLike"]["kms:ViaService"] == "s3.us-west-2.amazonaws.com"


def _allows(policy: dict, action: str, key_arn: str, context: dict[str, str]) -> bool:
    """IAM evaluation of the role's KMS statements: action, resource, and StringLike conditions."""
    from fnmatch import fnmatchcase

    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] != "Allow" or action not in actions or key_arn not in resources:
            continue
        conditions = statement.get("Condition", {}).get("StringLike", {})
        # a list of values matches when any one does
        if all(k in context and any(fnmatchcase(context[k], p) for p in ([v] if isinstance(v, str) else v))
               for k, v in conditions.items()):
            return True
    return False


@pytest.mark.parametrize("purpose", PURPOSES)
def test_replication_role_kms_conditions_match_what_s3_sends_with_bucket_keys(any_stack, purpose):
    # S3 User Guide, "Replicating objects created with server-side encryption (SSE-KMS)": with
    # S3 Bucket Keys enabled the encryption context is the bucket ARN (not <bucket>/*), and S3
    # calls kms:Decrypt on the destination key too while writing replicas.
    for side in ("", "-replica"):
        encryption = child(any_stack, f"{purpose}{side}-encryption", "BucketServerSideEncryptionConfiguration")
        assert encryption.inputs["rules"][0]["bucketKeyEnabled"] is True
    policy = json.loads(any_stack.named(f"{purpose}-replication", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    source, replica = (child(any_stack, n, "Bucket").outputs["arn"] for n in (purpose, f"{purpose}-replica"))
    source_key, replica_key = (any_stack.named(f"{n}-key", "aws:kms/key:Key").outputs["arn"]
                               for n in (purpose, f"{purpose}-replica"))
    read = {"kms:ViaService": "s3.us-east-1.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": source}
    write = {"kms:ViaService": "s3.us-west-2.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": replica}
    assert _allows(policy, "kms:Decrypt", source_key, read)
    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"):
        assert _allows(policy, action, replica_key, write), action
        # a replica written without a Bucket Key carries its object ARN as the context (S3 User Guide,
        # "Replicating objects created with server-side encryption (SSE-KMS)", S3 Bucket Keys and
        # replication): the CloudTrail log files, encrypted with the trail's key, are such objects
        assert _allows(policy, action, replica_key, {**write, "kms:EncryptionContext:aws:s3:arn":
                                                     f"{replica}/cloudtrail/AWSLogs/1/CloudTrail/x.json.gz"}), action
    # and nothing else: another bucket's context, or a key through another service, is refused
    assert not _allows(policy, "kms:Decrypt", source_key, {**read, "kms:EncryptionContext:aws:s3:arn": replica})
    assert not _allows(policy, "kms:Encrypt", replica_key, {**write, "kms:ViaService": "ec2.us-west-2.amazonaws.com"})


def test_replication_role_decrypts_the_cloudtrail_files_in_the_logs_bucket(any_stack):
    # S3 User Guide, "Replicating objects created with server-side encryption (SSE-KMS)": the role
    # needs kms:Decrypt on the key that encrypted each source object. CloudTrail's PutObject names
    # the trail's own key (CloudTrail User Guide, "Encrypting CloudTrail log files with AWS KMS
    # keys"), not the bucket default, so S3 shares no Bucket Key with it: the context is the
    # object ARN, or the bucket ARN where S3 uses a Bucket Key of that key. Both must decrypt.
    [trail] = any_stack.of_type("aws:cloudtrail/trail:Trail")
    trail_key = trail.inputs["kmsKeyId"]
    policy = json.loads(any_stack.named("logs-backups-replication", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    source = child(any_stack, "logs-backups", "Bucket").outputs["arn"]
    assert trail.inputs["s3BucketName"] == child(any_stack, "logs-backups", "Bucket").outputs["bucket"]
    log_file = f"{source}/{trail.inputs['s3KeyPrefix']}/AWSLogs/000000000000/CloudTrail/us-east-1/2026/12/01/f.json.gz"
    via = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    for context in (log_file, source):
        assert _allows(policy, "kms:Decrypt", trail_key, {**via, "kms:EncryptionContext:aws:s3:arn": context})
    # least privilege still: only through S3 in the source region, only for objects of this bucket
    assert not _allows(policy, "kms:Decrypt", trail_key, {"kms:ViaService": "s3.us-west-2.amazonaws.com",
                                                          "kms:EncryptionContext:aws:s3:arn": log_file})
    assert not _allows(policy, "kms:Decrypt", trail_key, {**via, "kms:EncryptionContext:aws:s3:arn":
                                                          "arn:aws:s3:::another-bucket/x"})
    assert not _allows(policy, "kms:Encrypt", trail_key, {**via, "kms:EncryptionContext:aws:s3:arn": log_file})
    # the neo4j bucket receives no foreign-key objects: its role gets no other key
    neo4j = json.loads(any_stack.named("neo4j-backups-replication", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert not _allows(neo4j, "kms:Decrypt", trail_key, {**via, "kms:EncryptionContext:aws:s3:arn": log_file})


@pytest.mark.parametrize("purpose", PURPOSES)
def test_replication_runs_under_rtc_with_metrics_and_alarms_on_failures(any_stack, purpose):
    # S3 RTC: 15-minute SLA, requires replication metrics; both take only 15 minutes.
    [rule] = child(any_stack, f"{purpose}-replication", "BucketReplicationConfig").inputs["rules"]
    # everything replicates, deletions too (a delete marker left behind in the DR copy would keep
    # serving the deleted object after failover), SSE-KMS objects included, under the DR key
    assert (rule["status"], rule["filter"], rule["deleteMarkerReplication"], rule["sourceSelectionCriteria"]) == (
        "Enabled", {"prefix": ""}, {"status": "Enabled"}, {"sseKmsEncryptedObjects": {"status": "Enabled"}})
    replica_key = any_stack.named(f"{purpose}-replica-key", "aws:kms/key:Key").outputs["arn"]
    assert rule["destination"]["encryptionConfiguration"] == {"replicaKmsKeyId": replica_key}
    assert rule["destination"]["replicationTime"] == {"status": "Enabled", "time": {"minutes": 15}}
    assert rule["destination"]["metrics"] == {"status": "Enabled", "eventThreshold": {"minutes": 15}}
    alarm = any_stack.named(f"{purpose}-replication-failed", "aws:cloudwatch/metricAlarm:MetricAlarm").inputs
    source, replica = (child(any_stack, n, "Bucket").outputs["bucket"] for n in (purpose, f"{purpose}-replica"))
    assert (alarm["namespace"], alarm["metricName"]) == ("AWS/S3", "OperationsFailedReplication")
    assert alarm["dimensions"] == {"SourceBucket": source, "DestinationBucket": replica, "RuleId": rule["id"]}
    assert alarm["threshold"] == 0 and alarm["comparisonOperator"] == "GreaterThanThreshold"
    assert alarm["treatMissingData"] == "notBreaching" and alarm["alarmActions"]


def test_prod_locks_objects_on_both_sides(prod):
    for name in ("neo4j-backups", "neo4j-backups-replica"):
        assert child(prod, name, "Bucket").inputs["objectLockEnabled"] is True
        lock = child(prod, f"{name}-object-lock", "BucketObjectLockConfiguration")
        assert lock.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 35}


def test_stage_has_no_object_lock(stage):
    assert not stage.of_type(f"{S3}bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert all(b.inputs["objectLockEnabled"] is False for b in stage.of_type(f"{S3}bucket:Bucket"))


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_bucket_names_are_account_regional_names_s3_accepts(stack, request, monkeypatch):
    """Each name ends -<account>-<region>-an with the account regional namespace, so only the
    stack's account can ever create it (S3 User Guide, "Namespaces for general purpose buckets");
    moto's CreateBucket refuses the header for a name without that suffix, as S3 does."""
    import boto3
    from moto import mock_aws

    synthesis = request.getfixturevalue(stack)
    account = stack_settings(stack).aws.account_id
    fake_aws_credentials(monkeypatch, account)
    buckets = synthesis.of_type(f"{S3}bucket:Bucket")
    assert len(buckets) == 4
    with mock_aws():
        for bucket in buckets:
            name, region = bucket.inputs["bucket"], region_of(synthesis, bucket)
            assert bucket.inputs["bucketNamespace"] == "account-regional" and len(name) <= 63
            s3 = boto3.client("s3", region_name=region)
            where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=name, BucketNamespace="account-regional", **where)
            other = name.replace(f"-{region}-an", "-eu-west-1-an")
            with pytest.raises(s3.exceptions.ClientError, match="InvalidNamespaceHeader"):
                s3.create_bucket(Bucket=other, BucketNamespace="account-regional", **where)


def test_a_bucket_name_too_long_for_s3_is_refused_by_settings():
    """S3 names are at most 63 characters; the stack name is part of them."""
    from synth import engine

    config = engine.stack_config("prod")
    settings.validate(config, stack="prod")
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config, stack="p" * 20)
    keys = {p.split(": ")[0].removeprefix("intelgraph-platform:") for p in raised.value.problems}
    assert keys == {"aws.primaryRegion", "aws.drRegion"}
    assert "would exceed S3's 63" in str(raised.value)


@pytest.mark.parametrize("stack", ["Prod", "prod_eu", "prod.eu", "-prod"])
def test_a_stack_name_s3_would_refuse_in_a_bucket_name_is_refused_before_anything_exists(stack):
    """Pulumi allows uppercase, '_' and '.' in stack names; S3 bucket names allow none of the first
    two (and '.' breaks virtual-hosted TLS), and would refuse them only at CreateBucket."""
    from synth import engine

    with pytest.raises(settings.SettingsError, match=f"stack name '{re.escape(stack)}'"):
        settings.validate(engine.stack_config("prod"), stack=stack)


def test_component_outputs_point_at_the_dr_twin():
    import pulumi
    import pulumi_aws as aws

    def build():
        dr = aws.Provider("dr", region="eu-west-1")
        primary = aws.Provider("primary", region="eu-central-1")
        bucket = BackupBucket("dumps", BackupBucketArgs(
            purpose="dumps", dr_provider=dr, primary_region="eu-central-1", dr_region="eu-west-1",
            transition_days=7, transition_storage_class="GLACIER_IR",
            expiration_days=30, noncurrent_expiration_days=7, object_lock=ObjectLock("GOVERNANCE", 7),
            account_id="481236059412",
        ), opts=pulumi.ResourceOptions(provider=primary))
        return {"key": bucket.replica_kms_key_arn, "replica": bucket.replica_bucket_name,
                "bucket": bucket.bucket_name}

    outputs = run_component(build).outputs
    assert ":eu-west-1:" in outputs["key"]
    assert outputs["replica"] == "intelgraph-prod-dumps-481236059412-eu-west-1-an"
    assert outputs["bucket"] == "intelgraph-prod-dumps-481236059412-eu-central-1-an"


@pytest.mark.parametrize("changes,words", [
    ({"expiration_days": 5}, "expiration_days must be greater than transition_days"),
    ({"purpose": "Bad Name"}, "purpose must be lowercase"),
    ({"noncurrent_expiration_days": 0}, "noncurrent_expiration_days must be at least 1"),
    ({"object_lock": ObjectLock("COMPLIANCE", 999)}, "object_lock.days cannot exceed"),
    ({"account_id": ""}, "account_id must be the 12-digit"),
    ({"dr_region": "eu-central-1"}, "dr_region must differ"),
])
def test_args_are_validated_with_the_field_named(changes, words):
    base = dict(purpose="dumps", dr_provider=None, primary_region="eu-central-1", dr_region="eu-west-1",
                transition_days=7,
                transition_storage_class="GLACIER_IR", expiration_days=30, noncurrent_expiration_days=7,
                account_id="481236059412")
    with pytest.raises(ValueError, match=words):
        BackupBucketArgs(**{**base, **changes})
