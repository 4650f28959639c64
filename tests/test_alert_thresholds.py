"""Every alert threshold at its destination: each threshold is derived here from what it stands for
(a schedule, a container limit, a setting, a Job's deadline) and promtool's rule unit tests
(`promtool test rules`) run the real rule from the prod stack on both sides of it - quiet while the
value sits at the threshold, firing once it is crossed for the rule's `for`. Every cluster's rules
count: the primary's and the DR region's (the restore rehearsals and the DR graph's refresh alert
only there), and a rule in both runs once per distinct copy. A new alert with a threshold (a number
or another series it is compared with) fails until it is listed here or in COVERED_ELSEWHERE with
the test file that runs it.

Staleness rules read `time() - <last success> > T`: a job that last succeeded at t=0 crosses T at
the first evaluation after T, and fires `for` later; the check pins T to the minute."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from components.neo4j_backup import (
    FRESHNESS_DEADLINE_SECONDS,
    FRESHNESS_SCHEDULE,
    full_backup_seconds,
    rehearsal_deadline_seconds,
)
from components.neo4j_dr import SEED_SLACK_SECONDS
from components.neo4j_snapshots import scheduled_deadline_seconds
from helpers.dr_budget import cron_max_gap_seconds, seed_seconds
from synth.export import kubernetes_objects
from tests.conftest import stack_settings, synthesized
from tests.test_neo4j_backup_alerts import promtool_test

DAY = 86400
PROD = stack_settings("prod")


def _neo4j_backup_max_age() -> int:
    # the RPO the bucket is held to: the longer of the interval and a full backup, plus the slack
    neo4j = PROD.neo4j
    return (max(cron_max_gap_seconds(neo4j.backup_schedule), full_backup_seconds(neo4j.store_bytes))
            + 60 * neo4j.backup_freshness_slack_minutes)


def _dr_refresh_limit() -> int:
    # two refreshes of the warm DR graph missed in a row, each allowed its whole deadline: one seed of
    # the newest chain (its full backup and every differential replayed) plus SEED_SLACK_SECONDS
    seed = seed_seconds(PROD.neo4j.backup_schedule, PROD.backups.neo4j.chain_days,
                        PROD.dr.neo4j_restore_estimate_seconds, PROD.dr.neo4j_differential_estimate_seconds)
    assert PROD.neo4j.dr.refresh_schedule is not None, "prod's DR graph is warm: it refreshes"
    return 2 * cron_max_gap_seconds(PROD.neo4j.dr.refresh_schedule) + seed + SEED_SLACK_SECONDS


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
    "Neo4jDrRefreshFailing": _dr_refresh_limit(),  # DR cluster only
}
# alert -> the grace in seconds after its CronJob appeared without a success on record (kube-state-metrics
# emits last_successful_time only after a first success: absent(...) and time() - created > T)
NEVER_SUCCEEDED = {
    "Neo4jBackupMissing": _neo4j_backup_max_age(),
    "Neo4jBackupFreshnessCheckMissing": STALENESS["Neo4jBackupFreshnessCheckFailing"],
    "Neo4jBackupPruneMissing": 2 * DAY,
    "Neo4jVolumeSnapshotsMissing": STALENESS["Neo4jVolumeSnapshotsStale"],
    # DR cluster only: a week's rehearsal, its deadline and an hour; the PostgreSQL one a period and a day
    "Neo4jRestoreRehearsalMissing": (cron_max_gap_seconds(PROD.neo4j.restore_rehearsal_schedule)
                                     + rehearsal_deadline_seconds(PROD.neo4j.store_bytes) + 3600),
    "PostgresRestoreRehearsalNeverSucceeded": cron_max_gap_seconds(PROD.pg_restore_rehearsal.schedule) + DAY,
    "Neo4jDrRefreshMissing": _dr_refresh_limit(),
}
# alert -> its CronJob (namespace, name) in the DR cluster: "the newest scheduled run has not
# succeeded" (last schedule time > last success time) must hold past the Job's activeDeadlineSeconds,
# when Kubernetes has ended the run, and fire at most an hour after it
FAILED = {"Neo4jRestoreRehearsalFailed": ("dr-verify", "neo4j-restore-rehearsal"),
          "PostgresRestoreRehearsalFailed": ("dr-verify", "pg-restore-rehearsal")}
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
    "Neo4jVolumeSnapshotFailed": "tests/test_neo4j_snapshots.py",
}
CLUSTERS = ("primary", "dr")  # each region's cluster runs its own Prometheus with its own rules
ROOT = Path(__file__).resolve().parent.parent


def cluster_alerts(stack: str, cluster: str) -> list[dict]:
    return [rule for obj in kubernetes_objects(synthesized(stack), cluster) if obj["kind"] == "PrometheusRule"
            for group in obj["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def copies(name: str) -> list[dict]:
    """Each distinct rule named ``name`` in any of prod's clusters (annotations aside: templates,
    tested with each component): the DR region's copy is run too, not assumed equal."""
    found: list[dict] = []
    for cluster in CLUSTERS:
        for rule in cluster_alerts("prod", cluster):
            bare = {k: v for k, v in rule.items() if k != "annotations"}
            if rule["alert"] == name and bare not in found:
                found.append(bare)
    assert found, f"{name} is in no cluster's PrometheusRule"
    return found


