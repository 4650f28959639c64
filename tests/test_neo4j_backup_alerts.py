"""The backup, freshness-check, rehearsal and DR refresh alerts, run by promtool's rule unit tests against
the series kube-state-metrics really emits: kube_cronjob_created from the CronJob's creation, and
kube_cronjob_status_last_successful_time only after a first success (kube-state-metrics
internal/store/cronjob.go). A "time since last success" rule alone never fires for a job that
never succeeded; these tests prove the absent() rules do, and stay quiet once it succeeds."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.tools import promtool_check, require_tool

RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def rules(prod) -> list[dict]:
    return prod.named("neo4j-backup-rules", RULE).inputs["spec"]["groups"]


def dr_rules(prod) -> list[dict]:
    """The DR cluster's: the rehearsal runs there, and prod's warm DR graph is refreshed there."""
    return prod.named("neo4j-seed-dr-rules", RULE).inputs["spec"]["groups"]


def expected(groups: list[dict], alert: str, **labels: str) -> dict:
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": rule["annotations"]}


def promtool_test(groups: list[dict], tmp_path, interval: str, series: list[dict], checks: list[dict]):
    promtool_check(groups, tmp_path)  # writes rules.yaml
    (tmp_path / "test.yaml").write_text(json.dumps({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": interval, "input_series": series, "alert_rule_test": checks}]}))
    result = subprocess.run([require_tool("promtool"), "test", "rules", "test.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def created(namespace: str, job: str) -> dict:
    return {"series": f'kube_cronjob_created{{namespace="{namespace}", cronjob="{job}"}}', "values": "0x1000"}


def succeeded(namespace: str, job: str) -> dict:
    # last success at t=60s, and then at every step: a job that keeps succeeding
    return {"series": f'kube_cronjob_status_last_successful_time{{namespace="{namespace}", cronjob="{job}"}}',
            "values": "60+300x300"}


@pytest.mark.parametrize("alert,namespace,job,quiet_at,fires_at", [
    # prod: hourly backups + 30 min slack = 5400 s grace, then 10 min pending
    ("Neo4jBackupMissing", "graph", "neo4j-backup", "85m", "105m"),
    # every 15 min: two missed checks + one run's deadline = 2100 s grace
    ("Neo4jBackupFreshnessCheckMissing", "graph", "neo4j-backup-freshness", "30m", "50m"),
    # daily: two days
    ("Neo4jBackupPruneMissing", "graph", "neo4j-backup-prune", "47h", "49h"),
])
def test_a_job_that_never_succeeded_alerts_after_its_grace(prod, tmp_path, alert, namespace, job, quiet_at, fires_at):
    groups = rules(prod)
    promtool_test(groups, tmp_path, "5m", [created(namespace, job)], [
        {"eval_time": quiet_at, "alertname": alert, "exp_alerts": []},
        {"eval_time": fires_at, "alertname": alert,
         "exp_alerts": [expected(groups, alert, namespace=namespace, cronjob=job)]},
    ])


def test_the_never_succeeded_alerts_stay_quiet_once_each_job_succeeds(prod, tmp_path):
    groups = rules(prod)
    jobs = [("graph", "neo4j-backup"), ("graph", "neo4j-backup-freshness"), ("graph", "neo4j-backup-prune")]
    series = [s for ns, job in jobs for s in (created(ns, job), succeeded(ns, job))]
    promtool_test(groups, tmp_path, "5m", series, [
        {"eval_time": "20h", "alertname": alert, "exp_alerts": []}
        for alert in ("Neo4jBackupMissing", "Neo4jBackupFreshnessCheckMissing",
                      "Neo4jBackupPruneMissing", "Neo4jBackupStale", "Neo4jBackupFreshnessCheckFailing",
                      "Neo4jBackupPruneFailing")])
    dr_tmp = tmp_path / "dr"
    dr_tmp.mkdir()
    jobs = [("dr-verify", "neo4j-restore-rehearsal"), ("graph", "neo4j-dr-refresh")]
    series = [s for ns, job in jobs for s in (created(ns, job), succeeded(ns, job))]
    promtool_test(dr_rules(prod), dr_tmp, "5m", series, [
        {"eval_time": "20h", "alertname": alert, "exp_alerts": []}
        for alert in ("Neo4jRestoreRehearsalMissing", "Neo4jDrRefreshMissing", "Neo4jDrRefreshFailing")])


def test_the_primary_cluster_holds_no_rehearsal_alert_and_the_dr_cluster_every_one(prod):
    """The rehearsal runs in the DR cluster: kube-state-metrics there sees its CronJob, so its alerts
    are that cluster's Prometheus's rules."""
    def alerts(groups):
        return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert not {a for a in alerts(rules(prod)) if "Rehearsal" in a}
    assert alerts(dr_rules(prod)) == {"Neo4jRestoreRehearsalFailed", "Neo4jRestoreRehearsalStale",
                                      "Neo4jRestoreRehearsalMissing", "Neo4jDrRefreshFailing", "Neo4jDrRefreshMissing"}


def test_a_rehearsal_that_never_succeeded_alerts_after_a_week_and_its_deadline(prod, tmp_path):
    groups = dr_rules(prod)
    job = ("dr-verify", "neo4j-restore-rehearsal")
    promtool_test(groups, tmp_path, "1h", [created(*job)], [
        {"eval_time": "168h", "alertname": "Neo4jRestoreRehearsalMissing", "exp_alerts": []},
        {"eval_time": "172h", "alertname": "Neo4jRestoreRehearsalMissing",
         "exp_alerts": [expected(groups, "Neo4jRestoreRehearsalMissing", namespace=job[0], cronjob=job[1])]},
    ])


def test_a_cronjob_kube_state_metrics_does_not_see_at_all_alerts(prod, tmp_path):
    groups = rules(prod)
    promtool_test(groups, tmp_path, "5m", [{"series": 'up{job="kube-state-metrics"}', "values": "1x10"}], [
        {"eval_time": "15m", "alertname": "Neo4jBackupMissing",
         "exp_alerts": [expected(groups, "Neo4jBackupMissing", namespace="graph", cronjob="neo4j-backup")]},
    ])


def test_a_freshness_check_that_stopped_succeeding_alerts(prod, tmp_path):
    groups = rules(prod)
    stopped = {"series": 'kube_cronjob_status_last_successful_time{namespace="graph", cronjob="neo4j-backup-freshness"}',
               "values": "0x20"}  # last success at t=0, never again
    promtool_test(groups, tmp_path, "5m", [created("graph", "neo4j-backup-freshness"), stopped], [
        {"eval_time": "35m", "alertname": "Neo4jBackupFreshnessCheckFailing", "exp_alerts": []},
        {"eval_time": "45m", "alertname": "Neo4jBackupFreshnessCheckFailing",
         "exp_alerts": [expected(groups, "Neo4jBackupFreshnessCheckFailing",
                                 namespace="graph", cronjob="neo4j-backup-freshness")]},
    ])


# prod refreshes every 2 h; one seed may take 2700 s + 23 differentials x 20 s + 1800 s of slack
# (its deadline): two missed refreshes, each allowed its deadline, is 2 x 7200 + 4960 = 19360 s.
REFRESH = ("graph", "neo4j-dr-refresh")


def test_a_dr_refresh_that_never_succeeded_alerts_after_two_intervals(prod, tmp_path):
    groups = dr_rules(prod)
    promtool_test(groups, tmp_path, "5m", [created(*REFRESH)], [
        {"eval_time": "320m", "alertname": "Neo4jDrRefreshMissing", "exp_alerts": []},
        {"eval_time": "340m", "alertname": "Neo4jDrRefreshMissing",
         "exp_alerts": [expected(groups, "Neo4jDrRefreshMissing", namespace=REFRESH[0], cronjob=REFRESH[1])]},
    ])


def test_a_dr_refresh_that_stopped_succeeding_alerts(prod, tmp_path):
    """A refresh that keeps failing (e.g. refused because a switch promoted the DR graph) ages the
    standby past the RPO the DR budget promises."""
    groups = dr_rules(prod)
    stopped = {"series": f'kube_cronjob_status_last_successful_time{{namespace="{REFRESH[0]}", '
                         f'cronjob="{REFRESH[1]}"}}', "values": "0x100"}
    promtool_test(groups, tmp_path, "5m", [created(*REFRESH), stopped], [
        {"eval_time": "320m", "alertname": "Neo4jDrRefreshFailing", "exp_alerts": []},
        {"eval_time": "340m", "alertname": "Neo4jDrRefreshFailing",
         "exp_alerts": [expected(groups, "Neo4jDrRefreshFailing", namespace=REFRESH[0], cronjob=REFRESH[1])]},
    ])
