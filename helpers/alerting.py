"""Alert plumbing shared by components: an encrypted SNS topic CloudWatch alarms can publish to,
its subscriptions, the alarm itself, and the one table that gives every alert (CloudWatch alarm or
Prometheus rule) its severity and runbook. One function each, so every alarm in the stack is built
the same way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import pulumi
import pulumi_aws as aws

from helpers.kms import key_policy

# Where docs/runbooks.md is published; every alert links to one of its headings.
RUNBOOKS_URL = "https://github.com/intelgraph/platform-infrastructure/blob/main/docs/runbooks.md"
RUNBOOKS_FILE = "docs/runbooks.md"

Severity = Literal["critical", "warning"]


@dataclass(frozen=True)
class AlertInfo:
    """Who is woken (``critical`` pages, ``warning`` goes to the team channel) and where the
    responder reads what to do: the GitHub anchor of a heading in docs/runbooks.md."""

    severity: Severity
    anchor: str

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOKS_URL}#{self.anchor}"


# Every alert of the platform, keyed by Prometheus alert name or CloudWatch "namespace:metric".
# An alert missing here stops the program (alert_info) with the name to add: an alert without a
# runbook reaches a person who does not know what to do.
ALERTS: dict[str, AlertInfo] = {
    # CloudWatch alarms (SNS)
    "AWS/RDS:ReplicaLag": AlertInfo("critical", "postgres-replica-lag"),
    "AWS/RDS:CPUUtilization": AlertInfo("warning", "postgres-cpu-high"),
    "AWS/RDS:FreeStorageSpace": AlertInfo("critical", "postgres-free-storage-low"),
    "AWS/Route53:HealthCheckStatus": AlertInfo("critical", "api-primary-unhealthy"),
    # the DR copy of the backups is incomplete: a region loss now loses backups
    "AWS/S3:OperationsFailedReplication": AlertInfo("critical", "backup-replication-failing"),
    # Prometheus rules (Alertmanager)
    "Neo4jQueryLatencyHigh": AlertInfo("warning", "neo4j-query-latency-high"),
    "Neo4jBackupStale": AlertInfo("critical", "neo4j-backup-stale-or-missing"),
    "Neo4jBackupMissing": AlertInfo("critical", "neo4j-backup-stale-or-missing"),
    "Neo4jRestoreRehearsalFailed": AlertInfo("critical", "neo4j-restore-rehearsal-failed-or-stale"),
    "Neo4jRestoreRehearsalStale": AlertInfo("warning", "neo4j-restore-rehearsal-failed-or-stale"),
    # the backup freshness-check and prune jobs' alerts (main's Neo4jBackup, issue 13)
    "Neo4jBackupFreshnessCheckFailing": AlertInfo("critical", "neo4j-backup-freshness-check-failing"),
    "Neo4jBackupFreshnessCheckMissing": AlertInfo("critical", "neo4j-backup-freshness-check-failing"),
    "Neo4jBackupPruneFailing": AlertInfo("warning", "neo4j-backup-prune-failing"),
    "Neo4jBackupPruneMissing": AlertInfo("critical", "neo4j-backup-prune-failing"),
    "Neo4jRestoreRehearsalMissing": AlertInfo("critical", "neo4j-restore-rehearsal-failed-or-stale"),
    # the warm DR graph is no longer refreshed: a switch would promote an older graph than the RPO allows
    "Neo4jDrRefreshFailing": AlertInfo("critical", "neo4j-dr-refresh-failing-or-missing"),
    "Neo4jDrRefreshMissing": AlertInfo("critical", "neo4j-dr-refresh-failing-or-missing"),
    # scheduled EBS snapshots of the Neo4j volumes (the fast way back from a bad change or a lost volume)
    "Neo4jVolumeSnapshotFailed": AlertInfo("warning", "neo4j-volume-snapshots-failing-or-stale"),
    "Neo4jVolumeSnapshotsStale": AlertInfo("critical", "neo4j-volume-snapshots-failing-or-stale"),
    "Neo4jVolumeSnapshotsMissing": AlertInfo("critical", "neo4j-volume-snapshots-failing-or-stale"),
    "Neo4jVolumeFillingUp": AlertInfo("warning", "neo4j-volume-filling-up"),
    "Neo4jVolumeAlmostFull": AlertInfo("critical", "neo4j-volume-filling-up"),
    "RedisEvictionsHigh": AlertInfo("warning", "redis-evictions-high"),
    "RedisMemoryNearLimit": AlertInfo("critical", "redis-memory-near-limit"),
    "RedisDown": AlertInfo("critical", "redis-down"),
    # a failed rehearsal leaves DR unproven, not broken: the team fixes it in working hours
    "PostgresRestoreRehearsalFailed": AlertInfo("warning", "postgres-restore-rehearsal-failed-or-stale"),
    "PostgresRestoreRehearsalNeverSucceeded": AlertInfo("warning", "postgres-restore-rehearsal-failed-or-stale"),
    "PostgresRestoreRehearsalStale": AlertInfo("warning", "postgres-restore-rehearsal-failed-or-stale"),
    "LogScrubberDroppingRecords": AlertInfo("warning", "log-scrubber-dropped-records"),
    "LogShipperOutputFailing": AlertInfo("warning", "log-shipper-unavailable-or-failing"),
    "LogShipperUnavailable": AlertInfo("warning", "log-shipper-unavailable-or-failing"),
    # a rejected AlertmanagerConfig silences a whole namespace: someone must know now
    "AlertmanagerConfigRejected": AlertInfo("critical", "alertmanager-configuration-rejected"),
}


def alert_info(key: str) -> AlertInfo:
    try:
        return ALERTS[key]
    except KeyError:
        raise ValueError(
            f"alert {key!r} has no severity or runbook: add {key!r}: AlertInfo(severity, anchor) to "
            f"ALERTS in helpers/alerting.py and a '## ...' section for it to {RUNBOOKS_FILE}"
        ) from None


def with_runbooks(groups: list[dict]) -> list[dict]:
    """Prometheus rule groups with each alert's severity label and runbook_url annotation from
    ALERTS (the label kube-prometheus-stack's own rules and our Alertmanager routes key on).
    A rule that states a different severity inline is an error: the table is the one source."""
    result = []
    for group in groups:
        rules = []
        for rule in group["rules"]:
            if "alert" in rule:
                info = alert_info(rule["alert"])
                stated = rule.get("labels", {}).get("severity", info.severity)
                if stated != info.severity:
                    raise ValueError(f"alert {rule['alert']!r} says severity {stated!r}, ALERTS says "
                                     f"{info.severity!r}: change one of them")
                rule = {**rule,
                        "labels": {**rule.get("labels", {}), "severity": info.severity},
                        "annotations": {**rule.get("annotations", {}), "runbook_url": info.runbook_url}}
            rules.append(rule)
        result.append({**group, "rules": rules})
    return result


@dataclass(frozen=True)
class Subscriber:
    protocol: Literal["email", "https"]
    endpoint: str


def subscribe(name: str, topic: aws.sns.Topic, subscribers: Sequence[Subscriber]) -> list[aws.sns.TopicSubscription]:
    """Subscriptions to ``topic``, created as its children so they inherit its region's provider
    (a subscription must live in the topic's region). Email and HTTPS endpoints stay
    PendingConfirmation until the recipient confirms; the operator guide (docs/operator.md) says so."""
    if not subscribers:
        raise ValueError(f"{name}: an alert topic without subscribers notifies nobody")
    return [
        aws.sns.TopicSubscription(
            f"{name}-{i}",
            topic=topic.arn,
            protocol=s.protocol,
            # an HTTPS paging endpoint carries its integration key in the URL: keep it encrypted in state
            endpoint=pulumi.Output.secret(s.endpoint) if s.protocol == "https" else s.endpoint,
            opts=pulumi.ResourceOptions(parent=topic),
        )
        for i, s in enumerate(subscribers)
    ]


def alert_topic(name: str, account_id: str, opts: pulumi.ResourceOptions) -> aws.sns.Topic:
    """An SNS topic encrypted with its own customer key.

    CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key, so the key
    policy grants CloudWatch exactly the two calls it needs; everything else stays with IAM.
    """
    key = aws.kms.Key(
        f"{name}-key",
        description=f"Encrypts the {name} alert topic",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps(alert_key_policy(account_id)),
        opts=opts,
    )
    return aws.sns.Topic(name, kms_master_key_id=key.arn, opts=opts)


def alert_key_policy(account_id: str) -> dict:
    return key_policy(account_id, {
        "Sid": "CloudWatchAlarmsPublish",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
    })


def alarm(
    name: str,
    *,
    description: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, pulumi.Input[str]],
    statistic: str,
    comparison: str,
    threshold: pulumi.Input[float],
    period_seconds: int,
    evaluation_periods: int,
    topic: aws.sns.Topic,
    opts: pulumi.ResourceOptions,
    treat_missing_data: str = "breaching",
    unit: Optional[str] = None,
    alert: Optional[str] = None,
) -> aws.cloudwatch.MetricAlarm:
    """A metric alarm that notifies ``topic`` on alarm and on recovery.

    Missing data counts as breaching by default: a replica or health check that stops reporting
    is exactly the failure these alarms exist for. Severity and runbook come from ALERTS under
    ``alert`` (default ``namespace:metric``): in the description, which is what the SNS e-mail
    and the paging service show, and as tags for anything that routes on them (the anchor only:
    AWS tag values allow letters, digits, spaces and ``_.:/=+-@``, not the URL's ``#``).
    """
    info = alert_info(alert or f"{namespace}:{metric}")
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=f"[{info.severity}] {description} Runbook: {info.runbook_url}",
        tags={"severity": info.severity, "runbook": info.anchor},
        namespace=namespace,
        metric_name=metric,
        dimensions=dimensions,
        statistic=statistic,
        comparison_operator=comparison,
        threshold=threshold,
        period=period_seconds,
        evaluation_periods=evaluation_periods,
        treat_missing_data=treat_missing_data,
        unit=unit,
        alarm_actions=[topic.arn],
        ok_actions=[topic.arn],
        opts=opts,
    )
