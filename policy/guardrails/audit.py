"""Audit: the account's trail is tamper-evident, encrypted and covers every region; every backup
bucket (and its DR twin) has object-level auditing - who read, wrote or deleted a backup - and
every read of the trail's own log files, where it delivers them and in their replicated copy, is
recorded too (CIS AWS Foundations: access logging on the CloudTrail bucket; Security Hub
CloudTrail.7), without recording the deliveries themselves (they would be delivered again)."""

from __future__ import annotations

from ._rules import depends_on, dig, each, is_unknown, peek, present, region_of, resource_rule, stack_rule
from .s3 import BUCKET, bucket_of, label

TRAIL = "aws:cloudtrail/trail:Trail"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"


def _records_management_events(props) -> bool:
    advanced = list(each(props, "advancedEventSelectors"))
    if advanced:
        return any(dig(f, "field") == "eventCategory" and "Management" in (dig(f, "equals") or [])
                   for s in advanced for f in each(s, "fieldSelectors"))
    classic = list(each(props, "eventSelectors"))
    # no selectors at all: CloudTrail records management events (the trail default)
    return not classic or any(dig(s, "includeManagementEvents", default=True) is not False for s in classic)


@resource_rule("cloudtrail-hardened",
               "CloudTrail trails validate log files, use a customer KMS key, cover every region and "
               "record management events.", (TRAIL,))
def hardened(props, args):
    if dig(props, "enableLogFileValidation") is not True:
        yield "Set enableLogFileValidation: true (CloudTrail signs hourly digests; a deleted or edited log file shows)."
    if not present(props, "kmsKeyId"):  # at a first preview: the ARN of a key this stack creates
        yield "Set kmsKeyId to a customer KMS key whose policy lets cloudtrail.amazonaws.com encrypt for this trail."
    if dig(props, "isMultiRegionTrail") is not True:
        yield "Set isMultiRegionTrail: true: the DR region (and the backup twins there) must be recorded too."
    if dig(props, "enableLogging") is False:
        yield "Set enableLogging: true; a stopped trail records nothing."
    if not _records_management_events(props):
        yield "Add an advanced event selector with eventCategory = Management."


def _object_selectors(trail) -> list[tuple[list[str], set[bool]]]:
    """Per S3-object data selector of ``trail``: its object-ARN prefixes, and whether it records
    read-only and/or writing events ({True, False} when readOnly is not narrowed). At a first
    preview a prefix built from a new bucket's name is unknown (kept as the sentinel)."""
    selectors: list[tuple[list[str], set[bool]]] = []
    for selector in each(trail.props, "advancedEventSelectors"):
        fields = {dig(f, "field"): f for f in each(selector, "fieldSelectors")}
        if "Data" not in (dig(fields.get("eventCategory"), "equals") or []):
            continue
        if "AWS::S3::Object" not in (dig(fields.get("resources.type"), "equals") or []):
            continue
        read_only = {v == "true" for v in dig(fields.get("readOnly"), "equals") or ["true", "false"]}
        arn = fields.get("resources.ARN")
        if arn is None:
            selectors.append((["arn:aws:s3:::"], read_only))
            continue
        prefixes: list[str] = []
        for key in ("startsWiths", "equals"):
            values = peek(arn, key, default=None)
            prefixes += [values] if is_unknown(values) else values or []  # the whole list may be unknown
        selectors.append((prefixes, read_only))
    for selector in each(trail.props, "eventSelectors"):
        kind = dig(selector, "readWriteType", default="All")
        read_only = {"ReadOnly": {True}, "WriteOnly": {False}}.get(kind, {True, False})
        for resource in each(selector, "dataResources"):
            if dig(resource, "type") == "AWS::S3::Object":
                selectors.append(([("arn:aws:s3:::" if v == "arn:aws:s3" else v) for v in each(resource, "values")],
                                  read_only))
    return selectors


def _s3_object_prefixes(trail) -> list[str]:
    """ARN prefixes of the S3 objects whose data events ``trail`` records."""
    return [p for prefixes, _ in _object_selectors(trail) for p in prefixes]


