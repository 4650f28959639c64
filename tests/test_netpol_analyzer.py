"""The connectivity the stack's NetworkPolicies really allow, computed by a real analyzer, equals
the flows the components declare - no more.

network-config-analyzer (np-guard, IBM; PyPI `network-config-analyzer`, run from its own tool
environment `.tools/nca`, which `./dev` installs because it pins PyYAML 6.0.2) reads the synth
manifests - our own objects and the pods the Neo4j releases render - and reports, per pair of
workloads or IP ranges, which protocols and ports get through. It implements the Kubernetes rules
that a hand-made evaluator got wrong (kubernetes.io/docs/concepts/services-networking/
network-policies: a rule with no `to`/`from` matches every peer, a rule with no `ports` every
port; `except` carves out of an ipBlock; `endPort` makes a range; policies are additive; egress of
the source and ingress of the destination must both allow).

The expectation is built from the Flow objects the program hands to WorkloadNamespace (recorded
while synthesizing), with the plain meaning a Flow has: these pods, that peer, those ports.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import settings
from components import egress_policy
from helpers.flows import DNS_PEER, Flow, Peer
from synth import engine, export
from tests.conftest import ROOT, STACKS, config_with
from tests.tools import require_tool

NCA = ROOT / ".tools" / "nca" / "bin" / "nca"
WORKLOADS = {"StatefulSet", "Deployment", "DaemonSet", "CronJob", "Job", "ReplicaSet", "Pod"}
PUBLIC_S3 = ipaddress.ip_address("52.216.0.10")  # the design notes' public S3 range (docs/decisions/009)


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    kind: str
    labels: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:  # as the analyzer names it
        return f"{self.namespace}/{self.name}[{self.kind}]"


def pod_labels(obj: dict) -> dict:
    spec = obj.get("spec", {})
    template = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}) if obj["kind"] != "Pod" else obj
    return template.get("metadata", {}).get("labels") or {}


def workloads_of(objects: list[dict]) -> list[Workload]:
    return [Workload(o["metadata"]["namespace"], o["metadata"]["name"], o["kind"], tuple(sorted(pod_labels(o).items())))
            for o in objects if o["kind"] in WORKLOADS]


def peer_objects(flows: dict[str, tuple[Flow, ...]]) -> list[dict]:
    """The pods outside the stack that its flows name: one per other namespace (application,
    Prometheus) and kube-dns, each in a Namespace labelled as the API server labels it."""
    wanted: dict[str, dict] = {DNS_PEER.namespace: DNS_PEER.pods}
    for flow in (f for fs in flows.values() for f in fs):
        if flow.peer.namespace and flow.peer.namespace not in flows:
            wanted.setdefault(flow.peer.namespace, flow.peer.pods or {"app": "peer"})
    objects = []
    for namespace, labels in sorted(wanted.items()):
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace}}})
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "peer", "namespace": namespace},
                        "spec": {"selector": {"matchLabels": labels}, "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [{"name": "peer", "image": "registry.example/peer:1"}]}}}})
    return objects


# --- what the analyzer says -------------------------------------------------------------------

Conn = tuple[str, str, str, int]  # source id, destination id (workload id or "ip:a-b"), protocol, port
LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conn>.+)$")
GROUP = re.compile(r"\{protocols:(?P<protocols>[A-Z, ]+),dst_ports:(?P<ports>[0-9,-]+)\}")


def _endpoint(text: str) -> str:
    if "[" in text:
        return text
    first, _, last = text.partition("-")
    return f"ip:{first}-{last or first}"


def run_analyzer(directory: Path) -> str:
    done = subprocess.run([require_tool(str(NCA)), "--connectivity", str(directory), "-r", str(directory),
                           "-o", "txt_no_fw_rules"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def parse(output: str) -> set[Conn]:
    conns: set[Conn] = set()
    for line in output.splitlines():
        match = LINE.match(line.strip())
        if not match:
            continue
        src, dst, text = _endpoint(match["src"]), _endpoint(match["dst"]), match["conn"]
        if text == "All connections":
            conns.add((src, dst, "ALL", 0))
            continue
        groups = list(GROUP.finditer(text))
        assert groups and "".join(g[0] for g in groups) == text.replace(";", ""), f"unparsed: {line}"
        for group in groups:
            for protocol in (p.strip() for p in group["protocols"].split(",")):
                for part in group["ports"].split(","):
                    low, _, high = part.partition("-")
                    conns.update((src, dst, protocol, port) for port in range(int(low), int(high or low) + 1))
    return conns


# --- what the components declare ----------------------------------------------------------------

def _selects(selector: dict | None, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def _peer_pods(peer: Peer, flow_namespace: str, everyone: list[Workload]) -> list[Workload]:
    namespace = peer.namespace or flow_namespace
    return [w for w in everyone if w.namespace == namespace and _selects(peer.pods, dict(w.labels))]


def declared(flows: dict[str, tuple[Flow, ...]], everyone: list[Workload]) -> set[Conn]:
    """Connections the flows allow: the source's namespace lets it out (DNS, its egress flows) and
    the destination's lets it in (its ingress flows); a namespace the stack does not manage has no
    policies, so that side is open."""
    dns = Flow("dns", "egress", DNS_PEER, (53,))
    out: dict[str, set[Conn]] = {}
    into: dict[str, set[tuple[str, str, int]]] = {}
    for workload in everyone:
        if workload.namespace not in flows:
            continue
        labels = dict(workload.labels)
        mine = [f for f in flows[workload.namespace] if _selects(f.pods, labels)]
        sends = out.setdefault(workload.id, set())
        for flow in [dns, *mine]:
            protocols = ("UDP", "TCP") if flow is dns else (flow.protocol,)
            if flow.direction == "egress":
                targets = [f"ip:{n[0]}-{n[-1]}" for n in map(ipaddress.ip_network, flow.peer.cidrs)] or \
                          [w.id for w in _peer_pods(flow.peer, workload.namespace, everyone)]
                sends.update((workload.id, t, p, port) for t in targets for p in protocols for port in flow.ports)
            else:
                into.setdefault(workload.id, set()).update(
                    (w.id, p, port) for w in _peer_pods(flow.peer, workload.namespace, everyone)
                    for p in protocols for port in flow.ports)
    managed = {w.id for w in everyone if w.namespace in flows}
    conns: set[Conn] = set()
    for src in everyone:
        for dst in everyone:
            if src == dst:
                continue
            for protocol, port in {(c[2], c[3]) for c in out.get(src.id, ())} | {(c[1], c[2]) for c in into.get(dst.id, ())}:
                leaves = src.id not in managed or (src.id, dst.id, protocol, port) in out[src.id]
                enters = dst.id not in managed or (src.id, protocol, port) in into.get(dst.id, set())
                if leaves and enters:
                    conns.add((src.id, dst.id, protocol, port))
    conns |= {c for sends in out.values() for c in sends if c[1].startswith("ip:")}
    return conns


def _ip_ranges(conns: set[Conn]) -> set[Conn]:
    """IP destinations as single addresses (the analyzer splits and merges ranges its own way)."""
    result = set()
    for src, dst, protocol, port in conns:
        if dst.startswith("ip:"):
            first, last = (int(ipaddress.ip_address(a)) for a in dst[3:].split("-"))
            assert last - first < 4096, f"{src} reaches a wide range {dst} on {protocol}/{port}"
            result.update((src, f"ip:{ipaddress.ip_address(a)}", protocol, port) for a in range(first, last + 1))
        else:
            result.add((src, dst, protocol, port))
    return result


# --- the run ------------------------------------------------------------------------------------

@dataclass
class Analysis:
    stack: str
    flows: dict[str, tuple[Flow, ...]]
    workloads: list[Workload]
    directory: Path
    found: set[Conn]  # everything the analyzer reports that involves a workload of the stack

    def expected(self) -> set[Conn]:
        return _ip_ranges(declared(self.flows, self.workloads))


def analyze(config: dict[str, str] | None, stack: str, directory: Path, cluster: str = "primary") -> Analysis:
    """Synthesize (recording the flows the program declares in ``cluster``), write the manifests as
    synth does, rendered releases included, add the peers outside the stack, run the analyzer over
    that cluster's manifests."""
    flows: dict[str, tuple[Flow, ...]] = {}
    original = egress_policy.WorkloadNamespace.__init__

    def recording(self, name, args, opts=None):
        # each region's tier declares its namespaces' flows; the RegionalTier is the parent
        if getattr(getattr(opts, "parent", None), "_tier_name", "primary") == cluster:
            flows[args.namespace] = args.flows
        original(self, name, args, opts)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(egress_policy.WorkloadNamespace, "__init__", recording)
        synthesis = engine.synthesize(stack, config if config is not None else engine.stack_config(stack))
    document = export.to_export(synthesis)
    export.write(synthesis, directory / "build", document, export.render_releases(document))
    # the cluster's files alone: the analyzer reads a directory recursively, and the primary's
    # (manifests/) holds the DR cluster's (manifests/dr/), whose policies would open paths here
    manifests = directory / f"manifests-{cluster}"
    manifests.mkdir()
    for path in export.manifest_dir(directory / "build", cluster).glob("*.yaml"):
        shutil.copy(path, manifests / path.name)
    peers = peer_objects(flows)
    (manifests / "peers-outside-the-stack.yaml").write_text(yaml.safe_dump_all(peers))
    objects = [yaml.safe_load(p.read_text()) for p in sorted(manifests.glob("*.yaml"))
               if p.name != "peers-outside-the-stack.yaml"]
    return _run(Analysis(stack, flows, workloads_of(objects + peers), manifests, set()))


