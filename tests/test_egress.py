"""Workload namespaces: closed by default, DNS on both protocols, each component's declared flows
reachable, and nothing else - checked by evaluating the policies the stack really creates."""

from __future__ import annotations

import pytest

import settings
from components.egress_policy import Flow, Peer
from synth.export import kubernetes_objects
from tests.conftest import config_with, synthesized
from tests.netpol import Endpoint, allowed

WORKLOAD_KINDS = ("StatefulSet", "CronJob", "Deployment", "DaemonSet", "Job")
S3_ENDPOINT, STS_ENDPOINT = "10.40.2.112", "10.40.1.52"
PUBLIC_S3 = "52.216.0.10"  # the seed's hard-coded public S3 range
NEO4J = Endpoint.pod("graph", {"app": "graph"})
NEO4J_OPERATIONS = Endpoint.pod("graph", {"app": "neo4j-operations"})
BACKUP = Endpoint.pod("graph", {"intelgraph.io/backup": "neo4j"})
REHEARSAL = Endpoint.pod("dr-verify", {"intelgraph.io/backup": "neo4j"})
REDIS = Endpoint.pod("cache", {"app.kubernetes.io/name": "redis", "app.kubernetes.io/component": "cache"})
APP = Endpoint.pod("intelgraph-app", {"app": "api"})
PROMETHEUS = Endpoint.pod("monitoring", {"app": "prometheus"})
DNS = Endpoint.pod("kube-system", {"k8s-app": "kube-dns"})


def objects(stack: str = "prod") -> list[dict]:
    return kubernetes_objects(synthesized(stack))


def policies(stack: str = "prod") -> list[dict]:
    return [o for o in objects(stack) if o["kind"] == "NetworkPolicy"]


def workload_namespaces(stack: str) -> set[str]:
    found = {o["metadata"]["namespace"] for o in objects(stack) if o["kind"] in WORKLOAD_KINDS}
    found |= {r.inputs["namespace"] for r in synthesized(stack).of_type("kubernetes:helm.sh/v3:Release")}
    return found


