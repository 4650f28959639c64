"""docs/architecture.md is the synthesized stack drawn: every component, region, cluster,
namespace and flow comes from the resource tree (synth/architecture.py), and the committed file is
exactly what the generator prints today."""

from __future__ import annotations

import copy
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
    # the cluster's region comes from the provider's EKS context (Pulumi.prod.yaml kubernetes.context)
    assert set(arch.namespaces) == {("us-east-1", "intelgraph-prod")}
    assert {"graph", "cache", "dr-verify", "logging"} <= arch.namespaces[("us-east-1", "intelgraph-prod")]
    neo4j = next(c for c in arch.components.values() if c.type == "intelgraph:graph:Neo4jCluster")
    assert arch.where(neo4j) == "us-east-1, cluster intelgraph-prod, namespace graph"


def test_the_flows_are_the_network_policies_between_namespaces_and_to_named_addresses():
    arch = prod_architecture()
    flows = {(arch.describe(f.source), arch.describe(f.target), f.ports, f.name) for f in arch.flows}
    assert ("intelgraph-app (intelgraph-prod)", "graph (intelgraph-prod)", "7687", "neo4j-clients") in flows
    assert ("monitoring (intelgraph-prod)", "cache (intelgraph-prod)", "9121", "redis-metrics") in flows
    assert ("graph (intelgraph-prod)", "network.primary.s3EndpointCidrs (us-east-1)", "443", "backup-s3") in flows
    # a flow between regions: the rehearsal in the primary cluster calls the DR region's RDS API
    assert ("dr-verify (intelgraph-prod)", "pgRestoreRehearsal.drRdsEndpointCidrs (us-west-2)", "443",
            "pg-rehearsal-rds-api") in flows
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


def test_a_second_regional_tier_in_the_dr_cluster_is_drawn_without_a_change_to_the_generator():
    """The DR region's tier (RegionalTier "dr" on its own EKS provider) is derived like the
    primary's: from the tree, the providers' regions and the namespaces."""
    doc = exporter.to_export(synthesized("prod"))
    resources = doc["deployment"]["resources"]
    prefix = "urn:pulumi:prod::intelgraph-platform::"
    eks, aws_primary = f"{prefix}pulumi:providers:kubernetes::eks", f"{prefix}pulumi:providers:aws::aws-primary"
    eks_dr, aws_dr = f"{prefix}pulumi:providers:kubernetes::eks-dr", f"{prefix}pulumi:providers:aws::aws-dr"
    resources.append({"urn": eks_dr, "custom": True, "id": "eks-dr-id", "type": "pulumi:providers:kubernetes",
                      "inputs": {"context": "arn:aws:eks:us-west-2:481236059412:cluster/intelgraph-prod-dr"},
                      "outputs": {}, "parent": STACK_URN})
    tier = next(r for r in resources if r["type"] == "intelgraph:tier:RegionalTier")
    inside, frontier = {tier["urn"]}, True
    while frontier:
        found = {r["urn"] for r in resources if r.get("parent") in inside} - inside
        frontier, inside = bool(found), inside | found
    renamed = {urn: f"{urn}-dr" for urn in inside}
    providers = {eks: eks_dr, aws_primary: aws_dr}
    for r in [r for r in resources if r["urn"] in inside]:
        twin = copy.deepcopy(r)
        twin["urn"] = renamed[r["urn"]]
        twin["parent"] = renamed.get(r.get("parent"), r.get("parent"))
        if r.get("provider"):
            urn, ident = r["provider"].rsplit("::", 1)
            twin["provider"] = f"{providers.get(urn, urn)}::{ident}"
        twin.pop("propertyDependencies", None)
        resources.append(twin)
    arch = prod_architecture(doc)
    assert set(arch.namespaces) == {("us-east-1", "intelgraph-prod"), ("us-west-2", "intelgraph-prod-dr")}
    assert arch.namespaces[("us-west-2", "intelgraph-prod-dr")] >= {"graph", "cache", "dr-verify", "logging"}
    redis_dr = next(c for c in arch.components.values() if c.name == "redis-dr")
    assert arch.where(redis_dr) == "us-west-2, cluster intelgraph-prod-dr, namespace cache"
    diagram = arch.mermaid()
    assert 'subgraph k_us_west_2_intelgraph_prod_dr["EKS cluster intelgraph-prod-dr"]' in diagram
    assert "RegionalTier<br/>primary-dr" in diagram
    # and its flows, in its own cluster
    assert any(f.source == arch.namespace_node("us-west-2", "intelgraph-prod-dr", "intelgraph-app")
               and f.target == arch.namespace_node("us-west-2", "intelgraph-prod-dr", "graph") for f in arch.flows)
    declared, links = mermaid_ids(diagram)
    assert all(a in declared and b in declared for a, b in links)
    assert document(arch, "a test").startswith("# Architecture\n")