def each_copy(name: str, tmp_path: Path) -> Iterator[tuple[dict, Path]]:
    for i, rule in enumerate(copies(name)):
        where = tmp_path / f"copy-{i}"
        where.mkdir()
        yield rule, where


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


def _fires_once_older_than(rule: dict, where, threshold: int, series: str) -> None:
    """``series`` is a timestamp of 0 (a success, or the CronJob's creation) that never moves: the
    alert is quiet one evaluation before time() - 0 exceeds ``threshold`` for its ``for:`` and fires
    at that evaluation."""
    steps = (threshold + seconds(rule["for"])) // 60 + 5
    crossed = (threshold // 60 + 1) * 60  # the first evaluation with time() - 0 > threshold
    run(rule, where, [{"series": series, "values": f"0x{steps}"}],
        quiet_at=crossed + seconds(rule["for"]) - 60, fires_at=crossed + seconds(rule["for"]))


@pytest.mark.parametrize("name", sorted(STALENESS))
def test_a_staleness_alert_fires_exactly_once_its_derived_age_is_exceeded(name, tmp_path):
    threshold = STALENESS[name]
    for rule, where in each_copy(name, tmp_path):
        assert f"> {threshold}" in rule["expr"], (name, rule["expr"], threshold)
        selector = _selector(rule["expr"], "kube_cronjob_status_last_successful_time")
        SERIES_LABELS[name] = _labels(selector)
        _fires_once_older_than(rule, where, threshold, selector)


@pytest.mark.parametrize("name", sorted(NEVER_SUCCEEDED))
def test_a_job_that_never_succeeded_alerts_exactly_once_its_grace_is_over(name, tmp_path):
    threshold = NEVER_SUCCEEDED[name]
    for rule, where in each_copy(name, tmp_path):
        assert f"> {threshold})" in rule["expr"], (name, rule["expr"], threshold)
        # the CronJob appeared at t=0 and never succeeded: no last_successful_time series at all
        created = _selector(rule["expr"], "kube_cronjob_created")
        SERIES_LABELS[name] = _labels(_selector(rule["expr"], "kube_cronjob_status_last_successful_time"))
        _fires_once_older_than(rule, where, threshold, created)


def _active_deadline_seconds(namespace: str, cronjob: str) -> int:
    [job] = [o for o in kubernetes_objects(synthesized("prod"), "dr") if o["kind"] == "CronJob"
             and o["metadata"]["name"] == cronjob and o["metadata"].get("namespace") == namespace]
    return job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]


