"""Neo4jCluster: a Neo4j 5 cluster from the official neo4j/neo4j Helm chart.

Neo4j 5 has no core/read-replica chart (that was the retired 4.x Labs chart; see
docs/decisions/001-neo4j-5-one-release-per-server.md): a cluster is one
Helm release per server, all sharing ``neo4j.name``, each waiting for ``minimumClusterSize``
primaries. Extra servers are constrained to SECONDARY mode; Neo4j enables every server that
joins (``initial.dbms.automatically_enable_free_servers``), no operations pod. Releases use
``helm.v3.Release`` (real Helm, so the chart's lookups and hooks run).

Install and upgrade. Releases updated together restart every server at once and the cluster
loses quorum, so the releases form one ``depends_on`` chain in roll order: secondaries first
(they hold no vote), then primaries, highest index first. Pulumi orders updates along
``depends_on`` as it orders creation (Pulumi docs, "dependsOn"), and with ``skip_await`` false
a release's update ends only when Helm's wait sees its server ready again (the StatefulSet's new
generation observed, its replica updated and ready: Helm pkg/kube/ready.go), so the next server
restarts only after the previous one is back. On the first install that chain must not wait: no
server is ready before ``minimumClusterSize`` primaries run, and those come later in the chain,
so every release would time out behind the first.

Which run is the first install is said explicitly: ``bootstrap`` (stack setting
``neo4j.bootstrap: true``, set only for the deploy that creates the cluster). Pulumi does not
tell a program whether a run creates a resource, and a guess from a marker resource ("is it
being created now?") is wrong on every stack deployed before the marker existed: the marker is
new there too, so every release of a running cluster would skip the wait and restart at once
(pulumi-kubernetes helm_release.go: ``client.Wait = !newRelease.SkipAwait``). The marker stays
only as a guard on the setting (``_first_install``): ``skip_await`` is true when bootstrap is set
*and* the marker is created in this run, so a ``bootstrap: true`` left in the stack file after
the install waits again. Default (false): every release waits.

What this does not do: the bootstrap ``pulumi up`` returns before the cluster has formed
(nothing waits); the next run (bootstrap back to false) updates every release once, waited
one by one (the ``initial.*`` settings leave the config, see ``values``). Helm's "ready" is the
chart's readiness probe (the Bolt port answers), not "caught up with the cluster": between two
releases a Job (``_online_gate``, components/scripts/neo4j_wait_online.sh) waits until the server
just restarted is Available and every database allocation on it requested online is online (SHOW
SERVERS, SHOW DATABASES), and the next release waits for that Job. A first install that
fails half-way leaves the marker behind: finish it with ``bootstrap: true`` and
``pulumi up --replace`` on the marker's URN.

Memory is derived from the container limit with Neo4j's own rule, the one
``neo4j-admin server memory-recommendation`` prints (neo4j/neo4j,
community/dbms/src/main/java/org/neo4j/dbms/MemoryRecommendation.java): a table of
(total, OS reserve, heap) brackets, interpolated linearly; the page cache gets the rest. The
reserve is what the process and the kernel use outside heap and page cache (direct buffers for
Bolt and the cluster, metaspace, thread stacks, Lucene, file cache charged to the pod's cgroup)
and grows with the limit: 1 GiB at 2 GiB, 4 GiB at 16 GiB, 8 GiB at 32 GiB. The old "+ 1 GiB" left
1 GiB at every size, a quarter of what Neo4j keeps at 16 GiB: under load the native part outgrows
it and the kernel OOM-kills the container at its limit. Heap initial = max, so the heap never
resizes under load. Limits under 2 GiB are refused: the chart refuses
them too (templates/_helpers.tpl, "minimum of 2Gi"), and below it the reserve falls under the
1 GB the operations manual calls the starting point for the OS.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from helpers.flows import Flow, Neighbours, Peer
from helpers.kube import (
    pod_disruption_budget,
    prometheus_rule,
    service_monitor,
)
from helpers.neo4j_password import admin_secret, client_credentials, cypher_job
from helpers.validation import require

CHART = "neo4j"
CHART_REPO = "https://helm.neo4j.com/neo4j"
GIB = 2**30
MIB = 2**20
MIN_LIMIT_BYTES = 2 * GIB
# MemoryRecommendation.java: (total memory, OS reserve, heap) in GiB; the heap stops at 31 GiB,
# where the JVM loses compressed object pointers.
MEMORY_BRACKETS = (
    (0.01, 0.007, 0.002), (1.0, 0.65, 0.3), (2.0, 1, 0.5), (4.0, 1.5, 2), (6.0, 2, 3), (8.0, 2.5, 3.5),
    (10.0, 3, 4), (12.0, 3.5, 4.5), (16.0, 4, 5), (24.0, 6, 8), (32.0, 8, 12), (64.0, 12, 24),
    (128.0, 16, 31), (256.0, 20, 31), (512.0, 24, 31), (1024.0, 30, 31),
)
METRICS_PORT = 2004
BOLT_PORT = 7687
HTTP_PORT = 7474
BACKUP_PORT = 6362
# Neo4j exports only metrics matching server.metrics.filter, and its default lacks the Bolt SLI's
# bolt.messages_done and bolt.accumulated_processing_time (operations manual, configuration
# settings, server.metrics.filter). Every series a rule or panel reads must match one of these.
METRICS_FILTER = (
    "*bolt.connections*", "*bolt.messages_*", "*bolt.accumulated_processing_time*",
    "*dbms.pool.bolt.*", "*cluster.raft.*", "*check_point.*", "*ids_in_use*", "*store.size*",
    "*transaction.*", "*pool.transaction.*", "*page_cache.*", "*vm.*", "*db.query.execution*",
    "*cypher.replan_events",
)
ZONE_KEY = "topology.kubernetes.io/zone"
MODE_LABEL = "intelgraph.io/neo4j-mode"
# What cluster members say to each other: discovery, cluster (catch-up, store copy), raft and
# server-side routing (Neo4j operations manual, "Ports"). Not Bolt (clients and the operations pod)
# and not the backup port (the backup job only).
PEER_PORTS = (5000, 6000, 7000, 7688)
# primaries that form a new cluster (the chart clusters only from minimumClusterSize 3)
FORMATION_PRIMARIES = 3
# How long Helm may wait for one server's restart: the old pod may take the chart's whole
# terminationGracePeriodSeconds to stop (3600), the new one its startup probe's whole window
# (failureThreshold 1000 x periodSeconds 5) and one readiness period to be ready, plus time to
# reschedule it and reattach its volume (chart values.yaml, templates/neo4j-statefulset.yaml).
# A shorter timeout fails the update of a server that is still legitimately coming back.
CHART_TERMINATION_GRACE_SECONDS = 3600
CHART_STARTUP_WINDOW_SECONDS = 1000 * 5
CHART_READINESS_PERIOD_SECONDS = 5
RESCHEDULE_SECONDS = 600
RELEASE_TIMEOUT_SECONDS = (CHART_TERMINATION_GRACE_SECONDS + CHART_STARTUP_WINDOW_SECONDS
                           + CHART_READINESS_PERIOD_SECONDS + RESCHEDULE_SECONDS)


@dataclass(frozen=True)
class MemoryPlan:
    limit_bytes: int
    heap_bytes: int
    pagecache_bytes: int

    @property
    def reserve_bytes(self) -> int:
        """What stays outside heap and page cache for native memory and the OS."""
        return self.limit_bytes - self.heap_bytes - self.pagecache_bytes

    @property
    def heap(self) -> str:
        return f"{self.heap_bytes // MIB}m"

    @property
    def pagecache(self) -> str:
        return f"{self.pagecache_bytes // MIB}m"


def _recommend(limit_bytes: int, column: int) -> int:
    """One column of Neo4j's bracket table at this total, interpolated as MemoryRecommendation does
    (the value in whole MiB, rounded down)."""
    total = limit_bytes / GIB
    upper_index = next((i for i, b in enumerate(MEMORY_BRACKETS) if i and total < b[0]), None)
    if upper_index is None:
        lower = upper = MEMORY_BRACKETS[-1]
        factor = 0.0
    else:
        lower, upper = MEMORY_BRACKETS[upper_index - 1], MEMORY_BRACKETS[upper_index]
        factor = (total - lower[0]) / (upper[0] - lower[0])
    gib = lower[column] + (upper[column] - lower[column]) * factor
    return int(gib * 1024) * MIB


def memory_plan(limit_bytes: int) -> MemoryPlan:
    """Neo4j's recommended heap and OS reserve for this limit; the page cache gets the rest."""
    if limit_bytes < MIN_LIMIT_BYTES:
        raise ValueError(
            f"memory limit {limit_bytes / GIB:.2f} GiB is too small for Neo4j: at least 2 GiB "
            f"(the chart's minimum), so that heap, page cache and at least 1 GiB for native memory "
            f"and the OS fit"
        )
    heap = _recommend(limit_bytes, 2)
    pagecache = (limit_bytes - _recommend(limit_bytes, 1) - heap) // MIB * MIB
    return MemoryPlan(limit_bytes, heap, pagecache)


