"""What each Neo4j server's rendered config and pod template hold as the cluster's size changes,
and how long Helm may wait for one server, rendered with the real helm over the chart source
(../shared/charts/neo4j, chart 5.17.0 while the program pins 5.26.16; see its PROVENANCE.md).

The facts:
* The chart checksums its whole config template into each server's pod template
  (templates/neo4j-statefulset.yaml: ``checksum/<release>-config``), so any change to a server's
  config is a new pod template, i.e. a restart of that server.
* ``initial.*`` settings are read only when the system database is first created (operations
  manual, configuration settings); an existing cluster keeps what it stored. They belong in the
  config of the bootstrap deploy only.
* The chart writes ``minimumClusterSize`` into every server's config as
  ``dbms.cluster.minimum_initial_system_primaries_count`` and ``initial.dbms.default_primaries_count``
  (templates/neo4j-config.yaml).

Each synthesis is rendered once per module (helm is slow on a shared machine)."""

from __future__ import annotations

import pytest

from synth import engine, helm
from tests.conftest import config_with, in_tier, primary_tier

RELEASE = "kubernetes:helm.sh/v3:Release"


def _renders(synthesis) -> dict[str, list[dict]]:
    return {r.inputs["name"]: helm.render(r.inputs["name"], r.inputs["namespace"], "neo4j", r.inputs["values"])
            for r in synthesis.of_type(RELEASE)}


def _one(objects: list[dict], kind: str, suffix: str = "") -> dict:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    return found


@pytest.fixture(scope="module")
def prod_renders() -> dict[str, list[dict]]:
    return _renders(primary_tier("prod"))


@pytest.mark.parametrize("stack,change,unchanged", [
    ("prod", {"neo4j.secondaries": 3}, [f"graph-server-{i}" for i in range(1, 6)]),
    ("stage", {"neo4j.primaries": 5}, [f"graph-server-{i}" for i in range(1, 4)]),
])
def test_adding_a_server_leaves_the_existing_servers_pod_templates_unchanged(stack, change, unchanged, prod_renders):
    before = prod_renders if stack == "prod" else _renders(primary_tier(stack))
    after = _renders(in_tier(engine.synthesize(stack, config_with(stack, change)), "primary"))
    assert set(before) < set(after)  # servers were added
    for name in unchanged:
        old, new = _one(before[name], "StatefulSet"), _one(after[name], "StatefulSet")
        assert any(k.startswith("checksum/") and k.endswith("-config")
                   for k in old["spec"]["template"]["metadata"]["annotations"])
        # a different template (the config checksum included) is a restart of that server
        assert new["spec"]["template"] == old["spec"]["template"], f"{name} would restart"


def test_the_bootstrap_deploy_writes_the_initial_topology():
    bootstrap = _renders(in_tier(engine.synthesize("prod", config_with("prod", {"neo4j.bootstrap": True})), "primary"))
    for name in ("graph-server-1", "graph-server-5"):  # a primary and a secondary
        user = _one(bootstrap[name], "ConfigMap", "-user-config")["data"]
        assert user["initial.dbms.default_primaries_count"] == "3"
        assert user["initial.dbms.default_secondaries_count"] == "2"
        # Operations manual, clustering, "Managing servers": a joining server stays Free (hosts
        # nothing) unless enabled; with this setting the cluster enables it on its own.
        assert user["initial.dbms.automatically_enable_free_servers"] == "true"
        default = _one(bootstrap[name], "ConfigMap", "-default-config")["data"]
        assert default["dbms.cluster.minimum_initial_system_primaries_count"] == "3"


def test_later_deploys_carry_no_server_count(prod_renders):
    for name, objects in prod_renders.items():
        user = _one(objects, "ConfigMap", "-user-config")["data"]
        assert not [k for k in user if k.startswith("initial.dbms.")], name


def test_helm_waits_as_long_as_the_chart_lets_a_server_restart(prod_renders):
    # Helm's wait ends in failure at the release timeout. A restart may legitimately take the old
    # pod's whole terminationGracePeriodSeconds to stop and the new one's whole startup probe
    # window (failureThreshold x periodSeconds) and a readiness period to become ready, all as the
    # chart renders them (templates/neo4j-statefulset.yaml).
    for release in primary_tier("prod").of_type(RELEASE):
        pod = _one(prod_renders[release.inputs["name"]], "StatefulSet")["spec"]["template"]["spec"]
        [server] = [c for c in pod["containers"] if c["name"] == "neo4j"]
        startup, readiness = server["startupProbe"], server["readinessProbe"]
        restart = (pod["terminationGracePeriodSeconds"]
                   + startup.get("initialDelaySeconds", 0) + startup["failureThreshold"] * startup["periodSeconds"]
                   + readiness["periodSeconds"])
        assert restart >= 3600 + 5000
        assert release.inputs["timeout"] > restart, release.name
