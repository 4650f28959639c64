"""Neo4j 5 on the official chart: one release per server sharing neo4j.name, memory derived from
the limit, no 4.x keys, backups through IRSA scoped to a prefix, and rules promtool accepts."""

from __future__ import annotations

import json

import pytest

from components.neo4j_cluster import GIB, MIB, Neo4jClusterArgs, memory_plan
from tests.tools import promtool_check

RELEASE = "kubernetes:helm.sh/v3:Release"
CRONJOB = "kubernetes:batch/v1:CronJob"
CUSTOM = "kubernetes:monitoring.coreos.com/v1:"


def releases(synthesis):
    return sorted(synthesis.of_type(RELEASE), key=lambda r: r.name)


@pytest.mark.parametrize("stack,servers,secondaries", [("prod", 5, 2), ("stage", 3, 0)])
def test_one_release_per_server_all_sharing_the_cluster_name(stack, servers, secondaries):
    from tests.conftest import synthesized

    found = releases(synthesized(stack))
    assert [r.inputs["name"] for r in found] == [f"graph-server-{i}" for i in range(1, servers + 1)]
    for r in found:
        values = r.inputs["values"]
        assert r.inputs["chart"] == "neo4j" and r.inputs["version"] == "5.26.16"
        assert r.inputs["repositoryOpts"] == {"repo": "https://helm.neo4j.com/neo4j"}
        assert values["neo4j"]["name"] == "graph"
        assert values["neo4j"]["minimumClusterSize"] == 3
        assert values["neo4j"]["edition"] == "enterprise" and values["neo4j"]["acceptLicenseAgreement"] == "yes"
        assert values["neo4j"]["passwordFromSecret"] == "graph-auth"
    constrained = [r for r in found if r.inputs["values"]["config"].get("initial.server.mode_constraint") == "SECONDARY"]
    assert len(constrained) == secondaries
    assert all(r.inputs["values"]["neo4j"]["operations"] == {"enableServer": True} for r in constrained)


def test_values_use_5x_keys_storage_metrics_and_an_internal_service(prod):
    values = releases(prod)[0].inputs["values"]
    assert values["volumes"]["data"]["mode"] == "dynamic"
    assert values["volumes"]["data"]["dynamic"]["storageClassName"] == "gp3-encrypted"
    assert values["volumes"]["data"]["dynamic"]["requests"] == {"storage": "200Gi"}
    assert values["services"]["neo4j"]["spec"]["type"] == "ClusterIP"
    config = values["config"]
    assert config["server.metrics.prometheus.enabled"] == "true"
    assert config["server.metrics.prometheus.endpoint"] == "0.0.0.0:2004"
    assert values["neo4j"]["resources"]["limits"]["memory"] == values["neo4j"]["resources"]["requests"]["memory"] == "16Gi"
    anti = values["podSpec"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    zone = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"]
    assert zone == "topology.kubernetes.io/zone"


def test_no_neo4j_4x_key_or_host_survives_anywhere(any_stack):
    text = json.dumps([r.inputs for r in any_stack.resources])
    for stale in ('"core"', "readReplica", "numberOfServers", "dbms.memory.", "dbms.backup.",
                  '"metrics.prometheus', "graph-core-0", "neo4j:5\"", "--backup-dir"):
        assert stale not in text, stale


@pytest.mark.parametrize("limit,heap,pagecache", [
    (16 * GIB, 7680 * MIB, 7680 * MIB), (6 * GIB, 2560 * MIB, 2560 * MIB), (2 * GIB, 512 * MIB, 512 * MIB)])
def test_memory_is_derived_from_the_limit(limit, heap, pagecache):
    plan = memory_plan(limit)
    assert (plan.heap_bytes, plan.pagecache_bytes) == (heap, pagecache)
    assert plan.heap_bytes + plan.pagecache_bytes + GIB <= limit


def test_heap_stays_below_the_compressed_pointer_limit():
    plan = memory_plan(128 * GIB)
    assert plan.heap_bytes == 31 * GIB and plan.heap_bytes + plan.pagecache_bytes + GIB <= 128 * GIB


def test_release_config_carries_the_derived_memory(stage):
    config = releases(stage)[0].inputs["values"]["config"]
    assert config["server.memory.heap.initial_size"] == config["server.memory.heap.max_size"] == "2560m"
    assert config["server.memory.pagecache.size"] == "2560m"


def test_a_limit_too_small_for_heap_pagecache_and_overhead_is_rejected():
    with pytest.raises(ValueError, match="too small for Neo4j"):
        memory_plan(int(1.5 * GIB))
    with pytest.raises(ValueError, match="primaries must not be 2"):
        Neo4jClusterArgs("graph", "graph", "5.26.16", "neo4j:5.26.16-enterprise", "yes", 2, 0, "1", "2",
                         "4Gi", 4 * GIB, "gp3", "10Gi", "kube-prometheus-stack")


def test_a_tiny_memory_setting_is_a_settings_error_naming_the_key():
    import settings
    from tests.conftest import config_with

    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config_with("stage", {"neo4j.resources.memory": "1536Mi"}))
    [problem] = raised.value.problems
    assert problem.startswith("intelgraph-platform:neo4j.resources:") and "too small for Neo4j" in problem


def test_one_service_monitor_for_the_cluster_with_the_release_label(any_stack):
    [monitor] = [m for m in any_stack.of_type(f"{CUSTOM}ServiceMonitor") if m.inputs["metadata"]["namespace"] == "graph"]
    assert monitor.inputs["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    assert monitor.inputs["spec"]["selector"]["matchLabels"] == {
        "helm.neo4j.com/service": "admin", "helm.neo4j.com/neo4j.name": "graph"}
    assert monitor.inputs["spec"]["endpoints"][0]["port"] == "tcp-prometheus"


