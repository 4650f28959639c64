"""The failed-over state (`dr.activeRegion: dr`) deploys while the primary region's APIs are down
(issue 21; docs/decisions/019): what a `pulumi up` still asks of every provider, and the target list
that keeps the primary region's resources out of the deploy.

Facts, from the sources (docs/decisions/019 cites each with its path):
* Every provider is configured on every `pulumi up`, --target or not: providers are implicitly
  targeted (pulumi/pulumi pkg/resource/deploy/step_generator.go, `isImplicitlyTargetedResource`),
  and the registry runs CheckConfig, DiffConfig and Configure for each (pkg/resource/deploy/
  providers/registry.go Check, Diff, Same/Update).
* The program runs whole, so every invoke runs, untargeted or not (pkg/resource/deploy/
  source_eval.go `resmon.Invoke`: no target check), on the provider it is bound to.
* An untargeted resource gets no provider Check and no Diff: the engine keeps its old inputs and
  emits a same step (step_generator.go, "If not targeted, stub out the provider check").
* pulumi-aws validates credentials in CheckConfig with STS in the provider's own region and no
  `sts_region` (pulumi/pulumi-aws provider/config.go `validateCredentials`), unless
  skip_credentials_validation; the account lookup that `allowed_account_ids` needs then uses the
  instance profile's metadata, else IAM GetUser, else STS GetCallerIdentity in `sts_region`
  (hashicorp/aws-sdk-go-base aws_config.go GetAwsAccountIDAndPartition, awsauth.go, clients.go).
"""

from __future__ import annotations

import json

import pytest

from synth import diff, engine, targets
from synth import export as exporter
from synth.engine import Synthesis
from tests.conftest import STACKS, config_with, stack_settings, synthesized

_failed_over: dict[str, Synthesis] = {}


def failed_over(stack: str) -> Synthesis:
    """The stack file with dr.activeRegion: dr, synthesized once per session."""
    if stack not in _failed_over:
        _failed_over[stack] = engine.synthesize(stack, targets.with_active_region(engine.stack_config(stack), "dr"))
    return _failed_over[stack]


def normal(stack: str) -> Synthesis:
    assert stack_settings(stack).dr.active_region == "primary", "the stack files hold the normal state"
    return synthesized(stack)


def providers(synthesis: Synthesis) -> dict:
    return {r.urn: r for r in synthesis.resources if r.type.startswith("pulumi:providers:")}


def outside_dr(synthesis: Synthesis, provider_urn: str) -> bool:
    """A provider a deploy cannot use while the primary region is down: an AWS provider of any other
    region than the DR one (Route 53's control plane is us-east-1's too), the primary cluster's."""
    cfg = stack_settings(synthesis.stack)
    provider = providers(synthesis)[provider_urn]
    if provider.type == "pulumi:providers:aws":
        return provider.inputs["region"] != cfg.aws.dr_region
    if provider.type == "pulumi:providers:kubernetes":
        return provider.inputs.get("context") != cfg.kubernetes.dr.context
    return False


# --- dr.activeRegion ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_active_region_is_primary_or_dr_and_anything_else_exits_2_naming_the_key(stack, tmp_path, monkeypatch,
                                                                                capsys):
    from tests.test_settings import run_synth

    code, out, err, registered = run_synth(tmp_path, monkeypatch, capsys, stack,
                                           config_with(stack, {"dr.activeRegion": "us-west-2"}))
    assert code == 2 and registered == ["pulumi:pulumi:Stack"], (out, err)
    assert "intelgraph-platform:dr.activeRegion: Input should be 'primary' or 'dr'" in err


# --- the providers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_every_aws_provider_outside_the_dr_region_configures_through_the_dr_regions_sts(stack):
    """Without skip_credentials_validation, pulumi-aws's CheckConfig calls STS GetCallerIdentity in
    the provider's own region (provider/config.go validateCredentials builds its awsbase.Config with
    no StsRegion), and the engine runs CheckConfig for every provider on every update. With it, the
    only STS call left is the account lookup `allowed_account_ids` needs, and that goes to
    `sts_region` (aws-sdk-go-base clients.go stsClient: `opts.Region = c.StsRegion`)."""
    cfg = stack_settings(stack)
    for synthesis in (normal(stack), failed_over(stack)):
        aws_providers = [p for p in providers(synthesis).values() if p.type == "pulumi:providers:aws"]
        assert {p.inputs["region"] for p in aws_providers} >= {cfg.aws.primary_region, cfg.aws.dr_region}
        for provider in aws_providers:
            # a provider's inputs reach the engine as text (JSON for lists): as `pulumi stack export` shows them
            assert json.loads(provider.inputs["allowedAccountIds"]) == [cfg.aws.account_id], provider.name
            if provider.inputs["region"] == cfg.aws.dr_region:
                assert "stsRegion" not in provider.inputs and provider.inputs["skipCredentialsValidation"] == "false"
            else:
                assert provider.inputs["stsRegion"] == cfg.aws.dr_region, provider.name
                assert provider.inputs["skipCredentialsValidation"] == "true", provider.name
            # never skip the account lookup: allowed_account_ids would then refuse the empty account
            # (aws-sdk-go-base internal/config/config.go VerifyAccountIDAllowed)
            assert "skipRequestingAccountId" not in provider.inputs, provider.name


