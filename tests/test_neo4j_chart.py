"""What the real Neo4j chart does with the releases' values: rendered with the real helm over the
official chart source (../shared/charts/neo4j, chart 5.17.0 while the program pins 5.26.16; see its
PROVENANCE.md). Where a proof rests on a template only newer charts have, the test says so.

Each stack's releases are rendered once per module (helm is slow on a shared machine)."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

import settings
from synth import helm
from tests.conftest import config_with, primary_tier

RELEASE = "kubernetes:helm.sh/v3:Release"


def _render(release) -> list[dict]:
    return helm.render(release.inputs["name"], release.inputs["namespace"], "neo4j", release.inputs["values"])


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, list[dict]]]:
    """stack -> release name -> the objects that release renders."""
    return {stack: {r.inputs["name"]: _render(r) for r in primary_tier(stack).of_type(RELEASE)}
            for stack in ("prod", "stage")}


def _config(objects: list[dict]) -> dict:
    """The chart's default ConfigMap: what Neo4j reads as neo4j.conf (templates/neo4j-config.yaml)."""
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-default-config")]
    return config["data"]


def _kinds(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


# --- item 14: the chart clusters only from minimumClusterSize 3 ------------------------------------

def test_every_release_renders_a_clustered_server(rendered):
    # templates/_helpers.tpl "neo4j.isClusterEnabled": minimumClusterSize >= 3, else standalone;
    # only a clustered server gets Kubernetes discovery (templates/neo4j-config.yaml).
    for stack, releases in rendered.items():
        for name, objects in releases.items():
            config = _config(objects)
            assert config["dbms.cluster.discovery.resolver_type"] == "K8S", (stack, name)
            assert config["dbms.cluster.minimum_initial_system_primaries_count"] == "3", (stack, name)


def test_one_primary_with_secondaries_would_render_standalone_servers(prod):
    # The fact behind the settings rule below: the same secondary release with minimumClusterSize 1
    # renders a server without discovery, i.e. a second, independent database.
    secondary = next(r for r in prod.of_type(RELEASE)
                     if r.inputs["values"]["config"].get("initial.server.mode_constraint") == "SECONDARY")
    values = {**secondary.inputs["values"], "neo4j": {**secondary.inputs["values"]["neo4j"], "minimumClusterSize": 1}}
    config = _config(helm.render(secondary.inputs["name"], "graph", "neo4j", values))
    assert "dbms.cluster.discovery.resolver_type" not in config


@pytest.mark.parametrize("primaries,secondaries,key,words", [
    (1, 2, "neo4j.secondaries", "at least 3 primaries"),
    (2, 0, "neo4j.primaries", "must be 1 (standalone) or at least 3"),
])
def test_settings_refuse_a_topology_the_chart_cannot_cluster(primaries, secondaries, key, words):
    config = config_with("prod", {"neo4j.primaries": primaries, "neo4j.secondaries": secondaries})
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    [problem] = raised.value.problems
    assert problem.startswith(f"intelgraph-platform:{key}:") and words in problem, problem
    assert f"(given: {primaries if key.endswith('primaries') else secondaries})" in problem


def test_a_standalone_server_without_secondaries_is_allowed():
    config = config_with("stage", {"neo4j.primaries": 1, "neo4j.secondaries": 0})
    assert settings.validate(config).neo4j.primaries == 1


# --- item 7: every Neo4j series a rule or panel reads is one the servers export -------------------

# server.metrics.filter's default as the operations manual's configuration settings list it (the
# newest list, changed in 2025.03 and 2025.06). Neither it nor the 4.x default (MetricsSettings,
# metrics.filter) has bolt.messages_done or bolt.accumulated_processing_time, so 5.x's has not either.
DEFAULT_METRICS_FILTER = (
    "*bolt.connections*,*bolt.messages_received*,*bolt.messages_started*,*dbms.pool.bolt.free,"
    "*dbms.pool.bolt.total_size,*dbms.pool.bolt.total_used,*dbms.pool.bolt.used_heap,*cluster.raft.is_leader,"
    "*cluster.raft.last_leader_message,*cluster.raft.replication_attempt,*cluster.raft.replication_fail,"
    "*cluster.raft.last_applied,*cluster.raft.last_appended,*cluster.raft.append_index,"
    "*cluster.raft.commit_index,*cluster.raft.applied_index,*check_point.*,*cypher.replan_events,"
    "*cypher.cache*,*ids_in_use*,*.neo4j.count.*,*pool.transaction.*.total_used,*pool.transaction.*.used_heap,"
    "*pool.transaction.*.used_native,*store.size*,*transaction.active_read,*transaction.active_write,"
    "*transaction.committed*,*transaction.last_committed_tx_id,*transaction.peak_concurrent,"
    "*transaction.rollbacks*,*page_cache.hit*,*page_cache.page_faults,*page_cache.usage_ratio,"
    "*vm.file.descriptors.count,*vm.gc.time.*,*vm.heap.used,*vm.memory.buffer.direct.used,"
    "*vm.memory.pool.g1_eden_space,*vm.memory.pool.g1_old_gen,*vm.pause_time,*vm.thread*,"
    "*db.query.execution*,*protocol*"
)
SERIES = re.compile(r"\bneo4j_[A-Za-z0-9_]+")


def _series_used(synthesis) -> set[str]:
    """Every neo4j_* series named in a PrometheusRule or a dashboard panel of the stack."""
    texts = [json.dumps(r.inputs["spec"]) for r in synthesis.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")]
    texts += [json.dumps(c.inputs.get("data", {})) for c in synthesis.of_type("kubernetes:core/v1:ConfigMap")]
    return {m for text in texts for m in SERIES.findall(text)}


def _exported(series: str, config: dict) -> bool:
    """Neo4j's Prometheus endpoint names a metric by its dotted name with '.' -> '_' and counters
    suffixed _total; the filter's globs match the dotted name (MetricsSettings, GlobbingPattern)."""
    name = series.removesuffix("_total")
    namespaced = config.get("server.metrics.namespaces.enabled", "false") == "true"
    # With namespaces (MetricsSettings.metrics_namespaces_enabled): neo4j.dbms.* global,
    # neo4j.database.<db>.* per database; without, neither segment exists.
    if name.startswith(("neo4j_dbms_", "neo4j_database_")) and not namespaced:
        return False
    globs = config.get("server.metrics.filter", DEFAULT_METRICS_FILTER).split(",")
    return any(fnmatch.fnmatchcase(name, g.replace(".", "_")) for g in globs)


@pytest.mark.parametrize("stack", ["prod", "stage"])
def test_every_neo4j_series_a_rule_or_panel_reads_is_exported(stack, rendered):
    used = _series_used(primary_tier(stack))
    assert {"neo4j_dbms_bolt_messages_done_total", "neo4j_dbms_bolt_accumulated_processing_time_total",
            "neo4j_database_neo4j_db_query_execution_latency_millis"} <= used
    for name, objects in rendered[stack].items():
        config = _user_config(objects)  # what the chart writes into neo4j.conf
        missing = sorted(s for s in used if not _exported(s, config))
        assert not missing, f"{name} does not export {missing}"


def test_the_default_filter_would_leave_the_bolt_sli_empty():
    assert not _exported("neo4j_dbms_bolt_messages_done_total", {"server.metrics.namespaces.enabled": "true"})
    assert _exported("neo4j_dbms_bolt_messages_received_total", {"server.metrics.namespaces.enabled": "true"})


def _user_config(objects: list[dict]) -> dict:
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-user-config")]
    return config["data"]


# --- item 12: primaries spread over zones as a requirement where there are 3 or more ----------------

def _pod_template(objects: list[dict]) -> dict:
    [statefulset] = _kinds(objects, "StatefulSet")
    return statefulset["spec"]["template"]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


@pytest.mark.parametrize("stack,primaries", [("prod", 3), ("stage", 3)])
def test_primaries_must_spread_over_the_three_zones(stack, primaries, rendered):
    # kube-scheduler topology spread (Kubernetes docs, "Pod Topology Spread Constraints"): with
    # whenUnsatisfiable DoNotSchedule and maxSkew 1 over 3 zones, 3 matching pods land one per
    # zone, or stay Pending; the selector counts pods of every StatefulSet, so it must match the
    # primaries of all releases and nothing else.
    templates = {name: _pod_template(objects) for name, objects in rendered[stack].items()}
    constrained = {name: t for name, t in templates.items() if t["spec"].get("topologySpreadConstraints")}
    assert len(constrained) == primaries
    for name, template in constrained.items():
        [spread] = template["spec"]["topologySpreadConstraints"]
        assert (spread["topologyKey"], spread["whenUnsatisfiable"], spread["maxSkew"], spread["minDomains"]) == (
            "topology.kubernetes.io/zone", "DoNotSchedule", 1, 3)
        counted = {n for n, t in templates.items() if _selects(spread["labelSelector"], t["metadata"]["labels"])}
        assert counted == set(constrained), (name, counted)
    secondaries = set(templates) - set(constrained)
    assert all(templates[n]["metadata"]["labels"]["intelgraph.io/neo4j-mode"] == "secondary" for n in secondaries)
    # one server per node, always (required anti-affinity on the hostname)
    for template in templates.values():
        [term] = template["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"


def test_with_fewer_than_three_zones_the_spread_is_only_preferred():
    from components.neo4j_cluster import pod_placement

    placement = pod_placement("graph", ("us-east-1a", "us-east-1b"), primary=True)
    assert "topologySpreadConstraints" not in placement
    preferred = placement["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"


def test_zones_are_validated_in_settings():
    config = config_with("prod", {"neo4j.zones": ["us-east-1a", "us-east-1a", "us-east-1b"]})
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    assert raised.value.problems[0].startswith("intelgraph-platform:neo4j.zones:")


# --- item 2: nothing a release renders can block Helm's wait; Neo4j enables joining servers itself -

def test_servers_are_enabled_by_neo4j_not_by_an_operations_pod(rendered, prod):
    # Helm's wait (pkg/kube/ready.go) counts a Pod ready only while its Ready condition is true; a
    # completed restartPolicy: Never Pod never is, so a release holding one times out on every
    # upgrade. Chart 5.17 (rendered here) has no operations template; in the pinned 5.26 chart,
    # templates/neo4j-operations.yaml renders that Pod exactly when neo4j.operations.enableServer is
    # set, so no release may set it.
    for release in prod.of_type(RELEASE):
        assert "operations" not in release.inputs["values"]["neo4j"], release.name
    for stack, releases in rendered.items():
        for name, objects in releases.items():
            assert not _kinds(objects, "Pod"), (stack, name)
    # that the cluster enables joining servers itself: tests/test_neo4j_topology.py (bootstrap)


# --- item 3: the shared client Service has exactly one owner -------------------------------------

@pytest.mark.parametrize("stack", ["prod", "stage"])
def test_the_shared_client_service_is_owned_once_and_reaches_every_server(stack, rendered):
    # templates/neo4j-loadbalancer.yaml renders <name>-lb-neo4j from every release whose lookup
    # finds none; installed together, every release renders it, and Helm refuses to create an
    # object that another release already owns (pkg/action/validate.go, "invalid ownership
    # metadata"), so all but one first install fail. No release may render it...
    for name, objects in rendered[stack].items():
        names = {o["metadata"]["name"] for o in _kinds(objects, "Service")}
        assert "graph-lb-neo4j" not in names, name
        assert not [j for j in _kinds(objects, "Job") if j["metadata"]["name"].endswith("-cleanup")], name
    # ...and the stack owns it once, as a ClusterIP Service selecting every server's pods on the
    # ports the server containers really listen on.
    [service] = [s for s in primary_tier(stack).of_type("kubernetes:core/v1:Service")
                 if s.inputs["metadata"]["name"] == "graph-lb-neo4j"]
    spec = service.inputs["spec"]
    assert spec["type"] == "ClusterIP"
    for name, objects in rendered[stack].items():
        template = _pod_template(objects)
        assert _selects({"matchLabels": spec["selector"]}, template["metadata"]["labels"]), name
        listening = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in spec["ports"]} <= listening, (name, listening)
