"""DR budget arithmetic: bounds from deployed settings, and a target they cannot meet."""

from __future__ import annotations

import pytest

from helpers import dr_budget
from synth import engine
from tests.conftest import config_with

SWITCH = [("approve", 120), ("promote-postgres", 600), ("move-traffic", 60)]


def test_postgres_rto_is_detection_plus_the_switch_steps_timeouts_plus_ttl():
    # each step of the Region switch plan ends by its timeout (components/region_switch.py)
    rto, rpo, pitr = dr_budget.postgres_bounds(
        rto_target=900, rpo_target=300, request_interval_seconds=10, failure_threshold=3,
        switch_steps=SWITCH, lag_threshold_seconds=180)
    assert rto.bound_seconds == 10 * 3 + 120 + 600 + 60 + 60 and rto.met
    assert rto.terms == {"dnsDetection": 30, "approve": 120, "promotePostgres": 600, "moveTraffic": 60,
                         "aliasTtl": 60}
    assert rpo.bound_seconds == 180 + 60 and rpo.met
    assert pitr.bound_seconds == 300 and pitr.met


def test_a_target_the_settings_cannot_meet_is_reported_missed():
    [rto, *_] = dr_budget.postgres_bounds(
        rto_target=300, rpo_target=300, request_interval_seconds=30, failure_threshold=5,
        switch_steps=SWITCH, lag_threshold_seconds=180)
    assert rto.bound_seconds == 150 + 780 + 60 and not rto.met
    assert rto.as_output()["met"] is False


def test_lag_threshold_and_rpo_bound_follow_from_the_heartbeat():
    # An idle primary makes an RDS replica report up to 5 minutes of lag (RDS User Guide, read
    # replica limitations for PostgreSQL): without a heartbeat the threshold had to sit above
    # that. With a row written every 15 s a healthy replica trails by at most one interval, so
    # two intervals is the lowest threshold that never fires on a healthy replica.
    assert dr_budget.HEARTBEAT_INTERVAL_SECONDS <= 30
    assert dr_budget.lag_alarm_threshold_seconds() == 2 * dr_budget.HEARTBEAT_INTERVAL_SECONDS == 30
    [_, rpo, _] = dr_budget.postgres_bounds(
        rto_target=900, rpo_target=300, request_interval_seconds=10, failure_threshold=3,
        switch_steps=SWITCH, lag_threshold_seconds=dr_budget.lag_alarm_threshold_seconds())
    assert rpo.terms == {"lagAlarmThreshold": 30, "lagAlarmDetection": 60} and rpo.bound_seconds == 90
    # a slower heartbeat is a weaker promise, and an RPO of one minute is not achievable here
    assert dr_budget.lag_alarm_threshold_seconds(30) == 60
    [_, tight, _] = dr_budget.postgres_bounds(
        rto_target=900, rpo_target=60, request_interval_seconds=10, failure_threshold=3,
        switch_steps=SWITCH, lag_threshold_seconds=dr_budget.lag_alarm_threshold_seconds())
    assert not tight.met


def test_prod_promises_a_postgres_rpo_of_90_seconds(prod):
    rows = {(r["datastore"], r["objective"]): r for r in prod.outputs["drBudget"]}
    assert rows[("postgres", "RPO")]["boundSeconds"] <= 90
    assert prod.outputs["postgres"]["lagAlarmThresholdSeconds"] == 30


@pytest.mark.parametrize("schedule,gap", [("0 * * * *", 3600), ("*/15 * * * *", 900),
                                          ("0 3 * * 1", 7 * 86400), ("0 */6 * * *", 6 * 3600)])
def test_backup_interval_is_the_longest_gap_between_runs(schedule, gap):
    assert dr_budget.cron_max_gap_seconds(schedule) == gap


