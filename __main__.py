"""IntelGraph platform: the data and edge tier, wired like the architecture diagram.

Settings are read and validated once; nothing below this line reads configuration.
"""

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as kubernetes

import settings
from components import audit_trail
from components.alertmanager import SecretRef
from components.audit_trail import AuditedPrefix, AuditTrail, AuditTrailArgs
from components.backup_bucket import REPLICATION_SLA_MINUTES, BackupBucket, BackupBucketArgs, ObjectLock
from components.dns_failover import DnsFailover, DnsFailoverArgs, LoadBalancerTarget
from components.neo4j_backup import Neo4jBackupArgs
from components.neo4j_cluster import Neo4jClusterArgs
from components.neo4j_dr import SWITCH_JOB, Neo4jDrGraphArgs, servers_account
from components.neo4j_snapshots import Neo4jSnapshotsArgs
from components.pg_restore_rehearsal import PREFIX as PG_REHEARSAL_PREFIX
from components.pg_restore_rehearsal import PgRestoreRehearsal, PgRestoreRehearsalArgs, rehearsal_flows
from components.postgres_dr import DbNetwork, PostgresDr, PostgresDrArgs
from components.redis_cache import RedisCacheArgs
from components.region_switch import RegionSwitch, RegionSwitchArgs, StepTimeouts, Workload
from components.regional_tier import BucketRef, Observability, RegionalTier, RegionalTierArgs
from components.waf_ingress import EdgeNetwork, WafIngressArgs
from helpers import dr_budget, stateful
from helpers.alerting import Subscriber, subscribe
from helpers.flows import Flow, Neighbours, Peer
from helpers.rollout import rollout_budget
from ops import oncall
from ops._common import outputs_parameter, runbook_document

cfg = settings.load()  # invalid config stops here, before any resource is registered
# Before the first resource: every KMS key, bucket, database and Neo4j release, in any component,
# is retained on delete and, in prod, protected unless `retire` lists it (helpers/stateful.py).
pulumi.runtime.register_stack_transformation(stateful.guard(protect=cfg.is_prod, retire=cfg.retire))

# --- providers: per region, an AWS provider and its EKS cluster's Kubernetes provider ---------------
aws_tags: aws.ProviderDefaultTagsArgsDict = {
    "tags": {"project": "intelgraph", "stack": pulumi.get_stack(), "managed-by": "pulumi"}}


def aws_provider(name: str, region: str) -> aws.Provider:
    """A provider that refuses any other account (`allowed_account_ids`, checked against the account
    STS reports when the provider is configured). Every `pulumi up` configures every provider, even
    under --target, so one outside the DR region must configure without its own region
    (docs/decisions/019): pulumi-aws validates credentials with STS in the provider's region unless
    skip_credentials_validation is set, and the account lookup then asks STS in `sts_region`.
    Neither input replaces anything (pulumi-aws v7 marks no provider input ForcesProviderReplace)."""
    outside_dr = region != cfg.aws.dr_region
    return aws.Provider(name, region=region, allowed_account_ids=[cfg.aws.account_id], default_tags=aws_tags,
                        sts_region=cfg.aws.dr_region if outside_dr else None,
                        skip_credentials_validation=outside_dr)


aws_providers = {role: aws_provider(f"aws-{role}", cfg.aws.region(role)) for role in settings.ROLES}
primary, dr = aws_providers["primary"], aws_providers["dr"]
# Route 53 health-check metrics exist only in us-east-1.
route53_metrics = primary if cfg.aws.primary_region == "us-east-1" else aws_provider("aws-us-east-1", "us-east-1")
eks = {
    role: kubernetes.Provider(
        "eks" if role == "primary" else f"eks-{role}",  # the primary's keeps the name it was deployed under
        context=cfg.kubernetes.of(role).context,
        kubeconfig=cfg.kubernetes.of(role).kubeconfig_path,
        enable_server_side_apply=True,
    )
    for role in settings.ROLES
}

