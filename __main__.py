"""IntelGraph platform: the data and edge tier, wired like the architecture diagram.

Settings are read and validated once; nothing below this line reads configuration.
"""

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as kubernetes

import settings
from components.backup_bucket import BackupBucket, BackupBucketArgs, ObjectLock

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

# --- outputs --------------------------------------------------------------------------------------
pulumi.export("backupBuckets", {
    purpose: {
        "bucket": b.bucket_name,
        "replicaBucket": b.replica_bucket_name,
        "kmsKeyArn": b.kms_key_arn,
        "replicaKmsKeyArn": b.replica_kms_key_arn,
    }
    for purpose, b in buckets.items()
})