GATE_SCRIPT = Path(__file__).parent / "scripts" / "neo4j_wait_online.sh"
GATE_POD_LABELS = {"intelgraph.io/job": "neo4j-roll-gate"}
# How long a restarted server's databases may take to come online (store recovery, catching up
# from the other members) before the roll stops: the Job fails and the next release does not start.
GATE_DEADLINE_SECONDS = 1800
AUTH_DIR = "/etc/neo4j-auth"


def server_address(release: str, namespace: str) -> str:
    """The Bolt address a server advertises, as SHOW SERVERS and SHOW DATABASES report it (the
    chart: server.bolt.advertised_address = $SERVICE_NEO4J, the release's own Service)."""
    return f"{release}.{namespace}.svc.cluster.local:{BOLT_PORT}"


def change_id(chart_version: str, values: dict) -> str:
    """What a release change is called: the same for the same chart and values, new for any other
    (what Helm upgrades a release on)."""
    text = json.dumps({"chart": chart_version, "values": values}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


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
    memory_plan: MemoryPlan  # computed once from the setting (settings.graph.Neo4jSettings.memory_plan)
    storage_class: str
    storage_size: str
    prometheus_release_label: str
    zones: tuple[str, ...]
    password_epoch: int = 0
    # The application's namespace: it gets '<cluster_name>-client', the application user's
    # credentials (helpers/neo4j_password.py); None: no application user.
    client_namespace: Optional[str] = None
    bootstrap: bool = False  # this deploy creates the cluster (see the module docstring)
    # True for a cluster whose releases were created before they were named after the component
    # (prod's and stage's): an alias per release keeps the URN they hold their data under. A new
    # cluster adopts nothing (docs/contributor.md, "Stateful resources").
    unprefixed_release_urns: bool = False
    # What must happen to a server before its release changes (Neo4jSnapshots.before_change: a
    # snapshot): called with a resource name, the release, the change's id and the previous
    # release in the roll; the release then waits for what it returns.
    before_change: Optional[Callable[[str, str, str, Sequence[pulumi.Resource]], pulumi.Resource]] = None
    # The servers' ServiceAccount, when they need one of their own (the DR servers read the DR
    # bucket to seed their databases: components/neo4j_dr.py creates it with the Kubernetes
    # discovery the chart's own account would have); None: the chart creates one per release.
    service_account: Optional[str] = None
    env: tuple[tuple[str, str], ...] = ()  # more environment for the server process (the chart's env)

    def __post_init__(self) -> None:
        problems = []
        if self.password_epoch < 0:
            problems.append("password_epoch cannot be negative")
        if self.bootstrap and self.password_epoch > 0:
            problems.append("bootstrap needs password_epoch 0: a first install has no password to rotate from, "
                            "and the rotation Job would wait for a cluster that waits for it")
        if self.primaries < 1:
            problems.append("primaries must be at least 1")
        if self.primaries == 2:
            problems.append("primaries must not be 2: two primaries lose quorum when either fails; use 1 or 3+")
        if self.secondaries < 0:
            problems.append("secondaries cannot be negative")
        if self.secondaries and self.primaries < 3:
            problems.append("secondaries need at least 3 primaries: the chart clusters only from minimumClusterSize 3")
        if not self.zones or len(set(self.zones)) != len(self.zones):
            problems.append("zones must list each of the cluster's availability zones once")
        if ":" not in self.image or "enterprise" not in self.image:
            problems.append("image must be a pinned enterprise image (clustering is Enterprise-only)")
        require("Neo4jClusterArgs", problems)

    @property
    def servers(self) -> int:
        return self.primaries + self.secondaries

    @property
    def release_names(self) -> list[str]:
        return [f"{self.cluster_name}-server-{i}" for i in range(1, self.servers + 1)]

    @property
    def backup_sources(self) -> tuple[str, ...]:
        """The releases whose admin services a backup reads from, in the order to try them:
        secondaries first (a backup never loads a primary while a secondary answers), then the
        primaries, highest first."""
        names = self.release_names
        return (*names[self.primaries:], *reversed(names[: self.primaries]))

    @property
    def pod_selector(self) -> dict[str, str]:
        """Every server pod of the cluster (the chart labels them app=<neo4j.name>)."""
        return server_pods(self.cluster_name)


class Neo4jCluster(pulumi.ComponentResource):
    release_names: list[str]
    roll_order: list[str]
    client_service_name: str
    secondary_release_names: list[str]
    password_secret_name: str
    backup_sources: tuple[str, ...]  # Neo4jBackupArgs.admin_services
    pod_selector: dict[str, str]  # for the flows of other pods to and from the servers

    def __init__(self, name: str, args: Neo4jClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:graph:Neo4jCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        self.plan = args.memory_plan

        self.password_secret_name = f"{args.cluster_name}-auth"
        # a new password epoch changes the password in the database before this Secret flips
        auth = admin_secret(name, secret_name=self.password_secret_name, namespace=args.namespace,
                            cluster_name=args.cluster_name, image=args.image, epoch=args.password_epoch,
                            opts=child)

        # The client Service the chart calls <name>-lb-neo4j, owned here, once. The chart renders it
        # from every release only when its lookup finds none (templates/neo4j-loadbalancer.yaml):
        # releases installed together all render it, and Helm refuses to create an object another
        # release owns, so all but one first install failed. No release renders it now.
        self.client_service_name = f"{args.cluster_name}-lb-neo4j"
        k8s.core.v1.Service(
            f"{name}-clients",
            metadata={"name": self.client_service_name, "namespace": args.namespace, "labels": {
                "app": args.cluster_name, "helm.neo4j.com/neo4j.name": args.cluster_name,
                "helm.neo4j.com/service": "neo4j"}},
            spec={
                "type": "ClusterIP",  # internal platform: no cloud load balancer
                # the chart's own selector: every clustered server that takes client traffic
                "selector": {"app": args.cluster_name, "helm.neo4j.com/clustering": "true",
                             "helm.neo4j.com/neo4j.loadbalancer": "include"},
                "ports": [{"name": "tcp-bolt", "port": BOLT_PORT, "target_port": BOLT_PORT, "protocol": "TCP"},
                          {"name": "http", "port": HTTP_PORT, "target_port": HTTP_PORT, "protocol": "TCP"}],
            },
            opts=child,
        )

        self.release_names = args.release_names
        self.secondary_release_names = self.release_names[args.primaries:]
        self.backup_sources = args.backup_sources
        self.pod_selector = args.pod_selector
        # Roll order (see the module docstring): secondaries first, then primaries, highest index
        # first; each release depends on the one before it, and waits for its server unless this
        # run is the cluster's first install.
        self.roll_order = list(reversed(self.release_names))
        first_install = self._first_install(name, args.bootstrap)
        releases: list[k8s.helm.v3.Release] = []
        gates: list[k8s.batch.v1.Job] = []
        for release in self.roll_order:
            values = self.values(secondary=release in self.secondary_release_names)
            change = change_id(args.chart_version, values)
            before = [args.before_change(f"{name}-{release}-before-change", release, change,
                                         [*releases[-1:], *gates[-1:]])] if args.before_change else []
            releases.append(k8s.helm.v3.Release(
                # prefixed with the component's name: a second cluster in another namespace may
                # share the release names
                f"{name}-{release}",
                name=release,
                chart=CHART,
                version=args.chart_version,
                repository_opts={"repo": CHART_REPO},
                namespace=args.namespace,
                values=values,
                skip_await=first_install,
                # Helm's wait for one server: a restart, or a join to the running cluster.
                timeout=RELEASE_TIMEOUT_SECONDS,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[auth, *releases[-1:], *gates[-1:], *before],
                                            aliases=[pulumi.Alias(name=release)] if args.unprefixed_release_urns else None),
            ))
            gates.append(self._online_gate(name, release, change, first_install, releases[-1]))

        if args.client_namespace:
            # after every server (and the admin Secret the Job logs in with): on a first install the
            # Job waits for the cluster to form; on an upgrade it runs once the roll is done
            client_credentials(name, namespace=args.namespace, cluster_name=args.cluster_name, image=args.image,
                               epoch=args.password_epoch, admin_secret_name=self.password_secret_name,
                               client_namespace=args.client_namespace, after=[auth, *releases], opts=child)
        pod_disruption_budget(f"{name}-pdb", args.namespace, args.pod_selector, max_unavailable=1, opts=child)
        service_monitor(
            f"{name}-metrics",
            namespace=args.namespace,
            release_label=args.prometheus_release_label,
            selector={"helm.neo4j.com/service": "admin", "helm.neo4j.com/neo4j.name": args.cluster_name},
            port="tcp-prometheus",
            opts=pulumi.ResourceOptions(parent=self, depends_on=releases),
        )
        prometheus_rule(f"{name}-rules", namespace=args.namespace,
                        release_label=args.prometheus_release_label,
                        groups=GRAPH_SLI_RULES + volume_rule_groups(args.namespace, args.release_names), opts=child)
        self.register_outputs({
            "releaseNames": self.release_names,
            "secondaryReleaseNames": self.secondary_release_names,
            "backupSources": list(self.backup_sources),
            "podSelector": self.pod_selector,
            "heap": self.plan.heap,
            "pagecache": self.plan.pagecache,
        })

    def _online_gate(self, name: str, release: str, change: str, first_install: pulumi.Input[bool],
                     after: k8s.helm.v3.Release) -> k8s.batch.v1.Job:
        """The Job between ``release`` and the next in the roll: done when the server is Available
        and its allocations requested online are online. Named after the change, so every change
        of the release runs it again (a Job is immutable); on the first install it exits at once."""
        args = self._args
        job_name = f"{release}-online-{change}"
        return cypher_job(
            f"{name}-{release}-online", job_name=job_name, namespace=args.namespace, cluster_name=args.cluster_name,
            image=args.image, script=GATE_SCRIPT, deadline_seconds=GATE_DEADLINE_SECONDS,
            env=[  # the chart advertises <release>.<namespace>.svc.cluster.local as the Bolt address
                {"name": "SERVER_ADDRESS", "value": server_address(release, args.namespace)},
                {"name": "FIRST_INSTALL", "value": pulumi.Output.from_input(first_install).apply(
                    lambda first: "true" if first else "false")},
                {"name": "NEO4J_AUTH_FILE", "value": f"{AUTH_DIR}/NEO4J_AUTH"}],
            # the credentials as a file, not an environment variable of the container
            secret_files=(self.password_secret_name, "NEO4J_AUTH", AUTH_DIR),
            container_name="wait-online", component="roll-gate", pod_labels=GATE_POD_LABELS, backoff_limit=1,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[after],
                custom_timeouts=pulumi.CustomTimeouts(create=f"{GATE_DEADLINE_SECONDS // 60 + 5}m",
                                                      update=f"{GATE_DEADLINE_SECONDS // 60 + 5}m")),
        )

    def _first_install(self, name: str, bootstrap: bool) -> pulumi.Output[bool]:
        """True when the stack says this deploy creates the cluster (``bootstrap``) and the marker
        agrees: it is created in this run. The marker alone cannot tell (on a stack deployed
        before it existed it is new too); it only stops a ``bootstrap`` left on from skipping
        the wait on a cluster that exists. The marker's keepers carry a token new
        in every run, and ignore_changes keeps the token of the run that created it (Pulumi
        docs, "ignoreChanges": the program's value is used only when there is no prior state), so
        the marker hands back this run's token only when it is created now. Replacing the marker
        (``pulumi up --replace <its URN>``) makes a run an install again, e.g. to finish a first
        install that failed half-way. Change none of its other arguments: that replaces it too."""
        token = secrets.token_hex(8)
        marker = random.RandomId(
            f"{name}-first-install",
            byte_length=4,
            # secret only so that exports and diffs do not show a token that changes every run
            keepers={"createdInRun": pulumi.Output.secret(token)},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["keepers"]),
        )
        return pulumi.Output.unsecret(marker.keepers.apply(
            lambda k: bootstrap and (k or {}).get("createdInRun") == token))

    def values(self, secondary: bool) -> dict:
        """Chart values for one server; only the mode constraint (and labels, placement) differ
        between servers, and no server count appears outside the bootstrap deploy."""
        args, plan = self._args, self.plan
        config = {
            "server.memory.heap.initial_size": plan.heap,
            "server.memory.heap.max_size": plan.heap,
            "server.memory.pagecache.size": plan.pagecache,
            "server.metrics.enabled": "true",
            "server.metrics.prometheus.enabled": "true",
            "server.metrics.prometheus.endpoint": f"0.0.0.0:{METRICS_PORT}",
            "server.metrics.csv.enabled": "false",
            "server.metrics.filter": ",".join(METRICS_FILTER),
            # Global metrics under neo4j.dbms.*, per-database ones under neo4j.database.<db>.*: the
            # names the rules and dashboards use (the default, false, drops both segments).
            "server.metrics.namespaces.enabled": "true",
        }
        if args.bootstrap:
            # initial.dbms.* are read only when the system database is first created, i.e. in the
            # bootstrap deploy; later the cluster keeps what it stored. Written only then: the chart
            # checksums the config into every server's pod template (templates/neo4j-statefulset.yaml,
            # checksum/<release>-config), so a server count in every server's config restarted
            # every server whenever a server was added or removed.
            config.update({
                # New databases get every primary and the secondaries as read copies.
                "initial.dbms.default_primaries_count": str(args.primaries),
                "initial.dbms.default_secondaries_count": str(args.secondaries),
                # A server that joins starts "Free" and hosts nothing until enabled. Neo4j enables
                # it itself with this (operations manual, clustering, "Managing servers"); the
                # chart's alternative, neo4j.operations.enableServer, is a bare Pod with
                # restartPolicy Never, which Helm's wait never counts as ready once it completes,
                # so every later upgrade of a secondary's release would time out. A cluster formed
                # without it is switched once: CALL dbms.cluster.setAutomaticallyEnableFreeServers(true).
                "initial.dbms.automatically_enable_free_servers": "true",
            })
        if secondary:
            config["initial.server.mode_constraint"] = "SECONDARY"
        return {
            "neo4j": {
                "name": args.cluster_name,
                "edition": "enterprise",
                "acceptLicenseAgreement": args.accept_license_agreement,
                # The chart writes this into every server's config as the primaries needed to
                # form the cluster (dbms.cluster.minimum_initial_system_primaries_count,
                # templates/neo4j-config.yaml): 3 forms a cluster of any size, so it stays put
                # when primaries are added (the chart clusters from 3, 1 is standalone).
                "minimumClusterSize": min(args.primaries, FORMATION_PRIMARIES),
                "passwordFromSecret": self.password_secret_name,
                # On every object the release renders, pods included: what the zone spread selects.
                "labels": {MODE_LABEL: "secondary" if secondary else "primary"},
                "resources": {
                    "requests": {"cpu": args.cpu_request, "memory": args.memory},
                    "limits": {"cpu": args.cpu_limit, "memory": args.memory},
                },
            },
            "image": {"customImage": args.image},
            "volumes": {"data": {"mode": "dynamic", "dynamic": {
                "storageClassName": args.storage_class,
                "accessModes": ["ReadWriteOnce"],
                "requests": {"storage": args.storage_size},
            }}},
            # The shared client Service is the component's own (see __init__); without it the chart
            # also renders no cleanup hook Job for it. Should anyone enable it again: the type stays
            # internal, and the hook stays off - the chart's pre-delete Job runs kubectl as root
            # with no resources and no values to harden it (templates/delete-loadbalancer-hook.yaml).
            "services": {"neo4j": {"enabled": False, "spec": {"type": "ClusterIP"}, "cleanup": {"enabled": False}}},
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
            "podSpec": {**pod_placement(args.cluster_name, args.zones, primary=not secondary),
                        **({"serviceAccountName": args.service_account} if args.service_account else {})},
            **({"env": dict(args.env)} if args.env else {}),
        }


