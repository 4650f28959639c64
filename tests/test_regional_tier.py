"""The Kubernetes tier once per region: the DR region's cluster runs a standby of the primary's tier.

What a region loss needs from the DR cluster, read from the real stacks: its own Kubernetes and AWS
providers, the same default-deny namespaces, Redis, the graph in the mode the stack states, logs
shipped to the DR copy of the logs bucket, and an Ingress behind the DR region's WebACL whose ALB
Route 53's SECONDARY record aliases - no load balancer typed into config.
"""

from __future__ import annotations

import copy

import pytest

from helpers import dr_budget
from synth import export
from tests.conftest import STACKS, in_tier, stack_settings, synthesized

RELEASE = "kubernetes:helm.sh/v3:Release"
RECORD = "aws:route53/record:Record"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"


def provider_of(synthesis, resource):
    return next(r for r in synthesis.resources if r.urn == resource.provider.rsplit("::", 1)[0])


@pytest.mark.parametrize("stack", STACKS)
def test_each_tier_reaches_its_own_regions_cluster_and_account(stack):
    synthesis, cfg = synthesized(stack), stack_settings(stack)
    for role in ("primary", "dr"):
        tier = in_tier(synthesis, role)
        members = [r for r in tier.resources if r.custom and r.provider and "RegionalTier" in r.urn]
        kube = {provider_of(synthesis, r).name for r in members if r.type.startswith("kubernetes:")}
        cloud = {provider_of(synthesis, r).inputs["region"] for r in members if r.type.startswith("aws:")}
        assert kube == {"eks" if role == "primary" else "eks-dr"}
        assert cloud == {cfg.aws.region(role)}
        [provider] = [r for r in synthesis.of_type("pulumi:providers:kubernetes") if r.name in kube]
        assert provider.inputs["context"] == cfg.kubernetes.of(role).context
        # the context is the cluster's ARN in the tier's region (settings refuse another)
        assert provider.inputs["context"].split(":")[3] == cfg.aws.region(role)


@pytest.mark.parametrize("stack", STACKS)
def test_the_dr_cluster_runs_the_same_default_deny_namespaces_and_cache(stack):
    synthesis = synthesized(stack)
    cfg = stack_settings(stack)
    primary, dr = (export.kubernetes_objects(synthesis, cluster) for cluster in ("primary", "dr"))

    def namespaces(objects):
        return {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}

    def deny_all(objects):
        return {o["metadata"]["namespace"] for o in objects if o["kind"] == "NetworkPolicy"
                and not o["spec"]["podSelector"].get("matchLabels")
                and not o["spec"].get("ingress") and not o["spec"].get("egress")
                and set(o["spec"]["policyTypes"]) == {"Ingress", "Egress"}}

    # both restore rehearsals run in the DR cluster, which outlives the primary region (the PostgreSQL
    # one: docs/decisions/018-active-region-is-state.md; the Neo4j one from the DR bucket); every
    # other namespace is in both
    assert namespaces(dr) == namespaces(primary) | {cfg.pg_restore_rehearsal.namespace, cfg.neo4j.restore_namespace}
    assert deny_all(dr) == namespaces(dr)
    [redis] = [o for o in dr if o["kind"] == "StatefulSet" and o["metadata"]["namespace"] == cfg.redis.namespace]
    [primary_redis] = [o for o in primary if o["kind"] == "StatefulSet"
                       and o["metadata"]["namespace"] == cfg.redis.namespace]
    # a running, empty cache of the same shape: the application finds it under the same name
    assert redis == primary_redis


def test_a_warm_dr_region_runs_the_graph_as_the_primary_does_in_its_own_zones():
    synthesis, cfg = synthesized("prod"), stack_settings("prod")
    assert cfg.neo4j.dr.mode == "warm"
    primary, dr = ({r.inputs["name"]: r.inputs for r in in_tier(synthesis, role).of_type(RELEASE)}
                   for role in ("primary", "dr"))
    assert set(dr) == set(primary)
    # the same chart, version, image and values: placement spreads the primaries over as many
    # zones (neo4j.dr.zones, validated to lie in the DR region), and the zone names are the nodes';
    # only the DR servers run as the account that may read the DR bucket (their seed), in its region
    for name, inputs in dr.items():
        inputs = copy.deepcopy(inputs)  # the session's synthesis stays as it is
        assert inputs["values"]["podSpec"].pop("serviceAccountName") == f"{cfg.neo4j.cluster_name}-servers"
        assert inputs["values"].pop("env") == {"AWS_REGION": cfg.aws.dr_region}
        assert inputs == primary[name]
    assert len(cfg.neo4j.dr.zones) == len(cfg.neo4j.zones)
    # the DR servers are no source of truth: no snapshots, no backups of their own
    assert not [r for r in in_tier(synthesis, "dr").resources if "Neo4jBackup" in r.type or "Neo4jSnapshots" in r.type]


def test_a_pilot_light_dr_region_runs_no_servers_but_keeps_their_namespace_and_flows():
    synthesis, cfg = synthesized("stage"), stack_settings("stage")
    assert cfg.neo4j.dr.mode == "pilot-light"
    dr = in_tier(synthesis, "dr")
    assert not dr.of_type(RELEASE)
    policies = {o["metadata"]["name"] for o in export.kubernetes_objects(synthesis, "dr")
                if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == cfg.neo4j.namespace}
    primary = {o["metadata"]["name"] for o in export.kubernetes_objects(synthesis, "primary")
               if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == cfg.neo4j.namespace}
    # the cluster's own flows are there already, so a switch only adds the releases
    cluster_flows = {p for p in primary if "backup" not in p and "snapshot" not in p and "rotation" not in p}
    assert cluster_flows and cluster_flows <= policies