# --- storage: backup buckets replicated to the DR region -----------------------------------------
# The audit trail delivers to the logs bucket: its policy carries CloudTrail's grants.
trail_name = audit_trail.trail_name(pulumi.get_stack())
trail_arn = audit_trail.trail_arn(cfg.aws.primary_region, cfg.aws.account_id, trail_name)
# The trail encrypts its log files with its own key, which exists only after the bucket it writes
# to: a deferred output lets the logs bucket's replication role name it (resolved below).
trail_key_arn, resolve_trail_key_arn = pulumi.deferred_output()
buckets = {
    purpose: BackupBucket(
        f"{purpose}-backups",
        BackupBucketArgs(
            purpose=f"{purpose}-backups",
            dr_provider=dr,
            primary_region=cfg.aws.primary_region,
            dr_region=cfg.aws.dr_region,
            account_id=cfg.aws.account_id,
            transition_days=bucket.transition_days,
            transition_storage_class=bucket.transition_storage_class,
            expiration_days=bucket.expiration_days,
            noncurrent_expiration_days=bucket.noncurrent_expiration_days,
            object_lock=ObjectLock(bucket.object_lock.mode, bucket.object_lock.days)
            if bucket.object_lock
            else None,
            extra_policy=(lambda arn: audit_trail.delivery_statements(arn, cfg.aws.account_id, trail_arn))
            if purpose == "logs" else None,
            other_source_key_arns=[trail_key_arn] if purpose == "logs" else (),
        ),
        opts=pulumi.ResourceOptions(provider=primary),
    )
    for purpose, bucket in (("neo4j", cfg.backups.neo4j), ("logs", cfg.backups.logs))
}

# --- audit: management events, every read/write/delete of a backup and every read of the audit log --
trail = AuditTrail(
    "audit-trail",
    AuditTrailArgs(
        account_id=cfg.aws.account_id,
        region=cfg.aws.primary_region,
        name=trail_name,
        bucket_name=buckets["logs"].bucket_name,
        audited=[
            AuditedPrefix(buckets["neo4j"].bucket_arn), AuditedPrefix(buckets["neo4j"].replica_bucket_arn),
            # cloudtrail/ for reads only: recording the trail's own deliveries would record them again
            AuditedPrefix(buckets["logs"].bucket_arn, "containers/"),
            AuditedPrefix(buckets["logs"].replica_bucket_arn, "containers/"),
            *(AuditedPrefix(arn, f"{audit_trail.PREFIX}/", reads_only=True)
              for arn in (buckets["logs"].bucket_arn, buckets["logs"].replica_bucket_arn)),
        ],
    ),
    # CreateTrail checks the bucket policy: it first. Not the whole bucket component: its
    # replication role names the trail's key, so waiting for all of it would be a cycle.
    opts=pulumi.ResourceOptions(provider=primary, depends_on=[buckets["logs"].bucket_policy]),
)
resolve_trail_key_arn(trail.kms_key_arn)

# --- the Kubernetes tier, once per region ----------------------------------------------------------
neo = cfg.neo4j
redis = cfg.redis
obs = cfg.observability
edge = cfg.ingress
pgr = cfg.pg_restore_rehearsal


def graph_args(role: settings.Role) -> Neo4jClusterArgs:
    """The graph's servers in a region: the primary's, or the DR region's warm standby of the same shape."""
    return Neo4jClusterArgs(
        namespace=neo.namespace,
        cluster_name=neo.cluster_name,
        chart_version=neo.chart_version,
        image=neo.image,
        accept_license_agreement=neo.accept_license_agreement,
        primaries=neo.primaries,
        secondaries=neo.secondaries,
        cpu_request=neo.resources.cpu_request,
        cpu_limit=neo.resources.cpu_limit,
        memory=neo.resources.memory,
        memory_plan=neo.memory_plan,
        storage_class=neo.storage_class,
        storage_size=neo.storage_size,
        prometheus_release_label=obs.prometheus_release_label,
        zones=tuple(neo.zones if role == "primary" else neo.dr.zones),
        password_epoch=neo.password_epoch,
        client_namespace=cfg.kubernetes.app_namespace,  # the app user's Secret, where the app's pods read it
        bootstrap=neo.bootstrap if role == "primary" else neo.dr.bootstrap,
        # the primary's releases were created before they were named after the component
        unprefixed_release_urns=role == "primary",
        # the DR servers download their databases' seed from the DR bucket (components/neo4j_dr.py)
        service_account=None if role == "primary" else servers_account(neo.cluster_name),
        env=() if role == "primary" else (("AWS_REGION", cfg.aws.dr_region),),
    )


