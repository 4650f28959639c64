"""Audit: the account's trail is tamper-evident, encrypted and covers every region; every backup
bucket (and its DR twin) has object-level auditing - who read, wrote or deleted a backup."""

from __future__ import annotations

from ._rules import depends_on, dig, each, is_unknown, peek, present, region_of, resource_rule, stack_rule
from .s3 import BUCKET

TRAIL = "aws:cloudtrail/trail:Trail"


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


def _s3_object_prefixes(trail) -> list[str]:
    """ARN prefixes of the S3 objects whose data events ``trail`` records. At a first preview a
    prefix built from a new bucket's name is unknown (kept as the sentinel)."""
    prefixes: list[str] = []
    for selector in each(trail.props, "advancedEventSelectors"):
        fields = {dig(f, "field"): f for f in each(selector, "fieldSelectors")}
        if "Data" not in (dig(fields.get("eventCategory"), "equals") or []):
            continue
        if "AWS::S3::Object" not in (dig(fields.get("resources.type"), "equals") or []):
            continue
        arn = fields.get("resources.ARN")
        if arn is None:
            prefixes.append("arn:aws:s3:::")
            continue
        for key in ("startsWiths", "equals"):
            values = peek(arn, key, default=None)
            prefixes += [values] if is_unknown(values) else values or []  # the whole list may be unknown
    for selector in each(trail.props, "eventSelectors"):
        for resource in each(selector, "dataResources"):
            if dig(resource, "type") == "AWS::S3::Object":
                prefixes += [("arn:aws:s3:::" if v == "arn:aws:s3" else v) for v in each(resource, "values")]
    return prefixes


def _covers(trail, prefix: str, bucket) -> bool:
    """Whether a trail's object-ARN prefix covers ``bucket``'s objects."""
    name = peek(bucket.props, "bucket")
    if is_unknown(name) or is_unknown(prefix):
        # a first preview: a bucket name the provider computes, and the selector built from it, are
        # unknown; the engine's property dependencies say which buckets the selector comes from
        return is_unknown(prefix) and bucket in depends_on(trail, "advancedEventSelectors", BUCKET)
    objects = f"arn:aws:s3:::{name}/"
    return objects.startswith(prefix) or prefix.startswith(objects)


@stack_rule("s3-backup-data-events-audited",
            "Every backup bucket has S3 data-event auditing (object reads, writes and deletes).", judges=(BUCKET,))
def backup_data_events(resources, args):
    trails = [t for t in resources if t.resource_type == TRAIL and dig(t.props, "enableLogging") is not False]
    for bucket in (b for b in resources if b.resource_type == BUCKET):
        if not str(dig(bucket.props, "tags", "purpose", default="")).endswith("backups"):
            continue
        audited = any(
            _covers(trail, prefix, bucket)
            and (dig(trail.props, "isMultiRegionTrail") is True or region_of(trail) == region_of(bucket))
            for trail in trails for prefix in _s3_object_prefixes(trail))
        if not audited:
            yield (f"Backup bucket {bucket.name} ({region_of(bucket)}) has no data-event auditing: "
                   "nothing records who read or deleted a backup. Add its ARN to a multi-region trail's "
                   "advanced event selector (eventCategory Data, resources.type AWS::S3::Object).", bucket.urn)


POLICIES = [hardened, backup_data_events]