def _run(analysis: Analysis) -> Analysis:
    managed = {w.id for w in analysis.workloads if w.namespace in analysis.flows}
    found = {c for c in parse(run_analyzer(analysis.directory)) if c[0] in managed or c[1] in managed}
    analysis.found = _ip_ranges(found)
    return analysis


def reanalyze(analysis: Analysis, directory: Path, edit) -> Analysis:
    """The same manifests with one edit, analyzed again (same workloads and declared flows)."""
    copy = directory / "manifests"
    shutil.copytree(analysis.directory, copy)
    edit(copy)
    return _run(Analysis(analysis.stack, analysis.flows, analysis.workloads, copy, set()))


@pytest.fixture(scope="module", params=STACKS)
def analysis(request, tmp_path_factory) -> Analysis:
    return analyze(None, request.param, tmp_path_factory.mktemp(f"nca-{request.param}"))


@pytest.fixture(scope="module", params=STACKS)
def dr_analysis(request, tmp_path_factory) -> Analysis:
    return analyze(None, request.param, tmp_path_factory.mktemp(f"nca-dr-{request.param}"), cluster="dr")


def test_the_dr_clusters_connectivity_equals_its_declared_flows_no_more(dr_analysis):
    """The DR region's tier, judged by the same analyzer over the DR cluster's own manifests."""
    expected, found = dr_analysis.expected(), dr_analysis.found
    neo4j = settings.validate(engine.stack_config(dr_analysis.stack)).neo4j
    # a pilot-light region declares the graph's flows before any server runs there
    idle = {neo4j.namespace} if neo4j.dr.mode == "pilot-light" else set()
    assert expected and {w.namespace for w in dr_analysis.workloads} >= set(dr_analysis.flows) - idle
    assert found - expected == set(), "allowed but never declared"
    assert expected - found == set(), "declared but blocked"
    for src, dst, protocol, port in found:
        assert protocol != "ALL", (src, dst)
        if dst.startswith("ip:"):
            assert ipaddress.ip_address(dst[3:]).is_private, (src, dst, port)