def neighbours(role: settings.Role) -> Neighbours:
    """What a region's flows name outside its workload namespaces, once for all of them."""
    net, cluster = cfg.network.of(role), cfg.kubernetes.of(role)
    return Neighbours(
        api_server_cidrs=tuple(cluster.api_server_cidrs), api_service_ip=cluster.api_service_ip,
        s3_cidrs=tuple(net.s3.cidrs), sts_cidrs=tuple(net.sts_endpoint_cidrs),
        client_namespace=cfg.kubernetes.app_namespace, monitoring_namespace=obs.prometheus_namespace,
    )


def allowlisted() -> dict[str, tuple[Flow, ...]]:
    """Reviewed exceptions from config (egress.allowlist), each with its reason."""
    flows: dict[str, tuple[Flow, ...]] = {}
    for i, entry in enumerate(cfg.egress.allowlist):
        flows[entry.namespace] = flows.get(entry.namespace, ()) + (
            Flow(f"allowlist-{i}", "egress", Peer(cidrs=(entry.cidr,)), tuple(entry.ports), reason=entry.reason),)
    return flows


def backup_args(graph: Neo4jClusterArgs) -> Neo4jBackupArgs:
    """The primary's servers back up to the primary bucket (replicated to the DR region)."""
    cluster = cfg.kubernetes.primary
    return Neo4jBackupArgs(
        namespace=neo.namespace,
        admin_services=graph.backup_sources,
        bucket_name=buckets["neo4j"].bucket_name,
        bucket_arn=buckets["neo4j"].bucket_arn,
        kms_key_arn=buckets["neo4j"].kms_key_arn,
        region=cfg.aws.primary_region,
        image=neo.image,
        accept_license_agreement=neo.accept_license_agreement,
        aws_cli_image=neo.aws_cli_image,
        backup_schedule=neo.backup_schedule,
        freshness_slack_minutes=neo.backup_freshness_slack_minutes,
        time_zone=neo.time_zone,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        prometheus_release_label=obs.prometheus_release_label,
        chain_days=cfg.backups.neo4j.chain_days,
        retention_days=cfg.backups.neo4j.retention_days,
        storage_class=neo.storage_class,
        store_size=neo.storage_size,
        store_bytes=neo.store_bytes,
    )


def dr_graph_args() -> Neo4jDrGraphArgs:
    """The DR region's graph from the backups replicated to the DR bucket, read with its DR-region key."""
    cluster, bucket = cfg.kubernetes.dr, buckets["neo4j"]
    return Neo4jDrGraphArgs(
        namespace=neo.namespace,
        restore_namespace=neo.restore_namespace,
        cluster_name=neo.cluster_name,
        mode=neo.dr.mode,
        # no refresh is scheduled while the DR region is active (neo4j_dr_seed.sh also refuses a
        # promoted database: a switch runs before any deploy says so)
        active_region=cfg.dr.active_region,
        bucket_name=bucket.replica_bucket_name,
        bucket_arn=bucket.replica_bucket_arn,
        kms_key_arn=bucket.replica_kms_key_arn,
        region=cfg.aws.dr_region,
        image=neo.image,
        aws_cli_image=neo.aws_cli_image,
        accept_license_agreement=neo.accept_license_agreement,
        rehearsal_schedule=neo.restore_rehearsal_schedule,
        refresh_schedule=neo.dr.refresh_schedule,
        time_zone=neo.time_zone,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        prometheus_release_label=obs.prometheus_release_label,
        storage_class=neo.storage_class,
        store_size=neo.storage_size,
        store_bytes=neo.store_bytes,
        primaries=neo.primaries,
        secondaries=neo.secondaries,
        seed_seconds=dr_budget.seed_seconds(neo.backup_schedule, cfg.backups.neo4j.chain_days,
                                            cfg.dr.neo4j_restore_estimate_seconds,
                                            cfg.dr.neo4j_differential_estimate_seconds),
    )


