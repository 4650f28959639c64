"""Neo4j 5 on the official chart: one release per server sharing neo4j.name, memory derived from
the limit, no 4.x keys, backups through IRSA scoped to a prefix, and rules promtool accepts."""

from __future__ import annotations

import json

import pytest

from components.neo4j_cluster import GIB, MIB, Neo4jClusterArgs, memory_plan
from synth import export
from tests.conftest import primary_tier, stack_settings
from tests.tools import promtool_check

RELEASE = "kubernetes:helm.sh/v3:Release"
CRONJOB = "kubernetes:batch/v1:CronJob"
CUSTOM = "kubernetes:monitoring.coreos.com/v1:"


def releases(synthesis):
    return sorted(synthesis.of_type(RELEASE), key=lambda r: r.name)


@pytest.mark.parametrize("stack,servers,secondaries", [("prod", 5, 2), ("stage", 3, 0)])
def test_one_release_per_server_all_sharing_the_cluster_name(stack, servers, secondaries):

    found = releases(primary_tier(stack))
    assert [r.inputs["name"] for r in found] == [f"graph-server-{i}" for i in range(1, servers + 1)]
    for r in found:
        values = r.inputs["values"]
        assert r.inputs["chart"] == "neo4j" and r.inputs["version"] == stack_settings(stack).neo4j.chart_version
        assert r.inputs["repositoryOpts"] == {"repo": "https://helm.neo4j.com/neo4j"}
        assert values["neo4j"]["name"] == "graph"
        assert values["neo4j"]["minimumClusterSize"] == 3
        assert values["neo4j"]["edition"] == "enterprise" and values["neo4j"]["acceptLicenseAgreement"] == "yes"
        assert values["neo4j"]["passwordFromSecret"] == "graph-auth"
    constrained = [r for r in found if r.inputs["values"]["config"].get("initial.server.mode_constraint") == "SECONDARY"]
    assert len(constrained) == secondaries


def test_values_use_5x_keys_storage_metrics_and_an_internal_service(prod):
    values = releases(prod)[0].inputs["values"]
    assert values["volumes"]["data"]["mode"] == "dynamic"
    assert values["volumes"]["data"]["dynamic"]["storageClassName"] == "gp3-encrypted"
    assert values["volumes"]["data"]["dynamic"]["requests"] == {"storage": "200Gi"}
    assert values["services"]["neo4j"]["enabled"] is False  # the component owns the client Service
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


# What `neo4j-admin server memory-recommendation --memory=<limit>` prints for Neo4j 5 (its table:
# neo4j/neo4j community/dbms/src/main/java/org/neo4j/dbms/MemoryRecommendation.java). The old rule
# (heap = page cache, + exactly 1 GiB) gave 16 GiB 7.5 + 7.5 GiB and left 1 GiB for everything
# outside the JVM's heap; Neo4j keeps 4 GiB there at 16 GiB.
@pytest.mark.parametrize("limit,heap,pagecache,reserve", [
    (16 * GIB, 5 * GIB, 7 * GIB, 4 * GIB),
    (6 * GIB, 3 * GIB, 1 * GIB, 2 * GIB),
    (5 * GIB, 2560 * MIB, 768 * MIB, 1792 * MIB),  # between brackets: interpolated
    (2 * GIB, 512 * MIB, 512 * MIB, 1 * GIB),
    (32 * GIB, 12 * GIB, 12 * GIB, 8 * GIB),
])
def test_memory_follows_neo4js_own_recommendation(limit, heap, pagecache, reserve):
    plan = memory_plan(limit)
    assert (plan.heap_bytes, plan.pagecache_bytes, plan.reserve_bytes) == (heap, pagecache, reserve)