def server_pods(cluster_name: str) -> dict[str, str]:
    return {"app": cluster_name}


def pod_placement(cluster_name: str, zones: tuple[str, ...], primary: bool) -> dict:
    """One server per node always. Primaries must also spread over the zones when there are at
    least 3 (a zone outage then takes one primary, and 3+ primaries keep a majority); with fewer
    zones a requirement could never be met for 3 primaries, so they only prefer to spread, as the
    secondaries always do (they hold no vote)."""
    servers = {"matchLabels": {"app": cluster_name}}
    placement: dict = {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": servers, "topologyKey": "kubernetes.io/hostname"}],
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
            "labelSelector": servers, "topologyKey": ZONE_KEY}}],
    }}
    if primary and len(zones) >= 3:
        # kube-scheduler: with DoNotSchedule a pod is placed only where the count of matching pods
        # per zone stays within maxSkew of the least-used zone; minDomains makes a zone without
        # nodes right now (autoscaler) count as 0 instead of letting two primaries share a zone.
        placement["topologySpreadConstraints"] = [{
            "maxSkew": 1,
            "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "DoNotSchedule",
            "minDomains": 3,
            "labelSelector": {"matchLabels": {"app": cluster_name, MODE_LABEL: "primary"}},
        }]
    return placement


def cluster_flows(cluster_name: str, around: Neighbours) -> tuple[Flow, ...]:
    """What a Neo4j cluster needs on the network, for its namespace's policies.

    The Kubernetes API is allowed twice: at the ``kubernetes`` Service's ClusterIP (what the
    servers' discovery dials) and at the control plane's ENIs behind it.
    Kubernetes leaves undefined whether an ipBlock rule sees a Service IP before or after it is
    rewritten to its endpoints (Kubernetes docs, "Network Policies": connections to Service IPs
    rewritten to cluster-external IPs may or may not be subject to ipBlock policies), and the Amazon
    VPC CNI's network policy agent enforces in eBPF on the pod's interface, where the destination
    may still be the ClusterIP. Only both make the flow hold on every data path.
    """
    servers = server_pods(cluster_name)
    api = around.kubernetes_api
    return (
        Flow("neo4j-peers-out", "egress", Peer(pods=servers), PEER_PORTS, pods=servers,
             reason="cluster members discover, replicate, elect and route among themselves"),
        Flow("neo4j-peers-in", "ingress", Peer(pods=servers), PEER_PORTS, pods=servers,
             reason="cluster members discover, replicate, elect and route among themselves"),
        Flow("neo4j-kubernetes-api", "egress", api, (443,), pods=servers,
             reason="Kubernetes service discovery finds the other cluster members (Service IP and ENIs)"),
        Flow("neo4j-clients", "ingress", Peer(namespace=around.client_namespace), (BOLT_PORT,), pods=servers,
             reason="application pods query the graph over Bolt"),
        Flow("neo4j-metrics", "ingress", Peer(namespace=around.monitoring_namespace), (METRICS_PORT,), pods=servers,
             reason="Prometheus scrapes the servers' metrics"),
        Flow("neo4j-roll-gate-bolt", "egress", Peer(pods=servers), (BOLT_PORT,), pods=GATE_POD_LABELS,
             reason="between two servers of a roll, the gate Job asks the cluster over Bolt whether the "
                    "restarted server's databases are online"),
        Flow("neo4j-roll-gate-bolt-in", "ingress", Peer(pods=GATE_POD_LABELS), (BOLT_PORT,), pods=servers,
             reason="between two servers of a roll, the gate Job asks the cluster over Bolt whether the "
                    "restarted server's databases are online"),
    )