@pytest.mark.parametrize("stack", STACKS)
def test_the_new_provider_inputs_update_the_provider_in_place_and_replace_nothing(stack):
    """The bridge's DiffConfig replaces a provider (and so every resource it manages) only for a key
    its provider marks ForcesProviderReplace (pulumi-terraform-bridge pkg/tfbridge/provider.go
    configDiffer); pulumi-aws marks none since v7 (pulumi/pulumi-aws#5656 took it off `region`).
    So a stack deployed before this change sees one in-place provider update and nothing else."""
    after = exporter.to_export(normal(stack))
    before = json.loads(json.dumps(after))
    for resource in before["deployment"]["resources"]:
        if resource["type"] == "pulumi:providers:aws" and "stsRegion" in resource["inputs"]:
            del resource["inputs"]["stsRegion"]
            resource["inputs"]["skipCredentialsValidation"] = "false"
            resource["outputs"] = dict(resource["inputs"])
    changes = diff.compare(before, after)
    assert changes and {c.action for c in changes} == {"update"}
    assert all(c.type == "pulumi:providers:aws" for c in changes)
    assert all(set(c.properties) == {"skipCredentialsValidation", "stsRegion"} for c in changes)


# --- invokes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["normal", "failed-over"])
@pytest.mark.parametrize("stack", STACKS)
def test_no_invoke_is_bound_to_a_provider_outside_the_dr_region_once_failed_over(stack, state):
    """Every function call the program makes, as the mock engine receives it (synth/mocks.py `call`).
    An invoke runs on every `pulumi up`, targeted or not, against the provider it is bound to: in the
    failed-over state none may need the primary region. The log-group keys name the account and
    region the program already knows (helpers/log_groups.py), where they once invoked
    getCallerIdentity and getRegion on the regional provider."""
    synthesis = normal(stack) if state == "normal" else failed_over(stack)
    known = providers(synthesis)
    for invoke in synthesis.invokes:
        assert invoke.provider_urn in known, f"{invoke.token} runs on a default provider (disabled in every stack)"
    assert not [i for i in synthesis.invokes if i.token in ("aws:index/getCallerIdentity:getCallerIdentity",
                                                            "aws:index/getRegion:getRegion")]
    primary_bound = sorted({i.token for i in synthesis.invokes if outside_dr(synthesis, i.provider_urn)})
    if state == "failed-over":
        assert primary_bound == []
    # the edge's ALB is a resource, aliased directly (docs/decisions/020): no ELB lookup at all
    assert not [i for i in synthesis.invokes if i.token.startswith("aws:lb/")]


def test_the_recording_sees_every_invoke():
    """The check above proves something only if the mock engine records invokes: a program that
    makes one shows it, with the provider it is bound to."""
    import pulumi
    import pulumi_aws as aws

    from tests.conftest import run_component

    def program():
        provider = aws.Provider("dr", region="us-west-2")
        aws.get_region_output(opts=pulumi.InvokeOutputOptions(provider=provider))
        return {}

    [invoke] = run_component(program).invokes
    assert invoke.token == "aws:index/getRegion:getRegion" and invoke.provider_urn.endswith("::dr")


# --- the target list ---------------------------------------------------------------------------------

_targets: dict[str, list[str]] = {}


def target_urns(stack: str) -> list[str]:
    if stack not in _targets:
        _targets[stack] = targets.targets(exporter.to_export(normal(stack)), exporter.to_export(failed_over(stack)),
                                          targets.dr_region_of(engine.stack_config(stack), stack))
    return _targets[stack]


@pytest.fixture(params=STACKS)
def target_list(request) -> tuple[str, list[str]]:
    return request.param, target_urns(request.param)


