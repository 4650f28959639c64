"""Workload namespaces: closed by default, DNS on both protocols, Pod Security labels, reviewed
allowlist entries. What the policies allow is computed by a real analyzer in test_netpol_analyzer."""

from __future__ import annotations

import pytest

import settings
from helpers.flows import Flow, Peer
from synth.export import kubernetes_objects
from tests.conftest import config_with, in_tier, synthesized

WORKLOAD_KINDS = ("StatefulSet", "CronJob", "Deployment", "DaemonSet", "Job")


# What each region's cluster runs: the restore rehearsals (dr-verify) run in the DR cluster, where the
# replicated backups are and where they keep running when the primary region is lost.
NAMESPACES = {"primary": {"graph", "cache", "logging"}, "dr": {"graph", "dr-verify", "cache", "logging"}}


def objects(stack: str = "prod", role: str = "primary") -> list[dict]:
    return kubernetes_objects(synthesized(stack), role)


def policies(stack: str = "prod", role: str = "primary") -> list[dict]:
    return [o for o in objects(stack, role) if o["kind"] == "NetworkPolicy"]


def workload_namespaces(stack: str, role: str) -> set[str]:
    found = {o["metadata"]["namespace"] for o in objects(stack, role) if o["kind"] in WORKLOAD_KINDS}
    found |= {r.inputs["namespace"] for r in in_tier(synthesized(stack), role).of_type("kubernetes:helm.sh/v3:Release")}
    return found


@pytest.mark.parametrize("role", ["primary", "dr"])
@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_every_workload_namespace_is_closed_by_default_and_has_dns(stack, role):
    namespaces = workload_namespaces(stack, role)
    assert namespaces == NAMESPACES[role]
    for ns in namespaces:
        mine = [p for p in policies(stack, role) if p["metadata"]["namespace"] == ns]
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


@pytest.mark.parametrize("role", ["primary", "dr"])
@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_namespaces_enforce_pod_security(stack, role):
    levels = {o["metadata"]["name"]: o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for o in objects(stack, role) if o["kind"] == "Namespace"}
    # every workload, the chart's Neo4j servers included, meets the restricted profile (the
    # k8s-* rules judge the rendered pods), so no namespace needs baseline; logging: the shipper's
    # read-only hostPath (test_log_shipper)
    assert levels == {ns: "privileged" if ns == "logging" else "restricted" for ns in NAMESPACES[role]}
    # and every namespace, logging too, warns and audits at restricted, against the latest profile
    for o in objects(stack, role):
        if o["kind"] == "Namespace":
            labels = o["metadata"]["labels"]
            assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
            assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"


def test_no_policy_opens_the_internet():
    for policy in policies("prod") + policies("stage"):
        for direction in ("egress", "ingress"):
            for rule in policy["spec"].get(direction, []):
                for peer in rule.get("to", []) + rule.get("from", []):
                    assert peer.get("ipBlock", {}).get("cidr") not in ("0.0.0.0/0", "::/0")


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
