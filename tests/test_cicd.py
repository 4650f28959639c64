"""The decisions CI makes, as tested functions (issue 23): who approved a stateful change, which
clusters a job needs a kubeconfig for, how long a deploy may take, what the engine's plan deletes,
and the runbook for a deploy that was killed half-way."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cicd import approval, kubeconfig, region
from helpers import rollout

ROOT = Path(__file__).resolve().parent.parent
HEAD, OLD = "a" * 40, "b" * 40


def review(login: str, state: str, commit: str = HEAD) -> dict:
    """One item of GitHub's "List reviews for a pull request" (REST): user.login, state, commit_id."""
    return {"user": {"login": login}, "state": state, "commit_id": commit}


# --- approval: an approving review of the head commit, by a reviewer other than the author --------

def test_an_approval_of_the_head_commit_by_another_reviewer_approves():
    decision = approval.decide(HEAD, "frank", [review("erin", "APPROVED")], run_sha=HEAD)
    assert decision.approved and decision.approvers == ("erin",)


def test_a_new_push_leaves_the_old_approval_behind():
    # the review's commit_id is the head it was given on; after a push the head is another commit
    decision = approval.decide(HEAD, "frank", [review("erin", "APPROVED", OLD)], run_sha=HEAD)
    assert not decision.approved and "erin approved bbbbbbbbbbbb, not the head" in decision.reason


def test_a_rerun_of_a_run_for_an_older_commit_cannot_approve_the_head():
    # a re-run replays its original event: its pull_request.head.sha is the commit it first ran for
    decision = approval.decide(HEAD, "frank", [review("erin", "APPROVED", HEAD)], run_sha=OLD)
    assert not decision.approved and "re-run the latest run" in decision.reason


def test_the_authors_own_approval_never_counts():
    decision = approval.decide(HEAD, "Frank", [review("frank", "APPROVED")], run_sha=HEAD)
    assert not decision.approved and "frank is the author" in decision.reason


def test_a_dismissed_approval_is_withdrawn():
    reviews = [review("erin", "APPROVED"), review("erin", "DISMISSED")]
    assert not approval.decide(HEAD, "frank", reviews).approved


def test_changes_requested_after_an_approval_withdraw_it_and_a_comment_does_not():
    assert not approval.decide(HEAD, "frank", [review("erin", "APPROVED"), review("erin", "CHANGES_REQUESTED")]).approved
    assert approval.decide(HEAD, "frank", [review("erin", "APPROVED"), review("erin", "COMMENTED")]).approved


def test_a_label_or_anything_but_a_review_does_not_approve():
    assert not approval.decide(HEAD, "frank", []).approved
    with pytest.raises(ValueError, match="head_sha"):
        approval.decide("", "frank", [])


