"""RegionSwitch: one ARC Region switch plan moves the PostgreSQL writer, the DR tier and traffic together.

An active/passive plan over the primary and DR regions (Amazon Application Recovery Controller,
Region switch) with one activation workflow per region, built by one function so the way there and
the way back are the same steps mirrored:

1. ``approve`` (ManualApproval): the on-call confirms the switch with the approval role, which only the
   on-call role (``approver_role_arn``) may assume.
2. ``promote-postgres`` (RdsPromoteReadReplica): promotes the activating region's instance (the
   replica) to a standalone writer. The plan names each region's instance by ARN.
3. ``scale-tier`` (EKSResourceScaling, only when the DR tier runs something scaled down): scales the
   activating cluster's StatefulSets to the deactivating region's capacity.
4. ``move-traffic`` (Route53HealthCheck): Region switch owns one Route 53 health check per region and
   sets the activating region's healthy and the other's unhealthy. The failover records carry those
   checks (components/dns_failover.py), so traffic moves only here, after the writer moved, and never
   to a read-only replica because a probe failed.

Not used: RdsCreateCrossRegionReplica. It renames the old primary and creates a replica under the old
identifier outside this program's state; the way back instead is the design's *rebuilt* step, a
``pulumi up`` that creates the new replica (docs/decisions/023-region-switch-plan.md).

The execution role holds exactly the actions of the ARC Developer Guide's sample policy of each block
the plan uses, scoped to this stack's instances, hosted zone and clusters
(tests/data/region_switch_sample_policies.json compares them). EKS scaling additionally needs an EKS
access entry for the role with the AmazonARCRegionSwitchScalingPolicy access policy in both clusters.

Where it runs: CreatePlan/UpdatePlan/GetPlan and ListRoute53HealthChecks are control-plane operations,
served only in the partition's leader region (us-east-1 for aws: botocore arc-region-switch endpoint
rules, ``UseControlPlaneEndpoint``). Executing, approving and watching a plan are data-plane
operations served in every region: during an outage of the primary region the on-call runs the plan
from the DR region's endpoint. So the plan and its IAM roles are bound to a us-east-1 provider (managed
there, left alone by a failed-over deploy), nothing changes them when only the active region changes,
and in the ``dr-copy`` mode the health-check IDs come from the copy every deploy keeps in the DR
region instead of from the control plane.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal, Mapping, Optional, cast

import pulumi
import pulumi_aws as aws

from helpers.validation import require

Role = Literal["primary", "dr"]
ROLES: tuple[Role, Role] = ("primary", "dr")
SERVICE_PRINCIPAL = "arc-region-switch.amazonaws.com"
# ARC Developer Guide, "Amazon EKS resource scaling execution block": the access policy Region switch
# needs in each cluster (scale and status of workloads, HPAs).
SCALING_ACCESS_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonARCRegionSwitchScalingPolicy"
# the failover records' set identifiers (components/dns_failover.py): they name no region, so the
# plan maps them to regions explicitly
RECORD_SET_IDS: Mapping[Role, str] = {"primary": "primary", "dr": "secondary"}
HEALTH_CHECKS_PARAMETER = "/intelgraph/region-switch/{plan}/route53-health-checks"


@dataclass(frozen=True)
class Workload:
    """A StatefulSet of the DR tier that runs scaled down until a switch (the same name in both clusters)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class StepTimeouts:
    approval_minutes: int
    promotion_minutes: int
    scaling_minutes: int
    traffic_minutes: int


@dataclass(frozen=True)
class Step:
    """One step of an activation workflow, as the DR budget counts it."""

    name: str
    block: str
    timeout_seconds: int


