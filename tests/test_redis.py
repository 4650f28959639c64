"""Redis: the generated redis.conf boots a real redis-server with the computed ceiling, the
probes work against it, the rules pass promtool, and the dashboard queries real metrics."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pulumi.runtime import rpc

from components.redis_cache import maxmemory_bytes
from helpers.alerting import ALERTS
from tests.conftest import STACKS, synthesized
from tests.tools import promtool_check, require_tool

MIB = 2**20


def redis_objects(synthesis):
    config = synthesis.named("redis-config", "kubernetes:core/v1:ConfigMap").inputs["data"]["redis.conf"]
    secret = rpc.unwrap_rpc_secret(synthesis.named("redis-auth", "kubernetes:core/v1:Secret").inputs["stringData"])
    statefulset = synthesis.named("redis", "kubernetes:apps/v1:StatefulSet").inputs
    return config, secret, statefulset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server started with exactly the generated redis.conf, in a directory laid out like
    the container's working directory (redis.conf + secret/auth.conf). Only port, bind and dir
    are given on the command line (as the container gives dir), so tests run side by side
    without root."""

    def __init__(self, tmp: Path, config: str, auth_conf: str):
        (tmp / "secret").mkdir()
        (tmp / "redis.conf").write_text(config)
        (tmp / "secret" / "auth.conf").write_text(auth_conf)
        self.port = free_port()
        self.process = subprocess.Popen(
            [require_tool("redis-server"), "redis.conf", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(tmp)], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def cli(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        if password:
            env["REDISCLI_AUTH"] = password
        return subprocess.run([require_tool("redis-cli"), "-p", str(self.port), *args], env=env,
                              capture_output=True, text=True, timeout=10)

    def wait_ready(self, password: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.process.stdout.read()}")
            if self.cli("ping", password=password).stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def booted(request, tmp_path):
    synthesis = synthesized(request.param)
    config, secret, statefulset = redis_objects(synthesis)
    server = RedisServer(tmp_path, config, secret["auth.conf"])
    try:
        server.wait_ready(secret["password"])
        yield synthesis, server, secret["password"], statefulset
    finally:
        server.stop()


@pytest.mark.parametrize("booted", STACKS, indirect=True)
def test_real_redis_server_runs_with_the_computed_ceiling_and_policy(booted):
    synthesis, server, password, _ = booted
    limit = {"stage": 1024 * MIB, "prod": 4096 * MIB}[synthesis.stack]
    assert server.cli("config", "get", "maxmemory", password=password).stdout.split() == [
        "maxmemory", str(maxmemory_bytes(limit, persistence=False))]
    assert server.cli("config", "get", "maxmemory-policy", password=password).stdout.split() == [
        "maxmemory-policy", "allkeys-lru"]
    assert server.cli("config", "get", "slowlog-max-len", password=password).stdout.split()[1] == "256"
    assert server.cli("config", "get", "appendonly", password=password).stdout.split()[1] == "no"
    assert server.cli("config", "get", "protected-mode", password=password).stdout.split()[1] == "yes"


@pytest.mark.parametrize("booted", ["prod"], indirect=True)
def test_the_password_from_the_secret_is_required(booted):
    _, server, password, _ = booted
    assert "NOAUTH" in server.cli("get", "anything").stdout
    assert server.cli("ping", password="wrong-password").stdout.strip() != "PONG"


@pytest.mark.parametrize("booted", ["prod"], indirect=True)
def test_the_probes_pass_against_the_live_server(booted):
    _, server, password, statefulset = booted
    redis = statefulset["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        command = redis[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"] and "redis-cli" in command[2]
        script = command[2].replace("-p 6379", f"-p {server.port}")
        result = subprocess.run(["sh", "-c", script], env={**os.environ, "REDISCLI_AUTH": password},
                                capture_output=True, timeout=10)
        assert result.returncode == 0, (probe, result.stderr)
        # without the password the same probe fails: it really checks auth
        result = subprocess.run(["sh", "-c", script], env={k: v for k, v in os.environ.items()
                                                            if k != "REDISCLI_AUTH"}, capture_output=True)
        assert result.returncode != 0


def test_liveness_tolerates_loading_but_readiness_does_not(prod):
    _, _, statefulset = redis_objects(prod)
    redis = statefulset["spec"]["template"]["spec"]["containers"][0]
    fake_cli = "redis-cli() { echo 'LOADING Redis is loading the dataset in memory'; }; "
    run = lambda probe: subprocess.run(["bash", "-c", fake_cli + redis[probe]["exec"]["command"][2]]).returncode  # noqa: E731
    assert run("livenessProbe") == 0 and run("readinessProbe") != 0


def test_a_percentage_maxmemory_is_refused_by_a_real_redis_server(tmp_path):
    (tmp_path / "redis.conf").write_text("maxmemory 75%\n")
    result = subprocess.run([require_tool("redis-server"), "redis.conf", "--port", str(free_port())],
                            cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert result.returncode != 0 and "argument must be a memory value" in result.stdout + result.stderr


@pytest.mark.parametrize("limit,persistence,expected", [
    (4096 * MIB, False, 3072 * MIB), (4096 * MIB, True, 2048 * MIB), (1024 * MIB, False, 768 * MIB)])
def test_maxmemory_is_a_share_of_the_limit_by_persistence(limit, persistence, expected):
    assert maxmemory_bytes(limit, persistence) == expected


def test_a_limit_too_small_for_a_cache_is_rejected():
    with pytest.raises(ValueError, match="at least 64 MiB"):
        maxmemory_bytes(32 * MIB, persistence=True)


def test_the_password_is_never_in_config_or_on_a_command_line(any_stack):
    config, secret, statefulset = redis_objects(any_stack)
    assert secret["password"] not in config and "requirepass" not in config
    pod = statefulset["spec"]["template"]["spec"]
    text = json.dumps(pod)
    assert secret["password"] not in text
    for container in pod["containers"]:
        assert not any("-a " in " ".join(p["exec"]["command"]) for p in
                       (container.get("readinessProbe", {}), container.get("livenessProbe", {})) if "exec" in p)


def test_statefulset_is_hardened_with_exporter_and_headless_service(any_stack):
    _, _, statefulset = redis_objects(any_stack)
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    names = [c["name"] for c in pod["containers"]]
    assert names == ["redis", "exporter"]
    for container in pod["containers"]:
        assert re.search(r":v?\d+\.\d+\.\d+", container["image"]), container["image"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["readinessProbe"] and container["livenessProbe"]
    service = any_stack.named("redis", "kubernetes:core/v1:Service").inputs["spec"]
    assert service["clusterIP"] == "None"
    assert any_stack.of_type("kubernetes:policy/v1:PodDisruptionBudget")


@pytest.mark.parametrize("stack", STACKS)
def test_cache_rules_pass_promtool(stack, tmp_path):
    rule = synthesized(stack).named("redis-rules", "kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    result = promtool_check(rule.inputs["spec"]["groups"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {r.get("record") or r.get("alert") for g in rule.inputs["spec"]["groups"] for r in g["rules"]}
    assert {"redis:evictions_per_s:rate1m", "RedisEvictionsHigh", "redis:ops_per_s:rate1m",
            "RedisMemoryNearLimit", "RedisDown"} <= names


def test_evictions_alert_fires_after_ten_minutes_above_ten_per_second(prod, tmp_path):
    """promtool's rule unit tests: the alert logic, not just its syntax."""
    rule = prod.named("redis-rules", "kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    promtool_check(rule.inputs["spec"]["groups"], tmp_path)  # writes rules.yaml
    (tmp_path / "test.yaml").write_text(json.dumps({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            # 15 evictions per second for 20 minutes on one pod
            "input_series": [{"series": 'redis_evicted_keys_total{namespace="cache", pod="redis-0"}',
                              "values": "0+900x20"}],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "RedisEvictionsHigh", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "RedisEvictionsHigh", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "cache", "pod": "redis-0"},
                    "exp_annotations": {
                        "summary": "Redis evictions elevated",
                        "description": "redis-0 evicts 15 keys/s: the cache is too small for its working set.",
                        "runbook_url": ALERTS["RedisEvictionsHigh"].runbook_url},
                }]},
            ],
        }],
    }))
    result = subprocess.run([require_tool("promtool"), "test", "rules", "test.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# What the exporters really export (redis_exporter's and Neo4j 5's metric references); the
# dashboard may use these, and recording rules built from them.
EXPORTED = {
    "redis_evicted_keys_total", "redis_commands_processed_total", "redis_memory_used_bytes",
    "redis_memory_max_bytes", "redis_connected_clients", "redis_up", "redis_memory_used_rss_bytes",
    "neo4j_database_neo4j_db_query_execution_latency_millis", "neo4j_dbms_bolt_messages_done_total",
    "neo4j_dbms_bolt_accumulated_processing_time_total", "neo4j_dbms_page_cache_hit_ratio",
    "neo4j_database_neo4j_transaction_committed_total",
}
PROMQL_WORDS = {"sum", "by", "rate", "max", "min", "avg", "namespace", "service", "pod", "quantile", "without"}


def test_dashboard_loads_and_every_panel_queries_a_real_metric(prod):
    configmap = prod.named("stores-dashboard", "kubernetes:core/v1:ConfigMap").inputs
    assert configmap["metadata"]["labels"] == {"grafana_dashboard": "1"}
    dashboard = json.loads(configmap["data"]["intelgraph-stores.json"])
    assert dashboard["title"] == "Stores — Neo4j & Redis"
    assert [v["type"] for v in dashboard["templating"]["list"]] == ["datasource"]
    recorded = {r["record"] for rule in prod.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
                for g in rule.inputs["spec"]["groups"] for r in g["rules"] if "record" in r}
    assert len(dashboard["panels"]) >= 6
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[{\[(])|[a-zA-Z_:][a-zA-Z0-9_:]*$",
                                   re.sub(r'"[^"]*"', "", target["expr"]))) - PROMQL_WORDS
            assert names, target["expr"]
            assert names <= EXPORTED | recorded, (panel["title"], names - EXPORTED - recorded)


def statefulset_and_config(synthesis) -> tuple[dict, dict]:
    statefulset = synthesis.named("redis", "kubernetes:apps/v1:StatefulSet").inputs
    config = synthesis.named("redis-config", "kubernetes:core/v1:ConfigMap").inputs
    return statefulset, config


def test_a_changed_redis_conf_rolls_the_statefulset(prod):
    """redis.conf is a subPath mount: the kubelet never refreshes it (Kubernetes docs, ConfigMaps:
    subPath mounts receive no updates), and redis-server reads it only at start. The pod template
    carries the file's digest, so a changed file changes the template and the StatefulSet
    controller replaces the pods one by one (its default RollingUpdate strategy)."""
    import hashlib

    from synth import engine
    from tests.conftest import config_with

    statefulset, config = statefulset_and_config(prod)
    [mount] = [m for m in statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
               if m["name"] == "config"]
    assert mount["subPath"] == "redis.conf"
    digest = statefulset["spec"]["template"]["metadata"]["annotations"]["intelgraph.io/redis-conf-sha256"]
    assert digest == hashlib.sha256(config["data"]["redis.conf"].encode()).hexdigest()
    assert statefulset["spec"].get("updateStrategy", {"type": "RollingUpdate"})["type"] == "RollingUpdate"

    changed = engine.synthesize("prod", config_with("prod", {"redis.maxmemoryPolicy": "allkeys-lfu"}))
    changed_set, changed_config = statefulset_and_config(changed)
    assert changed_config["data"]["redis.conf"] != config["data"]["redis.conf"]
    before = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert changed_set["spec"]["template"]["metadata"]["annotations"] != before
