"""ops.region_switch runs the stack's ARC Region switch plan from the region it activates, as the on-call
role, and approves the plan's ``approve`` step as the approval role (the only role that trusts the
on-call role: components/region_switch.py ``approval_trust``).

moto has no arc-region-switch: its calls are answered from ``before-call`` (the way botocore.stub.Stubber
answers), after botocore validated the request against the service model, and each answer is validated
against the operation's output shape. The plan it answers GetPlanInRegion with is the stack's own,
rebuilt as the provider sends it (tests/test_region_switch.py ``create_plan_request``). STS is moto's.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters
from moto import mock_aws

from ops import oncall, region_switch
from ops._common import outputs_parameter, runbook_document
from tests.conftest import fake_aws_credentials, stack_settings, synthesized
from tests.iam_oracle import assert_exactly_covered, help_lists, recorded
from tests.test_region_switch import SAMPLES, create_plan_request

ACCOUNT = stack_settings("prod").aws.account_id


class FakeRegionSwitch:
    """The data plane of one plan: an execution waits at the approval step until approved, then completes."""

    def __init__(self, outputs: dict, running: tuple[str, ...] = ()):
        synthesis = synthesized("prod")
        [plan] = synthesis.of_type("aws:arcregionswitch/plan:Plan")
        self.plan = {**create_plan_request(plan), "arn": outputs["regionSwitch"]["planArn"], "owner": ACCOUNT}
        self.running = running  # states of executions already there
        self.calls: list[tuple[str, str, str, dict]] = []  # (operation, region, access key, params)
        self.state = "none"
        self.mode = "graceful"

    def hook(self, session: Any) -> Any:
        events = session.events if hasattr(session, "events") else session
        events.register_first("before-parameter-build.arc-region-switch.*", self._record)
        events.register_first("before-call.arc-region-switch.*", self._answer)
        return session

    def _record(self, params, model, **_):
        self._pending = (model.name, copy.deepcopy(params))

    def _answer(self, model, request_signer, **_):
        name, params = self._pending
        credentials = request_signer._credentials.get_frozen_credentials()
        self.calls.append((name, request_signer.region_name, credentials.access_key, params))
        result = getattr(self, name)(params)
        validate_parameters(result, model.output_shape)
        return AWSResponse(None, 200, {}, None), result

    def _execution(self, state: str, execution_id: str = "us-west-2/0123456789abcdef") -> dict:
        from datetime import datetime, timezone

        return {"planArn": self.plan["arn"], "executionId": execution_id, "startTime": datetime.now(timezone.utc),
                "mode": self.mode, "executionState": state, "executionAction": "activate",
                "executionRegion": "us-west-2"}

    def GetPlanInRegion(self, params):
        return {"plan": self.plan}

    def ListPlanExecutions(self, params):
        return {"items": [self._execution(state, f"us-west-2/{i:016x}") for i, state in enumerate(self.running)]}

    def StartPlanExecution(self, params):
        self.state, self.mode = "pendingManualApproval", params.get("mode", "graceful")
        return {"executionId": "us-west-2/0123456789abcdef", "plan": self.plan["arn"],
                "activateRegion": params["targetRegion"]}

    def GetPlanExecution(self, params):
        [workflow] = [w for w in self.plan["workflows"] if w["workflowTargetRegion"] == "us-west-2"]
        approval = "pendingApproval" if self.state == "pendingManualApproval" else "completed"
        steps = [{"name": s["name"], "status": approval if s["name"] == "approve" else
                  ("completed" if self.state == "completed" else "notStarted")} for s in workflow["steps"]]
        return {**self._execution(self.state), "stepStates": steps}

    def ApprovePlanExecutionStep(self, params):
        self.state = "completed"
        return {}


@pytest.fixture
def published(monkeypatch) -> Any:
    fake_aws_credentials(monkeypatch, ACCOUNT)
    with mock_aws():
        outputs = json.loads(json.dumps(synthesized("prod").outputs))
        boto3.client("ssm", "us-west-2").put_parameter(Name=outputs_parameter("prod"), Type="String",
                                                       Value=json.dumps(runbook_document(outputs)))
        yield outputs


def _serve(monkeypatch, fake: FakeRegionSwitch) -> None:
    """Answer arc-region-switch on the default session and on every session the runbook makes (the
    approval role's)."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    fake.hook(boto3.DEFAULT_SESSION)
    made = boto3.Session
    # boto3 itself: the runbook imports it where it calls AWS (the program imports the module for names)
    monkeypatch.setattr(boto3, "Session", lambda **kw: fake.hook(made(**kw)))


def test_a_failover_starts_the_plan_in_the_dr_region_and_approves_as_the_approval_role(published, monkeypatch, capsys):
    from tests.test_ops_runbooks import _primary_region_down

    refused = _primary_region_down(monkeypatch)  # the primary region (and ARC's control plane) is down
    fake = FakeRegionSwitch(published)
    _serve(monkeypatch, fake)
    code = region_switch.main(["--stack", "prod", "--activate", "dr", "--mode", "ungraceful", "--poll-seconds", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "execution us-west-2/0123456789abcdef: completed" in out and refused == []
    operations = [name for name, *_ in fake.calls]
    assert operations[:3] == ["GetPlanInRegion", "ListPlanExecutions", "StartPlanExecution"]
    assert "ApprovePlanExecutionStep" in operations
    assert {region for _, region, *_ in fake.calls} == {"us-west-2"}  # the data plane of the activated region
    [start] = [params for name, _, _, params in fake.calls if name == "StartPlanExecution"]
    assert start == {"planArn": published["regionSwitch"]["planArn"], "targetRegion": "us-west-2",
                     "action": "activate", "mode": "ungraceful", "comment": "ops.region_switch --activate dr"}
    # the approval is the approval role's (moto's AssumeRole credentials), every other call the on-call's
    keys = {name: key for name, _, key, _ in fake.calls}
    assert keys["ApprovePlanExecutionStep"] != keys["StartPlanExecution"]
    assert keys["ApprovePlanExecutionStep"].startswith("ASIA")  # temporary credentials from sts:AssumeRole
    [approve] = [params for name, _, _, params in fake.calls if name == "ApprovePlanExecutionStep"]
    assert approve["stepName"] == "approve" and approve["approval"] == "approve"
    # the promoted instance's state still says replica: the deploy after must not call
    # PromoteReadReplica on it (terraform-provider-aws rds/instance.go resourceInstanceUpdate), so the
    # runbook's last word is the refresh, of that instance only
    replica = published["postgres"]["instanceArns"]["dr"].rsplit(":", 1)[-1]
    assert out.rstrip().endswith(f"(the state still describes {replica} as a replica; a call to its region only)")
    assert (f"pulumi refresh --stack prod --target 'urn:pulumi:prod::intelgraph-platform::"
            f"intelgraph:database:PostgresDr$aws:rds/instance:Instance::{replica}'") in out


def test_the_switch_back_activates_the_primary_region_from_there(published, monkeypatch, capsys):
    fake = FakeRegionSwitch(published)
    _serve(monkeypatch, fake)
    assert region_switch.main(["--stack", "prod", "--activate", "primary", "--dry-run"]) == 0
    assert [(name, region) for name, region, *_ in fake.calls] == [("GetPlanInRegion", "us-east-1")]
    out = capsys.readouterr().out
    assert "activate us-east-1 (primary), graceful" in out and "promote-postgres  RdsPromoteReadReplica" in out


def test_a_running_execution_is_not_doubled(published, monkeypatch, capsys):
    fake = FakeRegionSwitch(published, running=("completed", "pendingManualApproval"))
    _serve(monkeypatch, fake)
    assert region_switch.main(["--stack", "prod", "--activate", "dr", "--poll-seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "is pendingManualApproval in us-west-2: let it end (or cancel it) first" in err
    assert "StartPlanExecution" not in [name for name, *_ in fake.calls]


def test_the_switch_calls_exactly_what_its_help_lists(published, monkeypatch, capsys):
    fake = FakeRegionSwitch(published)
    with recorded(monkeypatch) as calls:
        _serve(monkeypatch, fake)
        assert region_switch.main(["--stack", "prod", "--activate", "dr", "--poll-seconds", "0"]) == 0
    assert_exactly_covered(region_switch.IAM, calls)
    help_lists(region_switch, region_switch.IAM, capsys)


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_on_call_role_may_run_the_plan_and_assume_its_approval_role_only(stack):
    """What the runbook needs, on this plan and this approval role: the on-call policy the stack deploys.
    Its execution actions are the ARC Developer Guide's "Region switch plan execution block sample
    policy" (start, watch, list executions of a plan, on the plan's ARN) less Cancel/UpdatePlanExecution,
    which it never calls, plus GetPlanInRegion: the plan as the activated region's data plane has it."""
    synthesis = synthesized(stack)
    statements = json.loads(synthesis.named("oncall-runbooks", "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    by_action = {a: s["Resource"] for s in statements["Statement"] for a in s["Action"]}
    outputs = synthesis.outputs["regionSwitch"]
    [sample] = SAMPLES["planExecution"]["policy"]["Statement"]
    arc = {a for a in by_action if a.startswith("arc-region-switch:")}
    assert arc == (set(sample["Action"]) - {"arc-region-switch:CancelPlanExecution",
                                            "arc-region-switch:UpdatePlanExecution"}) | {"arc-region-switch:GetPlanInRegion"}
    for action in arc:
        assert by_action[action] == [outputs["planArn"]], action
    # never the approval itself: that is the approval role's, which only the on-call role may assume
    assert "arc-region-switch:ApprovePlanExecutionStep" not in by_action
    assert by_action["sts:AssumeRole"] == [outputs["approvalRoleArn"]]
    assert region_switch in oncall.ON_CALL


def test_a_plan_without_a_workflow_for_the_region_is_refused_before_anything_starts(published, monkeypatch, capsys):
    fake = FakeRegionSwitch(published)
    fake.plan["workflows"] = [w for w in fake.plan["workflows"] if w["workflowTargetRegion"] != "us-west-2"]
    _serve(monkeypatch, fake)
    assert region_switch.main(["--stack", "prod", "--activate", "dr"]) == 2
    assert "has 0 workflows that activate us-west-2" in capsys.readouterr().err
    assert [name for name, *_ in fake.calls] == ["GetPlanInRegion"]


def test_the_plan_is_never_started_toward_a_region_without_a_replica_of_the_writer(published, monkeypatch, capsys,
                                                                                   tmp_path):
    """RdsPromoteReadReplica promotes the activating region's instance: after a switch back and
    until normal again, that is the former writer, standalone and stale (docs/runbooks.md, "Region
    switch"). The runbook refuses before StartPlanExecution, naming what to do instead."""
    import copy

    fake = FakeRegionSwitch(published)
    _serve(monkeypatch, fake)
    # the writer's own region: nothing to switch to
    assert region_switch.main(["--stack", "prod", "--activate", "primary", "--poll-seconds", "0"]) == 2
    assert "us-east-1 already holds the writer" in capsys.readouterr().err
    # switched back: the outputs name no replica
    switched = copy.deepcopy(published)
    for key in ("replicaArn", "replicaEndpoint", "replicaSecretArn"):
        switched["postgres"].pop(key, None)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(switched))
    assert region_switch.main(["--outputs", str(outputs), "--activate", "dr", "--poll-seconds", "0"]) == 2
    assert "no replica of the writer in us-west-2" in capsys.readouterr().err
    assert "StartPlanExecution" not in [name for name, *_ in fake.calls]

