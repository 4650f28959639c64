"""A fleet program for scale benchmarks: the platform's per-tenant building blocks (a backup
bucket, a closed workload namespace with its flows, a Redis cache), instantiated once per tenant
with the real components and the real stack's settings."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as kubernetes

import settings
from components import audit_trail
from components.audit_trail import AuditedPrefix, AuditTrail, AuditTrailArgs
from components.backup_bucket import BackupBucket, BackupBucketArgs, ObjectLock
from components.egress_policy import WorkloadNamespace, WorkloadNamespaceArgs
from components.redis_cache import RedisCache, RedisCacheArgs, cache_flows

# component + children: bucket pair with keys, hardening, object lock, replication alarm (+ topic, key);
# namespace and its policies; cache (with its rotation witness, helpers/redis_auth.py)
RESOURCES_PER_TENANT = 27 + 6 + 10


def program(tenants: int):
    def run() -> None:
        cfg = settings.load()
        primary = aws.Provider("aws-primary", region=cfg.aws.primary_region)
        dr = aws.Provider("aws-dr", region=cfg.aws.dr_region)
        cluster = kubernetes.Provider("eks", context=cfg.kubernetes.primary.context)
        bucket, cache = cfg.backups.neo4j, cfg.redis
        backups = []
        for i in range(tenants):
            tenant = f"t{i:03d}"
            backups.append(BackupBucket(f"{tenant}-backups", BackupBucketArgs(
                purpose=f"{tenant}-backups", dr_provider=dr, primary_region=cfg.aws.primary_region,
                dr_region=cfg.aws.dr_region, transition_days=bucket.transition_days,
                transition_storage_class=bucket.transition_storage_class, expiration_days=bucket.expiration_days,
                noncurrent_expiration_days=bucket.noncurrent_expiration_days,
                object_lock=ObjectLock(bucket.object_lock.mode, bucket.object_lock.days) if bucket.object_lock else None,
                account_id=cfg.aws.account_id,
            ), opts=pulumi.ResourceOptions(provider=primary)))
            namespace = WorkloadNamespace(tenant, WorkloadNamespaceArgs(
                namespace=tenant, flows=cache_flows(f"{tenant}-redis", cfg.kubernetes.app_namespace,
                                                    cfg.observability.prometheus_namespace)),
                opts=pulumi.ResourceOptions(provider=cluster))
            RedisCache(f"{tenant}-redis", RedisCacheArgs(
                namespace=tenant, image=cache.image, exporter_image=cache.exporter_image, replicas=cache.replicas,
                cpu_request=cache.resources.cpu_request, cpu_limit=cache.resources.cpu_limit,
                memory=cache.resources.memory, memory_bytes=cache.resources.memory_bytes,
                persistence=False, maxmemory_policy=cache.maxmemory_policy, timeout_seconds=cache.timeout_seconds,
                tcp_keepalive_seconds=cache.tcp_keepalive_seconds,
                slowlog_slower_than_micros=cache.slowlog_slower_than_micros, slowlog_max_len=cache.slowlog_max_len,
                prometheus_release_label=cfg.observability.prometheus_release_label,
            ), opts=pulumi.ResourceOptions(provider=cluster, depends_on=[namespace]))
        # one trail records every tenant's backup reads and deletes, and reads of its own log files
        # in the first tenant's bucket, where it delivers: there, every event only under the backups'
        # prefix (components/neo4j_backup.py), or it would record its own deliveries (policy
        # s3-backup-data-events-audited)
        first = (backups[0].bucket_arn, backups[0].replica_bucket_arn)
        AuditTrail("fleet-audit", AuditTrailArgs(
            account_id=cfg.aws.account_id, region=cfg.aws.primary_region, name="fleet-audit",
            bucket_name=backups[0].bucket_name,
            audited=[*(AuditedPrefix(arn, "neo4j/") for arn in first),
                     *(AuditedPrefix(arn, f"{audit_trail.PREFIX}/", reads_only=True) for arn in first),
                     *(AuditedPrefix(arn) for b in backups[1:] for arn in (b.bucket_arn, b.replica_bucket_arn))],
        ), opts=pulumi.ResourceOptions(provider=primary))

    return run
