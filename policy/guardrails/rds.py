"""RDS: encrypted with our key, private, backed up, IAM-authenticated, no plaintext password;
deletion protection and Multi-AZ where the stage demands them (mandatory in prod)."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel

from . import config_keys
from ._rules import dig, number, present, resource_rule, setting

INSTANCE = "aws:rds/instance:Instance"
RETENTION = {"minimumDays": {"type": "integer", "minimum": 1, "maximum": 35, "default": 7}}


def is_replica(props) -> bool:
    return present(props, "replicateSourceDb")  # unknown at preview: the primary's ARN, still a replica


@resource_rule("rds-encrypted-customer-key", "RDS storage is encrypted with a customer-managed KMS key.",
               (INSTANCE,))
def encrypted(props, args):
    # A cross-region replica inherits encryption; its kmsKeyId must name a key in its own region.
    if not is_replica(props) and dig(props, "storageEncrypted") is not True:
        yield "Set storageEncrypted: true."
    if not present(props, "kmsKeyId"):
        yield "Set kmsKeyId to a customer-managed KMS key ARN (the aws/rds key cannot be shared or audited)."


@resource_rule("rds-not-public", "RDS instances are never publicly accessible.", (INSTANCE,))
def not_public(props, args):
    if dig(props, "publiclyAccessible") is True:
        yield "Set publiclyAccessible: false; reach the database through the VPC."


@resource_rule("rds-backup-retention", "Primaries keep automated backups (PITR) long enough.",
               (INSTANCE,), config=RETENTION)
def retention(props, args):
    minimum = setting(args, "minimumDays", RETENTION)
    days = dig(props, "backupRetentionPeriod", default=0)
    if not is_replica(props) and days < minimum:
        yield (f"backupRetentionPeriod is {number(days)}; set it to at least {number(minimum)} days."
               + config_keys.where(config_keys.RDS_KEYS["backupRetentionPeriod"]))


@resource_rule("rds-managed-password", "The master password is managed by Secrets Manager, never in code or state.",
               (INSTANCE,))
def managed_password(props, args):
    if dig(props, "password") or dig(props, "passwordWo"):
        yield "Remove password; set manageMasterUserPassword: true so RDS keeps it in Secrets Manager."
    elif not is_replica(props) and dig(props, "manageMasterUserPassword") is not True:
        yield "Set manageMasterUserPassword: true."


@resource_rule("rds-iam-auth", "IAM database authentication is enabled.", (INSTANCE,))
def iam_auth(props, args):
    if dig(props, "iamDatabaseAuthenticationEnabled") is not True:
        yield "Set iamDatabaseAuthenticationEnabled: true (short-lived tokens instead of shared passwords)."


@resource_rule("rds-deletion-protection", "Production databases cannot be deleted by accident.", (INSTANCE,),
               level=EnforcementLevel.MANDATORY)
def deletion_protection(props, args):
    if dig(props, "deletionProtection") is not True:
        yield "Set deletionProtection: true." + config_keys.where(config_keys.RDS_KEYS["deletionProtection"])


@resource_rule("rds-multi-az", "Production primaries survive the loss of an availability zone.", (INSTANCE,))
def multi_az(props, args):
    if not is_replica(props) and dig(props, "multiAz") is not True:
        yield "Set multiAz: true." + config_keys.where(config_keys.RDS_KEYS["multiAz"])


POLICIES = [encrypted, not_public, retention, managed_password, iam_auth, deletion_protection, multi_az]
