"""Every alert threshold at its destination: each threshold is derived here from what it stands for
(a schedule, a container limit, a setting) and promtool's rule unit tests (`promtool test rules`)
run the real rule from the prod stack on both sides of it - quiet while the value sits at the
threshold, firing once it is crossed for the rule's `for`. A new alert with a numeric threshold
fails until it is listed here or in COVERED_ELSEWHERE with the test file that runs it.

Staleness rules read `time() - <last success> > T`: a job that last succeeded at t=0 crosses T at
the first evaluation after T, and fires `for` later; the check pins T to the minute."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.neo4j_backup import FRESHNESS_DEADLINE_SECONDS, FRESHNESS_SCHEDULE, full_backup_seconds
from components.neo4j_snapshots import scheduled_deadline_seconds
from helpers.dr_budget import cron_max_gap_seconds
from synth.export import kubernetes_objects
from tests.conftest import stack_settings, synthesized
from tests.test_alerting import prometheus_alerts
from tests.test_neo4j_backup_alerts import promtool_test

DAY = 86400
PROD = stack_settings("prod")


def _neo4j_backup_max_age() -> int:
    # the RPO the bucket is held to: the longer of the interval and a full backup, plus the slack
    neo4j = PROD.neo4j
    return (max(cron_max_gap_seconds(neo4j.backup_schedule), full_backup_seconds(neo4j.store_bytes))
            + 60 * neo4j.backup_freshness_slack_minutes)


# alert -> the threshold in seconds and why (staleness rules: time() - last success > T)
STALENESS = {
    "Neo4jBackupStale": _neo4j_backup_max_age(),
    # two missed 15-minute checks and one run's deadline
    "Neo4jBackupFreshnessCheckFailing": 2 * cron_max_gap_seconds(FRESHNESS_SCHEDULE) + FRESHNESS_DEADLINE_SECONDS,
    "Neo4jBackupPruneFailing": 2 * DAY,  # the daily prune, missed twice
    # a week's rehearsal, a day late
    "Neo4jRestoreRehearsalStale": cron_max_gap_seconds(PROD.neo4j.restore_rehearsal_schedule) + DAY,
    "PostgresRestoreRehearsalStale": cron_max_gap_seconds(PROD.pg_restore_rehearsal.schedule) + DAY,
    # one missed run is tolerated (a first full copy may outlast its run): two periods and a run's deadline
    "Neo4jVolumeSnapshotsStale": (2 * cron_max_gap_seconds(PROD.neo4j.volume_snapshots.schedule)
                                  + scheduled_deadline_seconds(PROD.neo4j.volume_snapshots.schedule)),
}
# alert -> (threshold, above it): a gauge compared with a number
LEVELS = {
    # 90 % of the container's memory limit: fragmentation and buffers above maxmemory before the OOM kill
    "RedisMemoryNearLimit": (int(PROD.redis.resources.memory_bytes * 0.9), None),
    "LogShipperUnavailable": (0, 1),  # one node without a shipper is one node's logs lost
    "AlertmanagerConfigRejected": (0, 1),
}
# alert -> its counter: any increase over the window is a loss (a dropped record is a lost log line)
RATES = {"LogScrubberDroppingRecords": "fluentbit_filter_drop_records_total"}
# alerts with a threshold whose promtool unit tests live beside their component
COVERED_ELSEWHERE = {
    "Neo4jQueryLatencyHigh": "tests/test_neo4j.py", "RedisEvictionsHigh": "tests/test_redis.py",
"LogShipperOutputFailing": "tests/test_log_shipper.py",
    "Neo4jVolumeFillingUp": "tests/test_neo4j_volume_growth.py", "Neo4jVolumeAlmostFull": "tests/test_neo4j_volume_growth.py",
    "Neo4jBackupMissing": "tests/test_neo4j_backup_alerts.py",
    "Neo4jBackupFreshnessCheckMissing": "tests/test_neo4j_backup_alerts.py",
    "Neo4jBackupPruneMissing": "tests/test_neo4j_backup_alerts.py",
    "Neo4jRestoreRehearsalMissing": "tests/test_neo4j_backup_alerts.py",
    "Neo4jVolumeSnapshotsMissing": "tests/test_neo4j_snapshots.py", "Neo4jVolumeSnapshotFailed": "tests/test_neo4j_snapshots.py",
    "PostgresRestoreRehearsalNeverSucceeded": "tests/test_pg_rehearsal_job.py",
}
# alerts whose PrometheusRule is applied to the DR region's cluster, not the primary's: both restore
# rehearsals run there, from the DR copies, so that they outlive the primary region (the Neo4j one in
# components/neo4j_dr.py, the PostgreSQL one placed by __main__.py)
IN_DR_CLUSTER = {"Neo4jRestoreRehearsalStale", "PostgresRestoreRehearsalStale"}
ROOT = Path(__file__).resolve().parent.parent


def dr_cluster_alerts(stack: str) -> list[dict]:
    return [rule for obj in kubernetes_objects(synthesized(stack), "dr") if obj["kind"] == "PrometheusRule"
            for group in obj["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def alert(name: str) -> dict:
    alerts = dr_cluster_alerts("prod") if name in IN_DR_CLUSTER else prometheus_alerts("prod")
    return next(a for a in alerts if a["alert"] == name)  # the first namespace's


def seconds(duration: str) -> int:
    value, unit = int(duration[:-1]), duration[-1]
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def run(rule: dict, tmp_path, series: list[dict], quiet_at: int, fires_at: int) -> None:
    """promtool over the one rule: no alert at ``quiet_at`` seconds, the alert at ``fires_at``. The
    annotations (templates, tested with each component) are left out: the threshold is under test."""
    rule = {k: v for k, v in rule.items() if k != "annotations"}
    expected = {"exp_labels": {**rule["labels"], **SERIES_LABELS.get(rule["alert"], {})}}
    promtool_test([{"name": "under-test", "rules": [rule]}], tmp_path, "1m", series, [
        {"eval_time": f"{quiet_at}s", "alertname": rule["alert"], "exp_alerts": []},
        {"eval_time": f"{fires_at}s", "alertname": rule["alert"], "exp_alerts": [expected]}])


# the labels each alert's own series carry into it
SERIES_LABELS: dict[str, dict] = {}


def _selector(expr: str, metric: str) -> str:
    match = re.search(rf"{re.escape(metric)}\{{[^}}]*\}}", expr)
    assert match, (metric, expr)
    return match[0]


def _labels(selector: str) -> dict:
    return dict(re.findall(r'(\w+)="([^"]*)"', selector))


@pytest.mark.parametrize("name", sorted(STALENESS))
def test_a_staleness_alert_fires_exactly_once_its_derived_age_is_exceeded(name, tmp_path):
    rule, threshold = alert(name), STALENESS[name]
    assert f"> {threshold}" in rule["expr"], (name, rule["expr"], threshold)
    selector = _selector(rule["expr"], "kube_cronjob_status_last_successful_time")
    SERIES_LABELS[name] = _labels(selector)
    steps = (threshold + seconds(rule["for"])) // 60 + 5
    crossed = (threshold // 60 + 1) * 60  # the first evaluation with time() - 0 > threshold
    run(rule, tmp_path, [{"series": selector, "values": f"0x{steps}"}],
        quiet_at=crossed + seconds(rule["for"]) - 60, fires_at=crossed + seconds(rule["for"]))


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_a_level_alert_is_quiet_at_its_threshold_and_fires_above_it(name, tmp_path):
    rule, (threshold, above) = alert(name), LEVELS[name]
    assert rule["expr"].rstrip().endswith(f"> {threshold}"), (name, rule["expr"], threshold)
    metric = re.match(r"\s*(?:max\()?([a-z_:]+)", rule["expr"])[1]
    selector = _selector(rule["expr"], metric) if "{" in rule["expr"] else metric
    SERIES_LABELS[name] = {} if rule["expr"].startswith("max(") else _labels(selector)
    hold = seconds(rule["for"]) // 60
    at, over = threshold, threshold + 1 if above is None else above
    # at the threshold for twice the `for`, then above it
    series = [{"series": selector, "values": f"{at}x{2 * hold} {over}x{2 * hold + 5}"}]
    crossed = (2 * hold + 1) * 60
    run(rule, tmp_path, series, quiet_at=crossed - 60, fires_at=crossed + seconds(rule["for"]))


@pytest.mark.parametrize("name", sorted(RATES))
def test_a_counter_alert_is_quiet_while_flat_and_fires_once_it_grows(name, tmp_path):
    rule = alert(name)
    assert re.search(r"\) > 0$", rule["expr"].strip()), rule["expr"]
    selector = _selector(rule["expr"], RATES[name])
    SERIES_LABELS[name] = _labels(selector)
    hold = seconds(rule["for"]) // 60
    series = [{"series": selector, "values": f"0x{2 * hold} 1+1x{2 * hold + 5}"}]
    crossed = (2 * hold + 1) * 60
    run(rule, tmp_path, series, quiet_at=crossed - 60, fires_at=crossed + seconds(rule["for"]))


def test_every_alert_with_a_threshold_is_run_by_promtool_somewhere():
    thresholded = {a["alert"] for a in prometheus_alerts("prod") if re.search(r"[<>]=?\s*[0-9]", a["expr"])}
    here = set(STALENESS) | set(LEVELS) | set(RATES)
    assert thresholded - here - set(COVERED_ELSEWHERE) == set()
    for name, path in COVERED_ELSEWHERE.items():
        source = (ROOT / path).read_text()
        assert name in source and "promtool" in source, (name, path)