def tier_args(role: settings.Role) -> RegionalTierArgs:
    """A region's tier, from its cluster, network, buckets and certificate. The primary's graph is
    the source of truth (snapshots, backups); the DR region runs the servers only in warm mode, and
    fills them from the replicated backups (refresh, switch) and rehearses the restore in either mode."""
    cluster, around, net = cfg.kubernetes.of(role), neighbours(role), cfg.network.of(role)
    is_primary = role == "primary"
    logs = buckets["logs"]
    graph = graph_args(role) if is_primary or neo.dr.mode == "warm" else None
    extra_flows = allowlisted() if is_primary else {
        # the PostgreSQL restore rehearsal runs in the DR cluster (below): it outlives the primary region
        pgr.namespace: rehearsal_flows(around, tuple(pgr.dr_rds_endpoint_cidrs))}
    return RegionalTierArgs(
        region=cfg.aws.region(role),
        neighbours=around,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        graph_namespace=neo.namespace,
        graph_cluster_name=neo.cluster_name,
        graph=graph,
        snapshots=Neo4jSnapshotsArgs(
            namespace=neo.namespace,
            cluster_name=neo.cluster_name,
            release_names=tuple(graph.release_names),
            schedule=neo.volume_snapshots.schedule,
            time_zone=neo.time_zone,
            retain=neo.volume_snapshots.retain,
            kubectl_image=neo.volume_snapshots.kubectl_image,
            prometheus_release_label=obs.prometheus_release_label,
        ) if is_primary and graph else None,
        backup=backup_args(graph) if is_primary and graph else None,
        dr_graph=None if is_primary else dr_graph_args(),
        cache=RedisCacheArgs(
            namespace=redis.namespace,
            image=redis.image,
            exporter_image=redis.exporter_image,
            replicas=redis.replicas,
            cpu_request=redis.resources.cpu_request,
            cpu_limit=redis.resources.cpu_limit,
            memory=redis.resources.memory,
            memory_bytes=redis.resources.memory_bytes,
            persistence=redis.persistence,
            storage_class=redis.storage_class,
            storage_size=redis.storage_size,
            maxmemory_policy=redis.maxmemory_policy,
            timeout_seconds=redis.timeout_seconds,
            tcp_keepalive_seconds=redis.tcp_keepalive_seconds,
            slowlog_slower_than_micros=redis.slowlog_slower_than_micros,
            slowlog_max_len=redis.slowlog_max_len,
            password_epoch=redis.password_rotation.epoch,
            password_rollover=redis.password_rotation.rollover,
            client_namespace=cfg.kubernetes.app_namespace,  # the client Secret, where the app's pods read it
            prometheus_release_label=obs.prometheus_release_label,
        ),
        shipper_namespace=cfg.logs.shipper.namespace,
        shipper_image=cfg.logs.shipper.image,
        # each region ships to its own copy of the logs bucket: the DR region's outlives the primary
        logs_bucket=BucketRef(logs.bucket_name, logs.bucket_arn, logs.kms_key_arn) if is_primary
        else BucketRef(logs.replica_bucket_name, logs.replica_bucket_arn, logs.replica_kms_key_arn),
        observability=Observability(
            prometheus_namespace=obs.prometheus_namespace,
            prometheus_release_label=obs.prometheus_release_label,
            grafana_dashboard_label=obs.grafana_dashboard_label,
            pager_secret=SecretRef(cfg.alerting.alertmanager.pager_secret.name,
                                   cfg.alerting.alertmanager.pager_secret.key),
            chat_secret=SecretRef(cfg.alerting.alertmanager.chat_secret.name,
                                  cfg.alerting.alertmanager.chat_secret.key),
            chat_channel=cfg.alerting.alertmanager.chat_channel,
        ),
        edge=WafIngressArgs(
            mode=edge.mode,
            namespace=edge.namespace,
            host=edge.host,
            service_name=edge.service_name,
            service_port=edge.service_port,
            # an ALB takes only a certificate of its own region (settings check both); nginx mode
            # terminates TLS in the cluster and has no DR certificate
            certificate_arn=edge.certificate_arn if is_primary else (edge.dr_certificate_arn or edge.certificate_arn),
            requests_per_second=edge.rate_limit.requests_per_second,
            burst_multiplier=edge.rate_limit.burst_multiplier,
            allowlist_cidrs=tuple(edge.allowlist_cidrs),
            max_body_bytes=edge.max_body_size_mb * 2**20,
            tls_secret_name=edge.tls_secret_name,
            # not intelgraph-<env>-api[-dr], the name the controller gave the Ingress's ALB: both
            # exist until DNS has moved (docs/decisions/020-the-edge-alb-is-the-programs.md)
            load_balancer_name=(f"intelgraph-{cfg.environment}-edge" + ("" if is_primary else "-dr"))
            if edge.mode == "alb" else None,
            network=EdgeNetwork(net.vpc_id, net.vpc_cidr, tuple(net.public_subnet_ids), tuple(net.public_subnet_cidrs))
            if edge.mode == "alb" and net.public_subnet_ids and net.public_subnet_cidrs else None,
            pod_port=edge.pod_port,
            # Route 53 checks the primary by a name only the primary serves
            health_host=cfg.dns.health_check.fqdn if is_primary else None,
            ingress_name="api",  # one name in both clusters
            region=cfg.aws.region(role),
            account_id=cfg.aws.account_id,
            # the DR WebACL was built by the primary's edge, a top-level component then
            acl_moved_from=None if is_primary else pulumi.create_urn("api", "intelgraph:edge:WafIngress"),
            log_retention_days=cfg.logs.retention_days,
        ),
        extra_flows=extra_flows,
        moved_from_root=is_primary,  # the primary's children predate the tier
    )


