"""RegionSwitch: one ARC Region switch plan moves the PostgreSQL writer, the DR tier and traffic, both ways.

The roles are held to the ARC Developer Guide's sample policies (tests/data/region_switch_sample_policies.json,
each with its source), and where the plan's API calls go is read from botocore's own endpoint rules.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from synth import engine
from tests.conftest import config_with, run_component, stack_settings

PLAN = "aws:arcregionswitch/plan:Plan"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RECORD = "aws:route53/record:Record"
INSTANCE = "aws:rds/instance:Instance"
SAMPLES = json.loads((Path(__file__).parent / "data" / "region_switch_sample_policies.json").read_text())
# the only sample action left out: rds:CreateDBInstanceReadReplica belongs to the RdsCreateCrossRegionReplica
# block the RDS sample policy also covers, which this plan does not use (components/region_switch.py)
LEFT_OUT = {"RdsPromoteReadReplica": {"rds:CreateDBInstanceReadReplica"}}


def actions(statement: dict) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def resources(statement: dict) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else list(resource)


def region_of(synthesis, resource) -> str:
    provider = next(r for r in synthesis.resources if r.urn == resource.provider.rsplit("::", 1)[0])
    return provider.inputs["region"]


def policy_of(synthesis, role) -> dict:
    [policy] = [p for p in synthesis.of_type(ROLE_POLICY) if p.inputs["role"] == role.id]
    return json.loads(policy.inputs["policy"])


def the_plan(synthesis):
    [plan] = synthesis.of_type(PLAN)
    roles = {r.name: r for r in synthesis.of_type(ROLE) if r.name.startswith("region-switch-")}
    return plan, roles["region-switch-execution"], roles["region-switch-approval"]


def test_the_plan_activates_either_region_with_the_same_steps(any_stack):
    cfg = stack_settings(any_stack.stack)
    plan, _, approval = the_plan(any_stack)
    regions = [cfg.aws.primary_region, cfg.aws.dr_region]
    assert plan.inputs["recoveryApproach"] == "activePassive"
    assert plan.inputs["regions"] == regions and plan.inputs["primaryRegion"] == cfg.aws.primary_region
    assert plan.inputs["recoveryTimeObjectiveMinutes"] == math.ceil(cfg.dr.postgres.rto_seconds / 60)
    workflows = plan.inputs["workflows"]
    # "you create either one workflow that can be used to activate either of your Regions, or separate
    # activation workflows, one for each Region" (ARC Developer Guide, "Region switch components")
    assert [(w["workflowTargetAction"], w["workflowTargetRegion"]) for w in workflows] == [
        ("activate", regions[0]), ("activate", regions[1])]
    names = [[(s["name"], s["executionBlockType"]) for s in w["steps"]] for w in workflows]
    assert names[0] == names[1] == [("approve", "ManualApproval"), ("promote-postgres", "RdsPromoteReadReplica"),
                                    ("move-traffic", "Route53HealthCheck")]
    timeouts = cfg.dr.region_switch
    for workflow in workflows:
        approve, promote, traffic = workflow["steps"]
        assert approve["executionApprovalConfigs"] == [
            {"approvalRole": approval.outputs["arn"], "timeoutMinutes": timeouts.approval_timeout_minutes}]
        [promotion] = promote["rdsPromoteReadReplicaConfigs"]
        assert promotion["timeoutMinutes"] == timeouts.promotion_timeout_minutes
        # the map names each region's instance (ARC API Reference, RdsPromoteReadReplicaConfiguration:
        # dbInstanceArnMap, keys are Regions); the block promotes the activating region's
        instances = {region_of(any_stack, i): i.outputs["arn"] for i in any_stack.of_type(INSTANCE)}
        assert promotion["dbInstanceArnMap"] == instances and set(instances) == set(regions)
        [route53] = traffic["route53HealthCheckConfigs"]
        assert route53["hostedZoneId"] == cfg.dns.hosted_zone_id and route53["recordName"] == cfg.dns.record_name
        assert route53["timeoutMinutes"] == timeouts.traffic_timeout_minutes


def test_the_plan_maps_each_failover_record_to_its_region(any_stack):
    """Region switch maps record sets to Regions by a Region name in their value or set identifier,
    or by the identifiers the step lists (ARC Developer Guide, "Amazon Route 53 health check execution
    block"): ours name no region, so the step lists them."""
    cfg = stack_settings(any_stack.stack)
    plan, _, _ = the_plan(any_stack)
    records = {r.inputs["failoverRoutingPolicies"][0]["type"]: r.inputs["setIdentifier"]
               for r in any_stack.of_type(RECORD) if "setIdentifier" in r.inputs}
    expected = [{"recordSetIdentifier": records["PRIMARY"], "region": cfg.aws.primary_region},
                {"recordSetIdentifier": records["SECONDARY"], "region": cfg.aws.dr_region}]
    for workflow in plan.inputs["workflows"]:
        [route53] = workflow["steps"][-1]["route53HealthCheckConfigs"]
        assert route53["recordSets"] == expected


def test_the_execution_role_is_assumable_by_region_switch_only(any_stack):
    _, execution, _ = the_plan(any_stack)
    assert json.loads(execution.inputs["assumeRolePolicy"]) == SAMPLES["trustPolicy"]["policy"]


def used_blocks(plan) -> set[str]:
    return {s["executionBlockType"] for w in plan.inputs["workflows"] for s in w["steps"]}


def test_the_execution_role_holds_exactly_the_sample_actions_of_the_blocks_the_plan_uses(any_stack):
    plan, execution, _ = the_plan(any_stack)
    statements = policy_of(any_stack, execution)["Statement"]
    granted = set().union(*(actions(s) for s in statements))
    blocks = used_blocks(plan) - {"ManualApproval"}  # approvals are the approval role's
    sampled = set().union(*(actions(s) for b in blocks for s in SAMPLES["blocks"][b]["policy"]["Statement"]))
    assert granted == sampled - set().union(*(LEFT_OUT.get(b, set()) for b in blocks))
    # scoped to this stack's instances and hosted zone, never "*"
    cfg = stack_settings(any_stack.stack)
    instances = sorted(i.outputs["arn"] for i in any_stack.of_type(INSTANCE))
    by_action = {a: sorted(resources(s)) for s in statements for a in actions(s)}
    assert by_action["rds:PromoteReadReplica"] == instances
    assert by_action["route53:ListResourceRecordSets"] == [f"arn:aws:route53:::hostedzone/{cfg.dns.hosted_zone_id}"]
    assert all("*" not in r for s in statements for r in resources(s))


def test_the_approval_role_may_approve_this_plan_only(any_stack):
    plan, _, approval = the_plan(any_stack)
    [statement] = policy_of(any_stack, approval)["Statement"]
    [sample] = SAMPLES["blocks"]["ManualApproval"]["policy"]["Statement"]
    assert actions(statement) == actions(sample) and statement["Resource"] == plan.outputs["arn"]


def test_only_the_on_call_role_may_assume_the_approval_role(any_stack):
    """Least privilege: the approval role trusts the on-call role's sessions, not every principal of the
    account whose own policy allows sts:AssumeRole. The on-call role is named by aws:PrincipalArn under
    the account principal, not as the Principal: IAM refuses a trust policy naming a role that does not
    exist yet ("Invalid principal in policy") and keeps a named role as its unique ID, so a recreated
    on-call role would lose the trust (IAM User Guide, "AWS JSON policy elements: Principal", IAM role
    principals); aws:PrincipalArn of a role session is the role's ARN (IAM User Guide, "AWS global
    condition context keys")."""
    _, _, approval = the_plan(any_stack)
    cfg = stack_settings(any_stack.stack)
    account = cfg.aws.account_id
    [trust] = json.loads(approval.inputs["assumeRolePolicy"])["Statement"]
    on_call = any_stack.named("oncall", "aws:iam/role:Role")
    on_call_arn = f"arn:aws:iam::{account}:role/{on_call.inputs['name']}"
    assert trust == {"Sid": "OnCallApproves", "Effect": "Allow", "Action": "sts:AssumeRole",
                     "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                     "Condition": {"ArnEquals": {"aws:PrincipalArn": on_call_arn}}}
    assert on_call_arn == on_call.outputs["arn"]  # the name the trust compares is the role's real ARN
    # and the on-call role may assume it (the account principal needs the caller's own Allow too)
    [assume] = [s for s in json.loads(any_stack.named("oncall-runbooks", "aws:iam/rolePolicy:RolePolicy")
                                      .inputs["policy"])["Statement"] if "sts:AssumeRole" in s["Action"]]
    assert assume["Action"] == ["sts:AssumeRole"] and assume["Resource"] == [approval.outputs["arn"]]


def switch_with(stack: str, **changes):
    """The component alone, with both regions' providers, as __main__ builds it."""
    import pulumi_aws as aws

    from components.region_switch import RegionSwitch, RegionSwitchArgs, StepTimeouts, Workload

    cfg = stack_settings(stack)

    def build() -> dict:
        providers = {role: aws.Provider(f"aws-{role}", region=cfg.aws.region(role)) for role in ("primary", "dr")}
        args = dict(
            environment=cfg.environment, account_id=cfg.aws.account_id,
            regions={role: cfg.aws.region(role) for role in ("primary", "dr")},
            db_instance_arns={role: f"arn:aws:rds:{cfg.aws.region(role)}:{cfg.aws.account_id}:db:pg-{role}"
                              for role in ("primary", "dr")},
            hosted_zone_id=cfg.dns.hosted_zone_id, record_name=cfg.dns.record_name,
            cluster_names={role: cfg.kubernetes.of(role).cluster_name for role in ("primary", "dr")},
            timeouts=StepTimeouts(2, 10, 15, 1), rto_target_seconds=900, providers=providers,
            approver_role_arn=f"arn:aws:iam::{cfg.aws.account_id}:role/intelgraph-{stack}-oncall",
            control_plane_provider=providers["primary"])  # us-east-1 in both stacks
        args.update(changes)
        if "scaled" in args:
            args["scaled"] = tuple(Workload(*w) for w in args["scaled"])
        switch = RegionSwitch("region-switch", RegionSwitchArgs(**args))
        return {"checks": dict(switch.health_check_ids)}

    return run_component(build, stack)


def test_a_scaled_down_tier_gets_the_eks_step_its_access_entries_and_the_eks_sample_actions():
    synthesis = switch_with("stage", scaled=[("cache", "redis"), ("graph", "neo4j-graph-server-1")])
    cfg = stack_settings("stage")
    plan, execution, _ = the_plan(synthesis)
    for workflow in plan.inputs["workflows"]:
        assert [s["name"] for s in workflow["steps"]] == ["approve", "promote-postgres", "scale-tier", "move-traffic"]
        [scaling] = workflow["steps"][2]["eksResourceScalingConfigs"]
        assert scaling["kubernetesResourceTypes"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet"}]
        assert scaling["capacityMonitoringApproach"] == "sampledMaxInLast24Hours" and scaling["targetPercent"] == 100
        # one application per workload, naming its object in each Region (the model's
        # KubernetesScalingApplication -> RegionalScalingResource, keyed by Region)
        assert [a["namespace"] for a in scaling["scalingResources"]] == ["cache-redis", "graph-neo4j-graph-server-1"]
        for application, (namespace, name) in zip(scaling["scalingResources"],
                                                  [("cache", "redis"), ("graph", "neo4j-graph-server-1")], strict=True):
            assert application["resources"] == [{"resourceName": region, "name": name, "namespace": namespace}
                                                for region in (cfg.aws.primary_region, cfg.aws.dr_region)]
    statements = policy_of(synthesis, execution)["Statement"]
    eks = [s for s in statements if any(a.startswith("eks:") for a in actions(s))]
    [sample_describe, sample_entries] = SAMPLES["blocks"]["EKSResourceScaling"]["policy"]["Statement"]
    clusters = {role: cfg.kubernetes.of(role).cluster_name for role in ("primary", "dr")}
    assert [(actions(s), resources(s)) for s in eks] == [
        (actions(sample_describe), [f"arn:aws:eks:{cfg.aws.region(r)}:{cfg.aws.account_id}:cluster/{clusters[r]}"
                                    for r in ("primary", "dr")]),
        (actions(sample_entries), [f"arn:aws:eks:{cfg.aws.region(r)}:{cfg.aws.account_id}:access-entry/{clusters[r]}/*"
                                   for r in ("primary", "dr")])]
    # "you must create an EKS access entry for the IAM role that Region switch uses for plan execution,
    # by using [...] AmazonARCRegionSwitchScalingPolicy" - in both clusters, each in its own region
    associations = synthesis.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert {(a.inputs["clusterName"], region_of(synthesis, a)) for a in associations} == {
        (clusters[r], cfg.aws.region(r)) for r in ("primary", "dr")}
    for association in associations:
        assert association.inputs["policyArn"] == \
            "arn:aws:eks::aws:cluster-access-policy/AmazonARCRegionSwitchScalingPolicy"
        assert association.inputs["accessScope"] == {"type": "namespace", "namespaces": ["cache", "graph"]}
        assert association.inputs["principalArn"] == execution.outputs["arn"]


def test_without_anything_scaled_down_there_is_no_eks_step_nor_access():
    synthesis = switch_with("stage")
    plan, execution, _ = the_plan(synthesis)
    assert "EKSResourceScaling" not in used_blocks(plan)
    assert not synthesis.of_type("aws:eks/accessEntry:AccessEntry")
    assert not any(a.startswith("eks:") for s in policy_of(synthesis, execution)["Statement"] for a in actions(s))


class Calls:
    """Every function call the program makes, with the region of the provider it goes through."""

    def __init__(self, stack: str):
        self.monitor = engine.new_monitor(engine.stack_config(stack))
        self.made: list[tuple[str, str]] = []
        mocks = self.monitor.mocks
        original = mocks.call

        def call(args):
            self.made.append((args.token, mocks._region_of(args.provider)))
            return original(args)

        mocks.call = call


def test_a_deploy_during_a_primary_outage_reads_the_checks_from_the_dr_copy_not_the_control_plane(monkeypatch):
    """ListRoute53HealthChecks is a control-plane call, served only in us-east-1 (see the botocore test
    below): with the primary region (us-east-1) down, the deploy takes the same IDs from the copy the
    previous deploys wrote in the DR region, and the records do not change."""
    from components import region_switch

    cfg = stack_settings("prod")
    results, syntheses = {}, {}
    for mode in ("plan", "dr-copy"):
        calls = Calls("prod")
        with monkeypatch.context() as patch:
            patch.setattr(engine, "new_monitor", lambda *_, calls=calls: calls.monitor)
            synthesis = syntheses[mode] = switch_with("prod", health_checks_from=mode)
        results[mode] = (synthesis.outputs["checks"], calls.made,
                         {p.inputs["name"]: p.inputs["value"] for p in synthesis.of_type("aws:ssm/parameter:Parameter")})
    assert results["plan"][0] == results["dr-copy"][0]
    assert set(results["plan"][0].values()) and len(set(results["plan"][0].values())) == 2
    assert results["plan"][2] == results["dr-copy"][2]  # the copy itself does not change either
    assert ("aws:arcregionswitch/getRoute53HealthChecks:getRoute53HealthChecks", cfg.aws.dr_region) in results["plan"][1]
    assert results["dr-copy"][1] == [("aws:ssm/getParameter:getParameter", cfg.aws.dr_region)]
    parameter = region_switch.HEALTH_CHECKS_PARAMETER.format(plan=f"intelgraph-{cfg.environment}")
    [copy] = syntheses["plan"].of_type("aws:ssm/parameter:Parameter")
    assert copy.inputs["name"] == parameter and region_of(syntheses["plan"], copy) == cfg.aws.dr_region


class _Sent(Exception):
    pass


def endpoint_of(operation: str, region: str, **params) -> str:
    """The URL botocore's endpoint rules send ``operation`` to from ``region`` (never sent)."""
    import boto3

    client = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x",
                                   region_name=region).client("arc-region-switch")

    def stop(request, **_):
        raise _Sent(request.url)

    client.meta.events.register("before-send", stop)
    with pytest.raises(_Sent) as sent:
        getattr(client, operation)(**params)
    return str(sent.value)


PLAN_ARN = "arn:aws:arc-region-switch::481236059412:plan/intelgraph-prod:a1b2c3"


@pytest.mark.parametrize("operation,params", [
    ("get_plan", {"arn": PLAN_ARN}),
    ("list_route53_health_checks", {"arn": PLAN_ARN}),
    ("update_plan", {"arn": PLAN_ARN, "executionRole": "arn:aws:iam::481236059412:role/r", "workflows": []}),
])
def test_managing_the_plan_and_reading_its_checks_go_to_us_east_1_from_any_region(operation, params):
    # botocore data/arc-region-switch/2022-07-26: UseControlPlaneEndpoint, the partition leader
    assert endpoint_of(operation, "us-west-2", **params).startswith("https://arc-region-switch-control-plane.us-east-1.")


@pytest.mark.parametrize("operation,params", [
    ("start_plan_execution", {"planArn": PLAN_ARN, "targetRegion": "us-west-2", "action": "activate"}),
    ("approve_plan_execution_step", {"planArn": PLAN_ARN, "executionId": "e", "stepName": "approve",
                                     "approval": "approve"}),
    ("get_plan_execution", {"planArn": PLAN_ARN, "executionId": "e"}),
    ("list_route53_health_checks_in_region", {"arn": PLAN_ARN}),
])
def test_running_the_plan_stays_in_the_region_it_is_run_from(operation, params):
    # the data plane: "Region switch plans are executed from the Region being activated"
    assert endpoint_of(operation, "us-west-2", **params).startswith("https://arc-region-switch.us-west-2.")


def test_the_postgres_rto_is_the_plans_steps_and_their_timeouts(any_stack):
    cfg = stack_settings(any_stack.stack)
    rows = {(r["datastore"], r["objective"]): r for r in any_stack.outputs["drBudget"]}
    terms = rows[("postgres", "RTO")]["terms"]
    steps = any_stack.outputs["regionSwitch"]["steps"]
    detection = cfg.dns.health_check.request_interval_seconds * cfg.dns.health_check.failure_threshold
    assert terms == {"dnsDetection": detection,
                     **{"approve": 60 * cfg.dr.region_switch.approval_timeout_minutes,
                        "promotePostgres": 60 * cfg.dr.region_switch.promotion_timeout_minutes,
                        "moveTraffic": 60 * cfg.dr.region_switch.traffic_timeout_minutes},
                     "aliasTtl": 60}
    assert sum(s["timeoutSeconds"] for s in steps) + detection + 60 == rows[("postgres", "RTO")]["boundSeconds"]


def test_a_promotion_step_shorter_than_the_measured_promotion_is_a_settings_error():
    import settings

    with pytest.raises(settings.SettingsError, match="promotionTimeoutMinutes"):
        settings.validate(config_with("prod", {"dr.regionSwitch": {"promotionTimeoutMinutes": 5}}))


def test_the_sample_policies_name_their_source():
    for name, block in SAMPLES["blocks"].items():
        assert block["source"].startswith(("https://docs.aws.amazon.com/r53recovery/",
                                          "https://docs.amazonaws.cn/en_us/r53recovery/")), name


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_failing_over_changes_nothing_of_the_switch_and_reads_no_control_plane(stack):
    """`dr.activeRegion: dr` must deploy while us-east-1 (the primary region, and ARC's control plane)
    is down: the plan, its roles, the health-check copy and the failover records keep their inputs,
    and the health checks come from the DR region's copy (decision 023)."""
    from synth import targets

    normal = engine.synthesize(stack)
    failed_over = engine.synthesize(stack, targets.with_active_region(engine.stack_config(stack), "dr"))
    kinds = (PLAN, ROLE, ROLE_POLICY, RECORD, "aws:ssm/parameter:Parameter")

    def switch_inputs(synthesis) -> dict:
        return {r.urn: r.inputs for r in synthesis.resources if r.type in kinds
                and ("region-switch" in r.urn or r.type == RECORD)}

    assert switch_inputs(normal) == switch_inputs(failed_over) and switch_inputs(normal)
    tokens = [(i.token, i.provider_urn.rsplit("::", 1)[-1]) for i in failed_over.invokes]
    assert not [t for t in tokens if t[0].startswith("aws:arcregionswitch/")], tokens
    assert ("aws:ssm/getParameter:getParameter", "aws-dr") in tokens
    assert ("aws:arcregionswitch/getRoute53HealthChecks:getRoute53HealthChecks", "aws-dr") in [
        (i.token, i.provider_urn.rsplit("::", 1)[-1]) for i in normal.invokes]


@pytest.mark.parametrize("changes,words", [
    ({"environment": "a-very-long-environment-name"}, "longer than 32 characters"),
    ({"regions": {"primary": "us-east-1", "dr": "us-east-1"}}, "two different regions"),
    ({"cluster_names": {"primary": "eks"}}, "cluster_names must have an entry for primary and for dr"),
    ({"control_plane_provider": None}, "control_plane_provider must be a us-east-1 provider"),
    # another account's role, or the account itself, would hand the approval to more than the on-call
    ({"approver_role_arn": "arn:aws:iam::123456789012:role/intelgraph-prod-oncall"},
     "approver_role_arn must be a role of account 481236059412"),
    ({"approver_role_arn": "arn:aws:iam::481236059412:root"}, "approver_role_arn must be a role"),
])
def test_args_are_validated_with_the_field_named(changes, words):
    from components.region_switch import RegionSwitchArgs, StepTimeouts

    base = dict(environment="prod", account_id="481236059412", regions={"primary": "us-east-1", "dr": "us-west-2"},
                db_instance_arns={"primary": "a", "dr": "b"}, hosted_zone_id="Z1", record_name="api.example.com",
                cluster_names={"primary": "eks", "dr": "eks-dr"}, timeouts=StepTimeouts(2, 10, 15, 1),
                rto_target_seconds=900, providers={"primary": object(), "dr": object()},
                approver_role_arn="arn:aws:iam::481236059412:role/intelgraph-prod-oncall",
                control_plane_provider=object())
    with pytest.raises(ValueError, match=words):
        RegionSwitchArgs(**{**base, **changes})


# --- the request AWS receives: CreatePlan, checked against the service's own model ---------------------

# terraform-provider-aws internal/service/arcregionswitch/expand.go: each step's one configuration block
# becomes the ExecutionBlockConfiguration member of its type; an EKS scaling_resources entry becomes a
# map {<namespace field>: {<resource_name>: {name, namespace}}}
BLOCK_CONFIGS = {"executionApprovalConfigs": "executionApprovalConfig",
                 "rdsPromoteReadReplicaConfigs": "rdsPromoteReadReplicaConfig",
                 "route53HealthCheckConfigs": "route53HealthCheckConfig",
                 "eksResourceScalingConfigs": "eksResourceScalingConfig"}


def create_plan_request(plan) -> dict:
    def block(key: str, config: dict) -> dict:
        if key != "eksResourceScalingConfigs":
            return config
        config = dict(config)
        [config["kubernetesResourceType"]] = config.pop("kubernetesResourceTypes")
        config["scalingResources"] = [
            {entry["namespace"]: {r["resourceName"]: {"name": r["name"], "namespace": r["namespace"]}
                                  for r in entry["resources"]}} for entry in config["scalingResources"]]
        return config

    inputs = plan.inputs
    workflows = [{**{k: v for k, v in w.items() if k != "steps"}, "steps": [
        {"name": s["name"], "executionBlockType": s["executionBlockType"],
         "executionBlockConfiguration": {BLOCK_CONFIGS[k]: block(k, v[0]) for k, v in s.items() if k in BLOCK_CONFIGS}}
        for s in w["steps"]]} for w in inputs["workflows"]]
    keys = ("name", "executionRole", "recoveryApproach", "regions", "primaryRegion", "description",
            "recoveryTimeObjectiveMinutes")
    return {**{k: inputs[k] for k in keys}, "workflows": workflows}


def model_violations(value, shape, path: str = "CreatePlan"):
    """What botocore's validator leaves out: enums, ranges, lengths, and each string's or map key's
    pattern (Smithy patterns are not anchored: a search)."""
    import re

    meta = shape.metadata
    if shape.type_name == "structure":
        for key, member in value.items():
            yield from model_violations(member, shape.members[key], f"{path}.{key}")
    elif shape.type_name == "list":
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            yield f"{path}: {len(value)} items outside {meta}"
        for i, item in enumerate(value):
            yield from model_violations(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            yield from model_violations(key, shape.key, f"{path} key")
            yield from model_violations(item, shape.value, f"{path}[{key}]")
    elif shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            yield f"{path}: {value!r} is not one of {shape.enum}"
        if "pattern" in meta and not re.search(meta["pattern"], value):
            yield f"{path}: {value!r} does not match {meta['pattern']}"
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            yield f"{path}: length {len(value)} outside {meta}"
    elif shape.type_name in ("integer", "long", "float", "double"):
        if not meta.get("min", value) <= value <= meta.get("max", value):
            yield f"{path}: {value} outside {meta}"


def assert_aws_accepts(plan) -> dict:
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("arc-region-switch").operation_model("CreatePlan").input_shape
    request = create_plan_request(plan)
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert not (problems := list(model_violations(request, shape))), problems
    return request


def test_aws_would_accept_the_stacks_plan(any_stack):
    plan, _, _ = the_plan(any_stack)
    request = assert_aws_accepts(plan)
    assert [s["executionBlockType"] for w in request["workflows"] for s in w["steps"]]


def test_aws_would_accept_a_plan_with_the_eks_step():
    plan, _, _ = the_plan(switch_with("stage", scaled=[("cache", "redis")]))
    request = assert_aws_accepts(plan)
    [scaling] = [s["executionBlockConfiguration"]["eksResourceScalingConfig"]
                 for s in request["workflows"][0]["steps"] if s["executionBlockType"] == "EKSResourceScaling"]
    assert scaling["scalingResources"] == [{"cache-redis": {
        region: {"name": "redis", "namespace": "cache"} for region in ("us-east-1", "us-west-2")}}]


def test_the_model_check_would_catch_a_wrong_block_type():
    import copy

    plan, _, _ = the_plan(synthesized_stage())
    broken = copy.deepcopy(plan)
    broken.inputs["workflows"][0]["steps"][0]["executionBlockType"] = "ManualApprove"
    with pytest.raises(AssertionError, match="ManualApprove"):
        assert_aws_accepts(broken)


def synthesized_stage():
    from tests.conftest import synthesized

    return synthesized("stage")


def test_the_plan_and_its_roles_are_managed_in_us_east_1_and_a_failed_over_deploy_leaves_them_alone(any_stack):
    """Their control planes (ARC Region switch, IAM) are in us-east-1 whatever a provider's region:
    bound to the us-east-1 provider they are never in the failed-over target list."""
    from synth import targets

    plan, execution, approval = the_plan(any_stack)
    assert {region_of(any_stack, r) for r in (plan, execution, approval)} == {"us-east-1"}
    listed = targets.derive(any_stack.stack, engine.stack_config(any_stack.stack))
    assert not [u for u in listed if any(u.endswith(f"::{r.name}") and r.type in u for r in (plan, execution, approval))]
    # the copy of the health checks lives, and is read, in the DR region
    [copy] = [p for p in any_stack.of_type("aws:ssm/parameter:Parameter") if p.name == "region-switch-health-checks"]
    assert region_of(any_stack, copy) == stack_settings(any_stack.stack).aws.dr_region
