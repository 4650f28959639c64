"""RedisCache: a Redis StatefulSet tuned as a cache, with metrics and SLO alerts.

``maxmemory 75%`` is refused by redis-server ("argument must be a memory value"), and
Redis never reads its cgroup limit anyway: the ceiling here is an absolute byte count derived from
the container's memory limit. Without persistence 75% goes to data and 25% stays free for
client buffers, replication backlog and fragmentation; with persistence only 50%, because a
fork for an RDB snapshot or AOF rewrite can copy-on-write up to the whole dataset.

Each pod is an independent cache node behind a headless Service (clients hash keys over the pod
addresses); losing a pod loses a share of the cache, never correctness. The password lives only
in a Secret: redis-server reads it from an ``include`` file, the probes and the exporter from the
environment - never from a command line that ``ps`` would show.

Why not a percentage: docs/decisions/004-redis-maxmemory-absolute.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from helpers.flows import Flow, Peer
from helpers.kube import (
    container_security_context,
    labels_for,
    pod_disruption_budget,
    pod_security_context,
    prometheus_rule,
    resources,
    service_monitor,
)
from helpers.redis_auth import EPOCHS_ANNOTATION, Rollover, accepted_epochs, redis_auth
from helpers.validation import require

PORT = 6379
METRICS_PORT = 9121
REDIS_UID = 999  # the official image's redis user
MIB = 2**20
CONFIG_DIR = "/etc/redis"
# redis.conf reaches the container through a subPath mount, which never receives ConfigMap updates
# (Kubernetes docs, "ConfigMaps": a container using a ConfigMap as a subPath volume mount will not
# receive updates), and redis-server reads it only at start: its digest in the pod template makes
# a changed redis.conf a template change, which the StatefulSet rolls out pod by pod.
CONFIG_DIGEST = "intelgraph.io/redis-conf-sha256"
# Relative to the container's working directory (CONFIG_DIR), so a test can boot the same file.
AUTH_INCLUDE = "secret/auth.conf"


def maxmemory_bytes(limit_bytes: int, persistence: bool) -> int:
    share = 0.5 if persistence else 0.75
    value = int(limit_bytes * share) // MIB * MIB
    if value < 32 * MIB:
        raise ValueError(f"memory limit {limit_bytes // MIB} MiB leaves only {value // MIB} MiB for data; "
                         "give Redis at least 64 MiB")
    return value


@dataclass(frozen=True)
class RedisCacheArgs:
    namespace: str
    image: str
    exporter_image: str
    replicas: int
    cpu_request: str
    cpu_limit: str
    memory: str
    memory_bytes: int
    persistence: bool
    maxmemory_policy: str
    timeout_seconds: int
    tcp_keepalive_seconds: int
    slowlog_slower_than_micros: int
    slowlog_max_len: int
    prometheus_release_label: str
    storage_class: Optional[str] = None
    storage_size: Optional[str] = None
    password_epoch: int = 0
    password_rollover: Rollover = "none"
    # The Kubernetes name of the cache (Service, StatefulSet, Secret '<app>-auth', ConfigMap): the
    # same in every region, so clients find it under one name whichever cluster serves them.
    app_name: str = "redis"
    # The application's namespace: it gets the Secret '<app>-client' with the client password.
    # Pods read Secrets of their own namespace only (Kubernetes docs, "Secrets": a Secret is
    # namespaced, and a Pod can reference only Secrets in its own namespace).
    client_namespace: Optional[str] = None

    def __post_init__(self) -> None:
        problems = []
        if self.password_rollover != "none" and self.password_epoch < 1:
            problems.append("password_rollover needs password_epoch >= 1 (a previous password)")
        if self.replicas < 0:
            problems.append("replicas cannot be negative (0: a pilot-light standby, scaled up by the region switch)")
        if self.persistence and not (self.storage_class and self.storage_size):
            problems.append("persistence needs storage_class and storage_size")
        require("RedisCacheArgs", problems)
        maxmemory_bytes(self.memory_bytes, self.persistence)

    @property
    def maxmemory(self) -> int:
        return maxmemory_bytes(self.memory_bytes, self.persistence)


def redis_conf(args: RedisCacheArgs) -> str:
    """The complete redis.conf (the password comes from the included secret file)."""
    persistence = (
        ["appendonly yes", "appendfsync everysec", 'save "3600 1 300 100"']
        if args.persistence else
        ["appendonly no", 'save ""']  # a cache: no fork for snapshots, no disk
    )
    lines = [
        f"port {PORT}",
        "bind 0.0.0.0",
        "protected-mode yes",
        f"maxmemory {args.maxmemory}",
        f"maxmemory-policy {args.maxmemory_policy}",
        f"timeout {args.timeout_seconds}",
        f"tcp-keepalive {args.tcp_keepalive_seconds}",
        f"slowlog-log-slower-than {args.slowlog_slower_than_micros}",
        f"slowlog-max-len {args.slowlog_max_len}",
        "latency-monitor-threshold 100",
        *persistence,
        f"include {AUTH_INCLUDE}",
    ]
    return "\n".join(lines) + "\n"


class RedisCache(pulumi.ComponentResource):
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: RedisCacheArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:cache:RedisCache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        app = args.app_name
        selector = {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "cache"}
        labels = labels_for(app, "cache")

        # clients read "password"; the server's ACL may accept two during a rotation (redis_auth)
        auth = redis_auth(name, args.password_epoch, args.password_rollover, child)
        secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata={"name": f"{app}-auth", "namespace": args.namespace, "labels": labels},
            type="Opaque",
            string_data={
                "password": auth.client_password,
                "auth.conf": auth.auth_conf,
            },
            opts=child,
        )
        if args.client_namespace:
            # the same value as "password" above, at the same step of a roll: clients move when this does
            client_secret(f"{name}-client", app=app, namespace=args.client_namespace, labels=labels,
                          address=f"{app}.{args.namespace}.svc.cluster.local:{PORT}",
                          password=auth.client_password, opts=child)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": f"{app}-config", "namespace": args.namespace, "labels": labels},
            data={"redis.conf": redis_conf(args)},
            opts=child,
        )
        service = k8s.core.v1.Service(
            name,
            metadata={"name": app, "namespace": args.namespace, "labels": labels},
            spec={
                "cluster_ip": "None",  # headless: one stable DNS name per cache node
                "selector": selector,
                "ports": [{"name": "redis", "port": PORT, "target_port": "redis"},
                          {"name": "metrics", "port": METRICS_PORT, "target_port": "metrics"}],
            },
            opts=child,
        )
        k8s.apps.v1.StatefulSet(
            name,
            metadata={"name": app, "namespace": args.namespace, "labels": labels},
            spec=self._statefulset_spec(app, args, selector, labels),  # pyright: ignore[reportArgumentType]  # camelCase API keys: tests/test_types.py
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, config, service]),
        )
        pod_disruption_budget(f"{name}-pdb", args.namespace, selector, max_unavailable=1, opts=child)
        service_monitor(f"{name}-metrics", namespace=args.namespace, release_label=args.prometheus_release_label,
                        selector=selector, port="metrics", opts=child)
        prometheus_rule(f"{name}-rules", namespace=args.namespace, release_label=args.prometheus_release_label,
                        groups=cache_rule_groups(args.namespace, args.memory_bytes), opts=child)
        self.service_name = service.metadata.name
        self.register_outputs({"serviceName": self.service_name, "maxmemoryBytes": args.maxmemory})

    @staticmethod
    def _statefulset_spec(app: str, args: RedisCacheArgs, selector: dict, labels: dict) -> dict:
        password_env = {"valueFrom": {"secretKeyRef": {"name": f"{app}-auth", "key": "password"}}}
        # PONG, or LOADING while a restarted node reads its dataset: alive, just not ready.
        ping = 'out=$(redis-cli -h 127.0.0.1 -p {port} ping 2>&1); [ "$out" = PONG ]{extra}'
        redis = {
            "name": "redis",
            "image": args.image,
            "imagePullPolicy": "IfNotPresent",
            "workingDir": CONFIG_DIR,
            # dir on the command line: the file stays location-free (and bootable in a test).
            "command": ["redis-server", f"{CONFIG_DIR}/redis.conf", "--dir", "/data"],
            # redis-cli reads REDISCLI_AUTH, so the probes never put the password on a command line.
            "env": [{"name": "REDISCLI_AUTH", **password_env}],
            "ports": [{"name": "redis", "containerPort": PORT}],
            "resources": resources(args.cpu_request, args.cpu_limit, args.memory),
            "securityContext": container_security_context(read_only_root=True),
            "readinessProbe": {"exec": {"command": ["sh", "-c", ping.format(port=PORT, extra="")]},
                               "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 2},
            "livenessProbe": {"exec": {"command": ["sh", "-c", ping.format(
                                  port=PORT, extra=' || case "$out" in LOADING*) true;; *) false;; esac')]},
                              "initialDelaySeconds": 15, "periodSeconds": 10, "timeoutSeconds": 3,
                              "failureThreshold": 3},
            "volumeMounts": [
                {"name": "config", "mountPath": f"{CONFIG_DIR}/redis.conf", "subPath": "redis.conf", "readOnly": True},
                {"name": "auth", "mountPath": f"{CONFIG_DIR}/secret", "readOnly": True},
                {"name": "data", "mountPath": "/data"},
            ],
        }
        exporter = {
            "name": "exporter",
            "image": args.exporter_image,
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
                    {"name": "REDIS_PASSWORD", **password_env}],
            "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
            "resources": resources("50m", "100m", "64Mi"),
            "securityContext": container_security_context(read_only_root=True),
            "readinessProbe": {"httpGet": {"path": "/health", "port": "metrics"}, "periodSeconds": 10},
            "livenessProbe": {"httpGet": {"path": "/health", "port": "metrics"}, "periodSeconds": 20},
        }
        volumes = [
            {"name": "config", "configMap": {"name": f"{app}-config"}},
            {"name": "auth", "secret": {"secretName": f"{app}-auth", "defaultMode": 0o400,
                                        "items": [{"key": "auth.conf", "path": "auth.conf"}]}},
        ]
        spec = {
            "serviceName": app,
            "replicas": args.replicas,
            "podManagementPolicy": "Parallel",  # cache nodes are independent; start them together
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, **selector},
                             "annotations": {CONFIG_DIGEST: hashlib.sha256(redis_conf(args).encode()).hexdigest(),
                                             EPOCHS_ANNOTATION: ",".join(map(str, accepted_epochs(
                                                 args.password_epoch, args.password_rollover)))}},
                "spec": {
                    "securityContext": pod_security_context(REDIS_UID),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [redis, exporter],
                    "volumes": volumes if args.persistence else volumes + [{"name": "data", "emptyDir": {}}],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector}}],
                },
            },
        }
        if args.persistence:
            spec["volumeClaimTemplates"] = [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": args.storage_class,
                         "resources": {"requests": {"storage": args.storage_size}}},
            }]
        return spec


def client_secret(resource_name: str, *, app: str, namespace: str, labels: dict, address: str,
                  password: pulumi.Input[str], opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """What an application pod needs to reach the cache, in the application's namespace."""
    return k8s.core.v1.Secret(
        resource_name,
        metadata={"name": f"{app}-client", "namespace": namespace, "labels": labels},
        type="Opaque",
        # the headless Service's name: one A record per cache node
        string_data={"REDIS_ADDRESS": address, "REDIS_PASSWORD": pulumi.Output.secret(password)},
        opts=opts,
    )