tiers: dict[settings.Role, RegionalTier] = {role: RegionalTier(role, tier_args(role),
                            opts=pulumi.ResourceOptions(providers={"kubernetes": eks[role], "aws": aws_providers[role]}))
         for role in settings.ROLES}
tier = tiers["primary"]
graph, neo4j_backup = tier.graph, tier.backup
assert graph is not None and neo4j_backup is not None  # the primary always runs and backs up the graph

# --- PostgreSQL: primary + cross-region replica, PITR in both regions ---------------------------
pg = cfg.postgres
postgres = PostgresDr(
    "intelgraph-pg",
    PostgresDrArgs(
        account_id=cfg.aws.account_id,
        dr_provider=dr,
        primary_region=cfg.aws.primary_region,
        dr_region=cfg.aws.dr_region,
        primary_network=DbNetwork(cfg.network.primary.vpc_id, tuple(cfg.network.primary.private_subnet_ids),
                                  tuple(pg.allowed_cidrs.primary),
                                  tuple(cfg.network.primary.secretsmanager_endpoint_cidrs)),
        dr_network=DbNetwork(cfg.network.dr.vpc_id, tuple(cfg.network.dr.private_subnet_ids),
                             tuple(pg.allowed_cidrs.dr), tuple(cfg.network.dr.secretsmanager_endpoint_cidrs)),
        engine_version=pg.engine_version,
        auto_minor_version_upgrade=pg.auto_minor_version_upgrade,
        instance_class=pg.instance_class,
        allocated_storage_gb=pg.allocated_storage_gb,
        max_allocated_storage_gb=pg.max_allocated_storage_gb,
        backup_retention_days=pg.backup_retention_days,
        multi_az=pg.multi_az,
        deletion_protection=pg.deletion_protection,
        final_snapshot=pg.final_snapshot,
        maintenance_window=pg.maintenance_window,
        backup_window=pg.backup_window,
        database_insights=pg.database_insights,
        monitoring_interval_seconds=pg.monitoring_interval_seconds,
        replica_lag_threshold_seconds=cfg.replica_lag_threshold_seconds,
        master_secret_rotation_days=pg.master_secret_rotation_days,
        major_upgrade_from=pg.major_upgrade.from_version if pg.major_upgrade else None,
        log_retention_days=cfg.logs.retention_days,
        active_region=cfg.dr.active_region,
        generations=(pg.generations.primary, pg.generations.dr),
    ),
    opts=pulumi.ResourceOptions(provider=primary),
)

# weekly point-in-time restore of the writer's backups in the DR region (the primary's replicated
# ones, or the DR writer's own after a failover), from the DR cluster, always cleaned up
PgRestoreRehearsal(
    "pg-restore-rehearsal",
    PgRestoreRehearsalArgs(
        namespace=pgr.namespace,
        schedule=pgr.schedule,
        time_zone=pgr.time_zone,
        image=pgr.image,
        timeout_minutes=pgr.timeout_minutes,
        account_id=cfg.aws.account_id,
        primary_region=cfg.aws.primary_region,
        dr_region=cfg.aws.dr_region,
        writer_arn=postgres.writer_arn,
        dr_instance_arn=postgres.dr_instance_arn,
        restore_target=postgres.dr_restore_target,
        oidc_provider_arn=cfg.kubernetes.dr.oidc_provider_arn,
        oidc_issuer=cfg.kubernetes.dr.oidc_issuer,
        prometheus_release_label=obs.prometheus_release_label,
        dr_rds_endpoint_url=pgr.dr_rds_endpoint_url,
    ),
    opts=pulumi.ResourceOptions(providers={"kubernetes": eks["dr"], "aws": dr},
                                depends_on=[tiers["dr"].namespaces[pgr.namespace]]),
)

