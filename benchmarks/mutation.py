"""python -m benchmarks.mutation [--only ID,...] [--list] [--out build/mutation.json]

Mutation testing over a curated list of realistic one-line mistakes in components/, settings/
and policy/ (issue 24 item 12): each mutation is applied to a copy of the repository in a temporary
directory (the working tree is never touched), the tests that own that file run against it
(`pytest -x`, the smallest selection that should notice), and the mutation is *killed* when they
fail, *survived* when they pass. The score per area is killed / (killed + survived); the goal is
>= 90 % for each of components/, settings and policy/.

A mutation names its text exactly as the file has it, once: when the code moves on, the campaign
refuses to start (tests/test_mutation.py checks every entry still applies) instead of silently
testing nothing. Before any mutant runs, every test selection must pass on the unmutated copy, so
a killed mutant means the mutation was noticed, not that the tests were already red.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

ROOT = Path(__file__).resolve().parent.parent
AREAS = ("components/", "settings/", "policy/")
GOAL_PERCENT = 90.0
# what never goes into the copy: caches (a stale .pyc could hide a mutant), outputs, git metadata
IGNORED = shutil.ignore_patterns(".git", "build", "__pycache__", ".pytest_cache", ".ruff_cache", "*.pyc")

# the tests a file's mutations run when a mutation names none of its own (each runs with -x)
PACK_BREAKS = "tests/test_policy_pack.py::test_breaking_one_property_of_the_real_stack_fails_its_rule"
OWNERS: dict[str, tuple[str, ...]] = {
    # the modules whose mutations narrow or widen a numeric range: the table of both bounds notices
    **{f"settings/{concern}.py": ("tests/test_settings_ranges.py",) for concern in ("values", "backups", "graph",
                                                                                      "cache", "database", "edge",
                                                                                      "operations", "dr")},
    "policy/guardrails/edge.py": ("tests/test_policy_edge.py",),
    "policy/guardrails/s3.py": ("tests/test_policy_s3.py", PACK_BREAKS),
    **{f"policy/guardrails/{rules}.py": (PACK_BREAKS,) for rules in ("rds", "kubernetes", "stack", "logs", "audit",
                                                                      "route53")},
}


@dataclass(frozen=True)
class Mutation:
    file: str
    old: str  # exact text, found exactly once in the file
    new: str
    what: str  # the realistic mistake it stands for
    select: tuple[str, ...] = ()  # the smallest test selection that should notice (default: OWNERS)

    @property
    def id(self) -> str:
        """file:n, its place among the file's curated mutations (file:? for one made elsewhere)."""
        mine = MUTATIONS_BY_FILE.get(self.file, [])
        return f"{self.file}:{mine.index(self) + 1 if self in mine else '?'}"

    @property
    def tests(self) -> tuple[str, ...]:
        return self.select or OWNERS[self.file]

    @property
    def area(self) -> str:
        return next(a for a in AREAS if self.file.startswith(a))

    def apply(self, source: str) -> str:
        found = source.count(self.old)
        if found != 1:
            raise ValueError(f"{self.file}: {self.old!r} occurs {found} times, not once: update the mutation")
        return source.replace(self.old, self.new)


def m(file: str, old: str, new: str, what: str, *select: str) -> Mutation:
    return Mutation(file, old, new, what, select)