def _approval_cli(tmp_path: Path, reviews, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "reviews.json").write_text(json.dumps(reviews))
    return subprocess.run([sys.executable, "-m", "cicd.approval", "--head-sha", HEAD, "--author", "frank",
                           "--reviews", str(tmp_path / "reviews.json"), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_cli_reads_gh_slurped_pages_and_answers_with_its_exit_code(tmp_path):
    # `gh api --paginate --slurp` wraps each page in an outer list (cli/cli #8620)
    pages = [[review("dave", "COMMENTED")], [review("erin", "APPROVED"), review("carol", "APPROVED")]]
    result = _approval_cli(tmp_path, pages, "--run-sha", HEAD)
    assert result.returncode == 0 and result.stdout == "carol,erin\n"
    result = _approval_cli(tmp_path, [review("erin", "APPROVED", OLD)])
    assert result.returncode == 1 and result.stdout == "" and "not the head" in result.stderr
    result = _approval_cli(tmp_path, {"message": "Not Found"})
    assert result.returncode == 2 and "JSON list" in result.stderr


# --- kubeconfig: every cluster the stack file names ---------------------------------------------

def _config(kube: dict) -> dict:
    return {"intelgraph-platform:aws": {"primaryRegion": "us-east-1", "drRegion": "us-west-2"},
            "intelgraph-platform:kubernetes": kube}


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_committed_stack_files_name_their_cluster_under_the_context_the_provider_uses(stack):
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    kube, aws = document["intelgraph-platform:kubernetes"], document["intelgraph-platform:aws"]
    found = kubeconfig.stack_clusters(stack)
    assert found == [kubeconfig.Cluster(role, kube[role]["clusterName"], aws[f"{role}Region"], kube[role]["context"])
                     for role in ("primary", "dr")]
    for cluster in found:
        assert cluster.command() == ["aws", "eks", "update-kubeconfig", "--name", cluster.name,
                                     "--region", cluster.region, "--alias", cluster.context]


def test_a_cluster_per_region_gives_one_kubeconfig_each_in_its_own_region():
    found = kubeconfig.clusters(_config({
        "primary": {"context": "arn:aws:eks:us-east-1:1:cluster/a", "clusterName": "a"},
        "dr": {"context": "arn:aws:eks:us-west-2:1:cluster/b", "clusterName": "b"},
        "version": "1.33"}))
    assert found == [kubeconfig.Cluster("primary", "a", "us-east-1", "arn:aws:eks:us-east-1:1:cluster/a"),
                     kubeconfig.Cluster("dr", "b", "us-west-2", "arn:aws:eks:us-west-2:1:cluster/b")]


@pytest.mark.parametrize("kube,message", [
    ({"version": "1.33"}, "intelgraph-platform:kubernetes.primary is missing"),
    # the single-cluster shape of stacks before the DR tier: settings refuse it too
    ({"context": "c", "clusterName": "a", "dr": {"context": "d", "clusterName": "b"}},
     "intelgraph-platform:kubernetes.primary is missing"),
    ({"primary": {"context": "c", "clusterName": "a"}}, "intelgraph-platform:kubernetes.dr is missing"),
    ({"primary": {"context": "c"}, "dr": {"context": "d", "clusterName": "b"}},
     "intelgraph-platform:kubernetes.primary.clusterName must be a non-empty string"),
])
def test_a_stack_file_without_a_usable_cluster_is_refused_by_key(kube, message):
    with pytest.raises(kubeconfig.StackFileError, match=message.replace(".", r"\.")):
        kubeconfig.clusters(_config(kube))


def _fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!{shutil.which('bash')}\n{body}\n")
    (bin_dir / name).chmod(0o755)


def test_the_cli_writes_each_clusters_kubeconfig_with_the_aws_cli(tmp_path):
    log = tmp_path / "calls"
    _fake(tmp_path / "bin", "aws", f'echo "aws $*" >> {log}')
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "cicd.kubeconfig", "--stack", "prod"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [" ".join(c.command()) for c in kubeconfig.stack_clusters("prod")]
    _fake(tmp_path / "bin", "aws", "exit 254")  # no access to the cluster: the job stops here
    result = subprocess.run([sys.executable, "-m", "cicd.kubeconfig", "--stack", "prod"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no kubeconfig for primary cluster" in result.stderr


# --- region: where a job talks to AWS, from the stack file (issue 21; docs/cicd.md) ----------------

def _stack(active: str | None = None, **aws) -> dict:
    config = {"intelgraph-platform:aws": {"accountId": "481236059412", "primaryRegion": "us-east-1",
                                          "drRegion": "us-west-2", **aws}}
    if active is not None:
        config["intelgraph-platform:dr"] = {"activeRegion": active}
    return config


DEPLOY_LABELS = ["self-hosted", "linux", "intelgraph-deploy-prod"]


@pytest.mark.parametrize("active,expected", [(None, "us-east-1"), ("primary", "us-east-1"), ("dr", "us-west-2")])
def test_the_active_region_is_the_stack_files_and_primary_by_default(active, expected):
    """settings: dr.activeRegion defaults to primary; once failed over every AWS call CI makes itself
    (OIDC, STS, the KMS secrets key) goes to the DR region."""
    found = region.where(_stack(active), DEPLOY_LABELS)
    assert found.region == expected and found.failed_over == (active == "dr")
    assert found.runs_on == [*DEPLOY_LABELS, f"intelgraph-region-{expected}"]  # that region's deploy runner
    assert found.outputs()["failed-over"] == str(active == "dr").lower() and not found.targeted


def test_only_a_failed_over_stack_with_the_primary_region_down_is_targeted():
    """Once the primary region is back the stack stays failed over, and is rebuilt there: those
    deploys change the primary region and must be whole (docs/runbooks.md, step 3)."""
    assert region.where(_stack("dr"), primary_down="true").targeted
    assert region.where(_stack("dr"), primary_down="true").outputs()["targeted"] == "true"
    assert not region.where(_stack("dr"), primary_down="false").targeted
    with pytest.raises(kubeconfig.StackFileError, match="primary region is down .* but intelgraph-platform:dr"):
        region.where(_stack("primary"), primary_down="true")  # nothing could deploy the normal state


def test_the_state_copy_is_the_operators_switch_not_the_active_regions():
    """The DR bucket is not replicated back (docs/operator.md): a stack may be failed over with its
    state back in the primary bucket, or the reverse; the URL is ops.bootstrap_backend's."""
    for active in ("primary", "dr"):
        assert region.where(_stack(active)).backend == (
            "s3://intelgraph-pulumi-state-481236059412-us-east-1?region=us-east-1&awssdk=v2")
        assert region.where(_stack(active), state_region="dr").backend == (
            "s3://intelgraph-pulumi-state-481236059412-us-west-2?region=us-west-2&awssdk=v2")
    assert region.where(_stack(), "ubuntu-24.04").runs_on == "ubuntu-24.04"  # a hosted runner has no region label


@pytest.mark.parametrize("config,state_region,message", [
    (_stack("us-west-2"), "", "intelgraph-platform:dr.activeRegion must be one of primary, dr (got 'us-west-2')"),
    (_stack("dr", drRegion=""), "", "intelgraph-platform:aws.drRegion must be a non-empty string"),
    ({"intelgraph-platform:aws": {"primaryRegion": "us-east-1", "drRegion": "us-west-2"}}, "",
     "intelgraph-platform:aws.accountId must be a non-empty string"),
    (_stack(), "us-west-2", "variable PULUMI_STATE_REGION must be empty or one of primary, dr (got 'us-west-2')"),
])
def test_a_bad_stack_file_or_state_region_is_refused_naming_the_key(config, state_region, message):
    with pytest.raises(kubeconfig.StackFileError, match=re.escape(message)):
        region.where(config, state_region=state_region)
    with pytest.raises(kubeconfig.StackFileError, match=re.escape("PRIMARY_REGION_DOWN must be empty or one of "
                                                                  "false, true (got 'yes')")):
        region.where(_stack("dr"), primary_down="yes")


def test_the_allowed_active_regions_are_settings_own():
    from typing import get_args

    import settings

    assert region.roles() == get_args(settings.Role) == ("primary", "dr")


def test_the_target_output_is_one_urn_a_line_under_a_delimiter_none_contains():
    """GitHub's multi-line output (`name<<DELIMITER`); pulumi/actions splits the input at commas
    too (src/libs/utils.ts parseSemicolorToArray), so a URN with a comma cannot pass."""
    urns = ["urn:pulumi:prod::intelgraph-platform::aws:s3/bucket:Bucket::a",
            "urn:pulumi:prod::intelgraph-platform::intelgraph:tier:RegionalTier$aws:s3/bucket:Bucket::b"]
    first, *body, last = region.target_output(urns).splitlines()
    assert first.startswith("targets<<") and last == first.removeprefix("targets<<") and body == urns
    assert region.target_output(urns) != region.target_output(urns)  # a fresh delimiter each time
    with pytest.raises(ValueError, match="commas"):
        region.target_output(["urn:pulumi:prod::p::aws:s3/bucket:Bucket::a,b"])


def test_kubeconfig_refuses_an_active_region_settings_would_refuse(tmp_path):
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["intelgraph-platform:dr"]["activeRegion"] = "secondary"
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "cicd.kubeconfig", "--stack", "prod", "--stack-file",
                             str(tmp_path / "Pulumi.prod.yaml"), "--dry-run"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "dr.activeRegion must be one of primary, dr (got 'secondary')" in result.stderr


def test_the_region_cli_writes_github_outputs_and_refuses_by_exit_code(tmp_path):
    output = tmp_path / "out"
    argv = [sys.executable, "-m", "cicd.region", "--stack", "prod", "--runs-on", json.dumps(DEPLOY_LABELS)]
    result = subprocess.run([*argv, "--github-output", str(output)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert lines["region"] == "us-east-1" and lines["failed-over"] == "false" and "targets" not in lines
    result = subprocess.run([*argv, "--state-region", "west"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "PULUMI_STATE_REGION" in result.stderr and result.stdout == ""


# --- the engine's plan: a pending replacement's delete counts --------------------------------------

def test_a_delete_replaced_step_without_its_replace_is_a_delete_the_gate_counts():
    """pulumi/pulumi pkg/backend/display/display.go shouldShow: non-logical replacement steps are in
    `preview --json` only with --show-replacement-steps; a delete-replaced with no replace of the
    same URN is the delete of a copy a failed replacement left pending."""
    from synth import diff
    from tests.test_diff import DATABASE, ROLE, preview_step

    steps = [preview_step("update", DATABASE, diffReasons=["tags"]), preview_step("delete-replaced", DATABASE),
             preview_step("update", ROLE, diffReasons=["tags"])]
    plan = diff.engine_plan({"steps": steps})
    assert sorted(c.action for c in plan) == ["delete", "update", "update"]
    [pending] = [c for c in plan if c.action == "delete"]
    assert pending.urn == DATABASE["urn"] and pending.dangerous and "delete-replaced" in pending.reason
    text, code = diff.summary(plan, None)
    assert code == diff.EXIT_STATEFUL and "0 to replace, 1 to delete" in text
    # a whole replacement is still one replace
    whole = [preview_step(op, DATABASE) for op in ("delete-replaced", "replace", "create-replacement")]
    assert [c.action for c in diff.engine_plan({"steps": whole})] == ["replace"]


# --- the rollout budget -------------------------------------------------------------------------

def test_the_rollout_budget_adds_each_servers_snapshot_and_release_waits():
    from components.neo4j_cluster import RELEASE_TIMEOUT_SECONDS
    from components.neo4j_snapshots import PRE_CHANGE_DEADLINE_SECONDS

    # the snapshot Job's engine timeout is its deadline in minutes + 5 (components/neo4j_snapshots.py)
    assert rollout.PRE_CHANGE_TIMEOUT_SECONDS == PRE_CHANGE_DEADLINE_SECONDS + 300
    budget = rollout.rollout_budget(servers=5)
    assert budget["perServerSeconds"] == RELEASE_TIMEOUT_SECONDS + rollout.PRE_CHANGE_TIMEOUT_SECONDS
    assert budget["maxSeconds"] == 5 * budget["perServerSeconds"] + rollout.ENGINE_OVERHEAD_SECONDS
    assert rollout.rollout_budget(1, 100, 0, 0)["maxSeconds"] == 100
    for bad in ({"servers": 0}, {"servers": 2, "release_timeout_seconds": -1}, {"servers": True}):
        with pytest.raises(ValueError, match=next(iter(k for k in bad if k != "servers"), "servers")):
            rollout.rollout_budget(**bad)


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_program_exports_its_rollout_budget_from_its_own_servers(stack):
    from tests.conftest import synthesized

    outputs = synthesized(stack).outputs
    assert outputs["rolloutBudget"] == rollout.rollout_budget(servers=len(outputs["neo4j"]["releases"]))


# --- the interrupted-deploy runbook, against fakes that check -------------------------------------

RUNBOOK = ROOT / "cicd" / "interrupted_deploy.sh"


def _world(tmp_path: Path, pending: list, releases: dict[str, list[dict]]) -> tuple[Path, dict]:
    """Fakes of pulumi and helm that assert their arguments and log them; real jq."""
    assert shutil.which("jq"), "jq is needed (the runbook parses JSON with it)"
    log = tmp_path / "calls"
    (tmp_path / "export.json").write_text(json.dumps({"version": 3, "deployment": {"pending_operations": pending}}))
    listed = [{"name": name, "status": history[-1]["status"]} for name, history in releases.items()
              if history[-1]["status"].startswith("pending-")]
    (tmp_path / "list.json").write_text(json.dumps(listed))
    for name, history in releases.items():
        (tmp_path / f"history-{name}.json").write_text(json.dumps(history))
    _fake(tmp_path / "bin", "pulumi", f"""echo "pulumi $*" >> {log}
case "$*" in
  "cancel --stack prod --yes"|"refresh --stack prod --yes --skip-preview") ;;
  "stack export --stack prod") cat {tmp_path / 'export.json'} ;;
  *) echo "unexpected: pulumi $*" >&2; exit 9 ;;
esac""")
    _fake(tmp_path / "bin", "helm", f"""echo "helm $*" >> {log}
case "$1 $2" in
  "list -n") [ "$*" = "list -n graph --pending -o json" ] || {{ echo "unexpected: $*" >&2; exit 9; }}
             cat {tmp_path / 'list.json'} ;;
  "history "*) [ "$3 $4 $5 $6" = "-n graph -o json" ] || exit 9; cat {tmp_path}/history-$2.json ;;
  "rollback "*) ;;
  *) echo "unexpected: helm $*" >&2; exit 9 ;;
esac""")
    return log, {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}


def _run_runbook(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RUNBOOK), *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_runbook_releases_the_lock_rolls_back_pending_releases_and_refreshes(tmp_path):
    from components.neo4j_cluster import RELEASE_TIMEOUT_SECONDS

    history = [{"revision": 6, "status": "superseded"}, {"revision": 7, "status": "deployed"},
               {"revision": 8, "status": "failed"}, {"revision": 9, "status": "pending-upgrade"}]
    log, env = _world(tmp_path, [{"type": "updating", "resource": {"urn": "urn:x"}}],
                      {"graph-server-4": history, "graph-server-3": [{"revision": 2, "status": "deployed"}]})
    result = _run_runbook(env, "prod", "graph")
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "pulumi cancel --stack prod --yes", "pulumi stack export --stack prod",
        "helm list -n graph --pending -o json", "helm history graph-server-4 -n graph -o json",
        # back to the last revision that was deployed (a failed one is skipped), with the wait of an upgrade
        f"helm rollback graph-server-4 7 -n graph --wait --timeout {RELEASE_TIMEOUT_SECONDS}s",
        "pulumi refresh --stack prod --yes --skip-preview"]


@pytest.mark.parametrize("pending,releases,message", [
    ([{"type": "creating", "resource": {"urn": "urn:pulumi:prod::p::aws:rds/instance:Instance::pg"}}], {},
     "pending creates in prod, import or clear them first: urn:pulumi:prod::p::aws:rds/instance:Instance::pg"),
    ([], {"graph-server-5": [{"revision": 1, "status": "pending-install"}]}, "is pending-install"),
    # graph-server-1 could be rolled back, but nothing is until every release can
    ([], {"graph-server-1": [{"revision": 2, "status": "deployed"}, {"revision": 3, "status": "pending-rollback"}],
          "graph-server-2": [{"revision": 1, "status": "failed"}, {"revision": 2, "status": "pending-upgrade"}]},
     "release graph-server-2 in graph (pending-upgrade) has no deployed revision"),
])
def test_the_runbook_stops_on_what_needs_a_person_before_changing_anything(tmp_path, pending, releases, message):
    log, env = _world(tmp_path, pending, releases)
    result = _run_runbook(env, "prod", "graph")
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    calls = log.read_text()
    assert "rollback" not in calls and "refresh" not in calls


def test_the_runbook_section_names_the_script_and_the_steps():
    text = (ROOT / "docs" / "runbooks.md").read_text()
    section = text.split("## Interrupted deploy", 1)[1].split("\n## ", 1)[0]
    for needle in ("cicd/interrupted_deploy.sh", "pulumi cancel", "pending_operations", "helm rollback",
                   "--import-pending-creates", "pending-install"):
        assert needle in section, needle