def test_the_reserve_outside_the_jvm_grows_with_the_limit_and_never_drops_below_1_gib():
    # Operations manual, "Memory configuration": 1 GB for the OS is the starting point on a
    # dedicated server, more on larger ones (native memory, direct buffers, Lucene grow with load).
    reserves = [memory_plan(g * GIB).reserve_bytes for g in range(2, 129)]
    assert reserves == sorted(reserves) and reserves[0] >= GIB and reserves[14] >= 4 * GIB  # 16 GiB
    for g in range(2, 129):
        plan = memory_plan(g * GIB)
        assert plan.heap_bytes + plan.pagecache_bytes + plan.reserve_bytes == g * GIB
        assert plan.pagecache_bytes > 0


def test_heap_stays_below_the_compressed_pointer_limit():
    plan = memory_plan(128 * GIB)
    assert plan.heap_bytes == 31 * GIB and plan.reserve_bytes == 16 * GIB


def test_release_config_carries_the_derived_memory(stage):
    config = releases(stage)[0].inputs["values"]["config"]
    assert config["server.memory.heap.initial_size"] == config["server.memory.heap.max_size"] == "3072m"
    assert config["server.memory.pagecache.size"] == "1024m"


def test_a_limit_too_small_for_heap_pagecache_and_overhead_is_rejected():
    with pytest.raises(ValueError, match="too small for Neo4j"):
        memory_plan(int(1.5 * GIB))
    with pytest.raises(ValueError, match="too small for Neo4j"):
        memory_plan(2 * GIB - MIB)  # the chart refuses it too: "minimum of 2Gi" (templates/_helpers.tpl)
    with pytest.raises(ValueError, match="primaries must not be 2"):
        Neo4jClusterArgs("graph", "graph", "5.26.16", "neo4j:5.26.16-enterprise", "yes", 2, 0, "1", "2",
                         "4Gi", memory_plan(4 * GIB), "gp3", "10Gi", "kube-prometheus-stack",
                         ("us-east-1a", "us-east-1b", "us-east-1c"))


def test_backups_try_every_secondary_before_any_primary():
    # neo4j-admin database backup --from takes a list and uses the first server that answers
    # (Neo4j Operations Manual 5, "Back up an online database": --from): secondaries first keeps
    # the backup's read load off the primaries while any secondary is up.
    args = Neo4jClusterArgs("graph", "graph", "5.26.16", "neo4j:5.26.16-enterprise", "yes", 3, 2, "1", "2",
                            "4Gi", 4 * GIB, "gp3", "10Gi", "kube-prometheus-stack",
                            ("us-east-1a", "us-east-1b", "us-east-1c"))
    assert args.backup_sources == ("graph-server-4", "graph-server-5", "graph-server-3", "graph-server-2",
                                   "graph-server-1")
    assert args.pod_selector == {"app": "graph"}


def test_a_tiny_memory_setting_is_a_settings_error_naming_the_key():
    import settings
    from tests.conftest import config_with

    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config_with("stage", {"neo4j.resources.memory": "1536Mi"}))
    [problem] = raised.value.problems
    assert problem.startswith("intelgraph-platform:neo4j.resources.memory:") and "too small for Neo4j" in problem


def test_one_service_monitor_for_the_cluster_with_the_release_label(any_primary):
    [monitor] = [m for m in any_primary.of_type(f"{CUSTOM}ServiceMonitor") if m.inputs["metadata"]["namespace"] == "graph"]
    assert monitor.inputs["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    assert monitor.inputs["spec"]["selector"]["matchLabels"] == {
        "helm.neo4j.com/service": "admin", "helm.neo4j.com/neo4j.name": "graph"}
    assert monitor.inputs["spec"]["endpoints"][0]["port"] == "tcp-prometheus"


def test_a_pdb_keeps_quorum(any_primary):
    [pdb] = [p for p in any_primary.of_type("kubernetes:policy/v1:PodDisruptionBudget")
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
            if c.inputs["metadata"]["name"] != "pg-restore-rehearsal"}


