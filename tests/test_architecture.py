"""docs/architecture.md is the synthesized stack drawn: every component, region, cluster,
namespace and flow comes from the resource tree (synth/architecture.py), and the committed file is
exactly what the generator prints today."""

from __future__ import annotations

import re

from synth import engine
from synth import export as exporter
from synth.architecture import COMMAND, Architecture, config_names, document, generate
from tests.conftest import ROOT, synthesized

STACK_URN = "urn:pulumi:prod::intelgraph-platform::pulumi:pulumi:Stack::intelgraph-platform-prod"


def prod_architecture(doc: dict | None = None) -> Architecture:
    names, vpcs = config_names(engine.stack_config("prod"), engine.PROJECT)
    return Architecture(doc or exporter.to_export(synthesized("prod")), names, vpcs)


def mermaid_ids(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """The ids a flowchart declares (nodes and subgraphs) and the ends of its links; subgraphs
    must close."""
    declared, links, depth = set(), [], 0
    for line in text.splitlines()[1:]:
        line = line.strip()
        if line == "end":
            depth -= 1
            continue
        if line.startswith("subgraph "):
            depth += 1
            declared.add(line.split()[1].split("[")[0])
            continue
        link = re.match(r'^(\w+) (-->|-\.-)\|"[^"]*"\| (\w+)$', line)
        if link:
            links.append((link.group(1), link.group(3)))
            continue
        node = re.match(r'^(\w+)(\[|\(\[)', line)
        assert node, f"not a node, subgraph or link: {line}"
        declared.add(node.group(1))
    assert depth == 0, "a subgraph is not closed"
    return declared, links


def test_the_committed_diagram_is_current():
    committed = (ROOT / "docs" / "architecture.md").read_text()
    assert committed == generate("prod"), f"docs/architecture.md is stale: run `{COMMAND}`"


def test_every_component_of_the_stack_is_drawn_in_each_region_it_has_resources_in():
    synthesis = synthesized("prod")
    arch = prod_architecture()
    diagram = arch.mermaid()
    components = [r for r in synthesis.resources if not r.custom and r.type != engine.STACK_TYPE]
    assert len(components) >= 15
    for r in components:
        assert f"{r.type.rsplit(':', 1)[1]}<br/>{r.name}\"" in diagram, r.urn
    # the PostgreSQL pair is one component with a primary in one region and a replica in the other
    pg = arch.components[next(r.urn for r in components if r.type == "intelgraph:database:PostgresDr")]
    assert set(arch.parts(pg)) == {"us-east-1", "us-west-2"}
    declared, links = mermaid_ids(diagram)
    assert all(a in declared and b in declared for a, b in links), "a link ends at an undeclared id"


def test_namespaces_sit_in_their_cluster_in_its_region():
    arch = prod_architecture()
    # each cluster's region comes from its provider's EKS context (Pulumi.prod.yaml kubernetes.<role>.context)
    assert set(arch.namespaces) == {("us-east-1", "intelgraph-prod"), ("us-west-2", "intelgraph-prod-dr")}
    assert {"graph", "cache", "logging"} <= arch.namespaces[("us-east-1", "intelgraph-prod")]
    # both restore rehearsals run in the DR cluster (decision 018 and the Neo4j one from the DR bucket)
    assert "dr-verify" in arch.namespaces[("us-west-2", "intelgraph-prod-dr")]
    assert "dr-verify" not in arch.namespaces[("us-east-1", "intelgraph-prod")]
    neo4j = next(c for c in arch.components.values() if c.name == "neo4j")
    # the servers in graph, the application's credentials in its own namespace
    assert arch.where(neo4j) == "us-east-1, cluster intelgraph-prod (namespaces graph, intelgraph-app)"


def test_the_flows_are_the_network_policies_between_namespaces_and_to_named_addresses():
    arch = prod_architecture()
    flows = {(arch.describe(f.source), arch.describe(f.target), f.ports, f.name) for f in arch.flows}
    assert ("intelgraph-app (intelgraph-prod)", "graph (intelgraph-prod)", "7687", "neo4j-clients") in flows
    assert ("monitoring (intelgraph-prod)", "cache (intelgraph-prod)", "9121", "redis-metrics") in flows
    assert ("graph (intelgraph-prod)", "network.primary.s3.cidrs (us-east-1)", "443", "backup-s3") in flows
    # the PostgreSQL rehearsal runs in the DR cluster (decision 018) and calls its region's RDS API
    assert ("dr-verify (intelgraph-prod-dr)", "pgRestoreRehearsal.drRdsEndpointCidrs (us-west-2)", "443",
            "pg-rehearsal-rds-api") in flows
    assert not any(f[3].startswith("pg-rehearsal") for f in flows if f[0] == "dr-verify (intelgraph-prod)")
    # inside one namespace (the Neo4j peers) is not a flow between namespaces
    assert not any(name == "neo4j-peers-out" for *_, name in flows)
    # every NetworkPolicy that names another namespace or addresses is drawn, by its flow name
    synthesis = synthesized("prod")
    expected = set()
    for r in synthesis.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        namespace, spec = r.inputs["metadata"]["namespace"], r.inputs["spec"]
        peers = [peer for rule in spec.get("egress", []) for peer in rule["to"]] + \
                [peer for rule in spec.get("ingress", []) for peer in rule["from"]]
        if any("ipBlock" in p or p.get("namespaceSelector", {}).get("matchLabels", {}).get(
                "kubernetes.io/metadata.name", namespace) != namespace for p in peers):
            expected.add(r.inputs["metadata"]["name"].removeprefix(f"{namespace}-"))
    assert len(expected) > 10 and expected == {f.name for f in arch.flows}


def test_references_between_regions_name_the_property():
    arch = prod_architecture()
    text = {(arch.describe(a), arch.describe(b)): keys for (a, b), keys in arch.references.items()}
    assert "Instance.replicateSourceDb" in text[("PostgresDr intelgraph-pg (us-east-1)",
                                                 "PostgresDr intelgraph-pg (us-west-2)")]
    assert "BucketReplicationConfig.rules" in text[("BackupBucket neo4j-backups (us-west-2)",
                                                    "BackupBucket neo4j-backups (us-east-1)")]


def test_the_dr_regions_tier_is_drawn_in_its_own_cluster():
    """The DR region's tier (RegionalTier "dr" on the eks-dr provider) is derived like the
    primary's: from the tree, the providers' regions and the namespaces."""
    arch = prod_architecture()
    assert arch.namespaces[("us-west-2", "intelgraph-prod-dr")] >= {"graph", "cache", "logging"}
    redis_dr = next(c for c in arch.components.values() if c.name == "redis-dr")
    assert arch.where(redis_dr).startswith("us-west-2, cluster intelgraph-prod-dr (namespaces cache")
    diagram = arch.mermaid()
    assert 'subgraph k_us_west_2_intelgraph_prod_dr["EKS cluster intelgraph-prod-dr"]' in diagram
    assert "RegionalTier<br/>dr" in diagram
    # and its flows, in its own cluster
    assert any(f.source == arch.namespace_node("us-west-2", "intelgraph-prod-dr", "intelgraph-app")
               and f.target == arch.namespace_node("us-west-2", "intelgraph-prod-dr", "graph") for f in arch.flows)
    declared, links = mermaid_ids(diagram)
    assert all(a in declared and b in declared for a, b in links)
    assert document(arch, "a test").startswith("# Architecture\n")
