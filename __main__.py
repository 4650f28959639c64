"""IntelGraph platform: the data and edge tier, wired like the architecture diagram.

Settings are read and validated once; nothing below this line reads configuration.
"""

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as kubernetes

import settings
from components import dr_budget
from components.backup_bucket import BackupBucket, BackupBucketArgs, ObjectLock
from components.dns_failover import DnsFailover, DnsFailoverArgs, LoadBalancerTarget
from components.postgres_dr import PostgresDr, PostgresDrArgs, RegionNetwork

cfg = settings.load()  # invalid config stops here, before any resource is registered

# --- providers: one per AWS region, one for the EKS cluster --------------------------------------
aws_tags = {"tags": {"project": "intelgraph", "stack": pulumi.get_stack(), "managed-by": "pulumi"}}
primary = aws.Provider(
    "aws-primary",
    region=cfg.aws.primary_region,
    allowed_account_ids=[cfg.aws.account_id],  # refuse to touch any other account
    default_tags=aws_tags,
)
dr = aws.Provider(
    "aws-dr",
    region=cfg.aws.dr_region,
    allowed_account_ids=[cfg.aws.account_id],
    default_tags=aws_tags,
)
# Route 53 health-check metrics exist only in us-east-1.
route53_metrics = primary if cfg.aws.primary_region == "us-east-1" else aws.Provider(
    "aws-us-east-1", region="us-east-1", allowed_account_ids=[cfg.aws.account_id], default_tags=aws_tags)
cluster = kubernetes.Provider(
    "eks",
    context=cfg.kubernetes.context,
    kubeconfig=cfg.kubernetes.kubeconfig_path,
    enable_server_side_apply=True,
)

# --- storage: backup buckets replicated to the DR region -----------------------------------------
buckets = {
    purpose: BackupBucket(
        f"{purpose}-backups",
        BackupBucketArgs(
            purpose=f"{purpose}-backups",
            dr_provider=dr,
            transition_days=bucket.transition_days,
            transition_storage_class=bucket.transition_storage_class,
            expiration_days=bucket.expiration_days,
            noncurrent_expiration_days=bucket.noncurrent_expiration_days,
            object_lock=ObjectLock(bucket.object_lock.mode, bucket.object_lock.days)
            if bucket.object_lock
            else None,
        ),
        opts=pulumi.ResourceOptions(provider=primary),
    )
    for purpose, bucket in (("neo4j", cfg.backups.neo4j), ("logs", cfg.backups.logs))
}

# --- PostgreSQL: primary + cross-region replica, PITR in both regions ---------------------------
pg = cfg.postgres
postgres = PostgresDr(
    "intelgraph-pg",
    PostgresDrArgs(
        account_id=cfg.aws.account_id,
        dr_provider=dr,
        primary_network=RegionNetwork(cfg.network.primary.vpc_id, tuple(cfg.network.primary.private_subnet_ids)),
        dr_network=RegionNetwork(cfg.network.dr.vpc_id, tuple(cfg.network.dr.private_subnet_ids)),
        engine_version=pg.engine_version,
        instance_class=pg.instance_class,
        allocated_storage_gb=pg.allocated_storage_gb,
        max_allocated_storage_gb=pg.max_allocated_storage_gb,
        backup_retention_days=pg.backup_retention_days,
        multi_az=pg.multi_az,
        deletion_protection=pg.deletion_protection,
        final_snapshot=pg.final_snapshot,
        allowed_cidrs=tuple(pg.allowed_cidrs),
        maintenance_window=pg.maintenance_window,
        backup_window=pg.backup_window,
        database_insights=pg.database_insights,
        monitoring_interval_seconds=pg.monitoring_interval_seconds,
        replica_lag_threshold_seconds=dr_budget.lag_alarm_threshold_seconds(cfg.dr.postgres.rpo_seconds),
    ),
    opts=pulumi.ResourceOptions(provider=primary),
)

# --- edge DNS: health-checked failover to the DR region ------------------------------------------
dns = cfg.dns
failover = DnsFailover(
    "api-failover",
    DnsFailoverArgs(
        account_id=cfg.aws.account_id,
        hosted_zone_id=dns.hosted_zone_id,
        record_name=dns.record_name,
        health_check_fqdn=dns.health_check.fqdn,
        request_interval_seconds=dns.health_check.request_interval_seconds,
        failure_threshold=dns.health_check.failure_threshold,
        checker_regions=tuple(dns.health_check.regions),
        primary=LoadBalancerTarget(dns.primary_load_balancer.dns_name, dns.primary_load_balancer.zone_id),
        secondary=LoadBalancerTarget(dns.dr_load_balancer.dns_name, dns.dr_load_balancer.zone_id),
    ),
    opts=pulumi.ResourceOptions(provider=route53_metrics),
)

# --- DR budget: bounds from what is deployed, against the stack's targets ------------------------
budget = [
    *dr_budget.postgres_bounds(
        rto_target=cfg.dr.postgres.rto_seconds,
        rpo_target=cfg.dr.postgres.rpo_seconds,
        request_interval_seconds=dns.health_check.request_interval_seconds,
        failure_threshold=dns.health_check.failure_threshold,
        promotion_estimate_seconds=cfg.dr.replica_promotion_estimate_seconds,
        lag_threshold_seconds=dr_budget.lag_alarm_threshold_seconds(cfg.dr.postgres.rpo_seconds),
    ),
    *dr_budget.neo4j_bounds(
        rto_target=cfg.dr.neo4j.rto_seconds,
        rpo_target=cfg.dr.neo4j.rpo_seconds,
        backup_schedule=cfg.neo4j.backup_schedule,
        restore_estimate_seconds=cfg.dr.neo4j_restore_estimate_seconds,
    ),
]

# --- outputs --------------------------------------------------------------------------------------
# Neo4j backups are hourly: the newest may be one interval plus the slack old (ops/dr_readiness).
max_backup_age = {"neo4j": dr_budget.cron_max_gap_seconds(cfg.neo4j.backup_schedule)
                  + 60 * cfg.neo4j.backup_freshness_slack_minutes}
pulumi.export("backupBuckets", {
    purpose: {
        "bucket": b.bucket_name,
        "region": cfg.aws.primary_region,
        "replicaBucket": b.replica_bucket_name,
        "replicaBucketArn": b.replica_bucket_arn,
        "kmsKeyArn": b.kms_key_arn,
        "replicaKmsKeyArn": b.replica_kms_key_arn,
        **({"maxBackupAgeSeconds": max_backup_age[purpose]} if purpose in max_backup_age else {}),
    }
    for purpose, b in buckets.items()
})
pulumi.export("postgres", {
    "primaryEndpoint": postgres.primary_endpoint,
    "replicaEndpoint": postgres.replica_endpoint,
    "primaryArn": postgres.primary_arn,
    "replicaArn": postgres.replica_arn,
    "masterSecretArn": postgres.master_secret_arn,
    "lagAlarmThresholdSeconds": dr_budget.lag_alarm_threshold_seconds(cfg.dr.postgres.rpo_seconds),
    "backupRetentionDays": pg.backup_retention_days,
})
pulumi.export("dnsFailover", {"healthCheckId": failover.health_check_id, "fqdn": failover.fqdn})
pulumi.export("drBudget", [bound.as_output() for bound in budget])