def test_the_analyzer_sees_the_rendered_neo4j_servers_and_every_workload(analysis):
    servers = [w for w in analysis.workloads if w.kind == "StatefulSet" and w.namespace == "graph"]
    assert servers and all(w.name.startswith("graph-server-") for w in servers)
    assert {w.namespace for w in analysis.workloads} >= set(analysis.flows)
    # each server reaches the others on the raft/discovery/bolt ports, as the analyzer computes it
    assert (servers[0].id, servers[-1].id, "TCP", 7000) in analysis.found


def test_the_connectivity_equals_the_declared_flows_no_more(analysis):
    expected, found = analysis.expected(), analysis.found
    assert expected, "no declared flow reaches anything"
    assert found - expected == set(), "allowed but never declared"
    assert expected - found == set(), "declared but blocked"


def test_nothing_reaches_public_s3_or_the_internet_and_the_rehearsal_never_touches_production(analysis):
    for src, dst, protocol, port in analysis.found:
        assert protocol != "ALL", (src, dst)
        if dst.startswith("ip:"):
            assert ipaddress.ip_address(dst[3:]).is_private, (src, dst, port)
            assert ipaddress.ip_address(dst[3:]) != PUBLIC_S3
        if src.startswith("dr-verify/"):
            assert not dst.startswith("graph/"), (src, dst, port)