# --- the region switch: one ARC plan moves the writer, the DR tier and traffic together ----------
dns = cfg.dns
switch = RegionSwitch(
    "region-switch",
    RegionSwitchArgs(
        environment=cfg.environment,
        account_id=cfg.aws.account_id,
        regions={role: cfg.aws.region(role) for role in settings.ROLES},
        # each region's instance (writer or replica): the plan is the same in every state
        db_instance_arns=postgres.instance_arns,
        hosted_zone_id=dns.hosted_zone_id,
        record_name=dns.record_name,
        cluster_names={role: cfg.kubernetes.of(role).cluster_name for role in settings.ROLES},
        timeouts=StepTimeouts(
            approval_minutes=cfg.dr.region_switch.approval_timeout_minutes,
            promotion_minutes=cfg.dr.region_switch.promotion_timeout_minutes,
            scaling_minutes=cfg.dr.region_switch.scaling_timeout_minutes,
            traffic_minutes=cfg.dr.region_switch.traffic_timeout_minutes,
        ),
        rto_target_seconds=cfg.dr.postgres.rto_seconds,
        # only the on-call role approves; by name, so the role below may be created after this one
        approver_role_arn=oncall.role_arn(cfg.aws.account_id, pulumi.get_stack()),
        scaled=tuple(Workload(namespace, name) for namespace, name in tiers["dr"].scaled_down),
        # failed over, the primary region (us-east-1, where ARC's control plane is) may be down: the
        # health checks come from their copy in the DR region
        health_checks_from="dr-copy" if cfg.dr.active_region == "dr" else "plan",
        providers=aws_providers,
        control_plane_provider=route53_metrics,  # the us-east-1 provider
    ),
)

# --- edge DNS: failover records the region switch moves, and the primary's probe ----------------



def load_balancer(role: settings.Role) -> LoadBalancerTarget:
    """alb mode: the region's WAF-protected ALB the program creates; nginx mode: the controller's,
    from config (settings require dns.<role>LoadBalancer exactly in nginx mode)."""
    created = tiers[role].load_balancer
    if created is not None:
        return created
    configured = getattr(dns, f"{role}_load_balancer")
    assert configured is not None
    return LoadBalancerTarget(configured.dns_name, configured.zone_id)


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
        primary=load_balancer("primary"),
        secondary=load_balancer("dr"),
        switch_checks={"PRIMARY": switch.health_check_ids["primary"], "SECONDARY": switch.health_check_ids["dr"]},
    ),
    opts=pulumi.ResourceOptions(provider=route53_metrics),
)

# --- on-call: every alarm topic subscribed per region, Prometheus alerts routed by severity -------
alerting = cfg.alerting
subscribers = {role: [Subscriber(s.protocol, s.endpoint) for s in getattr(alerting.subscribers, role)]
               for role in ("primary", "dr")}
# The health-check topic lives in us-east-1 with Route 53's metrics: the primary's on-call owns it.
alert_topics = {f"postgres-{role}": (topic, role) for role, topic in postgres.alert_topics.items()}
alert_topics["api-failover"] = (failover.alert_topic, "primary")
# replication alarms are raised in the source (primary) region
alert_topics.update({f"{purpose}-backups": (b.alert_topic, "primary") for purpose, b in buckets.items()})
for topic_name, (topic, role) in alert_topics.items():
    subscribe(f"{topic_name}-oncall", topic, subscribers[role])