@pytest.mark.parametrize("stack", STACKS)
def test_the_dr_alb_carries_the_dr_web_acl_and_secondary_aliases_it(stack):
    synthesis, cfg = synthesized(stack), stack_settings(stack)
    dr = in_tier(synthesis, "dr")
    [alb] = dr.of_type("aws:lb/loadBalancer:LoadBalancer")
    [acl] = dr.of_type(WEB_ACL)
    [association] = dr.of_type("aws:wafv2/webAclAssociation:WebAclAssociation")
    for resource in (alb, acl, association):
        assert provider_of(synthesis, resource).inputs["region"] == cfg.aws.dr_region
    assert association.inputs == {"resourceArn": alb.outputs["arn"], "webAclArn": acl.outputs["arn"]}
    assert f":{cfg.aws.dr_region}:" in acl.outputs["arn"]
    # the DR ALB carries a certificate of its own region
    [listener] = dr.of_type("aws:lb/listener:Listener")
    assert listener.inputs["certificateArn"] == cfg.ingress.dr_certificate_arn
    [binding] = dr.of_type("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    assert binding.inputs["metadata"]["name"] == "api"  # one name in both clusters
    assert provider_of(synthesis, binding).inputs["context"] == cfg.kubernetes.dr.context
    [secondary] = [r.inputs for r in synthesis.of_type(RECORD) if r.inputs.get("setIdentifier") == "secondary"]
    [alias] = secondary["aliases"]
    assert alias["name"] == alb.outputs["dnsName"] and alias["name"].endswith(f".{cfg.aws.dr_region}.elb.amazonaws.com")
    assert synthesis.outputs["edge"]["drWebAclArn"] == acl.outputs["arn"]
    assert synthesis.outputs["edge"]["drLoadBalancerDnsName"] == alias["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_each_region_ships_its_logs_to_its_own_copy_of_the_logs_bucket(stack):
    synthesis = synthesized(stack)
    logs = synthesis.outputs["backupBuckets"]["logs"]
    for role, bucket in (("primary", logs["bucket"]), ("dr", logs["replicaBucket"])):
        [config] = [o for o in export.kubernetes_objects(synthesis, role)
                    if o["kind"] == "ConfigMap" and "fluent-bit.conf" in o.get("data", {})]
        assert f"bucket {bucket}" in " ".join(config["data"]["fluent-bit.conf"].split()), role


@pytest.mark.parametrize("stack", STACKS)
def test_the_dr_budget_describes_the_dr_path_of_the_stacks_mode(stack):
    cfg = stack_settings(stack)
    rows = {(row["datastore"], row["objective"]): row for row in synthesized(stack).outputs["drBudget"]}
    rto, rpo = rows[("neo4j", "RTO")], rows[("neo4j", "RPO")]
    # the DR bucket holds a backup up to S3 RTC's 15 minutes after the primary's (replication SLA)
    assert rpo["terms"]["bucketReplication"] == 15 * 60
    # the switch starts on Route 53's verdict and reaches clients after the alias's TTL
    assert rto["terms"]["dnsDetection"] == rows[("postgres", "RTO")]["terms"]["dnsDetection"]
    assert rto["terms"]["aliasTtl"] == rows[("postgres", "RTO")]["terms"]["aliasTtl"]
    # either way the switch may wait for one seed of the newest chain (pilot-light: its own; warm:
    # a refresh in flight)
    assert rto["terms"]["restoreFullBackup"] == cfg.dr.neo4j_restore_estimate_seconds
    if cfg.neo4j.dr.mode == "pilot-light":
        assert rto["terms"]["clusterStart"] == cfg.dr.neo4j_cluster_start_estimate_seconds
        assert "refreshInterval" not in rpo["terms"]
    else:
        assert "clusterStart" not in rto["terms"]
        # the switch promotes what the last refresh loaded: the copy is up to one refresh gap older
        assert rpo["terms"]["refreshInterval"] == dr_budget.cron_max_gap_seconds(cfg.neo4j.dr.refresh_schedule)
    assert rto["boundSeconds"] == sum(rto["terms"].values())


def test_a_pilot_light_target_that_the_start_breaks_prints_missed():
    common = dict(rto_target=3600, rpo_target=5400, backup_schedule="0 * * * *", chain_days=1,
                  full_backup_seconds=600, restore_estimate_seconds=2700, differential_estimate_seconds=20,
                  replication_sla_seconds=900, request_interval_seconds=10, failure_threshold=3)
    warm = {b.objective: b for b in dr_budget.neo4j_bounds(dr_mode="warm", refresh_schedule="20 */2 * * *",
                                                           **common)}
    cold = {b.objective: b for b in dr_budget.neo4j_bounds(dr_mode="pilot-light", cluster_start_seconds=900, **common)}
    assert warm["RTO"].met and not cold["RTO"].met
    assert cold["RTO"].bound_seconds - warm["RTO"].bound_seconds == 900
    with pytest.raises(ValueError, match="pilot-light or warm"):
        dr_budget.neo4j_bounds(dr_mode="cold", **common)
