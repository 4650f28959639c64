"""RegionalTier: one region's Kubernetes tier, as one component to build per region.

A region's tier runs in that region's EKS cluster through its own Kubernetes and AWS providers
(passed in through ``opts.providers``) and is built from that region's buckets, keys, endpoints
and roles:

* the workload namespaces, each default-deny, opened flow by flow (components/egress_policy.py);
* the graph: the Neo4j servers when the region runs them, their volume snapshots and their
  backups to the region's bucket; in the DR region, what fills the graph from the replicated
  backups (the warm refresh, the switch's Job) and the weekly restore rehearsal;
* the cache: Redis;
* log shipping to the region's logs bucket, alert routing, the stores dashboard;
* the edge: the Ingress behind a WebACL, with a fixed ALB name that Route 53's records alias.

What spans regions (the PostgreSQL pair, bucket replication, DNS, the audit trail) is wired in
``__main__.py``. Kubernetes object names do not depend on the tier (``redis``, ``redis-auth``,
``graph-default-deny``), so an application finds them under one name in any region's cluster;
resource names carry the tier's name (``redis-dr``) so one stack can hold a tier per region. The
primary's tier adopts the resources the stack created before the tier existed (``moved_from_root``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi

from components.alertmanager import AlertRouting, AlertRoutingArgs, SecretRef
from components.dns_failover import LoadBalancerTarget
from components.egress_policy import WorkloadNamespace, WorkloadNamespaceArgs
from components.log_shipper import LogShipper, LogShipperArgs, shipper_flows
from components.neo4j_backup import Neo4jBackup, Neo4jBackupArgs, backup_flows
from components.neo4j_cluster import Neo4jCluster, Neo4jClusterArgs, cluster_flows
from components.neo4j_dr import Neo4jDrGraph, Neo4jDrGraphArgs, dr_graph_flows, servers_account
from components.neo4j_snapshots import Neo4jSnapshots, Neo4jSnapshotsArgs, snapshot_flows
from components.redis_cache import RedisCache, RedisCacheArgs, cache_flows
from components.waf_ingress import WafIngress, WafIngressArgs
from helpers.dashboards import dashboard_configmap, stores_dashboard
from helpers.flows import Flow, Neighbours
from helpers.neo4j_password import rotation_flows
from helpers.validation import require


@dataclass(frozen=True)
class BucketRef:
    """A bucket in the tier's region, and the key its objects are encrypted with."""

    name: pulumi.Input[str]
    arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]


@dataclass(frozen=True)
class Observability:
    prometheus_namespace: str
    prometheus_release_label: str
    grafana_dashboard_label: str
    pager_secret: SecretRef
    chat_secret: SecretRef
    chat_channel: str


@dataclass(frozen=True)
class RegionalTierArgs:
    region: str
    neighbours: Neighbours  # the region's API server, VPC endpoints, client and monitoring namespaces
    oidc_provider_arn: str  # the region's cluster's IRSA provider
    oidc_issuer: str
    graph_namespace: str
    graph_cluster_name: str
    # None: no servers run in this region (a pilot-light standby); the namespace and its flows
    # are still there, so the region switch only has to add the releases.
    graph: Optional[Neo4jClusterArgs]
    snapshots: Optional[Neo4jSnapshotsArgs]  # of the graph's volumes, before each release changes
    backup: Optional[Neo4jBackupArgs]  # where this region's servers are the source of truth
    # the DR region: the graph seeded from the replicated backups, and the restore rehearsal
    dr_graph: Optional[Neo4jDrGraphArgs]
    cache: RedisCacheArgs
    shipper_namespace: str
    shipper_image: str
    logs_bucket: BucketRef
    observability: Observability
    edge: WafIngressArgs
    # More flows per namespace (reviewed allowlist entries, jobs wired outside the tier); a
    # namespace named only here is created as well.
    extra_flows: Mapping[str, tuple[Flow, ...]] = field(default_factory=dict)
    # True for the primary tier of a stack deployed before the tier existed: each child was a
    # top-level resource, and keeps its name with an alias per child for its old URN (nothing is
    # replaced). Any other tier names its children '<child>-<tier name>' ('redis-dr').
    moved_from_root: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.graph is None and (self.snapshots or self.backup):
            problems.append("snapshots and backup need the graph's servers in this region")
        if self.graph is not None and (self.graph.namespace, self.graph.cluster_name) != (
                self.graph_namespace, self.graph_cluster_name):
            problems.append("graph must run in graph_namespace under graph_cluster_name")
        if self.dr_graph is not None and (self.dr_graph.namespace, self.dr_graph.cluster_name) != (
                self.graph_namespace, self.graph_cluster_name):
            problems.append("dr_graph must seed the graph of graph_namespace and graph_cluster_name")
        if self.dr_graph is not None and self.backup is not None:
            problems.append("a region's graph is backed up (the source of truth) or seeded from backups, not both")
        if self.dr_graph is not None and self.graph is not None and self.graph.service_account != \
                servers_account(self.graph_cluster_name):
            problems.append("the DR servers must run as the account that may read the DR bucket (their seed)")
        if self.cache.namespace == self.graph_namespace:
            problems.append("the cache and the graph each need a default-deny namespace of their own")
        if self.shipper_namespace in (self.graph_namespace, self.cache.namespace):
            problems.append("the shipper must run apart from the namespaces it ships (it would ship its own logs)")
        require("RegionalTierArgs", problems)