# --- DR budget: bounds from what is deployed, against the stack's targets ------------------------
budget = [
    # failing over to a replica needs one: none between a failover and the rebuild (PITR rows stay)
    *(bound for bound in dr_budget.postgres_bounds(
        rto_target=cfg.dr.postgres.rto_seconds,
        rpo_target=cfg.dr.postgres.rpo_seconds,
        request_interval_seconds=dns.health_check.request_interval_seconds,
        failure_threshold=dns.health_check.failure_threshold,
        switch_steps=[(step.name, step.timeout_seconds) for step in switch.steps],
        lag_threshold_seconds=cfg.replica_lag_threshold_seconds,
    ) if postgres.replica_arn is not None or bound.datastore != "postgres"),
    *dr_budget.neo4j_bounds(
        rto_target=cfg.dr.neo4j.rto_seconds,
        rpo_target=cfg.dr.neo4j.rpo_seconds,
        backup_schedule=cfg.neo4j.backup_schedule,
        chain_days=cfg.backups.neo4j.chain_days,
        full_backup_seconds=neo4j_backup.full_backup_seconds,
        restore_estimate_seconds=cfg.dr.neo4j_restore_estimate_seconds,
        differential_estimate_seconds=cfg.dr.neo4j_differential_estimate_seconds,
        dr_mode=neo.dr.mode,
        replication_sla_seconds=REPLICATION_SLA_MINUTES * 60,
        request_interval_seconds=dns.health_check.request_interval_seconds,
        failure_threshold=dns.health_check.failure_threshold,
        cluster_start_seconds=cfg.dr.neo4j_cluster_start_estimate_seconds or 0,
        refresh_schedule=neo.dr.refresh_schedule,
        # the plan's EKS step, when it scales the graph's servers up
        tier_scaling_seconds=next((step.timeout_seconds for step in switch.steps if step.block == "EKSResourceScaling"
                                   and any(w.namespace == neo.namespace for w in switch.scaled)), 0),
    ),
]
budget.append(dr_budget.postgres_pitr_rto(
    rto_target=cfg.dr.postgres_pitr_rto_seconds,
    restore_estimate_seconds=cfg.dr.postgres_pitr_restore_estimate_seconds))

# --- outputs --------------------------------------------------------------------------------------
exported: dict[str, Any] = {}


def export(name: str, value: Any) -> None:
    """A stack output; the runbooks' ones are also written into the DR region (below)."""
    exported[name] = value
    pulumi.export(name, value)


# whose and where: the runbooks check their credentials against it (ops/_common.py)
export("aws", {"accountId": cfg.aws.account_id, "primaryRegion": cfg.aws.primary_region,
               "drRegion": cfg.aws.dr_region, "runbookOutputsParameter": outputs_parameter(pulumi.get_stack())})
