"""Neo4j credentials, rotated by a config epoch without an outage.

The admin (``neo4j``). The chart turns NEO4J_AUTH into the *initial* password only; on a running
cluster the password changes with `ALTER CURRENT USER SET PASSWORD` (Neo4j Operations Manual,
"Manage users"). So a new epoch first runs a Job that changes it in the database (old -> new,
through the cluster's Bolt routing address, on the system database), and only when that Job has
completed - Pulumi waits for a Job to succeed - does the Secret the chart reads flip to the new
one. Only the credential Jobs and operators log in as the admin.

The application. Its pods read Secrets of their own namespace only, so it gets a Secret there
('<cluster>-client': URI, user, password), and it logs in as one of two users that take turns:
epoch N sets ``APP_USERS[N % 2]`` to a new password (CREATE OR REPLACE USER, role APP_ROLE), then
the client Secret flips to it. The other user keeps the previous epoch's password, so clients
that have not restarted yet keep working - until epoch N+1 replaces that user. The overlap is
therefore "until the next rotation": restart every client before raising the epoch again
(docs/runbooks.md, "Rotating credentials").

Both Jobs carry ``pulumi.com/replaceUnready: "true"``. Without it a Job that failed (an election,
a wrong password) fails every later ``up``: the provider keeps awaiting the same immutable Job.
With it, the provider's Diff reads the live Job and, when it is not ready, plans a replacement
(pulumi-kubernetes provider/pkg/provider/provider.go, "replaceUnready": Jobs only, checked with
await/checker/job; a named object is deleted before its replacement) - so the next ``up`` runs it
again, which both scripts are safe to do.

A first install cannot run the admin rotation (the Job needs the cluster, the releases need the
Secret that waits for the Job): settings refuse ``neo4j.bootstrap`` with ``passwordEpoch`` >= 1.
The app-user Job runs after every release instead and waits for the cluster to answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from helpers.flows import Flow, Peer
from helpers.kube import container_security_context, labels_for, pod_security_context, resources

SCRIPTS = Path(__file__).parent.parent / "components" / "scripts"
SCRIPT = SCRIPTS / "neo4j_password_rotate.sh"
APP_USER_SCRIPT = SCRIPTS / "neo4j_app_user.sh"
NEO4J_UID = 7474
BOLT_PORT = 7687
# neo4j_backup.JOB_LABEL: one identity per job; both credential Jobs share this one (same flows)
JOB_POD_LABELS = {"intelgraph.io/job": "neo4j-password-rotation"}
REPLACE_UNREADY = {"pulumi.com/replaceUnready": "true"}
APP_USERS = ("app_a", "app_b")
# Built-in role: read and write data, no schema, users or privileges (Operations Manual,
# "Built-in roles and privileges"); indexes and constraints are the operators' (admin) job.
APP_ROLE = "publisher"
# The app-user Job waits for the cluster (a first install does not): attempts x interval, under
# the Job's deadline, under Pulumi's wait for it (the provider's default is 10 minutes,
# await/job.go DefaultJobTimeoutMins).
CONNECT_ATTEMPTS, CONNECT_INTERVAL_SECONDS = 60, 10
APP_JOB_DEADLINE_SECONDS = 1200
APP_JOB_TIMEOUT = "25m"


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
    return _credentials_job(
        f"{name}-password-rotation-{epoch}", job_name=job_name, namespace=namespace, cluster_name=cluster_name,
        image=image, script=SCRIPT, deadline_seconds=600,
        env=[{"name": "NEO4J_USERNAME", "value": "neo4j"},
             *_from_secret(job_name, "OLD_PASSWORD", "NEW_PASSWORD")],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[passwords])))


def app_user_name(epoch: int) -> str:
    return APP_USERS[epoch % 2]


def client_credentials(name: str, *, namespace: str, cluster_name: str, image: str, epoch: int,
                       admin_secret_name: str, client_namespace: str, after: list[pulumi.Resource],
                       opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """This epoch's application user, set in the database by a Job that runs ``after`` (the
    releases and the admin Secret), then handed to ``client_namespace`` as '<cluster>-client'."""
    user = app_user_name(epoch)
    password = random.RandomPassword(f"{name}-app-password-{epoch}", length=32, special=False, opts=opts)
    job_name = f"{cluster_name}-app-user-{epoch}"  # a Job is immutable: one per epoch
    handover = k8s.core.v1.Secret(
        f"{name}-app-user-{epoch}",
        metadata={"name": job_name, "namespace": namespace, "labels": labels_for(cluster_name, "auth")},
        type="Opaque",
        string_data={"APP_PASSWORD": password.result},
        opts=opts,
    )
    job = _credentials_job(
        f"{name}-app-user-{epoch}", job_name=job_name, namespace=namespace, cluster_name=cluster_name,
        image=image, script=APP_USER_SCRIPT, deadline_seconds=APP_JOB_DEADLINE_SECONDS,
        env=[{"name": "APP_USER", "value": user}, {"name": "APP_ROLE", "value": APP_ROLE},
             {"name": "CONNECT_ATTEMPTS", "value": str(CONNECT_ATTEMPTS)},
             {"name": "CONNECT_INTERVAL_SECONDS", "value": str(CONNECT_INTERVAL_SECONDS)},
             {"name": "NEO4J_AUTH", "valueFrom": {"secretKeyRef": {"name": admin_secret_name, "key": "NEO4J_AUTH"}}},
             *_from_secret(job_name, "APP_PASSWORD")],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            depends_on=[handover, *after], custom_timeouts=pulumi.CustomTimeouts(create=APP_JOB_TIMEOUT))))
    return k8s.core.v1.Secret(
        f"{name}-client",
        metadata={"name": f"{cluster_name}-client", "namespace": client_namespace,
                  "labels": labels_for(cluster_name, "client")},
        type="Opaque",
        string_data={"NEO4J_URI": routing_address(cluster_name, namespace), "NEO4J_USERNAME": user,
                     "NEO4J_PASSWORD": pulumi.Output.secret(password.result)},
        # the flip waits for the user to exist with this password (Pulumi awaits a Job's success)
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[job])),
    )


def _from_secret(secret_name: str, *keys: str) -> list[dict]:
    return [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}} for key in keys]


def _credentials_job(resource_name: str, *, job_name: str, namespace: str, cluster_name: str, image: str,
                     script: Path, env: list[dict], deadline_seconds: int,
                     opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    """A credential Job: ``script`` against the cluster's routing address; the cluster may be
    electing a leader, so it retries before it fails the deploy."""
    return cypher_job(resource_name, job_name=job_name, namespace=namespace, cluster_name=cluster_name,
                      image=image, script=script, env=env, deadline_seconds=deadline_seconds,
                      container_name="rotate", component="password-rotation", pod_labels=JOB_POD_LABELS,
                      backoff_limit=3, opts=opts)


def cypher_job(resource_name: str, *, job_name: str, namespace: str, cluster_name: str, image: str,
               script: Path, env: list[dict], deadline_seconds: int, container_name: str, component: str,
               pod_labels: dict[str, str], backoff_limit: int, opts: pulumi.ResourceOptions,
               secret_files: Optional[tuple[str, str, str]] = None) -> k8s.batch.v1.Job:
    """A hardened Job that runs ``script`` with the server image's cypher-shell against the
    cluster's routing address; replaced on the next ``up`` when it failed (REPLACE_UNREADY).
    ``secret_files``: (Secret, key, directory) mounted read-only, credentials as a file rather than
    an environment variable of the container."""
    mounts: list[dict] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict] = [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    if secret_files:
        secret, key, directory = secret_files
        mounts.append({"name": "auth", "mountPath": directory, "readOnly": True})
        volumes.append({"name": "auth", "secret": {"secretName": secret, "items": [{"key": key, "path": key}]}})
    container = {
        "name": container_name,
        "image": image,  # the server image: its cypher-shell speaks the server's Bolt version
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", "-c", script.read_text()],
        "env": [{"name": "NEO4J_ADDRESS", "value": routing_address(cluster_name, namespace)},
                {"name": "HOME", "value": "/tmp"},  # the JVM and cypher-shell write here
                *env],
        "resources": resources("100m", "500m", "512Mi"),
        "securityContext": container_security_context(read_only_root=True),
        "volumeMounts": mounts,
    }
    labels = {**labels_for(cluster_name, component), **pod_labels}
    return k8s.batch.v1.Job(
        resource_name,
        metadata={"name": job_name, "namespace": namespace, "labels": labels, "annotations": REPLACE_UNREADY},
        spec={  # pyright: ignore[reportArgumentType]  # camelCase API keys: tests/test_types.py
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(NEO4J_UID),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
        opts=opts,
    )


def rotation_flows(servers: dict[str, str]) -> tuple[Flow, ...]:
    """The credential Jobs reach the servers' Bolt port (the routing table names each server);
    ``servers`` selects the server pods (Neo4jCluster.pod_selector)."""
    return (
        Flow("neo4j-rotation-bolt", "egress", Peer(pods=servers), (BOLT_PORT,), pods=JOB_POD_LABELS,
             reason="the credential Jobs run ALTER / CREATE USER over Bolt"),
        Flow("neo4j-rotation-bolt-in", "ingress", Peer(pods=JOB_POD_LABELS), (BOLT_PORT,), pods=servers,
             reason="the credential Jobs run ALTER / CREATE USER over Bolt"),
    )