C, S, P = "components/", "settings/", "policy/guardrails/"
MUTATIONS: list[Mutation] = [
    # --- components/: security properties, configured values at their destination, derived thresholds
    m(C + "waf_ingress.py", '"action": {"block": {}},\n                "statement": {"rate_based_statement"',
      '"action": {"count": {}},\n                "statement": {"rate_based_statement"', "rate limit only counts",
      "tests/test_waf_ingress.py::test_web_acl_runs_managed_rules_rate_limit_and_body_limit"),
    m(C + "waf_ingress.py", '"override_action": {"none": {}}', '"override_action": {"count": {}}',
      "managed rule groups overridden to count",
      "tests/test_waf_ingress.py::test_web_acl_runs_managed_rules_rate_limit_and_body_limit"),
    m(C + "waf_ingress.py", 'TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"',
      'TLS_POLICY = "ELBSecurityPolicy-TLS13-1-0-2021-06"', "listener accepts TLS 1.0",
      "tests/test_waf_ingress.py::test_each_region_s_alb_is_tls_only_in_its_public_subnets_behind_its_web_acl"),
    m(C + "waf_ingress.py", '"action_to_use": {"count": {}}', '"action_to_use": {"block": {}}',
      "8 KB body rule blocks the API's 2 MB bodies",
      "tests/test_waf_ingress.py::test_common_rule_set_does_not_block_bodies_the_api_accepts"),
    m(C + "waf_ingress.py", '{"single_header": {"name": "cookie"}}', '{"single_header": {"name": "x-cookie"}}',
      "cookies reach the WAF logs",
      "tests/test_waf_ingress.py::test_waf_logs_to_cloudwatch_without_credentials"),
    m(C + "backup_bucket.py", "            restrict_public_buckets=True,", "            restrict_public_buckets=False,",
      "one public-access block off",
      "tests/test_backup_bucket.py::test_each_side_is_encrypted_private_versioned_and_tls_only"),
    m(C + "backup_bucket.py", '"sse_algorithm": "aws:kms",', '"sse_algorithm": "AES256",', "SSE-S3 instead of KMS",
      "tests/test_backup_bucket.py::test_each_side_is_encrypted_private_versioned_and_tls_only"),
    m(C + "backup_bucket.py", '"bucket_key_enabled": True,', '"bucket_key_enabled": False,', "no S3 Bucket Key",
      "tests/test_backup_bucket.py::test_each_side_is_encrypted_private_versioned_and_tls_only"),
    m(C + "backup_bucket.py", '"delete_marker_replication": {"status": "Enabled"},',
      '"delete_marker_replication": {"status": "Disabled"},', "delete markers not replicated",
      "tests/test_backup_bucket.py::test_replication_runs_under_rtc_with_metrics_and_alarms_on_failures"),
    m(C + "backup_bucket.py", '"noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_expiration_days},',
      '"noncurrent_version_expiration": {"noncurrent_days": args.expiration_days},', "wrong setting reaches the rule",
      "tests/test_backup_bucket.py::test_lifecycle_tiers_expires_and_cleans_up_noncurrent_versions"),
    m(C + "backup_bucket.py", "            enable_key_rotation=True,\n            deletion_window_in_days=30,",
      "            enable_key_rotation=False,\n            deletion_window_in_days=30,", "bucket key never rotates",
      "tests/test_backup_bucket.py::test_each_side_is_encrypted_private_versioned_and_tls_only"),
    m(C + "audit_trail.py", "            is_multi_region_trail=True,", "            is_multi_region_trail=False,",
      "trail misses the DR region",
      "tests/test_audit_trail.py::test_the_trail_is_tamper_evident_encrypted_multi_region_and_delivers_to_the_logs_bucket"),
    m(C + "audit_trail.py", "            enable_log_file_validation=True,", "            enable_log_file_validation=False,",
      "log files not signed",
      "tests/test_audit_trail.py::test_the_trail_is_tamper_evident_encrypted_multi_region_and_delivers_to_the_logs_bucket"),
    m(C + "audit_trail.py", '{"field": "readOnly", "equals": ["true"]},', '{"field": "readOnly", "equals": ["false"]},',
      "records the trail's own deliveries instead of reads",
      "tests/test_audit_trail.py::test_reads_of_the_audit_log_are_recorded_in_both_regions_but_not_its_deliveries"),
    m(C + "dns_failover.py", "            enable_sni=True,", "            enable_sni=False,", "health check without SNI",
      "tests/test_dns_failover.py::test_health_check_probes_healthz_over_https_from_several_regions"),
    m(C + "dns_failover.py", "                health_check_id=args.switch_checks[role],",
      "                health_check_id=None,", "failover records without the Region switch plan's health checks",
      "tests/test_dns_failover.py::test_the_region_switch_plan_alone_moves_traffic"),
    m(C + "dns_failover.py", '"zone_id": target.zone_id,\n                          "evaluate_target_health": False}],',
      '"zone_id": target.zone_id,\n                          "evaluate_target_health": True}],',
      "a failing primary ALB alone sends clients to the read-only DR replica",
      "tests/test_dns_failover.py::test_the_region_switch_plan_alone_moves_traffic"),
    m(C + "dns_failover.py", 'statistic="Minimum", comparison="LessThanThreshold", threshold=1,',
      'statistic="Average", comparison="LessThanThreshold", threshold=1,', "alarm averages the checkers",
      "tests/test_dns_failover.py::test_unhealthy_primary_raises_an_alarm_in_us_east_1"),
    m(C + "egress_policy.py", '"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],',
      '"ports": [{"protocol": "UDP", "port": 53}],', "DNS over TCP dropped",
      "tests/test_egress.py::test_every_workload_namespace_is_closed_by_default_and_has_dns"),
    m(C + "egress_policy.py", 'policy("default-deny", {}, ["Ingress", "Egress"], {})',
      'policy("default-deny", {}, ["Ingress"], {})', "egress not denied by default",
      "tests/test_egress.py::test_every_workload_namespace_is_closed_by_default_and_has_dns"),
    m(C + "egress_policy.py", '"pod-security.kubernetes.io/warn": "restricted",',
      '"pod-security.kubernetes.io/warn": "baseline",', "PSA warns on baseline only",
      "tests/test_egress.py::test_namespaces_enforce_pod_security"),
    m(C + "alertmanager.py", 'ROUTES = (("pager", "critical", "1h"), ("chat", "warning", "4h"))',
      'ROUTES = (("chat", "critical", "1h"), ("chat", "warning", "4h"))', "critical alerts page nobody",
      "tests/test_alerting.py::test_amtool_routes_each_severity_to_its_receiver"),
    m(C + "alertmanager.py", '        "expr": f"max({REJECTED}) > 0",', '        "expr": f"max({REJECTED}) > 1",',
      "one rejected config is tolerated",
      "tests/test_alerting.py::test_a_rejected_alertmanager_config_pages_through_a_route_it_cannot_silence"),
    m(C + "log_shipper.py", '"priorityClassName": PRIORITY_CLASS,', '"priorityClassName": None,',
      "log DaemonSet loses its priority class",
      "tests/test_log_shipper.py::test_the_shipper_outranks_workloads_on_a_full_node_but_not_the_node_itself"),
    m(C + "log_shipper.py", '{"name": "varlog", "mountPath": "/var/log", "readOnly": True},',
      '{"name": "varlog", "mountPath": "/var/log", "readOnly": False},', "host logs writable",
      "tests/test_log_shipper.py::test_the_daemonset_is_hardened_pinned_and_reads_the_node_logs_read_only"),
    m(C + "log_shipper.py", """[15m]) == 0'),\n         "for": "15m",""", """[15m]) == 0'),\n         "for": "1h",""",
      "upload failure noticed an hour late",
      "tests/test_log_shipper.py::test_the_output_alert_fires_when_the_s3_buffer_is_full_and_stays_quiet_otherwise"),
    m(C + "log_shipper.py", """daemonset="{NAME}"}} > 0',""", """daemonset="{NAME}"}} > 1',""",
      "one node without log shipping tolerated",
      "tests/test_alert_thresholds.py"),
    m(C + "neo4j_backup.py", "return max(self.interval_seconds, self.full_backup_seconds) + 60 * self",
      "return self.interval_seconds + 60 * self", "stale alert ignores full backup time",
      "tests/test_alert_thresholds.py"),
    m(C + "neo4j_backup.py", "    freshness_limit = 2 * freshness_period + FRESHNESS_DEADLINE_SECONDS",
      "    freshness_limit = freshness_period + FRESHNESS_DEADLINE_SECONDS", "one missed check pages",
      "tests/test_alert_thresholds.py"),
    m(C + "neo4j_backup.py", '"delete": ["s3:DeleteObject"]}[access]', '"delete": ["s3:DeleteObject", "s3:PutObject"]}[access]',
      "the pruner can write",
      "tests/test_neo4j.py::test_backup_roles_may_only_touch_the_neo4j_prefix"),
    m(C + "neo4j_backup.py", '"expr": f"time() - {succeeded} > {period + 86400}",',
      '"expr": f"time() - {succeeded} > {2 * period}",', "stale rehearsal noticed a week late",
      "tests/test_alert_thresholds.py"),
    m(C + "neo4j_dr.py", '            seed_job(REFRESH_JOB, "refresh", args.refresh_schedule, suspend=not args.refreshes)',
      '            seed_job(REFRESH_JOB, "refresh", args.refresh_schedule, suspend=False)',
      "the refresh seeds an older backup over the DR graph while it is the writer",
      "tests/test_neo4j_dr.py::test_the_refresh_is_suspended_while_the_dr_region_is_active"),
    m(C + "neo4j_dr.py", '(args.restore_namespace, REHEARSAL_JOB)], "seed and rehearsal jobs")',
      '(args.namespace, REHEARSAL_JOB)], "seed and rehearsal jobs")',
      "the rehearsal's service account trusted in the graph's namespace, not the one it runs in",
      "tests/test_neo4j_dr.py::test_the_rehearsal_and_seed_jobs_assume_the_dr_clusters_irsa_role"),
    m(C + "neo4j_dr.py", 'prefix_policy(a[0], a[1], args.prefix, args.region, "read")',
      'prefix_policy(a[0], a[1], args.prefix, args.region, "write")', "the DR jobs may overwrite the replicated backups",
      "tests/test_neo4j_dr.py::test_the_restore_rehearsal_runs_in_the_dr_cluster_from_the_dr_bucket"),
    m(C + "neo4j_dr.py", '"value": str(args.seed_deadline_seconds // POLL_SECONDS)}',
      '"value": str(args.seed_seconds // POLL_SECONDS)}', "the seed gives up before its job's deadline",
      "tests/test_neo4j_dr.py::test_a_warm_dr_graph_is_refreshed_on_its_schedule_and_a_pilot_light_one_is_not"),
    m(C + "neo4j_cluster.py", '"minimumClusterSize": min(args.primaries, FORMATION_PRIMARIES),',
      '"minimumClusterSize": args.primaries,', "adding a primary changes every server's config",
      "tests/test_neo4j_topology.py::test_adding_a_server_leaves_the_existing_servers_pod_templates_unchanged"),
    m(C + "neo4j_cluster.py", '"whenUnsatisfiable": "DoNotSchedule",', '"whenUnsatisfiable": "ScheduleAnyway",',
      "primaries may share a zone",
      "tests/test_neo4j_chart.py::test_primaries_must_spread_over_the_three_zones"),
    m(C + "neo4j_cluster.py", "CHART_TERMINATION_GRACE_SECONDS = 3600", "CHART_TERMINATION_GRACE_SECONDS = 600",
      "helm timeout shorter than the chart's grace",
      "tests/test_neo4j_topology.py::test_helm_waits_as_long_as_the_chart_lets_a_server_restart"),
    m(C + "neo4j_snapshots.py", "    stale = 2 * cron_max_gap_seconds(args.schedule) + scheduled_deadline_seconds(args.schedule)",
      "    stale = cron_max_gap_seconds(args.schedule) + scheduled_deadline_seconds(args.schedule)",
      "a first long snapshot pages",
      "tests/test_neo4j_snapshots.py::test_snapshots_that_stopped_succeeding_alert_after_two_periods_and_a_run"),
    m(C + "neo4j_snapshots.py", '"RETAIN": str(args.retain),', '"RETAIN": str(args.retain + 1),',
      "configured retention not what the job keeps",
      "tests/test_neo4j_snapshots.py::test_every_servers_data_volume_is_snapshotted_by_the_claim_name_the_chart_creates"),
    m(C + "pg_restore_rehearsal.py", 'f"time() - kube_cronjob_status_last_successful_time{{{selector}}} > {period + 86400}"',
      'f"time() - kube_cronjob_status_last_successful_time{{{selector}}} > {2 * period}"', "stale rehearsal late",
      "tests/test_alert_thresholds.py"),
    m(C + "pg_restore_rehearsal.py", "        return 60 * self.timeout_minutes + 1800",
      "        return 60 * self.timeout_minutes", "job killed before the script's own timeout cleans up",
      "tests/test_pg_rehearsal_job.py"),
    m(C + "pg_restore_rehearsal.py", '"Action": ["rds:DeleteDBInstance"],', '"Action": ["rds:*"],',
      "rehearsal role may do anything to RDS",
      "tests/test_pg_rehearsal_job.py"),
    m(C + "postgres_dr.py", "            retention_period=args.backup_retention_days,", "            retention_period=7,",
      "DR copy of automated backups keeps a different retention",
      "tests/test_postgres_dr.py::test_pitr_is_replicated_to_the_dr_region_with_the_dr_key"),
    m(C + "postgres_dr.py", "            publicly_accessible=False,", "            publicly_accessible=True,", "public database",
      "tests/test_postgres_dr.py::test_primary_is_encrypted_private_iam_enabled_with_a_write_only_bootstrap_password"),
    m(C + "postgres_dr.py", "            iam_database_authentication_enabled=True,",
      "            iam_database_authentication_enabled=False,", "no IAM auth",
      "tests/test_postgres_dr.py::test_primary_is_encrypted_private_iam_enabled_with_a_write_only_bootstrap_password"),
    m(C + "postgres_dr.py", "            threshold=args.replica_lag_threshold_seconds,", "            threshold=60,",
      "lag threshold ignores its setting",
      "tests/test_postgres_dr.py::test_alarms_watch_lag_cpu_and_storage_and_notify_an_encrypted_topic"),
    m(C + "postgres_dr.py", 'rotation_rules={"automatically_after_days": args.master_secret_rotation_days},',
      'rotation_rules={"automatically_after_days": 30},', "rotation ignores its setting",
      "tests/test_postgres_dr.py::test_rotation_starts_at_deploy_on_the_config_schedule_with_the_primary_regions_function"),
    m(C + "redis_cache.py", "    share = 0.5 if persistence else 0.75", "    share = 0.75 if persistence else 0.75",
      "persistence forgets fork copy-on-write",
      "tests/test_redis.py::test_maxmemory_is_a_share_of_the_limit_by_persistence"),
    m(C + "redis_cache.py", '"expr": f"redis_memory_used_rss_bytes{{{scope}}} > {int(limit_bytes * 0.9)}",',
      '"expr": f"redis_memory_used_rss_bytes{{{scope}}} > {int(limit_bytes * 1.0)}",', "alert only at the OOM kill",
      "tests/test_alert_thresholds.py"),
    m(C + "redis_cache.py", '        "protected-mode yes",', '        "protected-mode no",', "protected mode off",
      "tests/test_redis.py::test_real_redis_server_runs_with_the_computed_ceiling_and_policy"),
    m(C + "redis_cache.py", '"automountServiceAccountToken": False,', '"automountServiceAccountToken": True,',
      "cache pods get an API token",
      "tests/test_redis.py::test_statefulset_is_hardened_with_exporter_and_headless_service"),
    m(C + "region_switch.py", 'SERVICE_PRINCIPAL = "arc-region-switch.amazonaws.com"',
      'SERVICE_PRINCIPAL = "route53-recovery-control-config.amazonaws.com"',
      "the execution role trusts ARC's routing control service, not Region switch",
      "tests/test_region_switch.py::test_the_execution_role_is_assumable_by_region_switch_only"),
    m(C + "region_switch.py", '        steps.append(Step("move-traffic", "Route53HealthCheck", t.traffic_minutes * 60))',
      '        steps.insert(1, Step("move-traffic", "Route53HealthCheck", t.traffic_minutes * 60))',
      "traffic moves before the database is promoted",
      "tests/test_region_switch.py::test_the_plan_activates_either_region_with_the_same_steps"),
    m(C + "region_switch.py", 'Step("promote-postgres", "RdsPromoteReadReplica", t.promotion_minutes * 60)',
      'Step("promote-postgres", "RdsCreateCrossRegionReplica", t.promotion_minutes * 60)',
      "the promotion step's block creates a replica instead of promoting one",
      "tests/test_region_switch.py::test_the_plan_activates_either_region_with_the_same_steps"),
    m(C + "region_switch.py", '"Action": ["arc-region-switch:ApprovePlanExecutionStep"], "Resource": plan_arn}]',
      '"Action": ["arc-region-switch:ApprovePlanExecutionStep"], "Resource": "*"}]',
      "the approval role may approve any plan",
      "tests/test_region_switch.py::test_the_approval_role_may_approve_this_plan_only"),
    m(C + "regional_tier.py", 'pod_security="privileged" if ns == args.shipper_namespace else "restricted"),',
      'pod_security="privileged" if ns == args.shipper_namespace else "baseline"),', "namespaces only baseline",
      "tests/test_egress.py::test_namespaces_enforce_pod_security"),
    # --- settings/: both bounds of ranges, the rules relating keys
    m(S + "values.py", "Port = Annotated[int, Field(ge=1, le=65535)]", "Port = Annotated[int, Field(ge=0, le=65535)]", "port 0"),
    m(S + "values.py", "Days = Annotated[int, Field(ge=1, le=3650)]", "Days = Annotated[int, Field(ge=1, le=36500)]",
      "a century"),
    m(S + "backups.py", "chain_days: Annotated[int, Field(ge=1, le=7)]", "chain_days: Annotated[int, Field(ge=1, le=8)]",
      "a chain longer than a week"),
    m(S + "backups.py", "        floor = self.chain_days + self.retention_days + 1\n",
      "        floor = self.retention_days + 1\n",
      "lifecycle expiry may delete a kept chain's full backup",
      "tests/test_settings.py::test_bad_value_exits_2_naming_its_key_and_registers_nothing"),
    m(S + "backups.py", 'if value <= info.data.get("transition_days", 0):', 'if value < info.data.get("transition_days", 0):',
      "expiry on the transition day accepted",
      "tests/test_settings.py::test_bad_value_exits_2_naming_its_key_and_registers_nothing"),
    m(S + "backups.py", "        if value and value.days > info.data.get(\"expiration_days\", value.days):",
      "        if value and value.days > 10 * info.data.get(\"expiration_days\", value.days):",
      "object lock longer than expiry",
      "tests/test_settings.py::test_bad_value_exits_2_naming_its_key_and_registers_nothing"),
    m(S + "graph.py", "        if value == 2:\n", "        if value == 4:\n", "two primaries accepted",
      "tests/test_settings.py::test_bad_value_exits_2_naming_its_key_and_registers_nothing"),
    m(S + "network.py", '        if value == info.data.get("primary_region"):', '        if value == info.data.get("dr_region"):',
      "the DR region compared with itself: the primary region accepted as DR",
      "tests/test_settings.py::test_bad_value_exits_2_naming_its_key_and_registers_nothing"),
    m(S + "cache.py", "replicas: Annotated[int, Field(ge=1, le=9)]", "replicas: Annotated[int, Field(ge=0, le=9)]",
      "zero cache pods"),
    m(S + "database.py", "backup_retention_days: Annotated[int, Field(ge=1, le=35)]",
      "backup_retention_days: Annotated[int, Field(ge=0, le=35)]", "retention 0 (no PITR, no replica) accepted"),
    m(S + "edge.py", "failure_threshold: Annotated[int, Field(ge=1, le=10)]",
      "failure_threshold: Annotated[int, Field(ge=1, le=11)]", "a threshold Route 53 refuses"),
    m(S + "edge.py", "max_body_size_mb: Annotated[int, Field(ge=1, le=64)]",
      "max_body_size_mb: Annotated[int, Field(ge=1, le=640)]", "body limit unbounded"),
    m(S + "operations.py", "timeout_minutes: Annotated[int, Field(ge=15, le=720)]",
      "timeout_minutes: Annotated[int, Field(ge=1, le=720)]", "a rehearsal timeout no restore fits"),
    m(S + "dr.py", "    if parts[1] != PROJECT:", "    if not parts[1]:", "another project's resource retired",
      "tests/test_retire.py::test_a_bad_retire_entry_stops_before_anything_registers"),
    m(S + "stack.py", "+ self._zones_in_their_regions() + self._dr_mode_measured()", "+ self._dr_mode_measured()",
      "a rule across sections never wired in: zones of another region accepted",
      "tests/test_settings.py::test_bad_value_exits_2_naming_its_key_and_registers_nothing"),
    m(S + "loading.py", "    if foreign:\n        raise SettingsError(foreign)\n", "",
      "a key of a misspelt namespace passes when every project key is valid",
      "tests/test_settings.py::test_bad_value_exits_2_naming_its_key_and_registers_nothing"),
    # --- policy/: every branch of the rules
    m(P + "edge.py", '    elif dig(props, "protocol") in ("HTTPS", "TLS"):', '    elif dig(props, "protocol") == "HTTPS":',
      "TLS listeners unjudged"),
    m(P + "edge.py", '        if dig(props, "spec", "ingressClassName") != "alb":', "        if False:",
      "nginx Ingresses judged as ALBs"),
    m(P + "edge.py", '    "ELBSecurityPolicy-TLS-1-2-2017-01", "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",',
      '    "ELBSecurityPolicy-TLS-1-2-2017-01", "ELBSecurityPolicy-TLS-1-2-Ext-2018-06", "ELBSecurityPolicy-2016-08",',
      "the TLS 1.0 default allowed"),
    m(P + "edge.py", '        return override == "none"', '        return override in ("none", "count")',
      "a counting rule group association blocks"),
    m(P + "edge.py", 'or (override is not None and _key(override, "none") is not None)', "or override is not None",
      "a group overridden to count blocks"),
    m(P + "edge.py", '        if _key(dig(acl.props, "defaultAction"), "block") is None and not any(_blocks(r) for r in rules):',
      '        if not any(_blocks(r) for r in rules):', "default Block ignored"),
    m(P + "s3.py", '    off = [flag for flag in PUBLIC_ACCESS_FLAGS if dig(props, flag) is not True]',
      '    off = [flag for flag in PUBLIC_ACCESS_FLAGS[:3] if dig(props, flag) is not True]', "one block unjudged"),
    m(P + "s3.py", '        if dig(default, "sseAlgorithm") not in ("aws:kms", "aws:kms:dsse"):',
      '        if dig(default, "sseAlgorithm") not in ("aws:kms", "aws:kms:dsse", "AES256"):', "SSE-S3 accepted"),
    m(P + "s3.py", '        if dig(rule, "bucketKeyEnabled") is not True:', '        if dig(rule, "bucketKeyEnabled") is False:',
      "unset bucket key accepted"),
    m(P + "s3.py", '    if not any(dig(r, "noncurrentVersionExpiration", "noncurrentDays") for r in enabled):',
      '    if not any(dig(r, "noncurrentVersionExpiration", "noncurrentDays") for r in each(props, "rules")):',
      "a disabled rule's expiry counts"),
    m(P + "rds.py", '    if not is_replica(props) and days < minimum:', '    if not is_replica(props) and days < minimum - 7:',
      "retention floor off by a week"),
    m(P + "rds.py", '    if dig(props, "publiclyAccessible") is True:', '    if dig(props, "publiclyAccessible") == "true":',
      "public instances pass"),
    m(P + "rds.py", '    if not is_replica(props) and dig(props, "multiAz") is not True:',
      '    if dig(props, "multiAz") is False and not is_replica(props) and False:', "multi-AZ never checked"),
    m(P + "kubernetes.py", '        if "ALL" not in list(dig(c, "securityContext", "capabilities", "drop", default=[])):',
      '        if not list(dig(c, "securityContext", "capabilities", "drop", default=[])):', "dropping one capability passes"),
    m(P + "kubernetes.py", '    if dig(spec, "jobTemplate", "spec", "backoffLimit", default=6) > 3:',
      '    if dig(spec, "jobTemplate", "spec", "backoffLimit", default=0) > 3:', "unset backoffLimit (6) passes"),
    m(P + "kubernetes.py", '            if dig(peer, "ipBlock", "cidr") in ("0.0.0.0/0", "::/0"):',
      '            if dig(peer, "ipBlock", "cidr") == "::/0":', "IPv4 internet egress passes"),
    m(P + "kubernetes.py", '        if _effective(pod, c, "runAsNonRoot") is not True or _effective(pod, c, "runAsUser") == 0:',
      '        if _effective(pod, c, "runAsNonRoot") is not True:', "runAsUser 0 passes"),
    m(P + "stack.py", '            if bound is not None and target is not None and bound > target:',
      '            if bound is not None and target is not None and bound > 2 * target:', "DR budget twice over passes"),
    m(P + "stack.py", '        elsewhere = [r for r in replicas if region_of(r) and region_of(r) != region_of(primary)]',
      '        elsewhere = replicas', "same-region replica passes"),
    m(P + "stack.py", '    return {("UDP", 53), ("TCP", 53)} <= protocols', '    return ("UDP", 53) in protocols',
      "DNS over UDP only passes"),
    m(P + "logs.py", '    if not dig(props, "retentionInDays"):', '    if dig(props, "retentionInDays") is None:',
      "retention 0 (never expire) passes"),
    m(P + "audit.py", '    if dig(props, "isMultiRegionTrail") is not True:', '    if dig(props, "isMultiRegionTrail") is False:',
      "unset multi-region passes"),
    m(P + "route53.py", 'if primary and not present(props, "healthCheckId"):', 'if False:',
      "PRIMARY without a health check passes"),
]
MUTATIONS_BY_FILE: dict[str, list[Mutation]] = {}
for _mutation in MUTATIONS:
    MUTATIONS_BY_FILE.setdefault(_mutation.file, []).append(_mutation)