def test_the_graphs_cronjobs_run_safely(any_stack):
    jobs = cronjobs(any_stack)
    # the primary's backups and snapshots; in the DR cluster the rehearsal, the switch's Job
    # template and, for a warm DR graph, its refresh (components/neo4j_dr.py)
    warm = any_stack.outputs["tiers"]["dr"]["neo4jMode"] == "warm"
    assert set(jobs) == {"neo4j-backup", "neo4j-backup-freshness", "neo4j-backup-prune", "neo4j-restore-rehearsal",
                         "graph-volume-snapshots", "neo4j-dr-switch", *(["neo4j-dr-refresh"] if warm else [])}
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
        for container in pod["containers"] + pod.get("initContainers", []):
            assert_hardened(container)


def assert_hardened(container: dict) -> None:
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


@pytest.mark.parametrize("accepted", ["yes", "eval"])
def test_every_job_running_neo4j_accepts_the_license_as_the_servers_do(accepted):
    # Neo4j operations manual, installation: from 5.4 Enterprise Edition runs only once the
    # commercial or evaluation license is accepted (NEO4J_ACCEPT_LICENSE_AGREEMENT=yes|eval); the
    # backup job's neo4j-admin is Enterprise too. Same value as the servers' chart setting.
    from synth import engine
    from tests.conftest import config_with, synthesized

    synthesis = synthesized("stage") if accepted == "yes" else engine.synthesize(
        "stage", config_with("stage", {"neo4j.acceptLicenseAgreement": accepted}))
    assert {r.inputs["values"]["neo4j"]["acceptLicenseAgreement"] for r in releases(synthesis)} == {accepted}
    jobs = cronjobs(synthesis)
    for job in ("neo4j-backup", "neo4j-restore-rehearsal"):
        [container] = [c for c in jobs[job]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
                       if "enterprise" in c["image"]]
        assert {e["name"]: e["value"] for e in container["env"]}["NEO4J_ACCEPT_LICENSE_AGREEMENT"] == accepted, job


