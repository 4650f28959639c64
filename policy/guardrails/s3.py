"""S3: every bucket encrypted with a customer KMS key, versioned, private, TLS-only, expiring.

In pulumi-aws v7 these settings are separate resources that name their bucket, so each is judged
on its own, and a stack rule checks that no bucket is missing one of them.
"""

from __future__ import annotations

import json

from pulumi_policy import PolicyResource

from ._rules import depends_on, dig, each, is_unknown, peek, present, resource_rule, stack_rule

BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


@resource_rule("s3-account-regional-namespace",
               "Buckets live in the account regional namespace: no other account can ever take their names.",
               (BUCKET,))
def account_regional(props, args):
    # A name in the shared global namespace can be claimed by any account once the bucket is deleted
    # (or before it is created), and writers still holding the name then write into that account's
    # bucket (S3 User Guide, "Namespaces for general purpose buckets").
    if dig(props, "bucketNamespace") != "account-regional":
        yield (f"bucketNamespace is {dig(props, 'bucketNamespace')!r}; set it to 'account-regional' and name "
               "the bucket <prefix>-<account id>-<region>-an (components/backup_bucket.py bucket_name).")


@resource_rule("s3-sse-kms-customer-key",
               "S3 default encryption is SSE-KMS with a customer-managed key and S3 Bucket Keys.",
               (ENCRYPTION,))
def sse_kms(props, args):
    rules = list(each(props, "rules"))
    if not rules:
        yield "Add a rule with applyServerSideEncryptionByDefault (sseAlgorithm 'aws:kms')."
    for rule in rules:
        default = dig(rule, "applyServerSideEncryptionByDefault") or {}
        if dig(default, "sseAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
            yield (f"sseAlgorithm is {dig(default, 'sseAlgorithm')!r}; set it to 'aws:kms' "
                   "(SSE-S3 keys cannot be scoped or audited per bucket).")
        elif not present(default, "kmsMasterKeyId"):
            yield "Set kmsMasterKeyId to a customer-managed KMS key ARN (not the aws/s3 key)."
        if dig(rule, "bucketKeyEnabled") is not True:
            yield "Set bucketKeyEnabled: true (cuts KMS requests and cost for large objects)."


@resource_rule("s3-versioning-enabled", "S3 buckets keep object versions.", (VERSIONING,))
def versioning(props, args):
    status = dig(props, "versioningConfiguration", "status")
    if status != "Enabled":
        yield f"versioningConfiguration.status is {status!r}; set it to 'Enabled'."


@resource_rule("s3-public-access-blocked", "All four S3 public-access blocks are on.", (PUBLIC_ACCESS,))
def public_access(props, args):
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if dig(props, flag) is not True]
    if off:
        yield f"Set {', '.join(off)} to true; backup buckets are never public."


def _denies_insecure_transport(document: dict) -> bool:
    for statement in each(document, "Statement"):
        actions = dig(statement, "Action")
        actions = [actions] if isinstance(actions, str) else list(actions or [])
        if (dig(statement, "Effect") == "Deny"
                and any(a in ("s3:*", "*") for a in actions)
                and str(dig(statement, "Condition", "Bool", "aws:SecureTransport")).lower() == "false"):
            return True
    return False


@resource_rule("s3-tls-only", "Bucket policies deny any request made without TLS.", (POLICY,))
def tls_only(props, args):
    raw = dig(props, "policy")
    try:
        document = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        yield "The bucket policy is not valid JSON; fix the document."
        return
    if not _denies_insecure_transport(document or {}):
        yield ("Add a statement: Effect Deny, Principal *, Action s3:*, Resource bucket and "
               "bucket/*, Condition Bool aws:SecureTransport 'false'.")


@resource_rule("s3-lifecycle-expiry", "Buckets expire current and noncurrent versions.", (LIFECYCLE,))
def lifecycle(props, args):
    enabled = [r for r in each(props, "rules") if dig(r, "status") == "Enabled"]
    if not any(dig(r, "expiration", "days") for r in enabled):
        yield "Add an enabled rule with expiration.days, or backups are kept (and paid for) forever."
    if not any(dig(r, "noncurrentVersionExpiration", "noncurrentDays") for r in enabled):
        yield ("Add noncurrentVersionExpiration.noncurrentDays; with versioning on, overwritten "
               "and deleted objects otherwise stay forever.")


def bucket_of(resource, buckets: list) -> PolicyResource | None:
    """The Bucket a sub-configuration (versioning, policy, replication...) belongs to: the one its
    ``bucket`` property comes from, or, for a name given as text, the bucket of that name."""
    [source, *_] = depends_on(resource, "bucket", BUCKET) or [None]
    if source is not None:
        return source
    name = peek(resource.props, "bucket")
    return next((b for b in buckets if not is_unknown(name) and peek(b.props, "bucket") == name), None)


def label(bucket) -> str:
    """A bucket's name for a message: its physical name, or its logical name while unknown."""
    name = peek(bucket.props, "bucket")
    return bucket.name if not name or is_unknown(name) else name


@stack_rule("s3-bucket-fully-hardened",
            "Every bucket has encryption, versioning, a public-access block, a TLS-only policy and a lifecycle.",
            judges=(BUCKET,))
def bucket_hardened(resources, args):
    buckets = [r for r in resources if r.resource_type == BUCKET]
    companions: dict[str | None, set[str]] = {}  # None: companions of no bucket
    for r in resources:
        if r.resource_type in (ENCRYPTION, VERSIONING, PUBLIC_ACCESS, POLICY, LIFECYCLE):
            owner = bucket_of(r, buckets)
            companions.setdefault(owner.urn if owner else None, set()).add(r.resource_type)
    required = {ENCRYPTION: "BucketServerSideEncryptionConfiguration", VERSIONING: "BucketVersioning",
                PUBLIC_ACCESS: "BucketPublicAccessBlock", POLICY: "BucketPolicy (TLS-only)",
                LIFECYCLE: "BucketLifecycleConfiguration"}
    for r in buckets:
        attached = companions.get(r.urn, set())
        missing = [text for type_, text in required.items() if type_ not in attached]
        if missing:
            yield (f"Bucket {label(r)} has no {', '.join(missing)}; use the "
                   "BackupBucket component or add them.", r.urn)


POLICIES = [account_regional, sse_kms, versioning, public_access, tls_only, lifecycle, bucket_hardened]