# The newest Neo4j backup may be the longest gap between backups plus the slack old (ops/dr_readiness).
max_backup_age = {"neo4j": neo4j_backup.max_age_seconds}
export("backupBuckets", {
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
# The writer wherever it is (dr.activeRegion), and its replica while one exists (none between a
# failover and the rebuild). primaryEndpoint/primaryArn: the writer, under the names the runbooks read.
export("postgres", {
    "writerRegion": cfg.aws.region(postgres.writer_region),
    "writerEndpoint": postgres.writer_endpoint,
    "writerArn": postgres.writer_arn,
    "primaryEndpoint": postgres.writer_endpoint,
    "primaryArn": postgres.writer_arn,
    **({"replicaEndpoint": postgres.replica_endpoint, "replicaArn": postgres.replica_arn}
       if postgres.replica_arn is not None else {}),
    # each region's instance, writer or not (the on-call role names both: no IAM change at failover)
    "instanceArns": postgres.instance_arns,
    **postgres.secret_outputs,  # the writer's secret, its copy where the replica is, the rotation schedule
    # the DR-region key of the replica's storage (and of a PITR restore there)
    "replicaKmsKeyArn": postgres.replica_kms_key_arn,
    "lagAlarmThresholdSeconds": cfg.replica_lag_threshold_seconds,
    "heartbeatIntervalSeconds": dr_budget.HEARTBEAT_INTERVAL_SECONDS,
    "backupRetentionDays": pg.backup_retention_days,
})
export("neo4j", {"releases": graph.release_names, "heap": graph.plan.heap,
                        "pagecache": graph.plan.pagecache})
export("dnsFailover", {"healthCheckId": failover.health_check_id, "fqdn": failover.fqdn})
# How to switch: start the plan from the region being activated (data plane), never from the lost one.
export("regionSwitch", {
    "planArn": switch.plan_arn, "executionRoleArn": switch.execution_role_arn,
    "approvalRoleArn": switch.approval_role_arn,
    "healthChecks": {cfg.aws.region(role): check for role, check in switch.health_check_ids.items()},
    "steps": [{"name": s.name, "block": s.block, "timeoutSeconds": s.timeout_seconds} for s in switch.steps],
    "regions": {role: cfg.aws.region(role) for role in settings.ROLES},
})
export("edge", {"mode": edge.mode, "webAclArn": tier.edge.web_acl_arn,
                       "drWebAclArn": tiers["dr"].edge.web_acl_arn,
                       "loadBalancerDnsName": tier.edge.load_balancer_dns_name,
                       "drLoadBalancerDnsName": tiers["dr"].edge.load_balancer_dns_name})
export("tiers", {role: {"region": cfg.aws.region(role), "cluster": cfg.kubernetes.of(role).cluster_name,
                               "namespaces": list(t.namespaces),
                               "neo4jServers": t.graph.release_names if t.graph else [],
                               "neo4jMode": "primary" if role == "primary" else neo.dr.mode,
                               # the switch runs it: kubectl create job --from=cronjob/<it> (components/neo4j_dr.py)
                               **({} if role == "primary" else {"neo4jSwitchCronJob": f"{neo.namespace}/{SWITCH_JOB}"})}
                        for role, t in tiers.items()})
export("alerting", {"topics": {name: topic.arn for name, (topic, _) in alert_topics.items()}})
export("pgRestoreRehearsal", {"region": cfg.aws.dr_region, "prefix": PG_REHEARSAL_PREFIX,
                                     **postgres.dr_restore_target})
export("audit", {"trailArn": trail.trail_arn, "trailName": trail_name})
export("drBudget", [bound.as_output() for bound in budget])
# The longest a deploy may legitimately run (the Neo4j roll, server after server): the deploy job
# and its AWS credentials must outlast it (helpers/rollout.py, tests/test_rollout_budget.py).
export("rolloutBudget", rollout_budget(servers=len(graph.release_names)))

# --- runbooks that need nothing from the failed region (docs/decisions/022) -------------------------
# Every deploy writes the outputs the runbooks read into the DR region: the runbooks read them there
# with `--stack`, while the primary region - and the state backend and Pulumi CLI view in it - is
# gone. A String parameter: ARNs, names and numbers, no secret (SecureString would only add a key
# every reader needs), so insecure_value (pulumi-aws: never masked) and a preview shows its diff.
# Standard tier holds 4 KB (tests/test_ops_commands.py keeps the document well under it).
runbook_outputs = pulumi.Output.from_input(runbook_document(exported))
aws.ssm.Parameter(
    "runbook-outputs",
    name=outputs_parameter(pulumi.get_stack()),
    type="String",
    tier="Standard",
    description="Stack outputs the ops runbooks read (python -m ops.<runbook> --stack <stack>)",
    insecure_value=runbook_outputs.apply(lambda document: json.dumps(document, sort_keys=True, separators=(",", ":"))),
    opts=pulumi.ResourceOptions(provider=dr),
)

# The on-call role: the DR runbooks' IAM actions on this stack's resources, assumable only from the
# IAM Identity Center permission set dr.onCallPermissionSet (no user, no access key). IAM is global;
# the DR provider keeps it out of what the primary region's provider manages.
on_call_role = aws.iam.Role(
    "oncall",
    name=oncall.role_name(pulumi.get_stack()),
    description="On-call engineers: the DR runbooks (python -m ops.dr_readiness / ops.dr_promote)",
    assume_role_policy=json.dumps(oncall.trust_policy(cfg.aws.account_id, cfg.dr.on_call_permission_set)),
    max_session_duration=oncall.ROLE_SESSION_SECONDS,
    opts=pulumi.ResourceOptions(provider=dr),
)
aws.iam.RolePolicy(
    "oncall-runbooks",
    role=on_call_role.id,
    policy=runbook_outputs.apply(lambda document: json.dumps(oncall.policy(document), sort_keys=True)),
    opts=pulumi.ResourceOptions(provider=dr),
)
export("onCall", {"roleArn": on_call_role.arn, "permissionSet": cfg.dr.on_call_permission_set})
