"""What the real Neo4j chart does with the releases' values: rendered with the real helm over the
official chart source (../shared/charts/neo4j, chart 5.17.0 while the program pins 5.26.16; see its
PROVENANCE.md). Where a proof rests on a template only newer charts have, the test says so.

Each stack's releases are rendered once per module (helm is slow on a shared machine)."""

from __future__ import annotations

import pytest

import settings
from synth import helm
from tests.conftest import config_with, synthesized

RELEASE = "kubernetes:helm.sh/v3:Release"


def _render(release) -> list[dict]:
    return helm.render(release.inputs["name"], release.inputs["namespace"], "neo4j", release.inputs["values"])


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, list[dict]]]:
    """stack -> release name -> the objects that release renders."""
    return {stack: {r.inputs["name"]: _render(r) for r in synthesized(stack).of_type(RELEASE)}
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