class RegionalTier(pulumi.ComponentResource):
    namespaces: dict[str, WorkloadNamespace]
    graph: Optional[Neo4jCluster]
    backup: Optional[Neo4jBackup]
    dr_graph: Optional[Neo4jDrGraph]
    cache: RedisCache
    edge: WafIngress
    load_balancer: Optional[LoadBalancerTarget]  # alb mode: the ALB the region's Ingress creates

    def __init__(self, name: str, args: RegionalTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:tier:RegionalTier", name, None, opts)
        self._args, self._tier_name = args, name
        around, obs = args.neighbours, args.observability

        # --- namespaces: default-deny, DNS, then each workload's declared flows ----------------
        graph = args.graph
        # the cluster's flows even without servers: the region switch then only adds the releases
        graph_flows = cluster_flows(args.graph_cluster_name, around)
        if graph is not None:
            graph_flows += ((backup_flows(around, servers=graph.pod_selector) if args.backup else ())
                            + (rotation_flows(graph.pod_selector)
                               if graph.password_epoch or graph.client_namespace else ())
                            + (snapshot_flows(graph.cluster_name, around) if args.snapshots else ()))
        if args.dr_graph is not None:
            graph_flows += dr_graph_flows(args.graph_cluster_name, around)
        flows: dict[str, tuple[Flow, ...]] = {args.graph_namespace: graph_flows}
        if args.dr_graph is not None:  # the rehearsal's S3 and STS
            flows[args.dr_graph.restore_namespace] = backup_flows(around)
        flows[args.cache.namespace] = cache_flows(args.cache.app_name, around.client_namespace,
                                                  obs.prometheus_namespace)
        for namespace, extra in args.extra_flows.items():
            if namespace != args.shipper_namespace:
                flows[namespace] = flows.get(namespace, ()) + extra
        workloads = tuple(flows)
        flows[args.shipper_namespace] = shipper_flows(around) + args.extra_flows.get(args.shipper_namespace, ())
        # the log shipper reads /var/log through a (read-only) hostPath, which only "privileged"
        # admits; warn and audit stay at restricted there, and every other namespace enforces restricted
        self.namespaces = {
            ns: WorkloadNamespace(self._named(ns), WorkloadNamespaceArgs(
                namespace=ns, flows=ns_flows,
                pod_security="privileged" if ns == args.shipper_namespace else "restricted"),
                opts=self._child())
            for ns, ns_flows in flows.items()
        }

        # --- graph: snapshots first (each release waits for a snapshot of its volume), servers, backups;
        # in the DR region the servers' account (their seed) before the servers
        self.graph = self.backup = self.dr_graph = None
        if args.dr_graph is not None:
            self.dr_graph = Neo4jDrGraph(self._named("neo4j-seed"), args.dr_graph,
                                         opts=self._inside(args.graph_namespace, args.dr_graph.restore_namespace))
        if graph is not None:
            before_change = None
            if args.snapshots is not None:
                before_change = Neo4jSnapshots(self._named("neo4j-snapshots"), args.snapshots,
                                               opts=self._inside(args.graph_namespace)).before_change
            inside = self._inside(args.graph_namespace)
            if self.dr_graph is not None:
                inside = pulumi.ResourceOptions.merge(inside, pulumi.ResourceOptions(depends_on=[self.dr_graph]))
            self.graph = Neo4jCluster(self._named("neo4j"), dataclasses.replace(graph, before_change=before_change),
                                      opts=inside)
        if args.backup is not None:
            self.backup = Neo4jBackup(self._named("neo4j-backup"), args.backup, opts=self._inside(args.backup.namespace))

        # --- cache ------------------------------------------------------------------------------
        self.cache = RedisCache(self._named("redis"), args.cache, opts=self._inside(args.cache.namespace))
        # (namespace, StatefulSet) this tier runs at zero replicas until the region switch scales it
        # up (components/region_switch.py, its EKS scaling step)
        self.scaled_down: tuple[tuple[str, str], ...] = (
            ((args.cache.namespace, args.cache.app_name),) if args.cache.replicas == 0 else ())
        dashboard_configmap(
            self._named("stores-dashboard"), object_name="stores-dashboard", namespace=obs.prometheus_namespace,
            label=obs.grafana_dashboard_label, dashboard=stores_dashboard(args.graph_namespace, args.cache.namespace),
            opts=self._child())

        # --- logs: container logs scrubbed on the node, then to the region's logs bucket ---------
        LogShipper(
            self._named("log-shipper"),
            LogShipperArgs(
                namespace=args.shipper_namespace,
                image=args.shipper_image,
                # every namespace the tier runs workloads in, and the application's
                source_namespaces=tuple(dict.fromkeys((*workloads, around.client_namespace))),
                bucket_name=args.logs_bucket.name,
                bucket_arn=args.logs_bucket.arn,
                kms_key_arn=args.logs_bucket.kms_key_arn,
                region=args.region,
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer=args.oidc_issuer,
                prometheus_namespace=obs.prometheus_namespace,
                prometheus_release_label=obs.prometheus_release_label,
            ),
            opts=self._inside(args.shipper_namespace),
        )

        # --- on-call: Prometheus alerts of every namespace routed by severity ------------------
        AlertRouting(
            self._named("alert-routing"),
            AlertRoutingArgs(namespaces=tuple(self.namespaces), pager_secret=obs.pager_secret,
                             chat_secret=obs.chat_secret, chat_channel=obs.chat_channel,
                             prometheus_release_label=obs.prometheus_release_label),
            opts=self._inside(*self.namespaces),
        )

        # --- edge: TLS Ingress behind the region's WebACL -----------------------------------------
        self.edge = WafIngress(self._named("api"), args.edge, opts=self._child())
        self.load_balancer = None
        if self.edge.load_balancer_dns_name is not None and self.edge.load_balancer_zone_id is not None:
            self.load_balancer = LoadBalancerTarget(self.edge.load_balancer_dns_name, self.edge.load_balancer_zone_id)

        self.register_outputs({
            "namespaces": list(self.namespaces),
            "servers": self.graph.release_names if self.graph else [],
            "webAclArn": self.edge.web_acl_arn,
            "loadBalancerDnsName": self.edge.load_balancer_dns_name,
        })

    def _named(self, base: str) -> str:
        return base if self._args.moved_from_root else f"{base}-{self._tier_name}"

    def _child(self, depends_on: Optional[list[pulumi.Resource]] = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self, depends_on=depends_on,
            aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)] if self._args.moved_from_root else None)

    def _inside(self, *namespaces: str) -> pulumi.ResourceOptions:
        """A child that runs in these namespaces: it waits for them (and their NetworkPolicies)."""
        return self._child(depends_on=[self.namespaces[n] for n in namespaces])