def test_stack_exports_the_budget(prod):
    rows = {(r["datastore"], r["objective"]): r for r in prod.outputs["drBudget"]}
    assert rows[("postgres", "RTO")] == {
        "datastore": "postgres", "objective": "RTO", "targetSeconds": 900, "boundSeconds": 870,
        "met": True, "terms": {"dnsDetection": 30, "approve": 120, "promotePostgres": 600, "moveTraffic": 60,
                               "aliasTtl": 60}}
    assert all(r["met"] for r in rows.values())


def test_synth_prints_a_missed_target(tmp_path):
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT

    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["intelgraph-platform:dr"]["postgres"]["rtoSeconds"] = 300
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "synth", "--stack", "prod", "--stack-file",
                             str(stack_file), "--out", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "MISSED" in result.stdout
    assert "postgres RTO target 300s cannot be met" in result.stdout


def test_budget_follows_the_stack_file():
    config = config_with("prod", {"dns.healthCheck.requestIntervalSeconds": 30})
    rows = {(r["datastore"], r["objective"]): r for r in engine.synthesize("prod", config).outputs["drBudget"]}
    assert rows[("postgres", "RTO")]["terms"]["dnsDetection"] == 90


def neo4j(chain_days: int, full_backup_seconds: int = 3877, replication_sla_seconds: int = 0) -> dict:
    """A pilot-light DR graph's bounds without its cluster start or the bucket's replication (by
    default): the chain's own terms."""
    return {b.objective: b for b in dr_budget.neo4j_bounds(
        rto_target=3600, rpo_target=5400, backup_schedule="0 * * * *", chain_days=chain_days,
        full_backup_seconds=full_backup_seconds, restore_estimate_seconds=2700,
        differential_estimate_seconds=20, dr_mode="pilot-light", replication_sla_seconds=replication_sla_seconds,
        request_interval_seconds=10, failure_threshold=3)}


def test_neo4j_rto_grows_with_the_differentials_a_chain_holds():
    """Restoring a chain's newest artifact replays every differential onto its full backup (Neo4j
    operations manual, "Restore a database backup"): a daily chain holds 23 hourly differentials,
    a weekly one 167 - which misses a one-hour target."""
    daily, weekly = neo4j(1)["RTO"], neo4j(7)["RTO"]
    # detected as Route 53 detects the primary's failure (3 x 10 s), reached after the alias's TTL
    assert daily.terms == {"dnsDetection": 30, "aliasTtl": 60, "clusterStart": 0, "restoreFullBackup": 2700,
                           "replayDifferentials": 23 * 20} and daily.met
    assert weekly.terms["replayDifferentials"] == 167 * 20 and not weekly.met


def test_neo4j_rpo_is_the_longest_gap_between_backups_including_a_chains_full_backup():
    assert neo4j(1, full_backup_seconds=1419)["RPO"].terms == {"backupInterval": 3600, "bucketReplication": 0}
    slow = neo4j(1, full_backup_seconds=7000)["RPO"]
    assert slow.bound_seconds == 7000 and not slow.met
    # the DR bucket holds a backup up to the replication SLA later (S3 RTC: 15 minutes)
    assert neo4j(1, full_backup_seconds=1419, replication_sla_seconds=900)["RPO"].bound_seconds == 4500


def test_the_stacks_neo4j_bounds_come_from_their_chain_and_the_refresh(prod):
    rows = {(r["datastore"], r["objective"]): r for r in prod.outputs["drBudget"]}
    # warm: a switch that lands during a refresh waits for its seed of the chain
    assert rows[("neo4j", "RTO")]["boundSeconds"] == 30 + 60 + 2700 + 23 * 20
    # the 200 Gi full backup outlasts the hour, the DR copy trails by S3 RTC's 15 minutes, and the
    # switch promotes what the last refresh (every 2 h) loaded
    assert rows[("neo4j", "RPO")]["terms"] == {"backupInterval": 3600, "fullBackupOverrun": 277,
                                               "bucketReplication": 900, "refreshInterval": 7200}
    assert rows[("neo4j", "RPO")]["boundSeconds"] == 3877 + 900 + 7200 and rows[("neo4j", "RPO")]["met"]