def test_the_endpoints_are_the_pods_the_stack_runs(prod):
    """The evaluator's pods carry the labels the real pod templates carry."""
    statefulset = prod.named("redis", "kubernetes:apps/v1:StatefulSet").inputs
    assert dict(REDIS.labels).items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    backup = prod.named("neo4j-backup", "kubernetes:batch/v1:CronJob").inputs
    assert dict(BACKUP.labels).items() <= backup["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_every_workload_namespace_is_closed_by_default_and_has_dns(stack):
    namespaces = workload_namespaces(stack)
    assert namespaces == {"graph", "dr-verify", "cache", "logging"}
    for ns in namespaces:
        mine = [p for p in policies(stack) if p["metadata"]["namespace"] == ns]
        deny = [p for p in mine if p["spec"]["podSelector"] == {"matchLabels": {}}
                and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
        assert deny, f"{ns} has no default-deny"
        [dns] = [p for p in mine if p["metadata"]["name"].endswith("allow-dns")]
        [rule] = dns["spec"]["egress"]
        assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}
        # namespace and pod selector in ONE element: kube-dns pods in kube-system, not either
        assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_namespaces_enforce_pod_security(stack):
    levels = {o["metadata"]["name"]: o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for o in objects(stack) if o["kind"] == "Namespace"}
    # logging: the shipper's read-only hostPath (test_log_shipper)
    assert levels == {"graph": "baseline", "dr-verify": "restricted", "cache": "restricted", "logging": "privileged"}


@pytest.mark.parametrize("source,destination,port,protocol", [
    (NEO4J, DNS, 53, "UDP"), (NEO4J, DNS, 53, "TCP"), (REDIS, DNS, 53, "UDP"),
    (NEO4J, NEO4J, 5000, "TCP"), (NEO4J, NEO4J, 6000, "TCP"), (NEO4J, NEO4J, 7000, "TCP"),
    (NEO4J, NEO4J, 7687, "TCP"), (NEO4J, NEO4J, 7688, "TCP"), (NEO4J, NEO4J, 6362, "TCP"),
    (NEO4J, Endpoint(ip="10.40.0.5"), 443, "TCP"),  # Kubernetes API for discovery
    (NEO4J_OPERATIONS, NEO4J, 7687, "TCP"),
    (BACKUP, NEO4J, 6362, "TCP"), (BACKUP, Endpoint(ip=S3_ENDPOINT), 443, "TCP"),
    (BACKUP, Endpoint(ip=STS_ENDPOINT), 443, "TCP"), (REHEARSAL, Endpoint(ip=S3_ENDPOINT), 443, "TCP"),
    (APP, NEO4J, 7687, "TCP"), (APP, REDIS, 6379, "TCP"),
    (PROMETHEUS, NEO4J, 2004, "TCP"), (PROMETHEUS, REDIS, 9121, "TCP"),
])
def test_declared_flows_are_reachable(source, destination, port, protocol):
    assert allowed(policies(), source, destination, port, protocol)


@pytest.mark.parametrize("source,destination,port", [
    (BACKUP, Endpoint(ip=PUBLIC_S3), 443),           # public S3 ranges: never
    (NEO4J, Endpoint(ip="1.1.1.1"), 443),            # the internet
    (NEO4J, Endpoint(ip=S3_ENDPOINT), 443),          # servers do not talk to S3, only backup jobs
    (REDIS, NEO4J, 7687), (REDIS, Endpoint(ip=S3_ENDPOINT), 443), (REDIS, Endpoint(ip="10.40.0.5"), 443),
    (NEO4J, REDIS, 6379),                            # cross-namespace without a declared flow
    (APP, NEO4J, 7000),                              # clients get Bolt, not raft
    (APP, REDIS, 9121),
    (REHEARSAL, NEO4J, 6362),                        # the rehearsal never touches production
    (NEO4J, NEO4J, 2004),                            # metrics are for Prometheus
])
def test_everything_else_is_denied(source, destination, port):
    assert not allowed(policies(), source, destination, port)


def test_no_policy_opens_the_internet():
    for policy in policies("prod") + policies("stage"):
        for direction in ("egress", "ingress"):
            for rule in policy["spec"].get(direction, []):
                for peer in rule.get("to", []) + rule.get("from", []):
                    assert peer.get("ipBlock", {}).get("cidr") not in ("0.0.0.0/0", "::/0")


def test_allowlist_entries_from_config_land_in_their_namespace_with_their_reason():
    from synth import engine

    entry = {"namespace": "graph", "cidr": "10.60.4.0/24", "ports": [8443],
             "reason": "licence server for the enterprise edition"}
    synthesis = engine.synthesize("prod", config_with("prod", {"egress.allowlist": [entry]}))
    [policy] = [o for o in kubernetes_objects(synthesis)
                if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "graph-allowlist-0"]
    assert policy["metadata"]["annotations"]["intelgraph.io/reason"] == entry["reason"]
    assert policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "10.60.4.0/24"}}],
                                         "ports": [{"port": 8443, "protocol": "TCP"}]}]
    assert allowed([o for o in kubernetes_objects(synthesis) if o["kind"] == "NetworkPolicy"],
                   NEO4J, Endpoint(ip="10.60.4.7"), 8443)


@pytest.mark.parametrize("entry,key,words", [
    ({"namespace": "graph", "cidr": "0.0.0.0/0", "ports": [443], "reason": "everything is fine"},
     "egress.allowlist.0.cidr", "whole internet"),
    ({"namespace": "graph", "cidr": "10.0.0.0/8", "ports": [], "reason": "all ports please"},
     "egress.allowlist.0.ports", "at least 1 item"),
    ({"namespace": "graph", "cidr": "10.0.0.0/8", "ports": [443], "reason": "x"},
     "egress.allowlist.0.reason", "at least 10 characters"),
    ({"namespace": "Graph!", "cidr": "10.0.0.0/8", "ports": [443], "reason": "a good reason here"},
     "egress.allowlist.0.namespace", "pattern"),
    ({"namespace": "graph", "cidr": "10.0.0.0/8", "ports": [70000], "reason": "a good reason here"},
     "egress.allowlist.0.ports.0", "less than or equal to 65535"),
])
def test_bad_allowlist_entries_are_rejected_with_the_key_named(entry, key, words):
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config_with("prod", {"egress.allowlist": [entry]}))
    [problem] = [p for p in raised.value.problems if p.startswith(f"intelgraph-platform:{key}:")]
    assert words in problem


def test_a_flow_to_the_internet_or_on_every_port_cannot_be_declared():
    with pytest.raises(ValueError, match="whole internet"):
        Flow("x", "egress", Peer(cidrs=("0.0.0.0/0",)), (443,))
    with pytest.raises(ValueError, match="name the ports"):
        Flow("x", "egress", Peer(cidrs=("10.0.0.0/8",)), ())
