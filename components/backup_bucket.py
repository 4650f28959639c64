"""BackupBucket: an encrypted, private, versioned S3 bucket replicated to a twin in the DR region.

Secure by default, after terraform-aws-modules/s3-bucket: SSE-KMS with a customer key and S3
Bucket Keys, all four public-access blocks, BucketOwnerEnforced (ACLs off), a TLS-only bucket
policy, lifecycle (transition, expiry, noncurrent expiry, aborted uploads), optional Object Lock,
and replication of every object, delete marker and KMS-encrypted object to a DR-region twin that
is hardened the same way with its own DR-region key. Replication runs under S3 Replication Time
Control (15-minute SLA) with replication metrics on, and an alarm fires on any failed replication.

No "deny unencrypted PUT" statement: default encryption already encrypts every object, and that
statement breaks backup tools that send no encryption header.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

import pulumi
import pulumi_aws as aws

from helpers.alerting import alarm, alert_topic
from helpers.validation import require

# S3 Replication Time Control replicates 99.99% of objects within 15 minutes; 15 is also the only
# value S3 accepts for the RTC time and the metrics event threshold (S3 User Guide, "Meeting
# compliance requirements with S3 Replication Time Control").
REPLICATION_SLA_MINUTES = 15

# S3 account regional namespaces (S3 User Guide, "Namespaces for general purpose buckets"): a name
# ending -<account>-<region>-an can only ever be created by that account, so it is predictable
# without being claimable by anyone else (before creation or after deletion), and a first preview
# knows it. Not offered in me-south-1 and me-central-1. docs/decisions/013-account-regional-bucket-names.md
NAMESPACE = "account-regional"
NAMESPACE_UNAVAILABLE_REGIONS = frozenset({"me-south-1", "me-central-1"})
MAX_BUCKET_NAME = 63  # S3 bucket naming rules, account regional names included
# Lowercase letters, digits and '-' (S3 also allows '.', which breaks TLS for virtual-hosted
# requests: the wildcard certificate covers one label), a letter or digit at each end.
NAME_PART = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def bucket_name(stack: str, name: str, account_id: str, region: str) -> str:
    """The physical name of ``name``'s bucket in ``region``: the primary and its DR twin share the
    prefix and differ by region."""
    return f"intelgraph-{stack}-{name}-{account_id}-{region}-an"


def bucket_name_problem(stack: str, name: str, account_id: str, region: str) -> Optional[str]:
    """Why S3 would refuse that name at CreateBucket (after a preview that passed), or None."""
    for what, part in (("stack name", stack), ("component name", name)):
        if not NAME_PART.fullmatch(part):
            return (f"the {what} {part!r} goes into bucket names: use lowercase letters, digits and '-' "
                    "(a letter or digit first and last)")
    full = bucket_name(stack, name, account_id, region)
    if len(full) > MAX_BUCKET_NAME:
        return f"the bucket name {full!r} ({len(full)} characters) would exceed S3's {MAX_BUCKET_NAME}"
    return None


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


@dataclass(frozen=True)
class ObjectLock:
    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int


@dataclass(frozen=True)
class BackupBucketArgs:
    """Inputs of a BackupBucket. Providers come through ``opts`` (primary) and ``dr_provider``."""

    purpose: str  # short label used in names and tags, e.g. "neo4j-backups"
    dr_provider: pulumi.ProviderResource
    primary_region: str  # the regions of the primary provider (opts) and of dr_provider: bucket names hold them
    dr_region: str
    transition_days: int
    transition_storage_class: str
    expiration_days: int
    noncurrent_expiration_days: int
    object_lock: Optional[ObjectLock] = None
    account_id: str = ""  # owner of the replication alarm's topic key; required
    abort_incomplete_upload_days: int = 7
    # More statements for the primary bucket's policy, from its ARN (e.g. CloudTrail's delivery
    # grant: a bucket has one policy, so they must join the TLS-only one)
    extra_policy: Optional[Callable[[str], list[dict]]] = None
    # Keys other than the bucket's own that encrypt objects written to the primary bucket (a PUT
    # that names its key, e.g. CloudTrail's log files): replication must decrypt those too
    other_source_key_arns: Sequence[pulumi.Input[str]] = ()

    def __post_init__(self) -> None:
        problems = []
        if not self.purpose or not self.purpose.replace("-", "").isalnum() or self.purpose != self.purpose.lower():
            problems.append("purpose must be lowercase letters, digits and '-'")
        for name in ("transition_days", "expiration_days", "noncurrent_expiration_days",
                     "abort_incomplete_upload_days"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (given {getattr(self, name)})")
        if self.expiration_days <= self.transition_days:
            problems.append("expiration_days must be greater than transition_days")
        if self.object_lock and self.object_lock.days > self.expiration_days:
            problems.append("object_lock.days cannot exceed expiration_days")
        if not (len(self.account_id) == 12 and self.account_id.isdigit()):
            problems.append(f"account_id must be the 12-digit AWS account id (given {self.account_id!r})")
        if self.primary_region == self.dr_region:
            problems.append("dr_region must differ from primary_region")
        require("BackupBucketArgs", problems)


@dataclass(frozen=True)
class _Side:
    """One hardened bucket and its key (the primary, or the DR twin)."""

    bucket: aws.s3.Bucket
    key: aws.kms.Key
    versioning: aws.s3.BucketVersioning
    policy: aws.s3.BucketPolicy


class BackupBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    replica_bucket_name: pulumi.Output[str]
    replica_bucket_arn: pulumi.Output[str]
    replica_kms_key_arn: pulumi.Output[str]
    replication_role_arn: pulumi.Output[str]
    alert_topic: aws.sns.Topic  # the replication alarm's (primary region)
    bucket_policy: aws.s3.BucketPolicy  # the primary bucket's

    def __init__(self, name: str, args: BackupBucketArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:storage:BackupBucket", name, None, opts)
        require("BackupBucket", [p for region in (args.primary_region, args.dr_region)
                                 if (p := bucket_name_problem(pulumi.get_stack(), name, args.account_id, region))])
        self._args = args
        primary_opts = pulumi.ResourceOptions(parent=self)
        dr_opts = pulumi.ResourceOptions(parent=self, provider=args.dr_provider)

        primary = self._hardened_bucket(name, bucket_name(pulumi.get_stack(), name, args.account_id, args.primary_region),
                                        primary_opts, args.extra_policy)
        replica = self._hardened_bucket(f"{name}-replica",
                                        bucket_name(pulumi.get_stack(), name, args.account_id, args.dr_region), dr_opts)
        role = self._replicate(name, primary, replica, primary_opts)

        # ARNs from the names (known at a first preview, unlike the computed `arn`), still
        # depending on the buckets
        self.bucket_name = primary.bucket.bucket
        self.bucket_arn = primary.bucket.bucket.apply(bucket_arn)
        self.kms_key_arn = primary.key.arn
        self.replica_bucket_name = replica.bucket.bucket
        self.replica_bucket_arn = replica.bucket.bucket.apply(bucket_arn)
        self.replica_kms_key_arn = replica.key.arn
        self.replication_role_arn = role.arn
        self.bucket_policy = primary.policy  # what a writer checked against the policy waits for
        self.register_outputs({
            "bucketName": self.bucket_name,
            "bucketArn": self.bucket_arn,
            "kmsKeyArn": self.kms_key_arn,
            "replicaBucketName": self.replica_bucket_name,
            "replicaBucketArn": self.replica_bucket_arn,
            "replicaKmsKeyArn": self.replica_kms_key_arn,
            "replicationRoleArn": self.replication_role_arn,
        })

    def _hardened_bucket(self, name: str, physical_name: str, opts: pulumi.ResourceOptions,
                         extra_policy: Optional[Callable[[str], list[dict]]] = None) -> _Side:
        """Key, bucket and every hardening child; the same code serves both regions."""
        args = self._args

        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the {args.purpose} bucket ({name})",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=opts,
        )
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{name}", target_key_id=key.key_id, opts=opts)

        bucket = aws.s3.Bucket(
            name,
            bucket=physical_name,
            bucket_namespace=NAMESPACE,
            # Object Lock can only be switched on when the bucket is created.
            object_lock_enabled=bool(args.object_lock),
            force_destroy=False,
            tags={"purpose": args.purpose},
            opts=opts,
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=opts,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=opts,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=opts,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[{
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": key.arn,
                },
                # S3 Bucket Keys cut KMS requests (and cost) by ~99% for backup-sized objects.
                "bucket_key_enabled": True,
            }],
            opts=opts,
        )
        policy = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            # text from the known name, not from bucket.arn (computed): a first preview judges it
            policy=tls_only_policy(bucket_arn(physical_name),
                                   extra_policy(bucket_arn(physical_name)) if extra_policy else []),
            # A policy put before the public-access block can race with it; order them.
            opts=_after(opts, [public_access, ownership]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[{
                "id": "tiering-and-expiry",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "transitions": [{
                    "days": args.transition_days,
                    "storage_class": args.transition_storage_class,
                }],
                "expiration": {"days": args.expiration_days},
                "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_expiration_days},
                "abort_incomplete_multipart_upload": {
                    "days_after_initiation": args.abort_incomplete_upload_days,
                },
            }],
            opts=_after(opts, [versioning]),
        )
        if args.object_lock:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=bucket.id,
                rule={"default_retention": {
                    "mode": args.object_lock.mode,
                    "days": args.object_lock.days,
                }},
                opts=_after(opts, [versioning]),
            )
        return _Side(bucket=bucket, key=key, versioning=versioning, policy=policy)

    def _replicate(self, name: str, source: _Side, replica: _Side, opts: pulumi.ResourceOptions) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-replication",
            description=f"S3 replication of {name} to its DR twin",
            assume_role_policy=json.dumps(S3_ASSUME_ROLE_POLICY),
            opts=opts,
        )
        aws.iam.RolePolicy(
            f"{name}-replication",
            role=role.id,
            policy=pulumi.Output.all(
                source.bucket.arn, replica.bucket.arn, source.key.arn, replica.key.arn,
                source.bucket.region, replica.bucket.region, pulumi.Output.all(*self._args.other_source_key_arns),
            ).apply(lambda a: json.dumps(replication_policy(*a))),
            opts=opts,
        )
        aws.s3.BucketReplicationConfig(
            f"{name}-replication",
            bucket=source.bucket.id,
            role=role.arn,
            rules=[{
                "id": REPLICATION_RULE_ID,
                "status": "Enabled",
                "filter": {"prefix": ""},
                "delete_marker_replication": {"status": "Enabled"},
                "source_selection_criteria": {"sse_kms_encrypted_objects": {"status": "Enabled"}},
                "destination": {
                    "bucket": replica.bucket.arn,
                    "storage_class": "STANDARD",
                    "encryption_configuration": {"replica_kms_key_id": replica.key.arn},
                    # RTC needs replication metrics; both only accept 15 minutes.
                    "replication_time": {"status": "Enabled", "time": {"minutes": REPLICATION_SLA_MINUTES}},
                    "metrics": {"status": "Enabled",
                                "event_threshold": {"minutes": REPLICATION_SLA_MINUTES}},
                },
            }],
            # S3 refuses a replication configuration until both sides are versioned.
            opts=_after(opts, [source.versioning, replica.versioning]),
        )
        # With replication metrics on, S3 reports OperationsFailedReplication per rule in the
        # source region; no datapoint means nothing failed. __main__ subscribes the on-call to the topic.
        self.alert_topic = alert_topic(f"{name}-alerts", self._args.account_id, opts)
        alarm(
            f"{name}-replication-failed",
            description=f"Objects of {name} failed to replicate to the DR region: the DR copy is incomplete",
            namespace="AWS/S3", metric="OperationsFailedReplication",
            dimensions={"SourceBucket": source.bucket.bucket, "DestinationBucket": replica.bucket.bucket,
                        "RuleId": REPLICATION_RULE_ID},
            statistic="Maximum", comparison="GreaterThanThreshold", threshold=0,
            period_seconds=300, evaluation_periods=1, treat_missing_data="notBreaching",
            topic=self.alert_topic, opts=opts,
        )
        return role


def _after(opts: pulumi.ResourceOptions, resources: list[pulumi.Resource]) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=resources))


REPLICATION_RULE_ID = "to-dr-region"

S3_ASSUME_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}


def tls_only_policy(bucket_arn: str, extra: Sequence[dict] = ()) -> str:
    """Deny every request that does not use TLS (AWS Foundational Security Best Practices S3.5),
    plus any ``extra`` statements."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }, *extra],
    })