def test_a_warm_graph_adds_the_longest_gap_between_refreshes_to_its_rpo():
    common = dict(rto_target=3600, rpo_target=5400, backup_schedule="0 * * * *", chain_days=1,
                  full_backup_seconds=1419, restore_estimate_seconds=2700, differential_estimate_seconds=20,
                  replication_sla_seconds=900, request_interval_seconds=10, failure_threshold=3)
    cold = {b.objective: b for b in dr_budget.neo4j_bounds(dr_mode="pilot-light", cluster_start_seconds=900, **common)}
    # refreshed at 02:20 and 06:20 only on weekdays: the longest gap runs over the weekend
    warm = {b.objective: b for b in dr_budget.neo4j_bounds(dr_mode="warm", refresh_schedule="20 2,6 * * 1-5",
                                                           **common)}
    assert warm["RPO"].terms["refreshInterval"] == 68 * 3600  # Friday 06:20 to Monday 02:20
    assert warm["RPO"].bound_seconds - cold["RPO"].bound_seconds == warm["RPO"].terms["refreshInterval"]
    # one seed is in both RTOs: a switch into pilot-light seeding, one into warm may wait for a refresh
    assert warm["RTO"].terms["restoreFullBackup"] + warm["RTO"].terms["replayDifferentials"] == \
        dr_budget.seed_seconds("0 * * * *", 1, 2700, 20) == 2700 + 23 * 20
    assert cold["RTO"].bound_seconds - warm["RTO"].bound_seconds == 900  # the cluster's start
    with pytest.raises(ValueError, match="refresh_schedule"):
        dr_budget.neo4j_bounds(dr_mode="warm", **common)
    with pytest.raises(ValueError, match="refresh_schedule"):
        dr_budget.neo4j_bounds(dr_mode="pilot-light", refresh_schedule="0 * * * *", **common)


def test_postgres_pitr_rto_row_is_the_rehearsals_measured_restore_time(prod):
    # ops.pg_restore_rehearsal prints "restore took Ns"; that figure is the estimate in the stack file
    rows = {(r["datastore"], r["objective"]): r for r in prod.outputs["drBudget"]}
    assert rows[("postgres-pitr", "RTO")] == {
        "datastore": "postgres-pitr", "objective": "RTO", "targetSeconds": 3600, "boundSeconds": 2400,
        "met": True, "terms": {"pitrRestore": 2400}}
    slow = dr_budget.postgres_pitr_rto(rto_target=3600, restore_estimate_seconds=5000)
    assert not slow.met and slow.as_output()["met"] is False


def test_neo4j_rto_counts_the_region_switch_scaling_the_graph_up():
    """When the Region switch plan scales the DR graph's StatefulSets up (its EKS scaling step), the
    restore waits for that step, which ends by its timeout (components/region_switch.py)."""
    common = dict(rto_target=3600, rpo_target=5400, backup_schedule="0 * * * *", chain_days=1,
                  full_backup_seconds=1419, restore_estimate_seconds=2700, differential_estimate_seconds=20,
                  dr_mode="pilot-light", cluster_start_seconds=900, replication_sla_seconds=900,
                  request_interval_seconds=10, failure_threshold=3)
    plain = {b.objective: b for b in dr_budget.neo4j_bounds(**common)}["RTO"]
    scaled = {b.objective: b for b in dr_budget.neo4j_bounds(tier_scaling_seconds=900, **common)}["RTO"]
    assert "tierScaling" not in plain.terms and scaled.terms["tierScaling"] == 900
    assert scaled.bound_seconds == plain.bound_seconds + 900


def test_switch_steps_need_distinct_names():
    with pytest.raises(ValueError, match="distinct"):
        dr_budget.switch_seconds([("approve", 60), ("approve", 60)])
