"""Growing the Neo4j servers' volumes: what settings accept, the runbook, and the alert before one fills.

Facts: Kubernetes refuses any update of a StatefulSet's volumeClaimTemplates
(pkg/apis/apps/validation/validation.go, ValidateStatefulSetUpdate) - synth diff flags it
(tests/test_diff.py); a claim can only grow ("field can not be less than previous value",
ValidatePersistentVolumeClaimUpdate) and only on a StorageClass with allowVolumeExpansion (Kubernetes
docs, "Persistent Volumes", expanding claims); the kubelet reports each mounted claim's
kubelet_volume_stats_available_bytes and kubelet_volume_stats_capacity_bytes, labelled namespace and
persistentvolumeclaim.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import settings
from tests.conftest import config_with, synthesized
from tests.test_neo4j_backup_alerts import RULE, promtool_test

K = f"{settings.PROJECT}:"
ROOT = Path(__file__).resolve().parent.parent


def _problems(changes: dict) -> list[str]:
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config_with("prod", changes))
    return raised.value.problems


def test_a_declared_growth_on_an_expandable_class_is_accepted():
    cfg = settings.validate(config_with("prod", {
        "neo4j.storageSize": "300Gi", "neo4j.volumeResize": {"fromSize": "200Gi", "storageClassAllowsExpansion": True}}))
    assert cfg.neo4j.volume_resize is not None and cfg.neo4j.volume_resize.from_size == "200Gi"


@pytest.mark.parametrize("changes,key,words", [
    ({"neo4j.storageSize": "100Gi"}, "neo4j.storageSize", "a volume cannot shrink"),
    ({"neo4j.storageSize": "200Gi"}, "neo4j.volumeResize", "nothing grows"),
    ({"neo4j.storageSize": "300Gi", "neo4j.volumeResize.storageClassAllowsExpansion": False},
     "neo4j.volumeResize.storageClassAllowsExpansion", "allowVolumeExpansion: true"),
    ({"neo4j.storageSize": "300Gi", "neo4j.volumeResize.fromSize": "a lot"}, "neo4j.volumeResize.fromSize",
     "not a Kubernetes quantity"),
], ids=["shrink", "no-change", "class-cannot-grow", "bad-size"])
def test_what_the_resize_path_cannot_do_is_refused_naming_the_key(changes, key, words):
    base = {"neo4j.volumeResize": {"fromSize": "200Gi", "storageClassAllowsExpansion": True}}
    [problem] = [p for p in _problems({**base, **changes}) if p.startswith(f"{K}{key}:")]
    assert words in problem, problem


def test_the_runbook_walks_the_resize_path_in_order():
    runbook = (ROOT / "docs" / "runbooks.md").read_text()
    section = runbook.split("## Growing a Neo4j volume", 1)[1].split("\n## ", 1)[0]
    steps = ["allowVolumeExpansion", "neo4j.volumeResize", "kubectl -n graph patch pvc data-<release>-0",
             "FileSystemResizePending", "--cascade=orphan", "Run the deploy"]
    positions = [section.index(step) for step in steps]
    assert positions == sorted(positions), steps


# --- the alerts before a volume fills -----------------------------------------------------------------

CLAIM = "data-graph-server-1-0"


def volume_rules() -> list[dict]:
    return synthesized("prod").named("neo4j-rules", RULE).inputs["spec"]["groups"]


def stats(claim: str, available: str, capacity: str = "1000x400") -> list[dict]:
    labels = f'namespace="graph", persistentvolumeclaim="{claim}"'
    return [{"series": f"kubelet_volume_stats_available_bytes{{{labels}}}", "values": available},
            {"series": f"kubelet_volume_stats_capacity_bytes{{{labels}}}", "values": capacity}]


def alert(name: str, severity: str, claim: str, description: str, summary: str) -> dict:
    return {"exp_labels": {"namespace": "graph", "persistentvolumeclaim": claim, "severity": severity},
            "exp_annotations": {"summary": summary, "description": description,
                                "runbook_url": "https://github.com/intelgraph/platform-infrastructure/blob/main/"
                                               "docs/runbooks.md#neo4j-volume-filling-up"}}


def test_a_volume_filling_fast_warns_and_a_nearly_full_one_pages(tmp_path):
    groups = volume_rules()
    # 25 % free, falling by 0.1 % a minute: under 20 % at 50 m, full in a few hours; warns after 1 h more
    promtool_test(groups, tmp_path, "1m", stats(CLAIM, "250-1x240") + stats("data-graph-server-2-0", "80x240"), [
        {"eval_time": "100m", "alertname": "Neo4jVolumeFillingUp", "exp_alerts": []},
        {"eval_time": "120m", "alertname": "Neo4jVolumeFillingUp", "exp_alerts": [alert(
            "Neo4jVolumeFillingUp", "warning", CLAIM,
            f"{CLAIM}: 13% free and falling; grow it (resize path) before it fills.",
            "A Neo4j data volume fills within four days")]},
        # server 2 sits at 8 % free, not falling: no fill prediction, but it pages
        {"eval_time": "120m", "alertname": "Neo4jVolumeAlmostFull", "exp_alerts": [alert(
            "Neo4jVolumeAlmostFull", "critical", "data-graph-server-2-0",
            "data-graph-server-2-0: 8% free; Neo4j stops writing when it is full.",
            "A Neo4j data volume is over 90 % full")]},
    ])


def test_a_full_but_steady_volume_does_not_warn_and_other_claims_are_not_judged(tmp_path):
    groups = volume_rules()
    promtool_test(groups, tmp_path, "1m",
                  stats(CLAIM, "150x300") + stats("neo4j-backup-29412345-scratch", "10x300"), [
        {"eval_time": "4h", "alertname": "Neo4jVolumeFillingUp", "exp_alerts": []},
        # a backup job's scratch claim is the job's, not a server's volume
        {"eval_time": "4h", "alertname": "Neo4jVolumeAlmostFull", "exp_alerts": []},
    ])