# Independent of the declarations: connections no flow may ever open (prefixes of analyzer ids).
NEVER = [
    ("cache/", "graph/", None),                 # the cache talks to nobody outside its namespace
    ("cache/", "ip:", None),
    ("graph/graph-server-", "cache/", None),    # cross-namespace without a declared flow
    ("graph/graph-server-", "graph/graph-server-", 2004),  # metrics are for Prometheus
    ("intelgraph-app/", "graph/", 7000),        # clients get Bolt, not raft
    ("intelgraph-app/", "cache/", 9121),        # nor the exporter
    ("monitoring/", "graph/", 7687),            # Prometheus scrapes, it does not query
]


@pytest.mark.parametrize("src,dst,port", NEVER)
def test_everything_else_is_denied(analysis, src, dst, port):
    hits = [c for c in analysis.found if c[0].startswith(src) and c[1].startswith(dst) and port in (None, c[3])]
    assert hits == []


def test_servers_never_reach_s3_only_backup_jobs_do(analysis):
    s3 = {f"ip:{a}" for f in analysis.flows["graph"] if f.name == "backup-s3"
          for cidr in f.peer.cidrs for a in ipaddress.ip_network(cidr)}
    assert s3
    reach = {c[0] for c in analysis.found if c[1] in s3}
    backup_jobs = {w.id for w in analysis.workloads
                   if w.kind == "CronJob" and dict(w.labels).get("intelgraph.io/backup") == "neo4j"}
    # besides the backup jobs only the log shipper, which writes the scrubbed logs to the logs bucket
    assert "graph/neo4j-backup[CronJob]" in reach and reach <= backup_jobs | {"logging/fluent-bit[DaemonSet]"}


def test_a_rule_without_ports_opens_every_port_and_the_comparison_notices(analysis, tmp_path):
    """The trap the hand-made evaluator fell into: it read a rule without `ports` as allowing no
    port; Kubernetes reads it as every port (NetworkPolicyEgressRule.ports: "If this field is
    empty or missing, this rule matches all ports")."""
    s3: set[str] = set()

    def drop_ports(manifests: Path) -> None:
        path = manifests / "graph_NetworkPolicy_graph-backup-s3.yaml"
        policy = yaml.safe_load(path.read_text())
        [rule] = policy["spec"]["egress"]
        assert rule.pop("ports") == [{"port": 443, "protocol": "TCP"}]
        s3.update(str(a) for peer in rule["to"] for a in ipaddress.ip_network(peer["ipBlock"]["cidr"]))
        path.write_text(yaml.safe_dump(policy))

    broken = reanalyze(analysis, tmp_path, drop_ports)
    more = broken.found - broken.expected()
    backup = "graph/neo4j-backup[CronJob]"
    assert s3 and {(backup, f"ip:{ip}", "ALL", 0) for ip in s3} <= more


def test_allowlist_entries_from_config_open_exactly_their_cidr_and_ports(tmp_path):
    entry = {"namespace": "graph", "cidr": "10.60.4.0/24", "ports": [8443],
             "reason": "licence server for the enterprise edition"}
    result = analyze(config_with("prod", {"egress.allowlist": [entry]}), "prod", tmp_path)
    policy = yaml.safe_load((result.directory / "graph_NetworkPolicy_graph-allowlist-0.yaml").read_text())
    assert policy["metadata"]["annotations"]["intelgraph.io/reason"] == entry["reason"]
    assert result.found == result.expected()
    reached = {(c[0], c[1]) for c in result.found if c[3] == 8443}
    assert ("graph/graph-server-1[StatefulSet]", "ip:10.60.4.7") in reached
    assert not any(c[1].startswith("ip:10.60.4.") and c[3] != 8443 for c in result.found)
