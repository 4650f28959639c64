"""Who reaches the Neo4j servers, judged by network-config-analyzer (nca) over the NetworkPolicies
the stack really creates and pods labelled exactly as the real ones: the servers as the chart
renders them (real helm, real chart), the backup jobs from their CronJob templates.

One identity per job, one flow per need: the backup port 6362 is unauthenticated (Neo4j operations
manual, "Back up an online database": external access to server.backup.listen_address must be
blocked), so only the backup job reaches it; servers speak discovery, cluster, raft and routing to
each other (5000/6000/7000/7688), not Bolt or the backup port.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from synth import helm
from synth.export import kubernetes_objects
from tests.conftest import ROOT, synthesized

NCA = ROOT / ".tools" / "nca" / "bin" / "nca"


@cache
def server_pods() -> tuple[dict, ...]:
    """One pod per distinct server template the chart renders (a primary, a secondary)."""
    releases = sorted(synthesized("prod").of_type("kubernetes:helm.sh/v3:Release"), key=lambda r: r.name)
    pods = []
    for release in (releases[0], releases[-1]):
        objects = helm.render(release.inputs["name"], "graph", "neo4j", release.inputs["values"])
        [statefulset] = [o for o in objects if o["kind"] == "StatefulSet"]
        pods.append(pod(f"{release.inputs['name']}-0", "graph", statefulset["spec"]["template"]["metadata"]["labels"]))
    return tuple(pods)


def pod(name: str, namespace: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]}}


def job_pods(objects: list[dict]) -> list[dict]:
    return [pod(o["metadata"]["name"], o["metadata"]["namespace"],
                o["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
            for o in objects if o["kind"] == "CronJob"]


def nca(tmp_path: Path, query: str, spec: list[dict]) -> subprocess.CompletedProcess:
    assert NCA.exists(), "network-config-analyzer is not installed; run ./dev test (it installs .tools/nca)"
    objects = kubernetes_objects(synthesized("prod"))
    files = {
        "policies.yaml": [o for o in objects if o["kind"] == "NetworkPolicy"],
        "namespaces.yaml": [o for o in objects if o["kind"] == "Namespace"] + [
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
            for n in ("kube-system", "intelgraph-app", "monitoring")],
        "pods.yaml": [*server_pods(), *job_pods(objects)],
        "spec.yaml": spec,
    }
    for name, docs in files.items():
        (tmp_path / name).write_text(yaml.safe_dump_all(docs))
    return subprocess.run([str(NCA), f"--{query}", "spec.yaml", "--base_np_list", "policies.yaml",
                           "--pod_list", "pods.yaml", "--ns_list", "namespaces.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def to_servers(name: str, source: dict, ports: tuple[int, ...], namespace: str = "graph") -> dict:
    """A policy naming connections from ``source`` pods to the servers on ``ports``."""
    peer = {"podSelector": {"matchLabels": source}}
    if namespace != "graph":
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "graph"},
            "spec": {"podSelector": {"matchLabels": {"app": "graph"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [peer], "ports": [{"protocol": "TCP", "port": p} for p in ports]}]}}


def api_egress(cidr: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"api-{cidr.replace('/', '-').replace('.', '-')}", "namespace": "graph"},
            "spec": {"podSelector": {"matchLabels": {"app": "graph"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"protocol": "TCP", "port": 443}]}]}}


JOB = "intelgraph.io/job"


def test_the_stand_ins_carry_the_real_labels():
    assert all(p["metadata"]["labels"]["app"] == "graph" for p in server_pods())
    # Neo4jCluster's pod_selector, which the backup and rotation flows select the servers by,
    # matches the pods the chart renders
    selector = synthesized("prod").named("neo4j", "intelgraph:graph:Neo4jCluster").outputs.get("podSelector")
    assert selector == {"app": "graph"} and all(
        selector.items() <= p["metadata"]["labels"].items() for p in server_pods())
    jobs = {p["metadata"]["name"]: p["metadata"]["labels"] for p in job_pods(kubernetes_objects(synthesized("prod")))}
    assert {labels[JOB] for labels in jobs.values()} == set(jobs)


def test_every_flow_a_server_or_the_backup_needs_is_permitted(tmp_path):
    result = nca(tmp_path, "permits", [
        to_servers("backup-reads-the-backup-port", {JOB: "neo4j-backup"}, (6362,)),
        to_servers("servers-cluster-among-themselves", {"app": "graph"}, (5000, 6000, 7000, 7688)),
        # the kubernetes Service's ClusterIP and the control plane's ENIs behind it
        api_egress("172.20.0.1/32"), api_egress("10.40.0.0/28"), api_egress("10.40.0.16/28"),
    ])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name,source,ports,namespace", [
    # the freshness check only lists S3; it used to share the backup job's labels and so its port
    ("freshness-never-reaches-the-backup-port", {JOB: "neo4j-backup-freshness"}, (6362,), "graph"),
    ("prune-never-reaches-the-backup-port", {JOB: "neo4j-backup-prune"}, (6362,), "graph"),
    ("rehearsal-never-touches-production", {JOB: "neo4j-restore-rehearsal"}, (6362, 7687), "dr-verify"),
    # servers never need each other's Bolt or backup port
    ("servers-do-not-back-each-other-up", {"app": "graph"}, (6362, 7687), "graph"),
])
def test_everything_no_job_needs_is_forbidden(tmp_path, name, source, ports, namespace):
    result = nca(tmp_path, "forbids", [to_servers(name, source, ports, namespace)])
    assert result.returncode == 0, result.stdout + result.stderr
