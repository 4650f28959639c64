"""Run the ARC Region switch plan from the region it activates: promote, scale, move traffic.

    python -m ops.region_switch --stack prod --activate dr --mode ungraceful  # the primary region is impaired
    python -m ops.region_switch --stack prod --activate primary               # the way back, once rebuilt
    python -m ops.region_switch --stack prod --activate dr --dry-run          # the plan as that region has it

Every call goes to the activated region: its Region switch data plane (arc-region-switch.<region>.api.aws,
which executes, approves and reports: docs/decisions/023) and its STS, never the region being left nor
the control plane in us-east-1. Reads the plan there, refuses while another execution of it is still
running, starts one, approves its ``approve`` step as the approval role (regionSwitch.approvalRoleArn:
assumed with sts:AssumeRole; ApprovePlanExecutionStep is that role's action, not the on-call role's),
and follows the steps until the execution ends. Exit 0 when it completed, 1 when it did not (or did not
end within --timeout-seconds: it keeps running, watch it with get-plan-execution), 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional

# boto3 and botocore are imported where AWS is called, not here: the Pulumi program imports this
# module for its IAM actions (ops/oncall.py) and must not pay for boto3 (ops/_common.py)
from ops._common import (
    EXIT_FAILED,
    EXIT_OK,
    READ_OUTPUTS,
    Grant,
    InputError,
    Permissions,
    instance_urn,
    parser,
    run,
    stack_output,
    stack_outputs,
)

APPROVAL_STEP = "approve"  # components/region_switch.py: the ManualApproval step of both workflows
# ExecutionState values (ARC Region switch API Reference, GetPlanExecution) after which nothing runs
ENDED = ("completed", "completedWithExceptions", "completedMonitoringApplicationHealth", "canceled",
         "planExecutionTimedOut", "failed")
SUCCEEDED = ("completed", "completedMonitoringApplicationHealth")

# What main calls, on what (tests/iam_oracle.py records the calls and compares). The actions are the
# ones of the ARC Developer Guide's "Region switch plan execution block sample policy" (start, watch
# and list executions of a plan), less Cancel/UpdatePlanExecution, which this command never calls.
IAM = Permissions((
    READ_OUTPUTS,
    Grant(("arc-region-switch:GetPlanInRegion", "arc-region-switch:ListPlanExecutions",
           "arc-region-switch:StartPlanExecution", "arc-region-switch:GetPlanExecution"), "region-switch-plan",
          "the plan in the activated region, running executions, start, progress"),
    Grant(("sts:AssumeRole",), "region-switch-approval-role", "approving the plan's approve step"),
))


def main(argv: Optional[list[str]] = None) -> int:
    made = parser("region_switch", __doc__, IAM)
    made.add_argument("--activate", choices=("primary", "dr"), required=True,
                      help="the region to make active (the DR region at a failover, primary for the way back)")
    made.add_argument("--mode", choices=("graceful", "ungraceful"), default="graceful",
                      help="ungraceful when the region being left is impaired (StartPlanExecution)")
    made.add_argument("--dry-run", action="store_true", help="show the plan's steps there and start nothing")
    made.add_argument("--timeout-seconds", type=int, help="how long to follow the execution "
                                                          "(default: the sum of the plan's step timeouts + 5 minutes)")
    made.add_argument("--poll-seconds", type=float, default=15.0, help=argparse.SUPPRESS)
    args = made.parse_args(argv)
    return run("region_switch", lambda: switch(args.stack, args.outputs, args.activate, args.mode, args.dry_run,
                                               args.timeout_seconds, args.poll_seconds))


def switch(stack: Optional[str], outputs_file: Optional[Path], activate: str, mode: str, dry_run: bool,
           timeout_seconds: Optional[int], poll_seconds: float) -> int:
    outputs = stack_outputs(stack, outputs_file)
    plan_arn = stack_output(outputs, "regionSwitch", "planArn")
    region = stack_output(outputs, "regionSwitch", "regions", activate)
    import boto3

    arc = boto3.client("arc-region-switch", region_name=region)

    plan = arc.get_plan_in_region(arn=plan_arn)["plan"]
    workflows = [w for w in plan["workflows"] if w.get("workflowTargetRegion") == region
                 and w.get("workflowTargetAction") == "activate"]
    if len(workflows) != 1:
        raise InputError(f"the plan {plan_arn} has {len(workflows)} workflows that activate {region}, not one "
                         "(components/region_switch.py builds one per region): deploy the stack first")
    [workflow] = workflows
    print(f"plan {plan['name']} in {region}: activate {region} ({activate}), {mode}")
    for step in workflow["steps"]:
        print(f"  {step['name']}  {step['executionBlockType']}")
    if dry_run:
        return EXIT_OK
    replica_only(outputs, region)

    running = [e for e in _executions(arc, plan_arn) if e["executionState"] not in ENDED]
    if running:
        raise InputError(f"execution {running[0]['executionId']} of this plan is {running[0]['executionState']} "
                         f"in {running[0]['executionRegion']}: let it end (or cancel it) first")
    started = arc.start_plan_execution(planArn=plan_arn, targetRegion=region, action="activate", mode=mode,
                                       comment=f"ops.region_switch --activate {activate}")
    execution = started["executionId"]
    print(f"started execution {execution}")

    limit = timeout_seconds if timeout_seconds is not None else _steps_seconds(workflow) + 300
    deadline, approved = time.monotonic() + limit, False
    while True:
        state = arc.get_plan_execution(planArn=plan_arn, executionId=execution)
        status = {s["name"]: s["status"] for s in state.get("stepStates", [])}
        if not approved and status.get(APPROVAL_STEP) == "pendingApproval":
            _approve(stack_output(outputs, "regionSwitch", "approvalRoleArn"), region, plan_arn, execution)
            approved = True
            print(f"approved step {APPROVAL_STEP} as the approval role")
        if state["executionState"] in ENDED:
            for name, step_status in status.items():
                print(f"  {name}  {step_status}")
            print(f"execution {execution}: {state['executionState']}")
            if state["executionState"] not in SUCCEEDED:
                return EXIT_FAILED
            print(refresh_first(stack, outputs, activate))
            return EXIT_OK
        if time.monotonic() >= deadline:
            print(f"execution {execution} is still {state['executionState']} after {limit} s: follow it with "
                  f"aws arc-region-switch get-plan-execution --region {region} --plan-arn {plan_arn} "
                  f"--execution-id {execution}")
            return EXIT_FAILED
        time.sleep(poll_seconds)


def replica_only(outputs: dict, region: str) -> None:
    """The plan promotes the activating region's instance: only a replica of the writer may be
    promoted. After a switch back and until the next normal state (docs/runbooks.md, "Region
    switch", steps 7-8) the other region holds the former writer, standalone and stale - refuse
    rather than let the plan try it; PITR of the writer's replicated backups is the DR path then."""
    postgres = stack_output(outputs, "postgres")
    if postgres.get("writerRegion") == region:
        raise InputError(f"{region} already holds the writer ({postgres.get('writerArn')}): nothing to switch to")
    replica = postgres.get("replicaArn")
    if not replica or replica.split(":")[3] != region:
        raise InputError(f"no replica of the writer in {region} (the outputs name {replica or 'none'}): the plan "
                         "would promote a standalone instance; deploy the next state of the round trip first, "
                         "or restore the writer's replicated backups there (docs/runbooks.md, 'Region switch')")


def refresh_first(stack: Optional[str], outputs: dict, activate: str) -> str:
    """The step before the next deploy: the state still describes the promoted instance as a
    replica, and an update from there calls PromoteReadReplica, which RDS refuses on a standalone
    instance (terraform-provider-aws internal/service/rds/instance.go resourceInstanceUpdate:
    `d.HasChange("replicate_source_db")` against the state). A refresh reads it back standalone."""
    identifier = stack_output(outputs, "postgres", "instanceArns", activate).rsplit(":", 1)[-1]
    urn = instance_urn(stack, identifier)
    return (f"next, before any deploy (docs/runbooks.md, \"Region switch\"):\n"
            f"  pulumi refresh --stack {stack or '<stack>'} --target '{urn}'\n"
            f"  (the state still describes {identifier} as a replica; a call to its region only)")


def _steps_seconds(workflow: dict) -> int:
    """The longest the workflow's steps may run: each step's one block configuration has its
    ``timeoutMinutes`` (ARC Region switch API Reference, ExecutionBlockConfiguration)."""
    return sum(60 * config.get("timeoutMinutes", 0) for step in workflow["steps"]
               for config in step.get("executionBlockConfiguration", {}).values() if isinstance(config, dict))


def _executions(arc: Any, plan_arn: str) -> list[dict]:
    items, token = [], None
    while True:
        page = arc.list_plan_executions(planArn=plan_arn, **({"nextToken": token} if token else {}))
        items += page.get("items", [])
        token = page.get("nextToken")
        if not token:
            return items


def _approve(role_arn: str, region: str, plan_arn: str, execution: str) -> None:
    """ApprovePlanExecutionStep as the approval role, assumed through STS in the activated region."""
    import boto3

    credentials = boto3.client("sts", region_name=region).assume_role(
        RoleArn=role_arn, RoleSessionName="region-switch-approval")["Credentials"]
    approver = boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                             aws_secret_access_key=credentials["SecretAccessKey"],
                             aws_session_token=credentials["SessionToken"], region_name=region)
    approver.client("arc-region-switch").approve_plan_execution_step(
        planArn=plan_arn, executionId=execution, stepName=APPROVAL_STEP, approval="approve",
        comment="approved by ops.region_switch as the on-call")


if __name__ == "__main__":
    sys.exit(main())