def charts_dir() -> Path:
    """The charts the synth renders (synth/helm.py): pinned for the copy, which has no ../shared beside it."""
    return Path(os.environ.get("INTELGRAPH_CHARTS_DIR", ROOT.parent / "shared" / "charts")).resolve()


def copy_repository(destination: Path, root: Path = ROOT) -> Path:
    shutil.copytree(root, destination, symlinks=True, ignore=IGNORED)  # .venv, .tools stay links to the real ones
    return destination


def pytest(copy: Path, tests: Iterable[str], timeout: int) -> tuple[str, float, str]:
    """Run ``tests`` in the copy: ("passed" | "failed" | "timeout", seconds, the last lines)."""
    env = {**os.environ, "INTELGRAPH_CHARTS_DIR": str(charts_dir()), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - started, ""
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    if done.returncode in (4, 5):  # usage error, nothing collected: the selection is wrong, not the code
        raise RuntimeError(f"pytest {' '.join(tests)} collected nothing or was misused:\n{tail}")
    return ("passed" if done.returncode == 0 else "failed"), time.perf_counter() - started, tail


def score(results: list[dict]) -> dict[str, dict]:
    """Killed / (killed + survived) per area and over all, in percent."""
    table = {}
    for area in (*AREAS, "all"):
        mine = [r for r in results if area in ("all", r["area"])]
        killed = sum(r["outcome"] == "killed" for r in mine)
        table[area] = {"killed": killed, "survived": len(mine) - killed, "mutants": len(mine),
                       "score": round(100.0 * killed / len(mine), 1) if mine else None}
    return table


def campaign(mutations: list[Mutation], *, timeout: int = 900, root: Path = ROOT,
             log: Callable[[str], None] = print) -> dict:
    """Apply each mutation to a copy of ``root``, run its tests, restore it; the report as a dict."""
    for mutation in mutations:  # every mutation must apply before anything runs
        mutation.apply((root / mutation.file).read_text())
    results = []
    with tempfile.TemporaryDirectory(prefix="intelgraph-mutation-") as tmp:
        copy = copy_repository(Path(tmp) / "repo", root)
        # every selection once, in one process (one synth of each stack): all must pass unmutated
        selections = list(dict.fromkeys(t for m in mutations for t in m.tests))
        outcome, seconds, tail = pytest(copy, selections, timeout)
        if outcome != "passed":
            raise RuntimeError(f"the unmutated tests fail: fix them first\n{tail}")
        log(f"baseline: the {len(selections)} test selections pass unmutated ({seconds:.0f}s)")
        for mutation in mutations:
            target = copy / mutation.file
            original = target.read_text()
            target.write_text(mutation.apply(original))
            try:
                outcome, seconds, tail = pytest(copy, mutation.tests, timeout)
            finally:
                target.write_text(original)
            result = {**asdict(mutation), "id": mutation.id, "area": mutation.area, "tests": list(mutation.tests),
                      "outcome": "survived" if outcome == "passed" else "killed", "seconds": round(seconds, 1),
                      "by": outcome if outcome == "timeout" else (tail.splitlines() or [""])[-1]}
            results.append(result)
            log(f"{result['outcome']:<9}{mutation.id:<40}{mutation.what} ({seconds:.0f}s)")
    return {"results": results, "score": score(results), "goal_percent": GOAL_PERCENT}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mutation", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated mutation ids (file:n) or files")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mutation.json")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per test run (a hang counts as killed)")
    args = parser.parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    chosen = [mu for mu in MUTATIONS if not wanted or mu.id in wanted or mu.file in wanted]
    if args.list:
        for mu in chosen:
            print(f"{mu.id:<40}{mu.what}")
        return 0
    report = campaign(chosen, timeout=args.timeout)
    print("\n".join(summary_lines(report)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


def summary_lines(report: dict) -> list[str]:
    lines = [f"{'area':<14}{'killed':>8}{'survived':>10}{'score %':>9}"]
    for area, row in report["score"].items():
        lines.append(f"{area:<14}{row['killed']:>8}{row['survived']:>10}{row['score'] if row['score'] is not None else '-':>9}")
    survivors = [r for r in report["results"] if r["outcome"] == "survived"]
    lines += [f"survived: {r['id']} ({r['what']})" for r in survivors]
    return lines


if __name__ == "__main__":
    sys.exit(main())
