"""Which stack config key changes what a rule objects to, so a message can say where to fix it.

The pack judges what the program creates and never imports settings (DESIGN §2), so this is a
plain table of key names. tests/test_policy_pack.py holds it to the generated reference
(docs/configuration.md): every key named here exists, and every image the stacks deploy maps to
the key whose value it is."""

from __future__ import annotations

from typing import Optional

PROJECT = "intelgraph-platform"

# An image's repository (no tag, no digest) -> the key that sets it.
IMAGE_KEYS = {
    "neo4j": "neo4j.image",  # the servers, and the backup and restore-rehearsal jobs
    "amazon/aws-cli": "neo4j.awsCliImage",
    "alpine/k8s": "neo4j.volumeSnapshots.kubectlImage",
    "redis": "redis.image",
    "oliver006/redis_exporter": "redis.exporterImage",
    "public.ecr.aws/lambda/python": "pgRestoreRehearsal.image",
    "cr.fluentbit.io/fluent/fluent-bit": "logs.shipper.image",
}

RDS_KEYS = {"backupRetentionPeriod": "postgres.backupRetentionDays", "multiAz": "postgres.multiAz",
            "deletionProtection": "postgres.deletionProtection"}
LOG_RETENTION = "logs.retentionDays"
NEO4J_PRIMARIES = "neo4j.primaries"
# DR budget rows (datastore, objective) -> their target's key
DR_TARGETS = {("postgres", "RTO"): "dr.postgres.rtoSeconds", ("postgres", "RPO"): "dr.postgres.rpoSeconds",
              ("neo4j", "RTO"): "dr.neo4j.rtoSeconds", ("neo4j", "RPO"): "dr.neo4j.rpoSeconds",
              ("postgres-pitr", "RTO"): "dr.postgresPitrRtoSeconds"}


def repository(image: str) -> str:
    """`registry/name` of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    return "/".join([*last[:-1], last[-1].split(":", 1)[0]])


def image_key(image: str) -> Optional[str]:
    return IMAGE_KEYS.get(repository(image))


def where(key: Optional[str]) -> str:
    """The hint appended to a message: the key in the stack file (`Pulumi.<stack>.yaml`)."""
    return f" Stack config: {PROJECT}:{key}." if key else ""


def named() -> set[str]:
    """Every key this table names."""
    return {*IMAGE_KEYS.values(), *RDS_KEYS.values(), LOG_RETENTION, NEO4J_PRIMARIES, *DR_TARGETS.values()}
