"""The Neo4j admin password, rotated by a config epoch without an outage.

The chart turns NEO4J_AUTH into the *initial* password only; on a running cluster the password
changes with `ALTER CURRENT USER SET PASSWORD` (Neo4j Operations Manual, "Manage users"). So a new
epoch first runs a Job that changes it in the database (old -> new, through the cluster's Bolt
routing address, on the system database), and only when that Job has completed - Pulumi waits for
a Job to succeed - does the Secret that clients read flip to the new one.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from helpers.flows import Flow, Peer
from helpers.kube import container_security_context, labels_for, pod_security_context, resources

SCRIPT = Path(__file__).parent.parent / "components" / "scripts" / "neo4j_password_rotate.sh"
NEO4J_UID = 7474
BOLT_PORT = 7687
JOB_POD_LABELS = {"intelgraph.io/job": "neo4j-password-rotation"}  # neo4j_backup.JOB_LABEL: one identity per job


def password(name: str, epoch: int, opts: pulumi.ResourceOptions) -> random.RandomPassword:
    # epoch 0 keeps the name the password always had: introducing epochs rotates nothing
    return random.RandomPassword(f"{name}-admin-password" if epoch == 0 else f"{name}-admin-password-{epoch}",
                                 length=32, special=False, opts=opts)


def routing_address(cluster_name: str, namespace: str) -> str:
    # the chart's shared Service ("<neo4j.name>-lb-neo4j", templates/neo4j-loadbalancer.yaml)
    return f"neo4j://{cluster_name}-lb-neo4j.{namespace}.svc.cluster.local:{BOLT_PORT}"


def admin_secret(name: str, *, secret_name: str, namespace: str, cluster_name: str, image: str, epoch: int,
                 opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """The NEO4J_AUTH Secret at ``epoch``; from epoch 1 on, written only after the rotation Job."""
    current = password(name, epoch, opts)
    flip_after: list[pulumi.Resource] = []
    if epoch > 0:
        flip_after.append(_rotation_job(name, namespace, cluster_name, image, epoch,
                                        previous=password(name, epoch - 1, opts), current=current, opts=opts))
    return k8s.core.v1.Secret(
        f"{name}-auth",
        metadata={"name": secret_name, "namespace": namespace, "labels": labels_for(cluster_name, "auth")},
        type="Opaque",
        # The chart reads NEO4J_AUTH ("neo4j/<password>") from passwordFromSecret.
        string_data={"NEO4J_AUTH": pulumi.Output.concat("neo4j/", current.result)},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=flip_after)),
    )


def _rotation_job(name: str, namespace: str, cluster_name: str, image: str, epoch: int,
                  previous: random.RandomPassword, current: random.RandomPassword,
                  opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    job_name = f"{cluster_name}-password-rotation-{epoch}"  # a Job is immutable: one per epoch
    passwords = k8s.core.v1.Secret(
        f"{name}-password-rotation-{epoch}",
        metadata={"name": job_name, "namespace": namespace, "labels": labels_for(cluster_name, "auth")},
        type="Opaque",
        string_data={"OLD_PASSWORD": previous.result, "NEW_PASSWORD": current.result},
        opts=opts,
    )
    from_secret = [{"name": key, "valueFrom": {"secretKeyRef": {"name": job_name, "key": key}}}
                   for key in ("OLD_PASSWORD", "NEW_PASSWORD")]
    container = {
        "name": "rotate",
        "image": image,  # the server image: its cypher-shell speaks the server's Bolt version
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", "-c", SCRIPT.read_text()],
        "env": [{"name": "NEO4J_ADDRESS", "value": routing_address(cluster_name, namespace)},
                {"name": "NEO4J_USERNAME", "value": "neo4j"},
                {"name": "HOME", "value": "/tmp"},  # the JVM and cypher-shell write here
                *from_secret],
        "resources": resources("100m", "500m", "512Mi"),
        "securityContext": container_security_context(read_only_root=True),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    labels = {**labels_for(cluster_name, "password-rotation"), **JOB_POD_LABELS}
    return k8s.batch.v1.Job(
        f"{name}-password-rotation-{epoch}",
        metadata={"name": job_name, "namespace": namespace, "labels": labels},
        spec={  # pyright: ignore[reportArgumentType]  # camelCase API keys: tests/test_types.py
            "backoffLimit": 3,  # the cluster may be electing a leader: retry, then fail the deploy
            "activeDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(NEO4J_UID),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                },
            },
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[passwords])),
    )


def rotation_flows(servers: dict[str, str]) -> tuple[Flow, ...]:
    """The rotation Job reaches the servers' Bolt port (the routing table names each server);
    ``servers`` selects the server pods (Neo4jCluster.pod_selector)."""
    return (
        Flow("neo4j-rotation-bolt", "egress", Peer(pods=servers), (BOLT_PORT,), pods=JOB_POD_LABELS,
             reason="the password rotation Job runs ALTER USER over Bolt"),
        Flow("neo4j-rotation-bolt-in", "ingress", Peer(pods=JOB_POD_LABELS), (BOLT_PORT,), pods=servers,
             reason="the password rotation Job runs ALTER USER over Bolt"),
    )