# Neo4j 5 exports no Bolt latency histogram (neo4j_bolt_message_processing_time_seconds does not
# exist: docs/decisions/003-neo4j-latency-metrics.md); it exports the query execution latency as a
# summary with quantiles, and Bolt processing time and message counts as counters.
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


# Free space below which a volume warns (if it also fills within FILL_HORIZON at the recent rate) and
# pages. Growing takes a while: the resize path (docs/runbooks.md, "Growing a Neo4j volume"), and EBS
# modifies a volume again only once the last modification completed (EC2 API Reference, ModifyVolume).
VOLUME_WARN_FREE, VOLUME_PAGE_FREE = 0.20, 0.10
FILL_HORIZON_SECONDS = 4 * 86400


def volume_rule_groups(namespace: str, release_names: list[str]) -> list[dict]:
    """Alerts before a server's data volume fills, from the kubelet's volume stats
    (kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes, labelled with the
    claim's namespace and name; scraped by kube-prometheus-stack's kubelet ServiceMonitor)."""
    claims = "|".join(f"data-{release}-0" for release in release_names)  # [a-z0-9-]: nothing to escape
    selector = f'namespace="{namespace}", persistentvolumeclaim=~"{claims}"'
    free = (f"kubelet_volume_stats_available_bytes{{{selector}}} / "
            f"kubelet_volume_stats_capacity_bytes{{{selector}}}")
    return [{"name": "neo4j-volumes", "rules": [
        {"alert": "Neo4jVolumeFillingUp",
         "expr": f"{free} < {VOLUME_WARN_FREE} and predict_linear(kubelet_volume_stats_available_bytes"
                 f"{{{selector}}}[6h], {FILL_HORIZON_SECONDS}) < 0",
         "for": "1h",
         "annotations": {"summary": "A Neo4j data volume fills within four days",
                         "description": "{{ $labels.persistentvolumeclaim }}: {{ $value | humanizePercentage }} "
                                        "free and falling; grow it (resize path) before it fills."}},
        {"alert": "Neo4jVolumeAlmostFull",
         "expr": f"{free} < {VOLUME_PAGE_FREE}",
         "for": "5m",
         "annotations": {"summary": "A Neo4j data volume is over 90 % full",
                         "description": "{{ $labels.persistentvolumeclaim }}: {{ $value | humanizePercentage }} "
                                        "free; Neo4j stops writing when it is full."}},
    ]}]
