"""The log shipper as deployed: Fluent Bit reads only the workload namespaces' container logs,
parses JSON lines, runs the very scrubber tests/test_log_scrubber.py proves, and writes to the
logs bucket through a write-only IRSA role - hardened, pinned, closed by its own flows."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess

import pytest

from components import log_shipper
from synth.export import kubernetes_objects
from tests import crds
from tests.conftest import ROOT, STACKS, stack_settings, synthesized
from tests.test_log_scrubber import DRIVER, to_lua
from tests.tools import promtool_check, require_tool


def obj(stack: str, kind: str, name: str, role: str = "primary") -> dict:
    [found] = [o for o in kubernetes_objects(synthesized(stack), role)
               if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def sections(conf: str) -> list[tuple[str, dict[str, str]]]:
    """Fluent Bit's classic format: [SECTION] headers, 'Key Value' lines (keys case-insensitive)."""
    result: list[tuple[str, dict[str, str]]] = []
    for line in conf.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            result.append((line.strip("[]"), {}))
        else:
            key, value = line.split(None, 1)
            result[-1][1][key.lower()] = value
    return result


def config(stack: str, role: str = "primary") -> tuple[dict, list[tuple[str, dict[str, str]]]]:
    cm = obj(stack, "ConfigMap", "fluent-bit-config", role)
    return cm["data"], sections(cm["data"]["fluent-bit.conf"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_daemonset_is_hardened_pinned_and_reads_the_node_logs_read_only(stack):
    ds = obj(stack, "DaemonSet", "fluent-bit")
    pod = ds["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert re.fullmatch(r"cr\.fluentbit\.io/fluent/fluent-bit:\d+\.\d+\.\d+", container["image"])
    sc, psc = container["securityContext"], pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0 and psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and not sc.get("privileged")
    # containerd writes container logs 0640 root:root: the root group may read, nothing more is needed
    assert psc["supplementalGroups"] == [0]
    assert pod["automountServiceAccountToken"] is False  # IRSA projects its own token; no API calls
    host = [v for v in pod["volumes"] if "hostPath" in v]
    assert [v["hostPath"]["path"] for v in host] == ["/var/log"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == host[0]["name"]]
    assert mount["readOnly"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    account = obj(stack, "ServiceAccount", pod["serviceAccountName"])
    role = synthesized(stack).named("log-shipper-writer", "aws:iam/role:Role")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role.outputs["arn"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_namespace_admits_the_hostpath_but_still_warns_at_restricted(stack):
    labels = obj(stack, "Namespace", "logging")["metadata"]["labels"]
    # Pod Security Standards: hostPath volumes are refused at baseline and restricted
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize("role,workloads", [
    ("primary", ("graph", "cache", "intelgraph-app")),
    # the restore rehearsals run in the DR cluster: their logs are shipped there
    ("dr", ("graph", "cache", "dr-verify", "intelgraph-app")),
])
def test_only_the_workload_namespaces_logs_are_read(prod, role, workloads):
    _, conf = config("prod", role)
    [(_, tail)] = [s for s in conf if s[0] == "INPUT"]
    assert tail["name"] == "tail" and tail["multiline.parser"] == "cri"
    paths = tail["path"].split(",")

    def read(filename: str) -> bool:  # kubelet: /var/log/containers/<pod>_<namespace>_<container>-<id>.log
        return any(fnmatch.fnmatchcase(f"/var/log/containers/{filename}", p) for p in paths)

    for ns in workloads:
        assert read(f"x-0_{ns}_main-0123abcd.log"), ns
    if role == "primary":  # nothing runs there any more
        assert not read("x-0_dr-verify_main-0123abcd.log")
    for ns in ("kube-system", "logging", "monitoring"):
        assert not read(f"x-0_{ns}_main-0123abcd.log"), ns


def test_filters_parse_then_scrub_then_ship_to_the_logs_bucket(prod):
    data, conf = config("prod")
    kinds = [(name, body.get("name")) for name, body in conf]
    assert kinds == [("SERVICE", None), ("INPUT", "tail"), ("FILTER", "kubernetes"), ("FILTER", "parser"),
                     ("FILTER", "lua"), ("OUTPUT", "s3")]  # Fluent Bit applies filters in the order they are written
    lua = conf[4][1]
    assert lua["script"] == f"{log_shipper.CONFIG_DIR}/scrub.lua" and lua["call"] == "scrub"
    assert data["scrub.lua"] == (ROOT / "components" / "scripts" / "scrub.lua").read_text()
    assert "function scrub(tag, timestamp, record)" in data["scrub.lua"]
    parser = conf[3][1]
    assert parser["key_name"] == "log"  # the cri multiline parser puts the message under "log"
    assert "Name        json" in data["parsers.conf"] and parser["parser"] == "json"
    s3 = conf[5][1]
    logs_bucket = prod.named("logs-backups", "aws:s3/bucket:Bucket")
    assert s3["bucket"] == logs_bucket.outputs["bucket"] and s3["region"] == stack_settings("prod").aws.primary_region
    # the bucket has Object Lock: S3 refuses a PutObject without an integrity checksum
    assert prod.named("logs-backups-object-lock", "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert s3["send_content_md5"] == "On" and s3["use_put_object"] == "On"
    # every key the output writes is one the role may write
    policy = json.loads(prod.named("log-shipper-writer", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    [put] = [s for s in policy["Statement"] if s["Action"] == ["s3:PutObject"]]
    key = s3["s3_key_format"].replace("%Y/%m/%d/%H", "2026/12/01/18").replace("$UUID", "3f2a9c1e")
    assert fnmatch.fnmatchcase(f"{logs_bucket.outputs['arn']}{key}", put["Resource"])
    assert not any("s3:GetObject" in s["Action"] for s in policy["Statement"])  # write-only


# fluent-bit plugins/filter_kubernetes/kube_regex.h KUBE_TAG_TO_REGEX, applied to the tag after
# Kube_Tag_Prefix is removed (Python spells named groups (?P<...>))
KUBE_TAG_TO_REGEX = (r"(?P<pod_name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)"
                     r"_(?P<namespace_name>[^_]+)_(?P<container_name>.+)-(?P<docker_id>[a-z0-9]{64})\.log$")


def tail_tag(tag_setting: str, path: str) -> str:
    """Fluent Bit manual, "Kubernetes" filter, "Workflow of Tail and Kubernetes filter": a "*" in
    tail's Tag is replaced by the monitored file's absolute path with "/" as "."
    (/var/log/containers/x.log -> kube.var.log.containers.x.log)."""
    return tag_setting.replace("*", path.lstrip("/").replace("/", "."))


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_record_names_its_namespace_pod_and_container(stack):
    """The s3 output writes records, not tags: without the kubernetes filter a shipped line says
    nothing of where it came from. Use_Tag_For_Meta takes pod_name, namespace_name, container_name
    and docker_id from the tag alone ("Connection to Kubernetes API Server won't get established",
    Fluent Bit manual; filter_kubernetes/kube_meta.c merge_meta_from_tag) - the shipper has no API
    token and no flow to the API server - and adds them under "kubernetes" before the output."""
    _, conf = config(stack)
    [(_, tail)] = [s for s in conf if s[0] == "INPUT"]
    [kube] = [body for name, body in conf if body.get("name") == "kubernetes"]
    [(_, out)] = [s for s in conf if s[0] == "OUTPUT"]
    assert kube["use_tag_for_meta"] == "On"
    assert kube["labels"] == kube["annotations"] == "Off"  # these would need the API
    assert fnmatch.fnmatchcase(tail_tag(tail["tag"], "/var/log/containers/x"), kube["match"])
    assert fnmatch.fnmatchcase(tail_tag(tail["tag"], "/var/log/containers/x"), out["match"])
    docker_id = "4f2a" * 16
    for pattern in tail["path"].split(","):
        namespace = pattern.split("_")[1]
        path = f"/var/log/containers/api-7d9f8b6c5-x2k4q_{namespace}_api-{docker_id}.log"
        assert fnmatch.fnmatchcase(path, pattern)
        tag = tail_tag(tail["tag"], path)
        assert tag.startswith(kube["kube_tag_prefix"])
        meta = re.search(KUBE_TAG_TO_REGEX, tag[len(kube["kube_tag_prefix"]):])
        assert meta and meta.groupdict() == {"pod_name": "api-7d9f8b6c5-x2k4q", "namespace_name": namespace,
                                             "container_name": "api", "docker_id": docker_id}


def test_the_mounted_scrubber_scrubs_a_cri_record(prod, tmp_path):
    data, _ = config("prod")
    (tmp_path / "scrub.lua").write_text(data["scrub.lua"])
    # what the tail + cri + json parser stages hand the Lua filter for one JSON log line
    kubernetes = {"pod_name": "api-0", "namespace_name": "intelgraph-app", "container_name": "api", "docker_id": "f" * 64}
    record = {"stream": "stdout", "_p": "F", "time": "2026-12-01T18:00:00.1Z", "level": "info", "kubernetes": kubernetes,
              "msg": "signup ana@example.org", "password": "x", "user": {"email": "ana@example.org", "id": "u-1"}}
    (tmp_path / "samples.lua").write_text("return {" + to_lua(record) + "}")
    run = subprocess.run([require_tool("lua5.4"), str(DRIVER), str(tmp_path / "scrub.lua"), "scrub",
                          str(tmp_path / "samples.lua")], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["code"] == 2 and out["record"] == {"stream": "stdout", "_p": "F", "time": "2026-12-01T18:00:00.1Z",
                                                  "level": "info", "msg": "signup [email]", "user": {"id": "u-1"},
                                                  "kubernetes": kubernetes}  # where it came from survives


def test_the_shipper_reaches_s3_sts_and_prometheus_reaches_it_nothing_else(prod, tmp_path):
    """network-config-analyzer over the stack's namespaces, policies and workloads, with a
    Prometheus and a stranger pod around them."""
    from tests.nca_map import connectivity, deployment, reaches

    world = deployment("monitoring", "prometheus", {"app": "prometheus"}) + deployment("other", "x", {"app": "x"})
    rows = connectivity(kubernetes_objects(prod), tmp_path, world)
    ds = "fluent-bit"
    assert reaches(rows, "logging", ds, 443, ip="10.40.2.112")  # S3 interface endpoint
    assert reaches(rows, "logging", ds, 443, ip="10.40.1.52")  # STS
    assert not reaches(rows, "logging", ds, 443, ip="52.216.0.10")  # public S3
    assert not reaches(rows, "logging", ds, 443, ip="10.40.0.5")  # the Kubernetes API: not needed
    assert reaches(rows, "monitoring", "prometheus", log_shipper.HTTP_PORT, dst_ns="logging", dst_pod=ds)
    assert not reaches(rows, "other", "x", log_shipper.HTTP_PORT, dst_ns="logging", dst_pod=ds)


@pytest.mark.parametrize("stack", STACKS)
def test_the_podmonitor_matches_the_upstream_crd_and_selects_the_shipper(stack):
    monitor = obj(stack, "PodMonitor", "fluent-bit")
    crds.validate(monitor)
    assert monitor["metadata"]["labels"]["release"]
    ds = obj(stack, "DaemonSet", "fluent-bit")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    port_names = {p["name"] for p in ds["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= port_names


def test_the_shipper_alerts_pass_promtool(prod, tmp_path):
    rule = obj("prod", "PrometheusRule", "log-shipper-rules")
    result = promtool_check(rule["spec"]["groups"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # the filter and output names the alerts select on are the Aliases in the config
    _, conf = config("prod")
    aliases = {body.get("alias") for _, body in conf}
    for r in rule["spec"]["groups"][0]["rules"]:
        for alias in re.findall(r'name="([^"]+)"', r["expr"]):
            assert alias in aliases, r["alert"]


def test_the_config_reader_reads_the_classic_format():
    # 'Key Value' lines, not INI's '=': a misread key would make every assertion above vacuous
    assert sections("[OUTPUT]\n    Name s3\n    # note\n    Bucket b c\n") == [
        ("OUTPUT", {"name": "s3", "bucket": "b c"})]


def mib(size: str) -> float:
    """Fluent Bit sizes ('1024M', K/M/G powers of 1024) and Kubernetes quantities ('2Gi', 'Mi')."""
    number, unit = re.fullmatch(r"(\d+)([KMG]i?)?", size).groups()
    return int(number) * {"K": 1 / 1024, "M": 1, "G": 1024, None: 1 / 1024 ** 2}[(unit or "M")[0] if unit else None]


@pytest.mark.parametrize("stack", STACKS)
def test_the_upload_buffers_are_bounded_below_the_state_volume(stack):
    """The s3 output buffers in store_dir and, when its store is full, the engine queues chunks for
    it on disk: both live on the state emptyDir. Unbounded (store_dir_limit_size defaults to 0 =
    unlimited, Fluent Bit manual "Amazon S3"; storage.total_limit_size too, "Buffering and
    storage"), a long S3 outage outgrows the sizeLimit and the kubelet evicts the pod with every
    buffered log (Kubernetes docs, "Local ephemeral storage": a pod whose emptyDir exceeds its
    sizeLimit is evicted). Both limits together must leave room for the tail offsets database."""
    _, conf = config(stack)
    [(_, s3)] = [s for s in conf if s[0] == "OUTPUT"]
    ds = obj(stack, "DaemonSet", "fluent-bit")
    pod = ds["spec"]["template"]["spec"]
    [state] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == log_shipper.STATE_DIR]
    [volume] = [v for v in pod["volumes"] if v["name"] == state["name"]]
    assert s3["store_dir"].startswith(log_shipper.STATE_DIR + "/")
    buffered = mib(s3["store_dir_limit_size"]) + mib(s3["storage.total_limit_size"])
    assert buffered <= 0.8 * mib(volume["emptyDir"]["sizeLimit"])


def test_size_reader():
    assert (mib("2Gi"), mib("1024M"), mib("512M"), mib("64K")) == (2048, 1024, 512, 1 / 16)


def shipper_series(pod: str, read: str, processed: str) -> list[dict]:
    labels = f'namespace="logging", pod="{pod}"'
    return [{"series": f'fluentbit_input_records_total{{{labels}, name="containers"}}', "values": read},
            {"series": f'fluentbit_output_proc_records_total{{{labels}, name="s3"}}', "values": processed},
            # the s3 output's own retry counters stay 0 whatever happens (Fluent Bit manual, "Amazon S3")
            {"series": f'fluentbit_output_retries_failed_total{{{labels}, name="s3"}}', "values": "0x120"}]


def test_the_output_alert_fires_when_the_s3_buffer_is_full_and_stays_quiet_otherwise(prod, tmp_path):
    """promtool's rule unit tests over the series Fluent Bit really emits during an S3 outage: the
    s3 output's flush buffers chunks and counts them processed until store_dir_limit_size is
    reached, then returns FLB_RETRY (fluent-bit plugins/out_s3/s3.c: cb_s3_flush, and
    s3_store_buffer_put's "Buffer is full"), so processed records stop while the tail input
    keeps reading. An idle node (nothing read, nothing processed) and a healthy one stay quiet."""
    from tests.test_neo4j_backup_alerts import promtool_test

    groups = obj("prod", "PrometheusRule", "log-shipper-rules")["spec"]["groups"]
    rule = next(r for r in groups[0]["rules"] if r["alert"] == "LogShipperOutputFailing")
    series = (shipper_series("full", "0+100x120", "0+100x20 2000x100")  # store full from minute 20
              + shipper_series("healthy", "0+100x120", "0+100x120")
              + shipper_series("idle", "5x120", "5x120"))
    firing = {"exp_labels": {**rule["labels"], "namespace": "logging", "pod": "full", "name": "containers"},
              "exp_annotations": rule["annotations"]}
    promtool_test(groups, tmp_path, "1m", series, [
        {"eval_time": "20m", "alertname": "LogShipperOutputFailing", "exp_alerts": []},
        {"eval_time": "45m", "alertname": "LogShipperOutputFailing", "exp_alerts": []},  # still pending
        {"eval_time": "60m", "alertname": "LogShipperOutputFailing", "exp_alerts": [firing]},
    ])


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipper_outranks_workloads_on_a_full_node_but_not_the_node_itself(stack):
    """Kubernetes, "Pod Priority and Preemption": a pending pod preempts lower-priority pods on a
    node; pods without a class have priority 0; user-defined classes go up to 1000000000, below
    system-cluster-critical (2000000000) and system-node-critical (2000001000)."""
    pod = obj(stack, "DaemonSet", "fluent-bit")["spec"]["template"]["spec"]
    [priority] = [o for o in kubernetes_objects(synthesized(stack)) if o["kind"] == "PriorityClass"
                  and o["metadata"]["name"] == pod["priorityClassName"]]
    assert priority["apiVersion"] == "scheduling.k8s.io/v1"
    assert 0 < priority["value"] <= 1_000_000_000 and priority["preemptionPolicy"] == "PreemptLowerPriority"
    assert priority["globalDefault"] is False  # workloads keep priority 0
    for o in kubernetes_objects(synthesized(stack)):  # nothing the program runs outranks it
        spec = (o.get("spec") or {}).get("template", {}).get("spec") or {}
        assert spec.get("priorityClassName") in (None, pod["priorityClassName"]), o["metadata"]["name"]
