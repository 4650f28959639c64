"""Both bounds of every numeric range in settings/: each range is listed here with why it is what it
is, a new range without an entry fails, and each bound is enforced at its key - the bound itself
accepted, one beyond it refused naming the key - through settings.validate, as a stack file is."""

from __future__ import annotations

import copy
import json
import typing

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import settings
from synth import engine

PROJECT = settings.PROJECT
NO_LIMIT = None
# key (list items as []) -> (lowest, highest) accepted, and why
RANGES: dict[str, tuple[int, int | None, str]] = {
    **{f"backups.{bucket}.{key}": (1, 3650, "S3 lifecycle and Object Lock days are positive (S3 API "
                                            "LifecycleExpiration, DefaultRetention); ten years is our cap")
       for bucket in ("neo4j", "logs")
       for key in ("transitionDays", "expirationDays", "noncurrentExpirationDays", "objectLock.days")},
    "backups.neo4j.chainDays": (1, 7, "a full backup at least weekly (components/neo4j_backup.py)"),
    "backups.neo4j.retentionDays": (1, 3650, "Days"),
    "neo4j.primaries": (1, 9, "standalone, or a Raft group small enough to commit fast (2 refused by its own rule)"),
    "neo4j.secondaries": (0, 20, "read scale-out; none is allowed"),
    "neo4j.backupFreshnessSlackMinutes": (1, 1440, "at most a day of slack on the backup RPO"),
    "neo4j.volumeSnapshots.retain": (1, 100, "at least one snapshot kept; EBS snapshot quotas"),
    "neo4j.passwordEpoch": (0, NO_LIMIT, "0: the first password"),
    "redis.replicas": (1, 9, "at least one cache pod"),
    "redis.timeoutSeconds": (0, 86400, "redis.conf timeout: 0 never closes idle clients"),
    "redis.tcpKeepaliveSeconds": (0, 7200, "redis.conf tcp-keepalive: 0 off"),
    "redis.slowlogSlowerThanMicros": (-1, NO_LIMIT, "redis.conf slowlog-log-slower-than: -1 disables the log"),
    "redis.slowlogMaxLen": (1, 100000, "redis.conf slowlog-max-len"),
    "redis.passwordRotation.epoch": (0, NO_LIMIT, "0: the first password"),
    "postgres.allocatedStorageGb": (20, 65536, "RDS for PostgreSQL gp3: 20 GiB to 64 TiB"),
    "postgres.maxAllocatedStorageGb": (20, 65536, "RDS storage autoscaling ceiling, same limits"),
    "postgres.backupRetentionDays": (1, 35, "RDS BackupRetentionPeriod 0-35; 0 disables backups, PITR and replicas"),
    "postgres.masterSecretRotationDays": (1, 365, "Secrets Manager rotation at least yearly"),
    "dns.healthCheck.failureThreshold": (1, 10, "Route 53 FailureThreshold 1-10"),
    "ingress.servicePort": (1, 65535, "TCP ports"),
    "ingress.rateLimit.requestsPerSecond": (1, 100000, "WAF rate limit x 300 s window"),
    "ingress.rateLimit.burstMultiplier": (1, 10, "nginx limit-burst-multiplier"),
    "ingress.maxBodySizeMb": (1, 64, "the API's uploads; above WAF's 8 KB inspection"),
    "egress.allowlist[].ports[]": (1, 65535, "TCP ports"),
    "dr.postgres.rtoSeconds": (1, NO_LIMIT, "a target in seconds"),
    "dr.postgres.rpoSeconds": (1, NO_LIMIT, "a target in seconds"),
    "dr.neo4j.rtoSeconds": (1, NO_LIMIT, "a target in seconds"),
    "dr.neo4j.rpoSeconds": (1, NO_LIMIT, "a target in seconds"),
    "dr.replicaPromotionEstimateSeconds": (60, 7200, "a measured promotion: a minute to two hours"),
    "dr.neo4jRestoreEstimateSeconds": (60, 86400, "a measured restore: a minute to a day"),
    "dr.neo4jDifferentialEstimateSeconds": (1, 3600, "one differential backup: at most the hourly interval"),
    "dr.neo4jClusterStartEstimateSeconds": (60, 7200, "pilot-light start of the DR servers"),
    "dr.postgresPitrRtoSeconds": (60, NO_LIMIT, "a target in seconds"),
    "dr.postgresPitrRestoreEstimateSeconds": (60, 86400, "a measured PITR restore: a minute to a day"),
    "pgRestoreRehearsal.timeoutMinutes": (15, 720, "a restore of the smallest instance takes 15 minutes"),
    **{f"postgres.generations.{role}": (1, NO_LIMIT, "generation 1 is the first instance in a region")
       for role in ("primary", "dr")},
    "ingress.podPort": (1, 65535, "TCP ports"),
    **{f"dr.regionSwitch.{step}TimeoutMinutes": (
        1, 1440, "ARC Region switch step timeoutMinutes: at least 1 (botocore arc-region-switch model, "
                 "*TimeoutMinutesInteger min 1); a day is our cap on one step")
       for step in ("approval", "promotion", "scaling", "traffic")},
}