def test_every_target_exists_and_none_is_managed_outside_the_dr_region(target_list):
    stack, urns = target_list
    synthesis = failed_over(stack)
    by_urn = {r.urn: r for r in synthesis.resources}
    assert len(urns) == len(set(urns)) and urns
    # a target the failed-over stack no longer has is a delete, which the engine does only when
    # targeted: the replica-lag alarm, once no replica exists (docs/decisions/018-active-region-is-state.md)
    before = {r.urn: r for r in normal(stack).resources}
    deleted = [u for u in urns if u not in by_urn]
    assert not (missing := [u for u in deleted if u not in before]), missing
    for urn in urns:
        resource, owner = (by_urn[urn], synthesis) if urn in by_urn else (before[urn], normal(stack))
        assert not resource.type.startswith("pulumi:providers:") and resource.type != engine.STACK_TYPE, urn
        assert not (resource.provider and outside_dr(owner, resource.provider.rsplit("::", 1)[0])), urn
    # a listed component holds a listed resource (the engine wants a new one's parent targeted)
    parents = {by_urn[u].parent for u in urns if u in by_urn}
    assert all(by_urn[u].custom or u in parents for u in urns if u in by_urn)


def test_every_dr_region_resource_is_a_target(target_list):
    stack, urns = target_list
    synthesis = failed_over(stack)
    dr_managed = [r.urn for r in synthesis.resources
                  if r.custom and r.provider and not r.type.startswith("pulumi:providers:")
                  and not outside_dr(synthesis, r.provider.rsplit("::", 1)[0])]
    assert dr_managed and not (left := sorted(set(dr_managed) - set(urns))), left
    primary_managed = [r.urn for r in synthesis.resources
                       if r.custom and r.provider and outside_dr(synthesis, r.provider.rsplit("::", 1)[0])]
    assert primary_managed and not set(primary_managed) & set(urns)


def test_a_failover_that_changes_the_primary_region_is_refused_naming_each_resource():
    """Flipping activeRegion must change nothing managed outside the DR region (the DR design's
    invariant): a targeted update could not deploy it while that region is down."""
    stack = "prod"
    before = exporter.to_export(normal(stack))
    after = json.loads(json.dumps(exporter.to_export(failed_over(stack))))
    synthesis = failed_over(stack)
    victim = next(r for r in after["deployment"]["resources"] if r["type"] == "aws:route53/record:Record")
    assert outside_dr(synthesis, victim["provider"].rsplit("::", 1)[0])
    victim["inputs"]["ttl"] = 5
    with pytest.raises(targets.OutsideDrRegion) as refused:
        targets.targets(before, after, targets.dr_region_of(engine.stack_config(stack), stack))
    assert refused.value.urns == [victim["urn"]]


def test_the_cli_prints_the_list_one_urn_a_line(capsys):
    from synth import __main__ as synth_cli

    assert synth_cli.main(["targets", "--stack", "prod", "--state", "failed-over"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == target_urns("prod") and not err


def test_the_runbook_runs_the_command_and_never_target_dependents():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    runbook = (root / "docs" / "runbooks.md").read_text()
    assert "python -m synth targets --stack" in runbook and "--state failed-over" in runbook
    # --target-dependents would pull the primary region's dependents back in
    assert not [line for line in runbook.splitlines() if "pulumi up" in line and "--target-dependents" in line]
    assert "PULUMI_K8S_SKIP_UPDATE_UNREACHABLE" in runbook
    assert "python -m synth targets" in (root / "docs" / "operator.md").read_text()


# --- CI's kubeconfig ------------------------------------------------------------------------------------

def test_ci_writes_no_primary_kubeconfig_once_failed_over_and_still_needs_the_dr_clusters(tmp_path):
    """`aws eks update-kubeconfig --region <primary>` calls eks:DescribeCluster in the primary region
    (AWS CLI reference): down with it. Failed over, the job goes on without that context (nothing
    in that cluster is targeted, and pulumi-kubernetes treats a context it cannot load as an
    unreachable cluster: provider.go Configure); the DR cluster's kubeconfig is still required."""
    import os
    import subprocess
    import sys

    import yaml

    from tests.test_cicd import ROOT, _fake

    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["intelgraph-platform:dr"]["activeRegion"] = "dr"
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    primary_region = stack_settings("prod").aws.primary_region
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}

    def run(stack_file_args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cicd.kubeconfig", "--stack", "prod", *stack_file_args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    _fake(tmp_path / "bin", "aws", f'[[ "$*" == *"--region {primary_region} "* ]] && exit 254; exit 0')
    result = run(["--stack-file", str(stack_file)])
    assert result.returncode == 0, result.stderr
    assert "warning: no kubeconfig for primary cluster" in result.stderr
    assert run([]).returncode == 1  # the normal state needs both clusters
    _fake(tmp_path / "bin", "aws", "exit 254")  # the DR cluster too: nothing to deploy to
    result = run(["--stack-file", str(stack_file)])
    assert result.returncode == 1 and "no kubeconfig for dr cluster" in result.stderr