@dataclass(frozen=True)
class RegionSwitchArgs:
    environment: str
    account_id: str
    regions: Mapping[Role, str]
    db_instance_arns: Mapping[Role, pulumi.Input[str]]  # the PostgreSQL instance in each region
    hosted_zone_id: str
    record_name: str
    cluster_names: Mapping[Role, str]  # the EKS cluster of each region
    timeouts: StepTimeouts
    rto_target_seconds: int
    # the one role that may assume the approval role: the on-call role (ops/oncall.py role_name)
    approver_role_arn: str
    scaled: tuple[Workload, ...] = ()
    # plan: read the health checks from the plan (control plane, us-east-1); dr-copy: from the copy
    # every deploy writes in the DR region (deployable while the primary region's APIs are down)
    health_checks_from: Literal["plan", "dr-copy"] = "plan"
    providers: Mapping[str, pulumi.ProviderResource] = field(default_factory=dict)
    # a us-east-1 provider: where the control planes of ARC Region switch and IAM are
    control_plane_provider: Optional[pulumi.ProviderResource] = None

    def __post_init__(self) -> None:
        problems = []
        if set(self.regions) != set(ROLES) or self.regions["primary"] == self.regions["dr"]:
            problems.append("regions must name two different regions, primary and dr")
        for label, value in (("db_instance_arns", self.db_instance_arns), ("cluster_names", self.cluster_names),
                             ("providers", self.providers)):
            if set(value) != set(ROLES):
                problems.append(f"{label} must have an entry for primary and for dr")
        if len(self.plan_name) > 32:
            problems.append(f"plan name {self.plan_name!r} is longer than 32 characters (CreatePlan)")
        if self.control_plane_provider is None:
            problems.append("control_plane_provider must be a us-east-1 provider (ARC's and IAM's control planes)")
        if not re.fullmatch(rf"arn:aws:iam::{re.escape(self.account_id)}:role/[\w+=,.@-]+", self.approver_role_arn):
            problems.append(f"approver_role_arn must be a role of account {self.account_id} "
                            f"(given: {self.approver_role_arn!r})")
        if self.health_checks_from not in ("plan", "dr-copy"):
            problems.append("health_checks_from must be plan or dr-copy")
        require("RegionSwitchArgs", problems)

    @property
    def plan_name(self) -> str:
        return f"intelgraph-{self.environment}"

    def steps(self) -> list[Step]:
        """The steps of either activation workflow, in order; each runs at most its timeout."""
        t = self.timeouts
        steps = [Step("approve", "ManualApproval", t.approval_minutes * 60),
                 Step("promote-postgres", "RdsPromoteReadReplica", t.promotion_minutes * 60)]
        if self.scaled:
            steps.append(Step("scale-tier", "EKSResourceScaling", t.scaling_minutes * 60))
        steps.append(Step("move-traffic", "Route53HealthCheck", t.traffic_minutes * 60))
        return steps


def cluster_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:eks:{region}:{account_id}:cluster/{name}"


def execution_statements(args: RegionSwitchArgs, db_arns: Mapping[Role, str]) -> list[dict]:
    """The execution role's statements: each used block's sample-policy actions on our resources."""
    statements = [
        # "Amazon RDS execution block sample policy", less rds:CreateDBInstanceReadReplica: only the
        # RdsCreateCrossRegionReplica block, which this plan does not use, creates replicas
        {"Sid": "RdsPromoteReadReplica", "Effect": "Allow",
         "Action": ["rds:DescribeDBInstances", "rds:PromoteReadReplica", "rds:ModifyDBInstance"],
         "Resource": [db_arns[r] for r in ROLES]},
        # "Route 53 health check execution block sample policy"
        {"Sid": "Route53HealthCheck", "Effect": "Allow", "Action": ["route53:ListResourceRecordSets"],
         "Resource": [f"arn:aws:route53:::hostedzone/{args.hosted_zone_id}"]},
    ]
    if args.scaled:
        # "Amazon EKS resource scaling execution block sample policy"
        statements += [
            {"Sid": "EksDescribeCluster", "Effect": "Allow", "Action": ["eks:DescribeCluster"],
             "Resource": [cluster_arn(args.regions[r], args.account_id, args.cluster_names[r]) for r in ROLES]},
            {"Sid": "EksAccessEntries", "Effect": "Allow", "Action": ["eks:ListAssociatedAccessPolicies"],
             "Resource": [f"arn:aws:eks:{args.regions[r]}:{args.account_id}:access-entry/{args.cluster_names[r]}/*"
                          for r in ROLES]},
        ]
    return statements


def approval_statements(plan_arn: str) -> list[dict]:
    """The approval role's: "Manual approval execution block sample policy", on this plan only."""
    return [{"Sid": "ApprovePlanExecutionStep", "Effect": "Allow",
             "Action": ["arc-region-switch:ApprovePlanExecutionStep"], "Resource": plan_arn}]