def replication_policy(
    source_arn: str, replica_arn: str, source_key_arn: str, replica_key_arn: str,
    source_region: str, replica_region: str, other_source_key_arns: Sequence[str] = (),
) -> dict:
    """Least privilege for S3 replication of KMS-encrypted objects (AWS S3 User Guide,
    "Replicating objects created with server-side encryption (SSE-KMS)").

    Both buckets use S3 Bucket Keys, so the KMS encryption context S3 sends is the *bucket* ARN,
    not the object ARN (``<bucket>/*``): a condition on the object ARN never matches and every
    object fails to replicate. S3 also calls kms:Decrypt on the destination key while writing a
    replica (multipart replicas need it to complete the upload).

    The role needs kms:Decrypt on the key that encrypted *each* source object (same page), so
    objects a writer encrypted with its own key (CloudTrail's log files) need that key too. Such a
    PUT names a key other than the bucket default, and S3 shares a Bucket Key only among objects
    of the bucket's default key, so those objects may carry either context: the bucket ARN or
    their object ARN (S3 User Guide, "Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys").
    """
    other_keys = [{
        "Sid": "DecryptSourceObjectsOfOtherKeys",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": list(other_source_key_arns),
        "Condition": {"StringLike": {
            "kms:ViaService": f"s3.{source_region}.amazonaws.com",
            "kms:EncryptionContext:aws:s3:arn": [source_arn, f"{source_arn}/*"],
        }},
    }] if other_source_key_arns else []
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadReplicationConfiguration",
                "Effect": "Allow",
                "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                "Resource": source_arn,
            },
            {
                "Sid": "ReadSourceVersions",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObjectVersionForReplication",
                    "s3:GetObjectVersionAcl",
                    "s3:GetObjectVersionTagging",
                    "s3:GetObjectRetention",
                    "s3:GetObjectLegalHold",
                ],
                "Resource": f"{source_arn}/*",
            },
            {
                "Sid": "WriteReplicas",
                "Effect": "Allow",
                "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                "Resource": f"{replica_arn}/*",
            },
            {
                "Sid": "DecryptSource",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": source_key_arn,
                "Condition": {"StringLike": {
                    "kms:ViaService": f"s3.{source_region}.amazonaws.com",
                    "kms:EncryptionContext:aws:s3:arn": source_arn,
                }},
            },
            {
                "Sid": "EncryptReplicas",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": replica_key_arn,
                "Condition": {"StringLike": {
                    "kms:ViaService": f"s3.{replica_region}.amazonaws.com",
                    # the bucket ARN for replicas under the destination's Bucket Key; the object ARN
                    # for replicas written without one (a source object encrypted with another key,
                    # such as CloudTrail's log files, keeps none: same page, "S3 Bucket Keys and
                    # replication")
                    "kms:EncryptionContext:aws:s3:arn": [replica_arn, f"{replica_arn}/*"],
                }},
            },
            *other_keys,
        ],
    }
