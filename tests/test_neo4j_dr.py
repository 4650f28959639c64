"""The graph in the DR region (components/neo4j_dr.py), read from the real stacks: what runs in the
DR cluster reads only the DR copy of the backups with the DR region's key, the warm refresh and the
switch run Neo4j 5's seed from URI through the script tests/test_neo4j_scripts.py proves, the DR
servers may download their seed, and nothing of it is left in the primary cluster."""

from __future__ import annotations

import json
from typing import Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from components.neo4j_dr import Neo4jDrGraph, Neo4jDrGraphArgs
from synth import export, helm
from tests.conftest import STACKS, in_tier, run_component, stack_settings, synthesized

CRONJOB = "kubernetes:batch/v1:CronJob"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"


def cronjobs(stack: str, cluster: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in export.kubernetes_objects(synthesized(stack), cluster)
            if o["kind"] == "CronJob"}


def pod(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def policy_of(stack: str, role_name: str) -> dict:
    return json.loads(in_tier(synthesized(stack), "dr").named(role_name, ROLE_POLICY).inputs["policy"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_restore_rehearsal_runs_in_the_dr_cluster_from_the_dr_bucket(stack):
    cfg, outputs = stack_settings(stack), synthesized(stack).outputs
    replica = outputs["backupBuckets"]["neo4j"]
    assert "neo4j-restore-rehearsal" not in cronjobs(stack, "primary")
    rehearsal = cronjobs(stack, "dr")["neo4j-restore-rehearsal"]
    assert rehearsal["metadata"]["namespace"] == cfg.neo4j.restore_namespace
    assert rehearsal["spec"]["schedule"] == cfg.neo4j.restore_rehearsal_schedule
    [pick] = pod(rehearsal)["initContainers"]
    for container in (pick, *pod(rehearsal)["containers"]):
        assert env(container)["BACKUP_BUCKET"] == replica["replicaBucket"]
        assert env(container)["AWS_REGION"] == cfg.aws.dr_region
    # its role reads the neo4j/ prefix of the replica bucket only, and decrypts with the DR key
    # only through S3 in the DR region
    statements = {s["Sid"]: s for s in policy_of(stack, "neo4j-seed-dr-reader")["Statement"]}
    assert statements["ListPrefix"]["Resource"] == replica["replicaBucketArn"]
    assert statements["ListPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["neo4j/", "neo4j/*"]}}
    assert statements["Objects"] == {"Sid": "Objects", "Effect": "Allow", "Action": ["s3:GetObject"],
                                     "Resource": f"{replica['replicaBucketArn']}/neo4j/*"}
    assert statements["BucketKey"]["Resource"] == replica["replicaKmsKeyArn"] != replica["kmsKeyArn"]
    assert statements["BucketKey"]["Action"] == ["kms:Decrypt"]
    assert statements["BucketKey"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"s3.{cfg.aws.dr_region}.amazonaws.com"}}


@pytest.mark.parametrize("stack", STACKS)
def test_the_rehearsal_and_seed_jobs_assume_the_dr_clusters_irsa_role(stack):
    cfg = stack_settings(stack)
    dr = in_tier(synthesized(stack), "dr")
    role = dr.named("neo4j-seed-dr-reader", "aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"]["Federated"] == cfg.kubernetes.dr.oidc_provider_arn
    subjects = set(trust["Condition"]["StringEquals"][f"{cfg.kubernetes.dr.oidc_issuer}:sub"])
    refresh = {f"system:serviceaccount:{cfg.neo4j.namespace}:neo4j-dr-refresh"} if cfg.neo4j.dr.mode == "warm" else set()
    assert subjects == {f"system:serviceaccount:{cfg.neo4j.restore_namespace}:neo4j-restore-rehearsal",
                        f"system:serviceaccount:{cfg.neo4j.namespace}:neo4j-dr-switch", *refresh}


def test_a_warm_dr_graph_is_refreshed_on_its_schedule_and_a_pilot_light_one_is_not():
    prod, stage = stack_settings("prod"), stack_settings("stage")
    refresh = cronjobs("prod", "dr")["neo4j-dr-refresh"]
    assert refresh["spec"]["schedule"] == prod.neo4j.dr.refresh_schedule and not refresh["spec"].get("suspend")
    [seed] = pod(refresh)["containers"]
    assert env(seed)["MODE"] == "refresh"
    assert (env(seed)["PRIMARIES"], env(seed)["SECONDARIES"]) == (str(prod.neo4j.primaries), str(prod.neo4j.secondaries))
    assert env(seed)["NEO4J_ADDRESS"] == f"neo4j://{prod.neo4j.cluster_name}-lb-neo4j.{prod.neo4j.namespace}.svc.cluster.local:7687"
    # the admin credentials as a file from the chart's Secret, never in the environment
    assert "NEO4J_AUTH" not in env(seed) and env(seed)["NEO4J_AUTH_FILE"] == "/etc/neo4j-auth/NEO4J_AUTH"
    [auth] = [v for v in pod(refresh)["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["secretName"] == f"{prod.neo4j.cluster_name}-auth"
    # the refresh may run as long as one seed of the chain, plus its slack
    from helpers.dr_budget import seed_seconds
    seed_time = seed_seconds(prod.neo4j.backup_schedule, prod.backups.neo4j.chain_days,
                             prod.dr.neo4j_restore_estimate_seconds, prod.dr.neo4j_differential_estimate_seconds)
    assert refresh["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == seed_time + 1800
    assert int(env(seed)["WAIT_ATTEMPTS"]) * int(env(seed)["POLL_SECONDS"]) == seed_time + 1800
    assert stage.neo4j.dr.mode == "pilot-light" and "neo4j-dr-refresh" not in cronjobs("stage", "dr")


@pytest.mark.parametrize("stack", STACKS)
def test_the_switch_job_is_a_template_in_the_dr_cluster_in_either_mode(stack):
    cfg = stack_settings(stack)
    switch = cronjobs(stack, "dr")["neo4j-dr-switch"]
    assert switch["spec"]["suspend"] is True  # started by the switch only (kubectl create job --from=cronjob/...)
    [seed] = pod(switch)["containers"]
    assert env(seed)["MODE"] == "switch"
    assert synthesized(stack).outputs["tiers"]["dr"]["neo4jSwitchCronJob"] == f"{cfg.neo4j.namespace}/neo4j-dr-switch"
    assert not {"neo4j-dr-switch", "neo4j-dr-refresh"} & set(cronjobs(stack, "primary"))


@pytest.mark.parametrize("stack", STACKS)
def test_the_dr_servers_may_download_their_seed_and_discover_each_other(stack):
    """The servers download their seed themselves, so their account assumes a role that reads the
    DR bucket's prefix; it replaces the chart's own account, whose Kubernetes discovery it must keep
    (the chart's Role, rendered from the chart itself)."""
    cfg, synthesis = stack_settings(stack), synthesized(stack)
    account = f"{cfg.neo4j.cluster_name}-servers"
    objects = export.kubernetes_objects(synthesis, "dr")
    [sa] = [o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == account]
    assert sa["automountServiceAccountToken"] is True  # the servers call the API (discovery)
    role = in_tier(synthesis, "dr").named("neo4j-seed-dr-servers", "aws:iam/role:Role")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role.outputs["arn"]
    assert policy_of(stack, "neo4j-seed-dr-servers") == policy_of(stack, "neo4j-seed-dr-reader")
    [binding] = [o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == cfg.neo4j.namespace]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": cfg.neo4j.namespace}]
    [ours] = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == binding["roleRef"]["name"]]
    # what the chart gives its own account (templates/neo4j-service-account.yaml), rendered from a
    # primary release (which keeps the chart's account)
    release = next(r for r in in_tier(synthesis, "primary").of_type(RELEASE))
    [chart_role] = [o for o in helm.render(release.inputs["name"], release.inputs["namespace"], "neo4j",
                                           release.inputs["values"]) if o["kind"] == "Role"]
    assert ours["rules"] == chart_role["rules"]
    if cfg.neo4j.dr.mode == "warm":
        for release in in_tier(synthesis, "dr").of_type(RELEASE):
            rendered = helm.render(release.inputs["name"], release.inputs["namespace"], "neo4j",
                                   release.inputs["values"])
            [statefulset] = [o for o in rendered if o["kind"] == "StatefulSet"]
            assert statefulset["spec"]["template"]["spec"]["serviceAccountName"] == account
            # the chart renders no account of its own then: ours is the only one
            assert not [o for o in rendered if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
            [env_map] = [o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-env")]
            assert env_map["data"]["AWS_REGION"] == cfg.aws.dr_region


@pytest.mark.parametrize("stack", STACKS)
def test_the_dr_graph_namespace_opens_only_the_seed_paths(stack):
    cfg = stack_settings(stack)
    around = cfg.network.dr
    policies = {o["metadata"]["name"]: o for o in export.kubernetes_objects(synthesized(stack), "dr")
                if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == cfg.neo4j.namespace}
    servers = {"app": cfg.neo4j.cluster_name}
    for name, cidrs, pods in (("neo4j-seed-s3", around.s3.cidrs, servers),
                              ("neo4j-seed-sts", around.sts_endpoint_cidrs, servers),
                              ("seed-jobs-s3", around.s3.cidrs, {"intelgraph.io/backup": "neo4j"})):
        spec = policies[f"{cfg.neo4j.namespace}-{name}"]["spec"]
        assert spec["podSelector"]["matchLabels"] == pods
        assert [p["ipBlock"]["cidr"] for p in spec["egress"][0]["to"]] == list(cidrs)
        assert spec["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
    bolt = policies[f"{cfg.neo4j.namespace}-neo4j-seed-bolt-in"]["spec"]
    assert bolt["podSelector"]["matchLabels"] == servers
    assert bolt["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"intelgraph.io/neo4j-seed": "dr"}}}]
    assert bolt["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 7687}]
    # the seeding jobs carry that label; nothing else in the namespace does
    labelled = {name for name, o in cronjobs(stack, "dr").items()
                if pod(o) and o["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].get(
                    "intelgraph.io/neo4j-seed") == "dr"}
    assert labelled == ({"neo4j-dr-switch", "neo4j-dr-refresh"} if cfg.neo4j.dr.mode == "warm" else {"neo4j-dr-switch"})


def dr_graph(active_region: Literal["primary", "dr"]) -> dict:
    providers = {"aws": aws.Provider("aws-dr", region="us-west-2"), "kubernetes": k8s.Provider("eks-dr", context="test")}
    Neo4jDrGraph("neo4j-seed-dr", Neo4jDrGraphArgs(
        namespace="graph", restore_namespace="dr-verify", cluster_name="graph", mode="warm",
        active_region=active_region,
        bucket_name="b", bucket_arn="arn:aws:s3:::b", kms_key_arn="arn:aws:kms:us-west-2:1:key/k",
        region="us-west-2", image="neo4j:5.26.31-enterprise", aws_cli_image="amazon/aws-cli:2",
        accept_license_agreement="yes", rehearsal_schedule="30 23 * * 1", refresh_schedule="20 */2 * * *",
        time_zone="Etc/UTC", oidc_provider_arn="arn:aws:iam::1:oidc-provider/o", oidc_issuer="o",
        prometheus_release_label="kps", storage_class="gp3", store_size="10Gi", store_bytes=10 * 2**30,
        primaries=3, secondaries=0, seed_seconds=600), opts=pulumi.ResourceOptions(providers=providers))
    return {}


def test_the_refresh_is_suspended_while_the_dr_region_is_active():
    """dr.activeRegion dr: the DR graph is the writer; a refresh would put an older backup over it."""
    def alerts(synthesis):
        return {r["alert"] for rule in synthesis.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
                for g in rule.inputs["spec"]["groups"] for r in g["rules"]}

    def suspended(synthesis):
        return {r.inputs["metadata"]["name"]: r.inputs["spec"].get("suspend", False) for r in synthesis.of_type(CRONJOB)}

    standby, active = run_component(lambda: dr_graph("primary")), run_component(lambda: dr_graph("dr"))
    assert suspended(standby) == {"neo4j-dr-refresh": False, "neo4j-dr-switch": True, "neo4j-restore-rehearsal": False}
    # suspended, not removed: the flip back resumes it, and the flip itself deletes nothing
    assert suspended(active) == {"neo4j-dr-refresh": True, "neo4j-dr-switch": True, "neo4j-restore-rehearsal": False}
    assert {r.urn for r in standby.resources} == {r.urn for r in active.resources}
    assert {"Neo4jDrRefreshFailing", "Neo4jDrRefreshMissing"} <= alerts(standby)
    assert not {"Neo4jDrRefreshFailing", "Neo4jDrRefreshMissing"} & alerts(active)


def test_the_failed_over_prod_stack_suspends_the_refresh_and_keeps_the_rehearsal():
    """prod with dr.activeRegion: dr (the failed-over state): the DR graph is the writer."""
    from synth import engine, targets

    failed_over = engine.synthesize("prod", targets.with_active_region(engine.stack_config("prod"), "dr"))
    jobs = {o["metadata"]["name"]: o for o in export.kubernetes_objects(failed_over, "dr") if o["kind"] == "CronJob"}
    assert jobs["neo4j-dr-refresh"]["spec"]["suspend"] is True and not jobs["neo4j-restore-rehearsal"]["spec"].get("suspend")
    assert not cronjobs("prod", "dr")["neo4j-dr-refresh"]["spec"].get("suspend")  # the normal state refreshes
