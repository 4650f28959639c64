"""AuditTrail: who did what in the account, and who read, wrote or deleted a backup.

One multi-region CloudTrail trail (management events, and S3 object-level data events on the backup
buckets and their DR twins - a multi-region trail records the twins' region too), log file
validation on (CloudTrail signs an hourly digest, so a deleted or edited log file is detectable),
encrypted with its own key, delivered to the logs bucket under ``cloudtrail/``. The logs bucket's
policy carries the two grants CloudTrail checks at CreateTrail (``delivery_statements``).

Data events on the logs bucket are recorded for its ``containers/`` prefix only: CloudTrail's own
deliveries under ``cloudtrail/`` are PutObject data events, which recorded would deliver again -
"recursive events" (CloudTrail User Guide).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_aws as aws

from helpers.kms import key_policy
from helpers.validation import require

PREFIX = "cloudtrail"
# The principal that creates or updates a trail with SSE-KMS needs kms:Decrypt on the trail's key
# when the bucket uses an S3 Bucket Key (CloudTrail User Guide, "Configure AWS KMS key policies for
# CloudTrail", required sections for trails, item 2) - the logs bucket does. The key policy leaves
# that to IAM; the deploy role's policy grants it by this tag (docs/cicd.md, Bootstrap), which
# works before the key exists.
DEPLOY_DECRYPT_TAG = ("intelgraph:purpose", "audit-trail")


def trail_name(stack: str) -> str:
    return f"intelgraph-{stack}-audit"


def trail_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:cloudtrail:{region}:{account_id}:trail/{name}"


def delivery_statements(bucket_arn: str, account_id: str, source_trail_arn: str) -> list[dict]:
    """The bucket-policy grants CloudTrail needs ("Amazon S3 bucket policy for CloudTrail"): read
    the bucket ACL and write under <prefix>/AWSLogs/<account>/, both only for our trail
    (aws:SourceArn: no other account's trail can use the bucket, the confused-deputy guard)."""
    only_our_trail = {"aws:SourceArn": source_trail_arn}
    return [
        {"Sid": "CloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": bucket_arn, "Condition": {"StringEquals": only_our_trail}},
        {"Sid": "CloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"{bucket_arn}/{PREFIX}/AWSLogs/{account_id}/*",
         "Condition": {"StringEquals": {**only_our_trail, "s3:x-amz-acl": "bucket-owner-full-control"}}},
    ]


def trail_key_policy(account_id: str, source_trail_arn: str) -> dict:
    """CloudTrail may encrypt for our trail only; principals of this account may decrypt log
    files (with IAM permission) - "Configure AWS KMS key policies for CloudTrail"."""
    return key_policy(
        account_id,
        {"Sid": "CloudTrailEncryptsForOurTrail", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:GenerateDataKey*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceArn": source_trail_arn},
                       "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn":
                                      f"arn:aws:cloudtrail:*:{account_id}:trail/*"}}},
        {"Sid": "CloudTrailDescribesKey", "Effect": "Allow",
         "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:DescribeKey", "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceArn": source_trail_arn}}},
    )


@dataclass(frozen=True)
class AuditedPrefix:
    """Object-level events of ``bucket_arn`` under ``prefix`` ("" = the whole bucket); with
    ``reads_only``, only the read-only ones (GetObject, HeadObject, ...)."""

    bucket_arn: pulumi.Input[str]
    prefix: str = ""
    reads_only: bool = False


@dataclass(frozen=True)
class AuditTrailArgs:
    account_id: str
    region: str
    name: str
    bucket_name: pulumi.Input[str]
    audited: Sequence[AuditedPrefix]

    def __post_init__(self) -> None:
        require("AuditTrailArgs", [
            "" if self.audited else "audited must name at least one bucket: backups need data-event auditing",
            "" if all(not a.prefix or a.prefix.endswith("/") for a in self.audited) else "prefixes end with '/'",
        ])


class AuditTrail(pulumi.ComponentResource):
    def __init__(self, name: str, args: AuditTrailArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:audit:AuditTrail", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        arn = trail_arn(args.region, args.account_id, args.name)
        key = aws.kms.Key(
            f"{name}-key", description=f"Encrypts the {args.name} CloudTrail log files",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=json.dumps(trail_key_policy(args.account_id, arn)),
            tags=dict([DEPLOY_DECRYPT_TAG]), opts=child)

        def starts(audited: list[AuditedPrefix]) -> pulumi.Output[list[str]]:
            return pulumi.Output.all(*[a.bucket_arn for a in audited]).apply(
                lambda arns: [f"{b}/{a.prefix}" for b, a in zip(arns, audited, strict=True)])

        every_event = [a for a in args.audited if not a.reads_only]
        reads = [a for a in args.audited if a.reads_only]
        objects: list[aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgsDict] = [
            {"field": "eventCategory", "equals": ["Data"]},
            {"field": "resources.type", "equals": ["AWS::S3::Object"]}]
        trail = aws.cloudtrail.Trail(
            name,
            name=args.name,
            s3_bucket_name=args.bucket_name,
            s3_key_prefix=PREFIX,
            kms_key_id=key.arn,
            enable_log_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,  # IAM and STS are global: role changes are recorded
            enable_logging=True,
            advanced_event_selectors=[
                {"name": "Management events", "field_selectors": [
                    {"field": "eventCategory", "equals": ["Management"]}]},
                {"name": "Backup objects: every read, write and delete", "field_selectors": [
                    *objects, {"field": "resources.ARN", "starts_withs": starts(every_event)}]},
                # Who read the audit log itself (CIS AWS Foundations: access logging on the CloudTrail
                # bucket; Security Hub CloudTrail.7). Reads only: the trail's own deliveries are
                # PutObject (readOnly false), and recording them would deliver them again.
                *([{"name": "Audit log files: every read", "field_selectors": [
                    *objects, {"field": "readOnly", "equals": ["true"]},
                    {"field": "resources.ARN", "starts_withs": starts(reads)}]}] if reads else []),
            ],
            opts=child)
        # the ARN CloudTrail gives a trail (arn:aws:cloudtrail:<home region>:<account>:trail/<name>),
        # the one the bucket and key policies name
        self.trail_arn = trail.name.apply(lambda n: trail_arn(args.region, args.account_id, n))
        self.kms_key_arn = key.arn  # the logs bucket's replication must decrypt the log files
        self.register_outputs({"trailArn": self.trail_arn, "kmsKeyArn": self.kms_key_arn})
