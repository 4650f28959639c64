"""Neo4jCluster: a Neo4j 5 cluster from the official neo4j/neo4j Helm chart.

Neo4j 5 has no core/read-replica chart (that was the retired 4.x Labs chart): a cluster is one
Helm release per server, all sharing ``neo4j.name``, each waiting for ``minimumClusterSize``
primaries. Extra servers are constrained to SECONDARY mode and enabled by the chart's operations
pod. Releases use ``helm.v3.Release`` (real Helm, so the chart's lookups and hooks run).

Memory is derived from the container limit: 1 GiB stays outside the JVM (native memory,
metaspace, the OS page tables), half of the rest is heap (initial = max, so the heap never
resizes under load) and the other half page cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.egress_policy import Flow, Peer
from components.kube import pod_disruption_budget, prometheus_rule, service_monitor
from components.neo4j_password import admin_secret
from components.validation import require

CHART = "neo4j"
CHART_REPO = "https://helm.neo4j.com/neo4j"
GIB = 2**30
MIB = 2**20
NON_HEAP_BYTES = GIB
MAX_HEAP_BYTES = 31 * GIB  # above ~31 GiB the JVM loses compressed object pointers
METRICS_PORT = 2004
BOLT_PORT = 7687
BACKUP_PORT = 6362
# discovery, transactions, raft, bolt, bolt routing, backup: what cluster members say to each other
PEER_PORTS = (5000, 6000, 7000, BOLT_PORT, 7688, BACKUP_PORT)


@dataclass(frozen=True)
class MemoryPlan:
    limit_bytes: int
    heap_bytes: int
    pagecache_bytes: int

    @property
    def heap(self) -> str:
        return f"{self.heap_bytes // MIB}m"

    @property
    def pagecache(self) -> str:
        return f"{self.pagecache_bytes // MIB}m"


def memory_plan(limit_bytes: int) -> MemoryPlan:
    """Heap + page cache + 1 GiB <= the container limit; reject limits where that cannot hold."""
    usable = limit_bytes - NON_HEAP_BYTES
    if usable < GIB:
        raise ValueError(
            f"memory limit {limit_bytes / GIB:.2f} GiB is too small for Neo4j: heap + page cache "
            f"+ 1 GiB of non-heap memory needs at least 2 GiB"
        )
    heap = min(MAX_HEAP_BYTES, usable // 2) // MIB * MIB
    pagecache = (usable - heap) // MIB * MIB
    return MemoryPlan(limit_bytes, heap, pagecache)


@dataclass(frozen=True)
class Neo4jClusterArgs:
    namespace: str
    cluster_name: str
    chart_version: str
    image: str
    accept_license_agreement: str
    primaries: int
    secondaries: int
    cpu_request: str
    cpu_limit: str
    memory: str  # request = limit
    memory_bytes: int
    storage_class: str
    storage_size: str
    prometheus_release_label: str
    password_epoch: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.password_epoch < 0:
            problems.append("password_epoch cannot be negative")
        if self.primaries < 1:
            problems.append("primaries must be at least 1")
        if self.primaries == 2:
            problems.append("primaries must not be 2: two primaries lose quorum when either fails; use 1 or 3+")
        if self.secondaries < 0:
            problems.append("secondaries cannot be negative")
        if ":" not in self.image or "enterprise" not in self.image:
            problems.append("image must be a pinned enterprise image (clustering is Enterprise-only)")
        require("Neo4jClusterArgs", problems)
        memory_plan(self.memory_bytes)  # raises with the reason

    @property
    def servers(self) -> int:
        return self.primaries + self.secondaries


class Neo4jCluster(pulumi.ComponentResource):
    release_names: list[str]
    secondary_release_names: list[str]
    password_secret_name: str

    def __init__(self, name: str, args: Neo4jClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:graph:Neo4jCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        self.plan = memory_plan(args.memory_bytes)

        self.password_secret_name = f"{args.cluster_name}-auth"
        # a new password epoch changes the password in the database before this Secret flips
        auth = admin_secret(name, secret_name=self.password_secret_name, namespace=args.namespace,
                            cluster_name=args.cluster_name, image=args.image, epoch=args.password_epoch,
                            opts=child)

        self.release_names = [f"{args.cluster_name}-server-{i}" for i in range(1, args.servers + 1)]
        self.secondary_release_names = self.release_names[args.primaries:]
        releases = [
            k8s.helm.v3.Release(
                release,
                name=release,
                chart=CHART,
                version=args.chart_version,
                repository_opts={"repo": CHART_REPO},
                namespace=args.namespace,
                values=self.values(secondary=release in self.secondary_release_names),
                # Server startup waits for the whole cluster to form; give Helm time for it.
                timeout=900,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[auth]),
            )
            for release in self.release_names
        ]

        selector = {"app": args.cluster_name}
        pod_disruption_budget(f"{name}-pdb", args.namespace, selector, max_unavailable=1, opts=child)
        service_monitor(
            f"{name}-metrics",
            namespace=args.namespace,
            release_label=args.prometheus_release_label,
            selector={"helm.neo4j.com/service": "admin", "helm.neo4j.com/neo4j.name": args.cluster_name},
            port="tcp-prometheus",
            opts=pulumi.ResourceOptions(parent=self, depends_on=releases),
        )
        prometheus_rule(f"{name}-rules", namespace=args.namespace,
                        release_label=args.prometheus_release_label, groups=GRAPH_SLI_RULES, opts=child)
        self.register_outputs({
            "releaseNames": self.release_names,
            "secondaryReleaseNames": self.secondary_release_names,
            "heap": self.plan.heap,
            "pagecache": self.plan.pagecache,
        })

    def values(self, secondary: bool) -> dict:
        """Chart values for one server; only the mode constraint differs between servers."""
        args, plan = self._args, self.plan
        config = {
            "server.memory.heap.initial_size": plan.heap,
            "server.memory.heap.max_size": plan.heap,
            "server.memory.pagecache.size": plan.pagecache,
            "server.metrics.enabled": "true",
            "server.metrics.prometheus.enabled": "true",
            "server.metrics.prometheus.endpoint": f"0.0.0.0:{METRICS_PORT}",
            "server.metrics.csv.enabled": "false",
            # New databases get every primary and the secondaries as read copies.
            "initial.dbms.default_primaries_count": str(args.primaries),
            "initial.dbms.default_secondaries_count": str(args.secondaries),
        }
        if secondary:
            config["initial.server.mode_constraint"] = "SECONDARY"
        cluster_selector = {"matchLabels": {"app": args.cluster_name}}
        return {
            "neo4j": {
                "name": args.cluster_name,
                "edition": "enterprise",
                "acceptLicenseAgreement": args.accept_license_agreement,
                "minimumClusterSize": args.primaries,
                "passwordFromSecret": self.password_secret_name,
                "resources": {
                    "requests": {"cpu": args.cpu_request, "memory": args.memory},
                    "limits": {"cpu": args.cpu_limit, "memory": args.memory},
                },
                # The operations pod enables servers that join after the cluster formed.
                **({"operations": {"enableServer": True}} if secondary else {}),
            },
            "image": {"customImage": args.image},
            "volumes": {"data": {"mode": "dynamic", "dynamic": {
                "storageClassName": args.storage_class,
                "accessModes": ["ReadWriteOnce"],
                "requests": {"storage": args.storage_size},
            }}},
            # Internal platform: no cloud load balancer for the cluster.
            "services": {"neo4j": {"enabled": True, "spec": {"type": "ClusterIP"}}},
            "config": config,
            "securityContext": {
                "runAsNonRoot": True, "runAsUser": 7474, "runAsGroup": 7474, "fsGroup": 7474,
                "fsGroupChangePolicy": "OnRootMismatch",
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containerSecurityContext": {
                "runAsNonRoot": True, "runAsUser": 7474, "runAsGroup": 7474,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            "podSpec": {
                # One server per node, and spread over zones where the scheduler can.
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": cluster_selector, "topologyKey": "kubernetes.io/hostname"}],
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                        "labelSelector": cluster_selector, "topologyKey": "topology.kubernetes.io/zone"}}],
                },
            },
        }


def cluster_flows(cluster_name: str, api_server_cidrs: tuple[str, ...], client_namespace: str,
                  monitoring_namespace: str) -> tuple[Flow, ...]:
    """What a Neo4j cluster needs on the network, for its namespace's policies."""
    servers = {"app": cluster_name}
    operations = {"app": "neo4j-operations"}
    return (
        Flow("neo4j-peers-out", "egress", Peer(pods=servers), PEER_PORTS, pods=servers,
             reason="cluster members replicate, elect and route among themselves"),
        Flow("neo4j-peers-in", "ingress", Peer(pods=servers), PEER_PORTS, pods=servers,
             reason="cluster members replicate, elect and route among themselves"),
        Flow("neo4j-kubernetes-api", "egress", Peer(cidrs=api_server_cidrs), (443,), pods=servers,
             reason="Kubernetes service discovery finds the other cluster members"),
        Flow("neo4j-operations-api", "egress", Peer(cidrs=api_server_cidrs), (443,), pods=operations,
             reason="the chart's operations pod reads the admin secret to enable secondaries"),
        Flow("neo4j-operations-bolt", "egress", Peer(pods=servers), (BOLT_PORT,), pods=operations,
             reason="the operations pod enables secondaries over Bolt"),
        Flow("neo4j-operations-bolt-in", "ingress", Peer(pods=operations), (BOLT_PORT,), pods=servers,
             reason="the operations pod enables secondaries over Bolt"),
        Flow("neo4j-clients", "ingress", Peer(namespace=client_namespace), (BOLT_PORT,), pods=servers,
             reason="application pods query the graph over Bolt"),
        Flow("neo4j-metrics", "ingress", Peer(namespace=monitoring_namespace), (METRICS_PORT,), pods=servers,
             reason="Prometheus scrapes the servers' metrics"),
    )


# Neo4j 5 exports no Bolt latency histogram (the seed's neo4j_bolt_message_processing_time_seconds
# does not exist); it exports the query execution latency as a summary with quantiles, and Bolt
# processing time and message counts as counters.
GRAPH_SLI_RULES = [{
    "name": "graph-sli",
    "rules": [
        {"record": "neo4j:query_latency_ms:p95",
         "expr": 'max by (namespace, service) (neo4j_database_neo4j_db_query_execution_latency_millis{quantile="0.95"})'},
        {"record": "neo4j:bolt_processing_ms:mean5m",
         "expr": "sum by (namespace, service) (rate(neo4j_dbms_bolt_accumulated_processing_time_total[5m]))"
                 " / sum by (namespace, service) (rate(neo4j_dbms_bolt_messages_done_total[5m]))"},
        {"alert": "Neo4jQueryLatencyHigh",
         "expr": "neo4j:query_latency_ms:p95 > 200",
         "for": "10m",
         "labels": {"severity": "warning"},
         "annotations": {"summary": "Neo4j p95 query latency above 200 ms for 10 minutes",
                         "description": "{{ $labels.service }}: p95 is {{ $value | humanize }} ms."}},
    ],
}]