def approval_trust(account_id: str, approver_role_arn: str) -> dict:
    """Who may assume the approval role: the approver role's sessions only (sts:AssumeRole, which the
    approver's own policy must also grant: the Principal is the account). Not the role's ARN as the
    Principal: IAM refuses a trust policy naming a role that does not exist yet (MalformedPolicyDocument
    "Invalid principal in policy"), and stores a named role as its unique ID, so a deleted and recreated
    on-call role would silently lose the trust (IAM User Guide, "AWS JSON policy elements: Principal",
    IAM role principals). aws:PrincipalArn of a role session is the role's ARN (IAM User Guide, "AWS
    global condition context keys"), compared by name at every request, so neither the order of
    creation nor a recreation matters; and IAM (control plane in us-east-1) is never called at a
    failover: the document names no region."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "OnCallApproves", "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Condition": {"ArnEquals": {"aws:PrincipalArn": approver_role_arn}}}]}


def _document(statements: list[dict]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


class RegionSwitch(pulumi.ComponentResource):
    plan_arn: pulumi.Output[str]
    # the Route 53 health check Region switch owns for each region: the failover records carry them
    health_check_ids: Mapping[Role, pulumi.Output[str]]

    def __init__(self, name: str, args: RegionSwitchArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:dr:RegionSwitch", name, None, opts)
        self._name, self._args = name, args
        in_region: dict[Role, pulumi.ResourceOptions] = {
            r: pulumi.ResourceOptions(parent=self, provider=args.providers[r]) for r in ROLES}
        # IAM and the plan are global, managed through their control planes in us-east-1 whatever a
        # provider's region: bound to a us-east-1 provider, so that they count as managed there (a
        # failed-over deploy leaves them alone: synth targets)
        here = pulumi.ResourceOptions(parent=self, provider=args.control_plane_provider)

        execution = aws.iam.Role(
            f"{name}-execution",
            name=f"{args.plan_name}-region-switch",
            description="ARC Region switch runs the plan with this role (components/region_switch.py)",
            assume_role_policy=_document([{"Effect": "Allow", "Principal": {"Service": SERVICE_PRINCIPAL},
                                           "Action": "sts:AssumeRole"}]),
            opts=here,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution.id,
            policy=pulumi.Output.all(*(args.db_instance_arns[r] for r in ROLES)).apply(
                lambda arns: _document(execution_statements(args, dict(zip(ROLES, arns, strict=True))))),
            opts=here,
        )
        # who may approve: the on-call role only (approval_trust)
        approval = aws.iam.Role(
            f"{name}-approval",
            name=f"{args.plan_name}-region-switch-approval",
            description="Approves the Region switch plan's approval step",
            assume_role_policy=json.dumps(approval_trust(args.account_id, args.approver_role_arn), sort_keys=True),
            opts=here,
        )
        access = self._scaling_access(execution, in_region) if args.scaled else []

        plan = aws.arcregionswitch.Plan(
            f"{name}-plan",
            name=args.plan_name,
            description="Moves the PostgreSQL writer, the DR tier and traffic between the regions together",
            recovery_approach="activePassive",
            regions=[args.regions[r] for r in ROLES],
            primary_region=args.regions["primary"],
            execution_role=execution.arn,
            recovery_time_objective_minutes=-(-args.rto_target_seconds // 60),
            workflows=[cast(aws.arcregionswitch.PlanWorkflowArgsDict, self._workflow(target, approval.arn))
                       for target in ROLES],
            # plan evaluation assumes the role: let it see the permissions and access entries first
            opts=pulumi.ResourceOptions.merge(here, pulumi.ResourceOptions(depends_on=[policy, *access])),
        )
        aws.iam.RolePolicy(f"{name}-approval", role=approval.id,
                           policy=plan.arn.apply(lambda arn: _document(approval_statements(arn))), opts=here)

        self.plan_arn = plan.arn
        self.steps = args.steps()  # what the DR budget counts
        self.scaled = args.scaled
        self.execution_role_arn = execution.arn
        self.approval_role_arn = approval.arn
        self.health_check_ids = self._health_checks(plan)
        self.register_outputs({"planArn": self.plan_arn, "executionRoleArn": self.execution_role_arn,
                               "approvalRoleArn": self.approval_role_arn})

    def _workflow(self, target: Role, approval_role: pulumi.Input[str]) -> dict:
        """Activate ``target``: the steps of RegionSwitchArgs.steps, configured."""
        args = self._args
        configs: dict[str, dict] = {
            "ManualApproval": {"execution_approval_configs": [
                {"approval_role": approval_role, "timeout_minutes": args.timeouts.approval_minutes}]},
            # the map names each region's instance; the block promotes the activating region's
            "RdsPromoteReadReplica": {"rds_promote_read_replica_configs": [
                {"db_instance_arn_map": {args.regions[r]: args.db_instance_arns[r] for r in ROLES},
                 "timeout_minutes": args.timeouts.promotion_minutes}]},
            "EKSResourceScaling": {"eks_resource_scaling_configs": [self._scaling()]},
            "Route53HealthCheck": {"route53_health_check_configs": [
                {"hosted_zone_id": args.hosted_zone_id, "record_name": args.record_name,
                 "record_sets": [{"record_set_identifier": RECORD_SET_IDS[r], "region": args.regions[r]}
                                 for r in ROLES],
                 "timeout_minutes": args.timeouts.traffic_minutes}]},
        }
        return {
            "workflow_target_action": "activate",
            "workflow_target_region": args.regions[target],
            "workflow_description": f"Make {args.regions[target]} ({target}) the active region",
            "steps": [{"name": step.name, "execution_block_type": step.block, **configs[step.block]}
                      for step in args.steps()],
        }

    def _scaling(self) -> dict:
        """Scale the activating cluster's StatefulSets to what the other region ran (sampled over 24 h).
        Each scaling resource is an application (any key) naming its object per Region (botocore's
        arc-region-switch model: KubernetesScalingApplication maps a string to RegionalScalingResource,
        keyed by Region); the provider's ``namespace`` is the application's key and ``resource_name``
        the Region (terraform-provider-aws arcregionswitch/expand.go). The objects have one name in
        both clusters."""
        args = self._args
        return {
            "capacity_monitoring_approach": "sampledMaxInLast24Hours",
            "target_percent": 100,
            "timeout_minutes": args.timeouts.scaling_minutes,
            "eks_clusters": [{"cluster_arn": cluster_arn(args.regions[r], args.account_id, args.cluster_names[r])}
                             for r in ROLES],
            "kubernetes_resource_types": [{"api_version": "apps/v1", "kind": "StatefulSet"}],
            "scaling_resources": [
                {"namespace": f"{w.namespace}-{w.name}",
                 "resources": [{"resource_name": args.regions[r], "name": w.name, "namespace": w.namespace}
                               for r in ROLES]}
                for w in args.scaled],
        }

    def _scaling_access(self, execution: aws.iam.Role,
                        in_region: Mapping[Role, pulumi.ResourceOptions]) -> list[pulumi.Resource]:
        """An EKS access entry for the execution role in each cluster, with Region switch's scaling
        access policy limited to the namespaces it scales."""
        args, made = self._args, []
        namespaces = sorted({w.namespace for w in args.scaled})
        for role in ROLES:
            entry = aws.eks.AccessEntry(f"{self._name}-access-{role}", cluster_name=args.cluster_names[role],
                                        principal_arn=execution.arn, type="STANDARD", opts=in_region[role])
            made.append(aws.eks.AccessPolicyAssociation(
                f"{self._name}-scaling-{role}", cluster_name=args.cluster_names[role], principal_arn=execution.arn,
                policy_arn=SCALING_ACCESS_POLICY, access_scope={"type": "namespace", "namespaces": namespaces},
                opts=pulumi.ResourceOptions.merge(in_region[role], pulumi.ResourceOptions(depends_on=[entry]))))
        return made

    def _health_checks(self, plan: aws.arcregionswitch.Plan) -> dict[Role, pulumi.Output[str]]:
        """The health check of each region, and a copy of them in the DR region (SSM parameter) that a
        deploy made while the primary region is down reads instead of the control plane."""
        args = self._args
        dr = pulumi.InvokeOutputOptions(parent=self, provider=args.providers["dr"], depends_on=[plan])
        parameter = HEALTH_CHECKS_PARAMETER.format(plan=args.plan_name)
        if args.health_checks_from == "plan":
            listed = aws.arcregionswitch.get_route53_health_checks_output(plan_arn=plan.arn, opts=dr)
            by_region = listed.health_checks.apply(lambda checks: json.dumps(
                {c.region: c.health_check_id for c in checks if c.record_name.rstrip(".") == args.record_name.rstrip(".")},
                sort_keys=True))
        else:
            by_region = aws.ssm.get_parameter_output(name=parameter, opts=dr).value
        aws.ssm.Parameter(
            f"{self._name}-health-checks", name=parameter, type="String", value=by_region,
            description="Route 53 health check of each region that the Region switch plan owns (failover records)",
            opts=pulumi.ResourceOptions(parent=self, provider=args.providers["dr"]))
        return {r: by_region.apply(lambda text, region=args.regions[r]: _check_of(text, region)) for r in ROLES}


def _check_of(by_region: str, region: str) -> str:
    checks = json.loads(by_region)
    if region not in checks:
        raise ValueError(f"the Region switch plan has no Route 53 health check for {region} (it has {checks}): "
                         "its move-traffic step must map a failover record to each region")
    return checks[region]