@pytest.mark.parametrize("name", sorted(FAILED))
def test_a_failed_run_alerts_once_its_job_deadline_has_passed(name, tmp_path):
    deadline = _active_deadline_seconds(*FAILED[name])
    for rule, where in each_copy(name, tmp_path):
        hold = seconds(rule["for"])
        # a run still inside its deadline is not failed yet (Kubernetes ends it at the deadline); the
        # rule's whole hours put the alert after the deadline and at most an hour after it
        assert deadline < hold <= deadline + 3600, (name, rule["for"], deadline)
        scheduled = _selector(rule["expr"], "kube_cronjob_status_last_schedule_time")
        succeeded = _selector(rule["expr"], "kube_cronjob_status_last_successful_time")
        SERIES_LABELS[name] = _labels(scheduled)
        steps = hold // 60
        # a run scheduled at 1000 succeeded; the next, scheduled at 2000 (from step 10 on), never does
        series = [{"series": scheduled, "values": f"1000x9 2000x{steps + 20}"},
                  {"series": succeeded, "values": f"1000x{steps + 30}"}]
        run(rule, where, series, quiet_at=600 + hold - 60, fires_at=600 + hold)


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_a_level_alert_is_quiet_at_its_threshold_and_fires_above_it(name, tmp_path):
    threshold, above = LEVELS[name]
    for rule, where in each_copy(name, tmp_path):
        _level(name, rule, where, threshold, above)


def _level(name: str, rule: dict, tmp_path: Path, threshold: int, above: int | None) -> None:
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
    for rule, where in each_copy(name, tmp_path):
        assert re.search(r"\) > 0$", rule["expr"].strip()), rule["expr"]
        selector = _selector(rule["expr"], RATES[name])
        SERIES_LABELS[name] = _labels(selector)
        hold = seconds(rule["for"]) // 60
        series = [{"series": selector, "values": f"0x{2 * hold} 1+1x{2 * hold + 5}"}]
        crossed = (2 * hold + 1) * 60
        run(rule, where, series, quiet_at=crossed - 60, fires_at=crossed + seconds(rule["for"]))


# a comparison with a number, or with another series (a "newer than" between two timestamps)
THRESHOLD = re.compile(r"[<>]=?\s*(?:[0-9]|[a-z_:]+\{)")


def thresholded_alerts(stack: str) -> set[str]:
    """Every alert with a threshold in any cluster of ``stack``: the DR region's Prometheus has alerts
    the primary's has not (the restore rehearsals, the DR graph's refresh)."""
    return {a["alert"] for cluster in CLUSTERS for a in cluster_alerts(stack, cluster) if THRESHOLD.search(a["expr"])}


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_every_alert_with_a_threshold_is_run_by_promtool_somewhere(stack):
    here = set(STALENESS) | set(NEVER_SUCCEEDED) | set(FAILED) | set(LEVELS) | set(RATES)
    assert thresholded_alerts(stack) - here - set(COVERED_ELSEWHERE) == set()
    for name, path in COVERED_ELSEWHERE.items():
        source = (ROOT / path).read_text()
        assert name in source and "promtool" in source, (name, path)


def _rules_by_name(stack: str, cluster: str) -> dict[str, list[dict]]:
    """Each alert and recording rule of one cluster by name, annotations aside."""
    found: dict[str, list[dict]] = {}
    for obj in kubernetes_objects(synthesized(stack), cluster):
        if obj["kind"] == "PrometheusRule":
            for group in obj["spec"]["groups"]:
                for rule in group["rules"]:
                    bare = {k: v for k, v in rule.items() if k != "annotations"}
                    if bare not in found.setdefault(rule.get("alert") or rule["record"], []):
                        found[rule.get("alert") or rule["record"]].append(bare)
    return found


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_dr_cluster_runs_the_rules_the_component_tests_run(stack):
    """COVERED_ELSEWHERE's promtool tests run each component's rules as the primary cluster has them
    (and the recording rules their alerts read): the DR region's Prometheus must run those same rules,
    or its copy (another threshold, another PVC or recorded series) goes untested. Rules only the DR
    cluster has are run here (copies(): STALENESS, NEVER_SUCCEEDED, FAILED)."""
    primary, dr = _rules_by_name(stack, "primary"), _rules_by_name(stack, "dr")
    elsewhere = set(COVERED_ELSEWHERE) | {name for name, rules in primary.items() if "record" in rules[0]}
    shared = sorted(elsewhere & set(dr))
    assert shared, "the DR cluster runs none of the component-tested rules: is its tier still there?"
    for name in shared:
        assert dr[name] == primary.get(name), f"{name}: the DR cluster's copy differs from the one tested"