def _bounds(metadata) -> tuple[int | None, int | None]:
    low = high = None
    # a Field(...) inside Annotated (within Optional or list) carries its constraints as metadata
    metadata = [inner for item in metadata for inner in (item.metadata if isinstance(item, FieldInfo) else [item])]
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low = item.gt + 1
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high = item.lt - 1
    return typing.cast("tuple[int | None, int | None]", (low, high))


def _ranges_in(annotation, path: str):
    """(path, low, high) of every bounded int under ``annotation``: models, Optional, lists."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            key = f"{path}.{field.alias or name}" if path else field.alias or name
            low, high = _bounds(field.metadata)
            if low is not None or high is not None:
                yield key, low, high
            yield from _ranges_in(field.annotation, key)
        return
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated or hasattr(annotation, "__metadata__"):
        low, high = _bounds(annotation.__metadata__)
        if (low is not None or high is not None) and path:
            yield path, low, high
        yield from _ranges_in(args[0], path)
        return
    for arg in args:
        yield from _ranges_in(arg, f"{path}[]" if origin is list else path)


def declared() -> dict[str, tuple[int | None, int | None]]:
    return {key: (low, high) for key, low, high in _ranges_in(settings.StackSettings, "")}


def test_every_range_in_settings_is_listed_here_with_its_bounds():
    assert declared() == {key: (low, high) for key, (low, high, _) in RANGES.items()}


def _document(stack: str) -> dict:
    return {k.removeprefix(f"{PROJECT}:"): json.loads(v) if v[:1] in "{[" else v
            for k, v in engine.stack_config(stack).items()}


def _with(document: dict, key: str, value: int) -> dict:
    document = copy.deepcopy(document)
    if key == "egress.allowlist[].ports[]":  # a reviewed exception, as a stack file would add it
        document["egress"]["allowlist"] = [{"namespace": document["redis"]["namespace"], "cidr": "10.20.0.0/16",
                                            "ports": [value], "reason": "a reviewed exception for this test"}]
        return document
    *parents, leaf = key.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return document


def _problems(document: dict) -> list[str]:
    raw = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}
    try:
        settings.validate(raw)
    except settings.SettingsError as error:
        return list(error.problems)
    return []


def _range_problems(document: dict, key: str) -> list[str]:
    named = f"{PROJECT}:{key.replace('[]', '.0')}:"
    return [p for p in _problems(document) if p.startswith(named) and "Input should be" in p]


BOUNDS = [(key, side) for key, (low, high, _) in RANGES.items()
          for side in ("low", "high") if (low if side == "low" else high) is not None]


@pytest.mark.parametrize("key,side", BOUNDS, ids=[f"{k}-{s}" for k, s in BOUNDS])
def test_each_bound_is_accepted_and_one_beyond_it_refused_at_its_key(key, side):
    low, high, _ = RANGES[key]
    bound, beyond = (low, low - 1) if side == "low" else (high, high + 1)
    # the stage file sets every optional key (neo4jClusterStartEstimateSeconds: pilot-light)
    document = _document("stage")
    assert _range_problems(_with(document, key, bound), key) == []
    refused = _range_problems(_with(document, key, beyond), key)
    assert refused, f"{key} = {beyond} was accepted"
    assert f"(given: {beyond})" in refused[0]
