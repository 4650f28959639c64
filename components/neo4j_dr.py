"""Neo4jDrGraph: the graph in the DR region, from the backup chains replicated to the DR bucket.

Everything here runs in the DR cluster and reads only the DR copy of the backups (the replica
bucket, its DR-region key), so it keeps working when the primary region is lost.

* The weekly restore rehearsal: the newest chain restored into a throwaway instance in a scratch
  namespace (neo4j_pick_backup.sh, neo4j_restore_rehearsal.sh), failing unless the graph has nodes.
  It proves the DR path: the DR bucket, its key and the DR cluster's IRSA and flows.
* Seeding (components/scripts/neo4j_dr_seed.sh), Neo4j 5's own mechanism for a cluster: a database
  seeded from a URI, every server downloading its seed itself (Operations Manual 5.26, "Managing
  databases in a cluster": seed from URI with the CloudSeedProvider, which from 5.26 takes the
  whole chain ending at a differential artifact; ``dbms.cluster.recreateDatabase`` (5.24+)
  replaces the store of an existing database on every allocation, online or offline, keeping its
  privileges). Not ``neo4j-admin database restore`` into a server: it needs the server's data
  volume (held by the running server) and then a designated seeder; it stays the rehearsal's tool,
  on a throwaway instance (docs/decisions/021-neo4j-dr-seed-from-uri.md).
  - warm: a refresh on ``refresh_schedule`` reseeds the running DR cluster's database and holds it
    READ ONLY. It is suspended while the DR region is active, and the script refuses a database
    that is READ WRITE with data (a switch promoted it) - the guard the cluster itself carries when
    the switch ran before any deploy could say so.
  - either mode: the switch's Job (a suspended CronJob, started with ``kubectl create job
    --from=cronjob/neo4j-dr-switch``): promote the refreshed copy, or seed first where there is none
    (pilot-light: the servers the switch just created).
* The servers' ServiceAccount: each server downloads its seed itself, so they assume a read-only
  IRSA role on the DR bucket's prefix; as the chart's own account would, it may read Services and
  Endpoints for the cluster's Kubernetes discovery (chart templates/neo4j-service-account.yaml).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.neo4j_backup import (
    ARTIFACT_FILE,
    NEO4J_UID,
    POD_LABELS,
    REHEARSAL_JOB,
    job_container,
    job_labels,
    last_success,
    mounts,
    never_succeeded,
    prefix_policy,
    rehearsal_deadline_seconds,
    rehearsal_rules,
    scratch_volume,
    small,
)
from components.neo4j_cluster import BOLT_PORT, server_pods
from helpers.dr_budget import cron_max_gap_seconds
from helpers.flows import Flow, Neighbours, Peer
from helpers.irsa import irsa_role
from helpers.kube import cron_job, labels_for, prometheus_rule
from helpers.neo4j_password import routing_address
from helpers.validation import require

REFRESH_JOB = "neo4j-dr-refresh"
SWITCH_JOB = "neo4j-dr-switch"
# The switch's Job template never runs on its own (suspended); a CronJob needs a schedule all the same.
SWITCH_TEMPLATE_SCHEDULE = "0 0 1 1 *"
# Both seed jobs reach the servers' Bolt port; the label selects them and nothing else.
SEED_POD_LABELS = {"intelgraph.io/neo4j-seed": "dr"}
POLL_SECONDS = 10
# Past seeding itself: the pick, the servers' restart and start, the promotion.
SEED_SLACK_SECONDS = 1800
AUTH_DIR = "/etc/neo4j-auth"


def servers_account(cluster_name: str) -> str:
    return f"{cluster_name}-servers"


@dataclass(frozen=True)
class Neo4jDrGraphArgs:
    namespace: str  # the graph's namespace in the DR cluster
    restore_namespace: str  # the rehearsal's scratch namespace
    cluster_name: str
    mode: Literal["pilot-light", "warm"]
    # Which region holds the writer (dr.activeRegion): no refresh is scheduled while it is the DR region.
    active_region: Literal["primary", "dr"]
    bucket_name: pulumi.Input[str]  # the DR (replica) bucket and its DR-region key
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    region: str
    image: str
    aws_cli_image: str
    accept_license_agreement: str
    rehearsal_schedule: str
    refresh_schedule: Optional[str]  # warm only
    time_zone: str
    oidc_provider_arn: str
    oidc_issuer: str
    prometheus_release_label: str
    storage_class: str  # the rehearsal's scratch volumes
    store_size: str
    store_bytes: int
    primaries: int  # the topology a database created from a seed gets
    secondaries: int
    seed_seconds: int  # one seed of the newest chain (helpers/dr_budget.seed_seconds)
    prefix: str = "neo4j/"
    database: str = "neo4j"

    def __post_init__(self) -> None:
        problems = []
        if self.namespace == self.restore_namespace:
            problems.append("restore_namespace must differ from namespace: rehearsals never touch the DR servers")
        if (self.mode == "warm") != (self.refresh_schedule is not None):
            problems.append("a warm DR graph needs refresh_schedule, and only a warm one has one")
        require("Neo4jDrGraphArgs", problems)

    @property
    def refreshes(self) -> bool:
        return self.mode == "warm" and self.active_region == "primary"

    @property
    def seed_deadline_seconds(self) -> int:
        return self.seed_seconds + SEED_SLACK_SECONDS


class Neo4jDrGraph(pulumi.ComponentResource):
    servers_account: str  # Neo4jClusterArgs.service_account of the DR servers

    def __init__(self, name: str, args: Neo4jDrGraphArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:graph:Neo4jDrGraph", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
            lambda a: json.dumps(prefix_policy(a[0], a[1], args.prefix, args.region, "read")))

        def role(suffix: str, subjects: list[tuple[str, str]], what: str, api_token: bool = False):
            return irsa_role(f"{name}-{suffix}", subjects=subjects, policy=policy,
                             description=f"Neo4j DR {what}: read s3 {args.prefix} of the DR bucket only",
                             oidc_provider_arn=args.oidc_provider_arn, oidc_issuer=args.oidc_issuer,
                             api_token=api_token, name_by_account=True, opts=child)

        # --- the servers: they download their seed themselves --------------------------------------
        self.servers_account = servers_account(args.cluster_name)
        _, [account] = role("servers", [(args.namespace, self.servers_account)], "servers (seed)", api_token=True)
        reader = k8s.rbac.v1.Role(
            f"{name}-discovery",
            metadata={"name": f"{self.servers_account}-service-reader", "namespace": args.namespace,
                      "labels": labels_for(args.cluster_name, "dr-seed")},
            rules=[{"api_groups": [""], "resources": ["services", "endpoints"], "verbs": ["get", "watch", "list"]}],
            opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{name}-discovery",
            metadata={"name": f"{self.servers_account}-service-binding", "namespace": args.namespace,
                      "labels": labels_for(args.cluster_name, "dr-seed")},
            subjects=[{"kind": "ServiceAccount", "name": self.servers_account, "namespace": args.namespace}],
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": reader.metadata.name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]))

        # --- the jobs: pick the newest artifact of the DR bucket, then act on it ------------------
        seed_jobs = [REFRESH_JOB] if args.mode == "warm" else []
        readers, _ = role("reader", [*[(args.namespace, job) for job in (*seed_jobs, SWITCH_JOB)],
                                     (args.restore_namespace, REHEARSAL_JOB)], "seed and rehearsal jobs")
        pick_env = [{"name": "BACKUP_BUCKET", "value": args.bucket_name},
                    {"name": "BACKUP_PREFIX", "value": args.prefix},
                    {"name": "AWS_REGION", "value": args.region},
                    {"name": "DATABASE", "value": args.database},
                    {"name": "ARTIFACT_FILE", "value": ARTIFACT_FILE}]
        pick = job_container(args.aws_cli_image, "neo4j_pick_backup.sh", [*pick_env, {"name": "HOME", "value": "/tmp"}],
                             ("50m", "200m", "128Mi"), mounts(tmp="/tmp", work="/work"))
        license_env = {"name": "NEO4J_ACCEPT_LICENSE_AGREEMENT", "value": args.accept_license_agreement}

        def seed_job(job: str, mode: str, schedule: str, suspend: bool) -> k8s.batch.v1.CronJob:
            env = [*pick_env,
                   {"name": "NEO4J_ADDRESS", "value": routing_address(args.cluster_name, args.namespace)},
                   {"name": "NEO4J_AUTH_FILE", "value": f"{AUTH_DIR}/NEO4J_AUTH"},
                   {"name": "MODE", "value": mode},
                   {"name": "PRIMARIES", "value": str(args.primaries)},
                   {"name": "SECONDARIES", "value": str(args.secondaries)},
                   {"name": "POLL_SECONDS", "value": str(POLL_SECONDS)},
                   {"name": "WAIT_ATTEMPTS", "value": str(args.seed_deadline_seconds // POLL_SECONDS)},
                   {"name": "HOME", "value": "/tmp"}]  # the JVM and cypher-shell write here
            return cron_job(
                job, resource_name=f"{name}-{mode}", namespace=args.namespace, schedule=schedule,
                time_zone=args.time_zone, service_account=job, run_as_user=NEO4J_UID, suspend=suspend,
                active_deadline_seconds=args.seed_deadline_seconds,
                init_containers=[pick],
                container=job_container(args.image, "neo4j_dr_seed.sh", env, ("100m", "500m", "512Mi"),
                                        mounts(tmp="/tmp", work="/work", auth=AUTH_DIR)),
                # the admin credentials as a file (the chart's Secret), never an environment variable
                volumes=[small("tmp", "64Mi"), small("work", "1Mi"),
                         {"name": "auth", "secret": {"secretName": f"{args.cluster_name}-auth",
                                                     "items": [{"key": "NEO4J_AUTH", "path": "NEO4J_AUTH"}]}}],
                labels={**job_labels(job), **SEED_POD_LABELS},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[readers]))

        if args.refresh_schedule is not None:
            # suspended, not removed, while the DR region is active: flipping the region back
            # resumes it, and the flip replaces or deletes nothing
            seed_job(REFRESH_JOB, "refresh", args.refresh_schedule, suspend=not args.refreshes)
        seed_job(SWITCH_JOB, "switch", SWITCH_TEMPLATE_SCHEDULE, suspend=True)

        # --- the weekly restore rehearsal, from the DR bucket into a throwaway instance ------------
        cron_job(
            REHEARSAL_JOB, resource_name=f"{name}-rehearsal", namespace=args.restore_namespace,
            schedule=args.rehearsal_schedule, time_zone=args.time_zone, service_account=REHEARSAL_JOB,
            run_as_user=NEO4J_UID, active_deadline_seconds=rehearsal_deadline_seconds(args.store_bytes),
            init_containers=[pick],
            container=job_container(args.image, "neo4j_restore_rehearsal.sh", [
                *pick_env, {"name": "SCRATCH", "value": "/scratch"}, license_env], ("500m", "2", "3Gi"),
                mounts(tmp="/tmp", work="/work", scratch="/scratch", data="/data", logs="/logs")),
            volumes=[small("tmp", "1Gi"), small("work", "1Mi"),
                     scratch_volume("scratch", args.storage_class, args.store_size),
                     scratch_volume("data", args.storage_class, args.store_size), small("logs", "2Gi")],
            labels=job_labels(REHEARSAL_JOB), opts=pulumi.ResourceOptions(parent=self, depends_on=[readers]))

        prometheus_rule(f"{name}-rules", namespace=args.namespace, release_label=args.prometheus_release_label,
                        groups=dr_rule_groups(args), opts=child)
        self.register_outputs({"servicesAccount": self.servers_account, "refreshes": args.refreshes})


def dr_rule_groups(args: Neo4jDrGraphArgs) -> list[dict]:
    """The rehearsal's alerts, and in warm mode the refresh's: a standby that stopped refreshing
    ages past the RPO the DR budget promises."""
    rules = rehearsal_rules(args.restore_namespace, args.rehearsal_schedule, args.store_bytes)
    if args.refreshes:
        assert args.refresh_schedule is not None
        # two refreshes in a row missed, each allowed its whole deadline
        limit = 2 * cron_max_gap_seconds(args.refresh_schedule) + args.seed_deadline_seconds
        rules += [
            {"alert": "Neo4jDrRefreshFailing",
             "expr": f"time() - {last_success(args.namespace, REFRESH_JOB)} > {limit}",
             "for": "10m", "labels": {"severity": "critical"},
             "annotations": {"summary": "The DR graph has not been refreshed from the replicated backups",
                             "description": f"{REFRESH_JOB} in {args.namespace} (DR cluster) has not succeeded "
                                            f"for {limit}s: a switch would promote an older graph than the "
                                            "DR budget's RPO allows; see its job logs."}},
            never_succeeded("Neo4jDrRefreshMissing", args.namespace, REFRESH_JOB, limit,
                            f"{REFRESH_JOB} has never succeeded (or is not scraped)"),
        ]
    return [{"name": "neo4j-dr", "rules": rules}]


def dr_graph_flows(cluster_name: str, around: Neighbours) -> tuple[Flow, ...]:
    """In the DR cluster's graph namespace: the servers download their seed from S3 (IRSA through STS),
    the seeding jobs pick the artifact (S3, STS) and talk to the servers over Bolt."""
    servers = server_pods(cluster_name)
    return (
        Flow("neo4j-seed-s3", "egress", Peer(cidrs=around.s3_cidrs), (443,), pods=servers,
             reason="each DR server downloads its databases' seed from the DR bucket"),
        Flow("neo4j-seed-sts", "egress", Peer(cidrs=around.sts_cidrs), (443,), pods=servers,
             reason="IRSA exchanges the server's token for AWS credentials at the STS endpoint"),
        Flow("seed-jobs-s3", "egress", Peer(cidrs=around.s3_cidrs), (443,), pods=POD_LABELS,
             reason="the seeding jobs list the DR bucket for the newest backup artifact"),
        Flow("seed-jobs-sts", "egress", Peer(cidrs=around.sts_cidrs), (443,), pods=POD_LABELS,
             reason="IRSA exchanges the pod's token for AWS credentials at the STS endpoint"),
        Flow("neo4j-seed-bolt", "egress", Peer(pods=servers), (BOLT_PORT,), pods=SEED_POD_LABELS,
             reason="the refresh and switch jobs recreate, watch and promote the database over Bolt"),
        Flow("neo4j-seed-bolt-in", "ingress", Peer(pods=SEED_POD_LABELS), (BOLT_PORT,), pods=servers,
             reason="the refresh and switch jobs recreate, watch and promote the database over Bolt"),
    )
