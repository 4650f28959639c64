"""CloudWatch log groups the stack owns: a retention and a customer KMS key on every one, and a data
protection policy that masks personal data where query text or payloads can carry it.

A service that exports logs (RDS, WAF) creates its log group itself when none exists - with no
expiry and no customer key. So the program creates each such group first, under the exact name the
service writes to, and the service then uses it.
"""

from __future__ import annotations

import json
from typing import Optional

import pulumi
import pulumi_aws as aws

from helpers.kms import key_policy

# The retention values CloudWatch Logs accepts (PutRetentionPolicy, retentionInDays).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                  2557, 2922, 3288, 3653)

# Managed data identifiers masked in PostgreSQL logs (slow-query and error lines carry literal
# values). Names from "Types of data that you can protect" (CloudWatch Logs User Guide).
PII_IDENTIFIERS = ("EmailAddress", "PhoneNumber-US", "Ssn-US", "CreditCardNumber", "AwsSecretKey", "IpAddress")


def log_key_policy(account_id: str, region: str) -> dict:
    """CloudWatch Logs encrypts with the key only for log groups of this account and region
    (the key-policy statement of "Encrypt log data in CloudWatch Logs using AWS KMS")."""
    return key_policy(
        account_id,
        {"Sid": "CloudWatchLogsUsesKeyForThisAccountsLogGroups", "Effect": "Allow",
         "Principal": {"Service": f"logs.{region}.amazonaws.com"},
         "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
         "Resource": "*",
         "Condition": {"ArnLike": {
             "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account_id}:log-group:*"}}},
    )


def log_key(name: str, opts: pulumi.ResourceOptions, *, account_id: str, region: str) -> aws.kms.Key:
    """A rotated customer key for the log groups of ``region``, the region ``opts`` deploys to.
    The account and region are the ones the program already knows, not asked of the provider: an
    invoke runs on every `pulumi up`, --target or not, and one bound to the primary region's
    provider would fail the failed-over deploy while that region is down (docs/decisions/019)."""
    return aws.kms.Key(
        f"{name}-key",
        description=f"Encrypts the {name} CloudWatch log groups",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps(log_key_policy(account_id, region)),
        opts=opts,
    )


def log_group(name: str, *, group_name: pulumi.Input[str], retention_days: int, key: aws.kms.Key,
              opts: pulumi.ResourceOptions, mask_personal_data: bool = False) -> aws.cloudwatch.LogGroup:
    if retention_days not in RETENTION_DAYS:
        raise ValueError(f"{name}: retention_days {retention_days} is not one CloudWatch Logs accepts "
                         f"({', '.join(map(str, RETENTION_DAYS))})")
    group = aws.cloudwatch.LogGroup(
        name, name=group_name, retention_in_days=retention_days, kms_key_id=key.arn, opts=opts)
    if mask_personal_data:
        aws.cloudwatch.LogDataProtectionPolicy(
            f"{name}-mask-pii", log_group_name=group.name,
            policy_document=json.dumps(data_protection_policy(name)), opts=opts)
    return group


def data_protection_policy(name: str, identifiers: Optional[tuple[str, ...]] = None) -> dict:
    """Audit + de-identify (mask) the same identifiers: the document must have exactly these two
    blocks, the first with an Audit operation (FindingsDestination may be empty), the second with
    Deidentify.MaskConfig (PutDataProtectionPolicy, CloudWatch Logs API Reference)."""
    arns = [f"arn:aws:dataprotection::aws:data-identifier/{i}" for i in identifiers or PII_IDENTIFIERS]
    return {
        "Name": f"{name}-mask-pii",
        "Description": "Mask personal data and secrets in log events (logs:Unmask to see them)",
        "Version": "2021-06-01",
        "Statement": [
            {"Sid": "audit", "DataIdentifier": arns, "Operation": {"Audit": {"FindingsDestination": {}}}},
            {"Sid": "mask", "DataIdentifier": arns, "Operation": {"Deidentify": {"MaskConfig": {}}}},
        ],
    }