@pytest.mark.parametrize("role", ["primary", "dr"])
def test_each_job_uses_its_own_irsa_service_account(prod, role):
    """In each region's cluster, each job's role trusts that cluster's OIDC issuer (IRSA tokens are
    issued per cluster) and that service account only."""
    accounts = {(a.inputs["metadata"]["namespace"], a.inputs["metadata"]["name"]): a.inputs
                for a in prod.of_type("kubernetes:core/v1:ServiceAccount") if export.cluster_of(a.provider) == role}
    roles = {r.outputs["arn"]: r for r in prod.of_type("aws:iam/role:Role")}
    # the volume snapshot job talks to the Kubernetes API only: its token, no AWS role
    snapshots = accounts.pop(("graph", "graph-volume-snapshots"), None)
    assert (snapshots is not None) == (role == "primary")
    assert snapshots is None or "annotations" not in snapshots["metadata"]
    issuer = stack_settings("prod").kubernetes.of(role).oidc_issuer
    assert accounts
    for (namespace, name), account in accounts.items():
        role_resource = roles[account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]]
        trust = json.loads(role_resource.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        subjects = trust["Condition"]["StringEquals"][f"{issuer}:sub"]
        assert f"system:serviceaccount:{namespace}:{name}" in subjects
        # only the DR servers' account mounts its API token: Kubernetes discovery (components/neo4j_dr.py)
        assert account["automountServiceAccountToken"] is ((namespace, name) == ("graph", "graph-servers"))
    assert (("graph", "graph-servers") in accounts) == (role == "dr")


def test_backup_roles_may_only_touch_the_neo4j_prefix(prod):
    bucket_arn = prod.named("neo4j-backups", "aws:s3/bucket:Bucket").outputs["arn"]
    policies = {p.name: json.loads(p.inputs["policy"]) for p in prod.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.name.startswith("neo4j-backup-")}
    assert set(policies) == {"neo4j-backup-writer", "neo4j-backup-reader", "neo4j-backup-pruner"}
    for name, policy in policies.items():
        statements = {s["Sid"]: s for s in policy["Statement"]}
        assert statements["ListPrefix"]["Resource"] == bucket_arn
        assert statements["ListPrefix"]["Condition"]["StringLike"]["s3:prefix"] == ["neo4j/", "neo4j/*"]
        assert statements["Objects"]["Resource"] == f"{bucket_arn}/neo4j/*"
        if name != "neo4j-backup-pruner":  # deleting needs no key
            assert statements["BucketKey"]["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert "s3:PutObject" in policies["neo4j-backup-writer"]["Statement"][1]["Action"]
    assert "s3:DeleteObject" not in policies["neo4j-backup-writer"]["Statement"][1]["Action"]
    assert policies["neo4j-backup-reader"]["Statement"][1]["Action"] == ["s3:GetObject"]
    # only the retention job deletes, and it can neither read nor write backups
    assert policies["neo4j-backup-pruner"]["Statement"][1]["Action"] == ["s3:DeleteObject"]


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
    # the longest gap between backups is the chain's first run (full backup of 200 Gi: 3877 s),
    # plus the 30 min slack
    assert "kube_cronjob_status_last_successful_time" in stale["expr"] and "> 5677" in stale["expr"]


def pod_of(job: dict) -> dict:
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("stack,store", [("prod", "200Gi"), ("stage", "50Gi")])
def test_backup_and_restore_scratch_is_sized_for_the_store_and_never_the_node_disk(stack, store):
    """The backup's --temp-path and the rehearsal's data and temp space hold a whole store: each is
    an ephemeral volume claimed from the storage class at the servers' volume size; every emptyDir
    left is small and bounded (kubelet evicts a pod whose emptyDir exceeds its sizeLimit)."""
    from tests.conftest import synthesized

    jobs = cronjobs(synthesized(stack))
    for name, job in jobs.items():
        for volume in pod_of(job)["volumes"]:
            if "emptyDir" in volume:
                assert volume["emptyDir"]["sizeLimit"] in ("1Mi", "64Mi", "1Gi", "2Gi"), (name, volume)
            elif "secret" in volume:  # the DR seed jobs' admin credentials, a file of a few bytes
                assert volume["secret"] == {"secretName": "graph-auth",
                                            "items": [{"key": "NEO4J_AUTH", "path": "NEO4J_AUTH"}]}, name
            else:
                claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
                assert claim["storageClassName"] == "gp3-encrypted" and claim["resources"]["requests"]["storage"] == store
    mounts = {m["name"]: m["mountPath"] for m in pod_of(jobs["neo4j-backup"])["containers"][0]["volumeMounts"]}
    env = {e["name"]: e["value"] for e in pod_of(jobs["neo4j-backup"])["containers"][0]["env"]}
    assert mounts["scratch"] == env["SCRATCH"] == "/scratch"
    rehearsal = pod_of(jobs["neo4j-restore-rehearsal"])["containers"][0]
    assert {m["mountPath"] for m in rehearsal["volumeMounts"]} >= {"/data", "/scratch"}
    kinds = {v["name"]: "ephemeral" in v for v in pod_of(jobs["neo4j-restore-rehearsal"])["volumes"]}
    assert kinds["data"] and kinds["scratch"]


@pytest.mark.parametrize("stack,store_gib", [("prod", 200), ("stage", 50)])
def test_job_deadlines_fit_a_first_full_backup_of_the_store(stack, store_gib):
    """A chain's first run copies the whole store through the gp3 scratch volume twice (artifact
    written, then read for the upload) at gp3's 125 MiB/s baseline (Amazon EBS User Guide)."""
    from tests.conftest import synthesized

    jobs = cronjobs(synthesized(stack))
    two_passes = 2 * store_gib * 1024 / 125
    backup = jobs["neo4j-backup"]["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert backup >= two_passes and backup >= 3600 - 300
    rehearsal = jobs["neo4j-restore-rehearsal"]["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert rehearsal >= 3 * store_gib * 1024 / 125


def test_a_bigger_store_gets_a_longer_backup_deadline():
    from synth import engine
    from tests.conftest import config_with

    synthesis = engine.synthesize("prod", config_with("prod", {"neo4j.storageSize": "2Ti"}))
    backup = cronjobs(synthesis)["neo4j-backup"]["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert backup == -(-2 * 2 * 1024 * 1024 // 125) + 600