def cache_flows(name: str, client_namespace: str, monitoring_namespace: str) -> tuple[Flow, ...]:
    """Redis talks to nobody outside its namespace; clients and Prometheus come to it."""
    pods = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "cache"}
    return (
        Flow("redis-clients", "ingress", Peer(namespace=client_namespace), (PORT,), pods=pods,
             reason="application pods use the cache"),
        Flow("redis-metrics", "ingress", Peer(namespace=monitoring_namespace), (METRICS_PORT,), pods=pods,
             reason="Prometheus scrapes the redis_exporter sidecar"),
    )


def cache_rule_groups(namespace: str, limit_bytes: int) -> list[dict]:
    """The design notes' cache SLIs, plus memory near the container limit and node down
    (docs/decisions/012-stores-slos-and-dashboard.md).

    A cache sits at maxmemory by design (eviction keeps it there), so "near max" that matters is
    the process's resident memory nearing the container limit: the OOM killer's line.
    """
    scope = f'namespace="{namespace}"'
    return [{
        "name": "cache-sli",
        "rules": [
            {"record": "redis:evictions_per_s:rate1m",
             "expr": f"sum by (namespace, pod) (rate(redis_evicted_keys_total{{{scope}}}[1m]))"},
            {"record": "redis:ops_per_s:rate1m",
             "expr": f"sum by (namespace, pod) (rate(redis_commands_processed_total{{{scope}}}[1m]))"},
            {"record": "redis:memory_used:ratio",
             "expr": f"redis_memory_used_bytes{{{scope}}} / redis_memory_max_bytes{{{scope}}}"},
            {"alert": "RedisEvictionsHigh",
             "expr": "redis:evictions_per_s:rate1m > 10",
             "for": "10m", "labels": {"severity": "warning"},
             "annotations": {"summary": "Redis evictions elevated",
                             "description": "{{ $labels.pod }} evicts {{ $value | humanize }} keys/s: "
                                            "the cache is too small for its working set."}},
            {"alert": "RedisMemoryNearLimit",
             "expr": f"redis_memory_used_rss_bytes{{{scope}}} > {int(limit_bytes * 0.9)}",
             "for": "10m", "labels": {"severity": "critical"},
             "annotations": {"summary": "Redis resident memory above 90% of its container limit",
                             "description": "{{ $labels.pod }} uses {{ $value | humanize1024 }}B: "
                                            "fragmentation or client buffers are eating the headroom "
                                            "above maxmemory; an OOM kill is close."}},
            {"alert": "RedisDown",
             "expr": f"redis_up{{{scope}}} == 0 or absent(redis_up{{{scope}}})",
             "for": "2m", "labels": {"severity": "critical"},
             "annotations": {"summary": "A Redis cache node is down or not scraped"}},
        ],
    }]
