"""RDS: encrypted with our key, private, backed up, IAM-authenticated, no plaintext password;
deletion protection and Multi-AZ where the stage demands them (mandatory in prod)."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel

from . import config_keys
from ._rules import depends_on, dig, is_unknown, number, peek, present, resource_rule, setting, stack_rule

INSTANCE = "aws:rds/instance:Instance"
RETENTION = {"minimumDays": {"type": "integer", "minimum": 1, "maximum": 35, "default": 7}}


def is_replica(props) -> bool:
    return present(props, "replicateSourceDb")  # unknown at preview: the primary's ARN, still a replica


# The program tags an instance it promoted in place with the name of the instance it replicated
# (components/postgres_dr.py PROMOTED_FROM_TAG; docs/decisions/018-active-region-is-state.md).
PROMOTED_FROM = "intelgraph.io/promoted-from"


def promoted_from(props) -> str | None:
    """The name of the instance a promoted replica replicated, or None: not a promoted replica."""
    value = dig(props, "tags", PROMOTED_FROM)
    return value if isinstance(value, str) and value else None


def source_db(replica, instances: list):
    """The primary a replica replicates: the instance its replicateSourceDb comes from (known at
    preview, when the ARN is not), or the one whose ARN or identifier it names."""
    [source, *_] = depends_on(replica, "replicateSourceDb", INSTANCE) or [None]
    if source is not None:
        return source
    named = peek(replica.props, "replicateSourceDb")
    return next((i for i in instances if not is_unknown(named) and named in (peek(i.props, "arn"), i.name)), None)


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


@resource_rule("rds-master-password-write-only",
               "The master password is never readable from code or state: write-only, or managed by RDS.", (INSTANCE,))
def master_password_write_only(props, args):
    # `password` is stored in the resource's inputs and outputs; `passwordWo` is write-only (the
    # provider never reads it back; Pulumi keeps the input encrypted as a secret: pulumi-terraform-
    # bridge #3215) and sent again only when passwordWoVersion changes (pulumi-aws rds.Instance).
    if dig(props, "password"):
        yield "Remove password; give the master password write-only (passwordWo with passwordWoVersion)."
    elif present(props, "passwordWo") and not present(props, "passwordWoVersion"):
        yield "Set passwordWoVersion: the provider requires it with passwordWo."
    elif is_replica(props) and present(props, "passwordWo"):
        # AWS refuses to change a PostgreSQL read replica's master password ("Cannot change master
        # user password on an RDS postgres Read Replica", terraform-aws-modules/terraform-aws-rds #526),
        # and the provider sends passwordWo right after creating the replica.
        yield ("Remove passwordWo from the read replica: it has its source's password; give it its own in "
               "the update that promotes it.")
    elif not is_replica(props) and not present(props, "passwordWo") and dig(props, "manageMasterUserPassword") is not True:
        # a promoted replica too: its own bootstrap, rotated away by its own secret (decision 025)
        yield "Give the master password write-only (passwordWo), from the writer's own master secret."


MANAGED_SOURCE = ("RDS refuses to create a read replica when the source manages its master password with Secrets "
                  "Manager (RDS User Guide, 'Password management with Amazon RDS and AWS Secrets Manager', "
                  "Limitations)")


@stack_rule("rds-replication-source-password-not-managed",
            "No instance that is, or becomes when promoted, a replication source has an RDS-managed master password.",
            judges=(INSTANCE,))
def replication_source_password(resources, args):
    instances = [r for r in resources if r.resource_type == INSTANCE]
    for instance in instances:
        if dig(instance.props, "manageMasterUserPassword") is not True:
            continue
        replicas = [r.name for r in instances if is_replica(r.props) and source_db(r, instances) is instance]
        if replicas:
            yield (f"{instance.name} manages its master password in Secrets Manager and is the source of "
                   f"{', '.join(replicas)}: {MANAGED_SOURCE}. Use a secret of your own and passwordWo.", instance.urn)
        elif is_replica(instance.props):
            yield (f"{instance.name} is a read replica that becomes a replication source once promoted: "
                   f"{MANAGED_SOURCE}. Remove manageMasterUserPassword.", instance.urn)
        elif promoted_from(instance.props):
            # failed over: the rebuilt region's new replica will replicate it
            yield (f"{instance.name} was promoted from {promoted_from(instance.props)} and becomes the source of the "
                   f"rebuilt region's replica: {MANAGED_SOURCE}. Remove manageMasterUserPassword.", instance.urn)


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


POLICIES = [encrypted, not_public, retention, master_password_write_only, iam_auth, deletion_protection, multi_az,
            replication_source_password]