def test_a_pdb_keeps_quorum(any_stack):
    [pdb] = [p for p in any_stack.of_type("kubernetes:policy/v1:PodDisruptionBudget")
             if p.inputs["metadata"]["namespace"] == "graph"]
    assert pdb.inputs["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "graph"}}}


def test_admin_password_comes_from_a_random_secret(prod):
    secret = prod.named("neo4j-auth", "kubernetes:core/v1:Secret")
    from pulumi.runtime import rpc

    assert rpc.is_rpc_secret(secret.inputs["stringData"])
    assert rpc.unwrap_rpc_secret(secret.inputs["stringData"])["NEO4J_AUTH"].startswith("neo4j/")


def cronjobs(synthesis) -> dict:
    # Neo4j's own (the PostgreSQL rehearsal has its tests in test_pg_rehearsal_job)
    return {c.inputs["metadata"]["name"]: c.inputs for c in synthesis.of_type(CRONJOB)
            if c.inputs["metadata"]["name"].startswith("neo4j-")}


def test_three_cronjobs_run_safely(any_stack):
    jobs = cronjobs(any_stack)
    assert set(jobs) == {"neo4j-backup", "neo4j-backup-freshness", "neo4j-restore-rehearsal"}
    assert jobs["neo4j-restore-rehearsal"]["metadata"]["namespace"] == "dr-verify"
    assert jobs["neo4j-backup"]["spec"]["schedule"] == "0 * * * *"
    for job in jobs.values():
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid" and spec["startingDeadlineSeconds"] > 0
        assert spec["timeZone"] == "Etc/UTC"
        job_spec = spec["jobTemplate"]["spec"]
        assert job_spec["backoffLimit"] <= 2 and job_spec["activeDeadlineSeconds"] > 0
        pod = job_spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        [container] = pod["containers"]
        assert ":" in container["image"] and not container["image"].endswith(":latest")
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"]
        # no static keys: nothing from a Secret, no AWS key variables
        assert "envFrom" not in container
        assert not {e["name"] for e in container["env"]} & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_backup_runs_the_5x_command_against_secondaries_first(prod, stage):
    for synthesis, first in ((prod, "graph-server-4"), (stage, "graph-server-3")):
        container = cronjobs(synthesis)["neo4j-backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["BACKUP_FROM"].split(",")[0] == f"{first}-admin.graph.svc.cluster.local:6362"
        assert env["BACKUP_BUCKET"].startswith(f"intelgraph-{synthesis.stack}-neo4j-backups-")
        assert "neo4j-admin database backup" in container["command"][-1]


def test_each_job_uses_its_own_irsa_service_account(prod):
    accounts = {(a.inputs["metadata"]["namespace"], a.inputs["metadata"]["name"]): a.inputs
                for a in prod.of_type("kubernetes:core/v1:ServiceAccount")}
    roles = {r.outputs["arn"]: r for r in prod.of_type("aws:iam/role:Role")}
    for (namespace, name), account in accounts.items():
        role = roles[account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]]
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        subjects = trust["Condition"]["StringEquals"][
            "oidc.eks.us-east-1.amazonaws.com/id/5C2F8E14B7A93D6E0F1A4C8B2D7E9F03:sub"]
        assert f"system:serviceaccount:{namespace}:{name}" in subjects
        assert account["automountServiceAccountToken"] is False


def test_backup_roles_may_only_touch_the_neo4j_prefix(prod):
    bucket_arn = prod.named("neo4j-backups", "aws:s3/bucket:Bucket").outputs["arn"]
    policies = {p.name: json.loads(p.inputs["policy"]) for p in prod.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.name.startswith("neo4j-backup-")}
    assert set(policies) == {"neo4j-backup-writer", "neo4j-backup-reader"}
    for policy in policies.values():
        statements = {s["Sid"]: s for s in policy["Statement"]}
        assert statements["ListPrefix"]["Resource"] == bucket_arn
        assert statements["ListPrefix"]["Condition"]["StringLike"]["s3:prefix"] == ["neo4j/", "neo4j/*"]
        assert statements["Objects"]["Resource"] == f"{bucket_arn}/neo4j/*"
        assert statements["BucketKey"]["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert "s3:PutObject" in policies["neo4j-backup-writer"]["Statement"][1]["Action"]
    assert policies["neo4j-backup-reader"]["Statement"][1]["Action"] == ["s3:GetObject"]


def rule_groups(synthesis) -> list[dict]:
    return [g for rule in synthesis.of_type(f"{CUSTOM}PrometheusRule") for g in rule.inputs["spec"]["groups"]]


def test_every_prometheus_rule_passes_promtool(any_stack, tmp_path):
    for rule in any_stack.of_type(f"{CUSTOM}PrometheusRule"):
        assert rule.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        result = promtool_check(rule.inputs["spec"]["groups"], tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_rules_cover_latency_backup_freshness_and_rehearsal(prod):
    names = {r.get("alert") or r.get("record") for g in rule_groups(prod) for r in g["rules"]}
    assert {"neo4j:query_latency_ms:p95", "Neo4jQueryLatencyHigh", "Neo4jBackupStale",
            "Neo4jBackupMissing", "Neo4jRestoreRehearsalFailed"} <= names
    stale = next(r for g in rule_groups(prod) for r in g["rules"] if r.get("alert") == "Neo4jBackupStale")
    assert "kube_cronjob_status_last_successful_time" in stale["expr"] and "> 5400" in stale["expr"]
