"""Every Kubernetes object the stacks create - their own and what their Helm releases render -
validated against the official Kubernetes JSON schemas (strict: unknown fields are errors) for the
cluster's version from the stack file."""

from __future__ import annotations

import kubernetes_validate
import pytest

import settings
from synth import engine, helm
from synth.export import every_cluster_objects, kubernetes_objects
from tests.conftest import STACKS, rendered, synthesized

# Custom resources have no upstream schema: promtool checks PrometheusRules (test_neo4j, test_redis),
# test_servicemonitors_are_well_formed the ServiceMonitors, test_neo4j_snapshots the snapshot CRDs,
# test_alerting the AlertmanagerConfigs and test_log_shipper the PodMonitor (against the upstream CRDs);
# test_custom_resources every one of them, the edge's TargetGroupBinding included, strictly.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "VolumeSnapshotClass", "AlertmanagerConfig", "PodMonitor",
                "TargetGroupBinding"}


def every_object(stack: str) -> list[dict]:
    return [*every_cluster_objects(synthesized(stack)), *(entry["inputs"] for entry in rendered(stack))]


def k8s_version(stack: str) -> str:
    return settings.validate(engine.stack_config(stack)).kubernetes.version


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_matches_the_official_schema(stack):
    objects = every_object(stack)
    assert len(objects) > 20
    marked = {o["kind"] for o in objects if helm.RENDERED_BY in (o["metadata"].get("annotations") or {})}
    assert {"StatefulSet", "Service"} <= marked  # the chart's objects are checked too
    checked = 0
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, k8s_version(stack), strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 20


def test_the_validator_rejects_an_unknown_field():
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {"a": "b"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33", strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_servicemonitors_are_well_formed(stack):
    monitors = [o for o in kubernetes_objects(synthesized(stack)) if o["kind"] == "ServiceMonitor"]
    assert monitors
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"]
        assert monitor["spec"]["selector"]["matchLabels"]
        for endpoint in monitor["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scheme", "scrapeTimeout"}
            assert endpoint["port"] and endpoint["path"].startswith("/")


def test_manifests_never_carry_secret_values():
    for stack in STACKS:
        for obj in every_object(stack):
            if obj["kind"] == "Secret":
                values = {**obj.get("stringData", {}), **obj.get("data", {})}
                assert values and set(values.values()) == {"REDACTED-BY-SYNTH"}


POD_TEMPLATES = {"Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"),
                 "DaemonSet": ("spec", "template"), "Job": ("spec", "template"),
                 "CronJob": ("spec", "jobTemplate", "spec", "template")}


@pytest.mark.parametrize("stack", STACKS)
def test_a_pod_mounts_its_token_exactly_when_its_service_account_is_granted_api_access(stack):
    """kubectl (client-go rest.InClusterConfig) in a pod authenticates only with the token mounted at
    /var/run/secrets/kubernetes.io/serviceaccount; automountServiceAccountToken false leaves none, and
    a job granted RBAC then fails every run. The reverse: a token nobody needs is one to steal
    (Kubernetes docs, "Configure Service Accounts for Pods"; IRSA projects a token of its own)."""
    objects = every_object(stack)
    bound = {(s.get("namespace") or o["metadata"].get("namespace"), s["name"])
             for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
             for s in o.get("subjects", []) if s["kind"] == "ServiceAccount"}
    checked = 0
    for obj in (o for o in objects if o["kind"] in POD_TEMPLATES):
        pod = obj
        for key in POD_TEMPLATES[obj["kind"]]:
            pod = pod[key]
        account = pod["spec"].get("serviceAccountName", "default")
        mounted = pod["spec"].get("automountServiceAccountToken", True)
        assert mounted == ((obj["metadata"]["namespace"], account) in bound), \
            f"{obj['kind']} {obj['metadata']['name']}: token mounted {mounted}, service account {account}"
        checked += 1
    assert checked >= 10
