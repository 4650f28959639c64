"""Kubernetes building blocks every component uses the same way: labels, hardened pod and
container security contexts, PDBs, CronJobs, and the kube-prometheus-stack objects.

ServiceMonitor and PrometheusRule carry the ``release`` label kube-prometheus-stack selects on;
without it Prometheus silently ignores them.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

from helpers.alerting import with_runbooks

MONITORING_API = "monitoring.coreos.com/v1"


def labels_for(app: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "intelgraph",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def pod_security_context(user: int) -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool = True) -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu_request: str, cpu_limit: str, memory: str) -> dict:
    # Memory request = limit: the scheduler never places more than a node can hold.
    return {"requests": {"cpu": cpu_request, "memory": memory},
            "limits": {"cpu": cpu_limit, "memory": memory}}


def pod_disruption_budget(name: str, namespace: str, selector: dict[str, str], max_unavailable: int,
                          opts: pulumi.ResourceOptions) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        name,
        metadata={"name": name, "namespace": namespace},
        spec={"max_unavailable": max_unavailable, "selector": {"match_labels": selector}},
        opts=opts,
    )


def service_monitor(name: str, *, namespace: str, release_label: str, selector: dict[str, str],
                    port: str, opts: pulumi.ResourceOptions, interval: str = "30s",
                    path: str = "/metrics") -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=MONITORING_API,
        kind="ServiceMonitor",
        metadata={"name": name, "namespace": namespace, "labels": {"release": release_label}},
        spec={
            "selector": {"matchLabels": selector},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{"port": port, "path": path, "interval": interval}],
        },
        opts=opts,
    )


def prometheus_rule(name: str, *, namespace: str, release_label: str, groups: list[dict],
                    opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """Every alert gets its severity label and runbook_url from helpers/alerting.ALERTS."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=MONITORING_API,
        kind="PrometheusRule",
        metadata={"name": name, "namespace": namespace, "labels": {"release": release_label}},
        spec={"groups": with_runbooks(groups)},
        opts=opts,
    )


def job_spec(
    *,
    container: dict[str, Any],
    service_account: str,
    run_as_user: int,
    active_deadline_seconds: int,
    pod_labels: dict[str, str],
    volumes: Optional[list[dict]] = None,
    init_containers: Optional[list[dict[str, Any]]] = None,
    kubernetes_api: bool = False,
) -> dict[str, Any]:
    """One try and one retry of one hardened container, within a deadline. The service account's
    token is mounted only for a job that calls the Kubernetes API (``kubernetes_api``): kubectl in a
    pod authenticates with nothing else (client-go rest.InClusterConfig reads
    /var/run/secrets/kubernetes.io/serviceaccount/token), and IRSA projects a token of its own."""
    return {
        "backoffLimit": 1,
        "activeDeadlineSeconds": active_deadline_seconds,
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": service_account,
                "automountServiceAccountToken": kubernetes_api,
                "securityContext": pod_security_context(run_as_user),
                **({"initContainers": init_containers} if init_containers else {}),
                "containers": [container],
                "volumes": volumes or [],
            },
        },
    }


def cron_job(
    name: str,
    *,
    namespace: str,
    schedule: str,
    time_zone: str,
    opts: pulumi.ResourceOptions,
    labels: Optional[dict[str, str]] = None,
    resource_name: Optional[str] = None,
    suspend: bool = False,
    **job: Any,
) -> k8s.batch.v1.CronJob:
    """A CronJob that never overlaps itself and gives up on missed runs; ``job`` is ``job_spec``'s.
    ``name`` is the object's; ``resource_name`` (default ``name``) the Pulumi resource's, prefixed
    with the component's name so two instances never share a URN. ``suspend``: a Job template that
    never runs on its schedule, only when started by hand (``kubectl create job --from=cronjob/...``)."""
    pod_labels = {**(labels or {}), "app.kubernetes.io/name": name}
    return k8s.batch.v1.CronJob(
        resource_name or name,
        metadata={"name": name, "namespace": namespace, "labels": pod_labels},
        spec={  # pyright: ignore[reportArgumentType]  # camelCase API keys: tests/test_types.py
            "schedule": schedule,
            "timeZone": time_zone,
            **({"suspend": True} if suspend else {}),
            "concurrencyPolicy": "Forbid",
            # A run that could not start within 5 minutes is skipped, not piled up.
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": job_spec(pod_labels=pod_labels, **job)},
        },
        opts=opts,
    )