def _covers(trail, prefix: str, bucket, key_prefix: str = "") -> bool:
    """Whether a trail's object-ARN prefix covers ``bucket``'s objects (under ``key_prefix``)."""
    name = peek(bucket.props, "bucket")
    if is_unknown(name) or is_unknown(prefix):
        # a first preview: a bucket name the provider computes, and the selector built from it, are
        # unknown; the engine's property dependencies say which buckets the selector comes from
        return is_unknown(prefix) and bucket in depends_on(trail, "advancedEventSelectors", BUCKET)
    objects = f"arn:aws:s3:::{name}/{key_prefix}"
    return objects.startswith(prefix) or prefix.startswith(objects)


def _reaches(trail, bucket) -> bool:
    return dig(trail.props, "isMultiRegionTrail") is True or region_of(trail) == region_of(bucket)


def _copies(bucket, buckets: list, resources) -> list:
    """``bucket`` and the buckets its replication rules copy objects to."""
    copies = [bucket]
    for config in (r for r in resources if r.resource_type == REPLICATION and bucket_of(r, buckets) is bucket):
        referenced = [b for b in depends_on(config, "rules", BUCKET) if b is not bucket]
        for rule in each(config.props, "rules"):
            arn = peek(rule, "destination", "bucket")
            named = [b for b in buckets if not is_unknown(arn) and peek(b.props, "arn") == arn]
            copies += named or (referenced if is_unknown(arn) else [])
    return list(dict.fromkeys(copies))


def _log_read_problems(trails: list, buckets: list, resources):
    """Reads of each trail's delivery prefix, in its bucket and every replicated copy, are recorded
    by some trail; the deliveries (writes to the delivering bucket's prefix) by none."""
    for trail in trails:
        [delivery, *_] = [b for b in buckets if peek(b.props, "bucket") == peek(trail.props, "s3BucketName")
                          and not is_unknown(peek(b.props, "bucket"))] or \
            depends_on(trail, "s3BucketName", BUCKET) or [None]
        if delivery is None:
            continue  # delivers to a bucket outside this stack: not ours to judge
        key_prefix = peek(trail.props, "s3KeyPrefix") or ""
        key_prefix = "" if is_unknown(key_prefix) else (f"{key_prefix}/" if key_prefix else "")
        for copy in _copies(delivery, buckets, resources):
            if not any(True in read_only and _reaches(t, copy) and _covers(t, p, copy, key_prefix)
                       for t in trails for prefixes, read_only in _object_selectors(t) for p in prefixes):
                yield (f"Reads of the audit log in {label(copy)} ({region_of(copy)}, {key_prefix or '/'}) are not "
                       f"recorded: anyone can read trail {trail.name}'s log files unseen. Add a data-event selector "
                       "(eventCategory Data, resources.type AWS::S3::Object, readOnly true) on that prefix "
                       "(CIS AWS Foundations; Security Hub CloudTrail.7).", copy.urn)
        # known values only: at a first preview an unknown prefix may be any of the trail's buckets
        if not is_unknown(peek(delivery.props, "bucket")) and any(
                False in read_only and _reaches(t, delivery) and not is_unknown(p)
                and _covers(t, p, delivery, key_prefix)
                for t in trails for prefixes, read_only in _object_selectors(t) for p in prefixes):
            yield (f"A trail records writes to {label(delivery)}/{key_prefix}, where trail {trail.name} delivers: each "
                   "delivery is recorded and delivered again. Narrow that selector to readOnly true.", delivery.urn)


@stack_rule("s3-backup-data-events-audited",
            "Every backup bucket has S3 data-event auditing (object reads, writes and deletes), and reads "
            "of the audit log (its bucket and replicated copy) are recorded, its deliveries not.",
            judges=(BUCKET,))
def backup_data_events(resources, args):
    trails = [t for t in resources if t.resource_type == TRAIL and dig(t.props, "enableLogging") is not False]
    buckets = [b for b in resources if b.resource_type == BUCKET]
    for bucket in buckets:
        if not str(dig(bucket.props, "tags", "purpose", default="")).endswith("backups"):
            continue
        audited = any(_covers(trail, prefix, bucket) and _reaches(trail, bucket)
                      for trail in trails for prefix in _s3_object_prefixes(trail))
        if not audited:
            yield (f"Backup bucket {bucket.name} ({region_of(bucket)}) has no data-event auditing: "
                   "nothing records who read or deleted a backup. Add its ARN to a multi-region trail's "
                   "advanced event selector (eventCategory Data, resources.type AWS::S3::Object).", bucket.urn)
    yield from _log_read_problems(trails, buckets, resources)


POLICIES = [hardened, backup_data_events]
