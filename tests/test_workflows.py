"""Delivery workflows: valid against the GitHub workflow schema, and holding the invariants the
platform relies on - the policy pack on every Pulumi run, OIDC only where a job needs AWS, one
deploy per stack at a time, prod behind its environment gate, every action pinned."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
REUSABLE = "./.github/workflows/_pulumi.yml"


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads "on" as True
    return document


def all_jobs():
    for path in FILES:
        for job_id, job in load(path.name)["jobs"].items():
            yield path.name, job_id, job


def test_the_three_workflows_and_the_shared_run_exist():
    assert [p.name for p in FILES] == ["_pulumi.yml", "deploy.yml", "drift.yml", "preview.yml"]


def test_every_workflow_passes_the_github_workflow_schema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             *map(str, FILES)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0


def test_the_policy_pack_runs_on_every_pulumi_command():
    steps = load("_pulumi.yml")["jobs"]["pulumi"]["steps"]
    [pulumi] = [s for s in steps if s.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["policyPackConfigs"] == "policy/config/${{ inputs.stack }}.json"
    # and nothing runs Pulumi except through the shared job
    for name, job_id, job in all_jobs():
        if name == "_pulumi.yml":
            continue
        assert "pulumi/actions" not in yaml.safe_dump(job) and "pulumi up" not in yaml.safe_dump(job), (name, job_id)
    commands = {(name, job["with"]["command"]) for name, _, job in all_jobs() if job.get("uses") == REUSABLE}
    assert commands == {("preview.yml", "preview"), ("deploy.yml", "up"), ("drift.yml", "preview")}


def test_oidc_only_where_a_job_assumes_an_aws_role_and_pr_write_only_where_a_job_comments():
    """A called workflow's jobs run with at most what the caller's job grants (GitHub docs, "Reusing
    workflows"): _pulumi.yml declares nothing, so each caller decides, and grants only what it uses."""
    shared = load("_pulumi.yml")
    assert "permissions" not in shared and "permissions" not in shared["jobs"]["pulumi"]
    for path in FILES:
        assert "id-token" not in load(path.name).get("permissions", {}), path.name  # never workflow-wide
    for name, job_id, job in all_jobs():
        if name == "_pulumi.yml":
            continue
        previews = job.get("uses") == REUSABLE and job["with"]["command"] == "preview"  # up uses its runner's role
        assert (job.get("permissions", {}).get("id-token") == "write") == previews, (name, job_id)
        comments = job.get("with", {}).get("comment-on-pr") is True or "gh pr comment" in yaml.safe_dump(job)
        assert (job.get("permissions", {}).get("pull-requests") == "write") == comments, (name, job_id)


def test_one_deploy_per_stack_at_a_time_and_prod_behind_its_gate():
    jobs = load("deploy.yml")["jobs"]
    for stack in ("stage", "prod"):
        assert jobs[stack]["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}
        assert jobs[stack]["with"]["environment"] == stack and jobs[stack]["with"]["stack"] == stack
    assert jobs["prod"]["needs"] == "stage"
    assert "needs.stage.result == 'success'" in jobs["prod"]["if"]
    assert load("_pulumi.yml")["jobs"]["pulumi"]["environment"] == "${{ inputs.environment }}"


def test_drift_detection_runs_nightly_and_fails_on_changes():
    drift = load("drift.yml")
    assert drift["on"]["schedule"][0]["cron"]
    job = drift["jobs"]["drift"]
    assert job["with"]["refresh"] is True and job["with"]["expect-no-changes"] is True
    assert [entry["stack"] for entry in job["strategy"]["matrix"]["include"]] == ["stage", "prod"]


def test_pull_requests_run_tests_and_synth_before_previews():
    jobs = load("preview.yml")["jobs"]
    runs = " ".join(s.get("run", "") for s in jobs["test"]["steps"])
    assert "bash .ci/run" in runs and "./dev synth" in runs
    assert jobs["preview"]["needs"] == ["test", "plan"] and jobs["preview"]["with"]["comment-on-pr"] is True
    assert "id-token" not in jobs["test"].get("permissions", {})


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_action_is_pinned(path):
    for step_or_job in re.findall(r"uses:\s*(\S+)", path.read_text()):
        if step_or_job.startswith("./"):
            continue
        ref = step_or_job.split("@", 1)[1] if "@" in step_or_job else ""
        assert re.fullmatch(r"v\d+\.\d+\.\d+|[0-9a-f]{40}", ref), f"{step_or_job}: pin an exact release or commit"


# --- job conditions, evaluated the way GitHub Actions evaluates them ------------------------------
# GitHub docs, "Evaluate expressions in workflows and actions": literals, property dereference,
# ! == != && || and parentheses; && and || return an operand (JavaScript-like); == compares
# strings ignoring case; status functions success() always() cancelled() failure(); a job `if`
# without a status function gets an implicit `success() &&` in front, and success() on a job with
# `needs` is true only when every needed job succeeded (a skipped need is not success).

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!().,])"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))")


class Expression:
    def __init__(self, text: str, context: dict, status: dict):
        text = text.strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        self.tokens, position = [], 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            assert match, f"cannot read {text[position:]!r}"
            self.tokens.append(next((k, v) for k, v in match.groupdict().items() if v is not None))
            position = match.end()
        self.context, self.status, self.i = context, status, 0
        self.uses_status = any(k == "name" and v in status for k, v in self.tokens)

    def value(self):
        result = self._or()
        assert self.i == len(self.tokens), self.tokens[self.i:]
        return result

    def _peek(self):
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def _take(self):
        self.i += 1
        return self.tokens[self.i - 1]

    def _or(self):
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if left else right
        return left

    def _and(self):
        left = self._equality()
        while self._peek() == "&&":
            self._take()
            right = self._equality()
            left = right if left else left
        return left

    def _equality(self):
        left = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._unary()
            same = (left.lower() == right.lower()) if isinstance(left, str) and isinstance(right, str) else left == right
            left = same if op == "==" else not same
        return left

    def _unary(self):
        if self._peek() == "!":
            self._take()
            return not self._unary()
        return self._primary()

    def _primary(self):
        kind, token = self._take()
        if token == "(":
            inner = self._or()
            assert self._take()[1] == ")"
            return inner
        if kind == "str":
            return token[1:-1].replace("''", "'")
        if kind == "num":
            return float(token)
        if token in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[token]
        if self._peek() == "(":
            self._take()
            assert self._take()[1] == ")"
            return self.status[token]
        value = self.context.get(token)
        while self._peek() == ".":
            self._take()
            key = self._take()[1]
            value = value.get(key) if isinstance(value, dict) else None
        return value


def job_runs(job: dict, context: dict, results: dict) -> bool:
    needs = job.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    status = {"success": all(results[n] == "success" for n in needs), "always": True, "cancelled": False,
              "failure": any(results[n] == "failure" for n in needs)}
    expression = Expression(str(job.get("if", "success()")), {**context, "needs": {
        n: {"result": results[n]} for n in needs}}, status)
    value = expression.value()
    return bool(value) if expression.uses_status else status["success"] and bool(value)


def deployed(event: str, stack: str | None = None, stage_outcome: str = "success",
             ref: str = "refs/heads/main") -> set[str]:
    jobs = load("deploy.yml")["jobs"]
    context = {"github": {"event_name": event, "ref": ref}, "inputs": {"stack": stack} if stack else {}}
    results: dict[str, str] = {}
    for job_id in ("stage", "prod"):  # needs order
        runs = job_runs(jobs[job_id], context, results)
        results[job_id] = (stage_outcome if job_id == "stage" else "success") if runs else "skipped"
    return {job_id for job_id, result in results.items() if result != "skipped"}


@pytest.mark.parametrize("event,stack,expected", [
    ("push", None, {"stage", "prod"}),
    ("workflow_dispatch", "stage", {"stage"}),
    ("workflow_dispatch", "prod", {"prod"}),
])
def test_push_deploys_both_and_a_dispatch_deploys_exactly_the_chosen_stack(event, stack, expected):
    assert deployed(event, stack) == expected


def test_a_failed_stage_stops_prod_on_push():
    assert deployed("push", stage_outcome="failure") == {"stage"}


@pytest.mark.parametrize("stack", ["stage", "prod"])
@pytest.mark.parametrize("ref", ["refs/heads/feature", "refs/tags/v1.0.0", "refs/heads/main-old"])
def test_a_manual_dispatch_deploys_only_from_main(stack, ref):
    """workflow_dispatch runs on whatever ref the person picks (GitHub docs, "Events that trigger
    workflows": GITHUB_REF is the branch or tag selected); only main passed the PR's plan."""
    assert deployed("workflow_dispatch", stack, ref=ref) == set()
    assert deployed("workflow_dispatch", stack) == {stack}


def test_the_expression_reader_follows_github_rules():
    status = {"success": True, "always": True, "cancelled": False, "failure": False}
    ctx = {"inputs": {"stack": "Prod"}, "github": {"event_name": "push"}}
    assert Expression("inputs.stack == 'prod'", ctx, status).value() is True  # case-insensitive
    assert Expression("${{ github.event_name != 'push' || 'fallback' }}", ctx, status).value() == "fallback"
    assert Expression("!cancelled() && (inputs.missing == 'x')", ctx, status).value() is False
    assert job_runs({"needs": "stage", "if": "inputs.stack == 'prod'"}, ctx, {"stage": "skipped"}) is False
    assert job_runs({"needs": "stage", "if": "!cancelled() && inputs.stack == 'prod'"}, ctx, {"stage": "skipped"})


# --- the reviewed plan: synth diff against main, a named approval for stateful changes ------------

def _step(job: dict, name_start: str) -> dict:
    [step] = [s for s in job["steps"] if s.get("name", "").startswith(name_start)]
    return step


def test_the_plan_runs_synth_diff_of_both_stacks_against_main_and_reruns_on_reviews():
    preview = load("preview.yml")
    assert set(preview["on"]["pull_request"]["types"]) == {"opened", "synchronize", "reopened"}
    assert set(preview["on"]["pull_request_review"]["types"]) == {"submitted", "dismissed"}
    assert "stateful-change-approved" not in (WORKFLOWS / "preview.yml").read_text()  # no label approves
    plan = preview["jobs"]["plan"]
    assert "id-token" not in plan["permissions"] and plan["permissions"]["pull-requests"] == "write"
    [base] = [s for s in plan["steps"] if s.get("with", {}).get("path") == "base"]
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"  # main, as the PR sees it
    assert _step(plan, "Offline synth")["run"].endswith(") && ./dev synth")  # main, then the branch
    assert "gh pr comment" in _step(plan, "Post the plan")["run"]


def _bash(script: str, cwd: Path, env: dict, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    import os

    full = {**os.environ, **env}
    if path_prefix:
        full["PATH"] = f"{path_prefix}:{full['PATH']}"
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)


def test_the_plan_step_fails_a_stateful_delete_until_a_name_approves_it(tmp_path):
    """The step's own script, on exports where main has the database and the branch lost it."""
    from tests.test_diff import DATABASE, ROLE, document

    retired = {**DATABASE, "protect": False}  # a protected one no approval deletes (tests/test_retire.py)
    for side, doc in (("base/build", document(retired, ROLE)), ("build", document(ROLE))):
        for stack in ("stage", "prod"):
            (tmp_path / side / stack).mkdir(parents=True)
            (tmp_path / side / stack / "stack.json").write_text(json.dumps(doc))
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # the checkout's own venv, the program on PYTHONPATH
    script = _step(load("preview.yml")["jobs"]["plan"], "Plan of both stacks")["run"]
    for approver, status in (("", "1"), ("bob", "0")):
        output, summary = tmp_path / f"out-{status}", tmp_path / f"summary-{status}"
        (tmp_path / "plan.md").unlink(missing_ok=True)
        result = _bash(script, tmp_path, {"APPROVER": approver, "GITHUB_OUTPUT": str(output),
                                          "GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr  # the verdict goes to the gate step, after the comment
        assert output.read_text() == f"status={status}\n"
        text = summary.read_text()
        assert text.count("! delete " + DATABASE["urn"]) == 2  # both stacks
        assert ("Approved by bob" in text) == bool(approver)


def test_the_approval_step_asks_the_api_for_the_head_and_its_reviews(tmp_path):
    """The step's own script with a fake gh that checks its arguments and answers like the pulls API
    (the head from `pulls/N`, the reviews slurped page by page); the decision is cicd.approval's."""
    head, old = "c" * 40, "d" * 40
    pages = [[{"user": {"login": "carol"}, "state": "APPROVED", "commit_id": old}],
             [{"user": {"login": "erin"}, "state": "APPROVED", "commit_id": head}]]
    api = tmp_path / "api"  # what the fake API answers (the step writes its own reviews.json)
    api.mkdir()
    (api / "reviews.json").write_text(json.dumps(pages))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(f"""#!/bin/bash
case "$*" in
  "api repos/acme/platform/pulls/42 --jq .head.sha") echo {head} ;;
  "api --paginate --slurp repos/acme/platform/pulls/42/reviews") cat {api / "reviews.json"} ;;
  *) echo "unexpected: $*" >&2; exit 9 ;;
esac
""")
    (bin_dir / "gh").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)  # the runner's python3; cicd.approval needs no package
    step = _step(load("preview.yml")["jobs"]["plan"], "Who approved")
    assert step["env"]["RUN_SHA"] == "${{ github.event.pull_request.head.sha }}"
    env = {"GITHUB_REPOSITORY": "acme/platform", "PR": "42", "PYTHONPATH": str(ROOT)}
    cases = (("frank", head, "name=erin\n"),  # erin reviewed the head; carol an older commit
             ("erin", head, "name=\n"),       # the author's own approval: none
             ("frank", old, "name=\n"))       # a re-run of an older run: none
    for i, (author, run_sha, expected) in enumerate(cases):
        output = tmp_path / f"out-{i}"
        result = _bash(step["run"], tmp_path, {**env, "AUTHOR": author, "RUN_SHA": run_sha,
                                               "GITHUB_OUTPUT": str(output)}, bin_dir)
        assert result.returncode == 0, result.stderr  # "not approved" is the plan gate's to judge
        assert output.read_text() == expected, (author, run_sha, result.stderr)
    (api / "reviews.json").write_text('{"message": "Bad credentials"}')
    result = _bash(step["run"], tmp_path, {**env, "AUTHOR": "frank", "RUN_SHA": head,
                                           "GITHUB_OUTPUT": str(tmp_path / "out")}, bin_dir)
    assert result.returncode == 2  # an unreadable answer fails the job, never reads as "no approval"


# --- jobs that run ./dev on a GitHub-hosted runner -------------------------------------------------
# GitHub-hosted runners run as the `runner` user with passwordless sudo ("GitHub-hosted runners":
# "The Linux and macOS virtual machines both run using passwordless sudo"), and no checkout has the
# ../shared/charts folder synth/helm.py falls back to.

def _runs_dev(step: dict) -> bool:
    run = step.get("run", "")
    return "./dev synth" in run or "./dev test" in run or ".ci/run" in run


def test_every_job_that_runs_dev_pulls_the_pinned_chart_first_and_installs_no_debian_list_of_its_own():
    jobs = [(name, job_id, job) for name, job_id, job in all_jobs() if any(map(_runs_dev, job.get("steps", [])))]
    assert {(n, j) for n, j, _ in jobs} == {("preview.yml", "test"), ("preview.yml", "plan")}
    for name, job_id, job in jobs:
        steps = job["steps"]
        first_dev = next(i for i, s in enumerate(steps) if _runs_dev(s))
        charts = [s["run"] for s in steps[:first_dev] if "./dev charts" in s.get("run", "")]
        assert charts and '"$INTELGRAPH_CHARTS_DIR"' in charts[0], (name, job_id)
        assert job["env"]["INTELGRAPH_CHARTS_DIR"].startswith("${{ github.workspace }}"), (name, job_id)
        # ./dev owns the list of Debian tools (it installs them through sudo): no partial list here
        assert not any("apt-get" in s.get("run", "") for s in steps), (name, job_id)
    plan = load("preview.yml")["jobs"]["plan"]
    # main is synthesized with main's pin, pulled from main's checkout, into its own folder
    assert './dev charts "$BASE_CHARTS_DIR" base' in _step(plan, "Real validators")["run"]
    assert '(cd base && INTELGRAPH_CHARTS_DIR="$BASE_CHARTS_DIR" ./dev synth)' in _step(plan, "Offline synth")["run"]
    assert plan["env"]["BASE_CHARTS_DIR"] != plan["env"]["INTELGRAPH_CHARTS_DIR"]


def _fake_runner(tmp_path: Path, sudo_works: bool, pins: tuple[str, str] = ("5.26.16", "5.26.16")) -> tuple[Path, dict]:
    """A checkout with ./dev on a machine that has none of the Debian tools, run by a non-root user;
    fakes of id, sudo, apt-get and helm record what they are asked."""
    import os
    import shutil

    checkout, bin_dir, log = tmp_path / "repo", tmp_path / "bin", tmp_path / "calls.log"
    checkout.mkdir()
    bin_dir.mkdir()
    shutil.copy(ROOT / "dev", checkout / "dev")
    (checkout / ".tools").symlink_to(ROOT / ".tools")  # helm already installed: setup_helm returns
    for stack, pin in zip(("stage", "prod"), pins, strict=True):
        (checkout / f"Pulumi.{stack}.yaml").write_text(f"config:\n  intelgraph-platform:neo4j:\n    chartVersion: {pin}\n")
    for tool in ("bash", "dirname", "sed", "sort", "wc", "mkdir", "rm", "cat", "env", "cut", "sha256sum", "true"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    fakes = {
        "id": 'echo 1001',
        "sudo": f'echo "sudo $*" >> {log}; [ "$1" = -n ] && shift; [ {int(sudo_works)} = 1 ] || exit 1; exec "$@"',
        "apt-get": f'echo "apt-get $*" >> {log}',
        "helm": f'echo "helm $*" >> {log}',
    }
    for tool, body in fakes.items():
        (bin_dir / tool).write_text(f"#!{shutil.which('bash')}\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    return log, {**os.environ, "PATH": str(bin_dir), "HELM": str(bin_dir / "helm")}


def _dev(tmp_path: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([env["PATH"] + "/bash", str(tmp_path / "repo" / "dev"), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_dev_installs_the_debian_tools_through_sudo_when_not_root_and_pulls_the_pinned_chart(tmp_path):
    log, env = _fake_runner(tmp_path, sudo_works=True)
    result = _dev(tmp_path, env, "charts", str(tmp_path / "charts"))
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    install = [c for c in calls if c.startswith("apt-get install")]
    assert install and all(p in install[0].split() for p in
                           ("redis-server", "prometheus", "prometheus-alertmanager", "lua5.4", "luajit", "unzip"))
    assert "sudo -n apt-get update -qq" in calls
    # and says so, one line per phase, on stderr
    assert "dev: installing Debian packages: redis-server prometheus prometheus-alertmanager lua5.4 luajit unzip" \
        in result.stderr.splitlines()
    assert f"dev: pulling the neo4j chart 5.26.16 into {tmp_path / 'charts'}/neo4j" in result.stderr.splitlines()
    # the chart at the version the stacks pin, from the official repository, untarred where synth reads it
    assert calls[-1] == (f"helm pull neo4j --repo https://helm.neo4j.com/neo4j --version 5.26.16 "
                         f"--untar --untardir {tmp_path / 'charts'}")


def test_dev_synth_on_a_fresh_machine_says_what_it_is_doing_phase_by_phase(tmp_path):
    """A fresh checkout spends minutes in set-up: each phase that does work prints one line on
    stderr (stdout stays synth's), in order; a second run with everything in place prints none.
    The fake python records what it is asked and creates the virtualenvs it is asked for."""
    import shutil

    log, env = _fake_runner(tmp_path, sudo_works=True)
    checkout, bin_dir = tmp_path / "repo", tmp_path / "bin"
    for tool in ("chmod", "cp"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (checkout / "policy").mkdir()
    for reqs in ("requirements.txt", "requirements-dev.txt", "policy/requirements.txt"):
        (checkout / reqs).write_text("pulumi==3.0.0\n")
    (bin_dir / "python-fresh").write_text(
        f"#!{shutil.which('bash')}\n"
        f'echo "python $*" >> {log}\n'
        'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && chmod +x "$3/bin/python"; fi\n')
    (bin_dir / "python-fresh").chmod(0o755)
    env = {**env, "PYTHON": str(bin_dir / "python-fresh")}
    first = _dev(tmp_path, env, "synth")
    assert first.returncode == 0, first.stderr
    assert [line for line in first.stderr.splitlines() if line.startswith("dev: ")] == [
        "dev: creating the virtualenv .venv (" + str(bin_dir / "python-fresh") + ")",
        "dev: installing the pinned Python requirements into .venv (requirements-dev.txt; minutes on a fresh machine)",
        "dev: creating the policy pack's virtualenv policy/venv",
        "dev: installing policy/requirements.txt into policy/venv",
        "dev: installing Debian packages: redis-server prometheus prometheus-alertmanager lua5.4 luajit unzip",
        "dev: synth stage",
        "dev: synth prod",
    ]
    assert "python -m synth --stack prod" in log.read_text()
    # everything in place (the Debian tools now "installed" by faking them): set-up is silent
    for tool in ("redis-server", "promtool", "amtool", "lua5.4", "luajit", "unzip"):
        (bin_dir / tool).symlink_to(bin_dir / "apt-get")
    again = _dev(tmp_path, env, "synth")
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stderr.splitlines() if line.startswith("dev: ")] == ["dev: synth stage",
                                                                                         "dev: synth prod"]


def test_dev_without_root_or_sudo_says_what_to_install(tmp_path):
    log, env = _fake_runner(tmp_path, sudo_works=False)
    result = _dev(tmp_path, env, "charts", str(tmp_path / "charts"))
    assert result.returncode == 1
    assert "missing Debian packages: redis-server prometheus prometheus-alertmanager lua5.4 luajit unzip" in result.stderr
    assert "apt-get" not in log.read_text()


def test_dev_refuses_to_pull_when_the_stacks_pin_different_charts(tmp_path):
    log, env = _fake_runner(tmp_path, sudo_works=True, pins=("5.26.16", "5.26.17"))
    result = _dev(tmp_path, env, "charts", str(tmp_path / "charts"))
    assert result.returncode == 1 and "must pin one Neo4j chartVersion" in result.stderr
    assert "helm" not in log.read_text()


def test_the_engines_preview_json_gates_pr_previews_with_the_plans_approval(tmp_path):
    """`pulumi preview --json` from the real engine, judged by `synth diff --engine`: the step's own
    script, with a fake pulumi on PATH that checks its arguments and prints a replacement."""
    from tests.test_diff import DATABASE, preview_step

    preview = load("preview.yml")["jobs"]
    assert preview["preview"]["with"]["approved-by"] == "${{ needs.plan.outputs.approver }}"
    assert preview["plan"]["outputs"]["approver"] == "${{ steps.approval.outputs.name }}"
    assert _step(preview["plan"], "Who approved")["id"] == "approval"
    step = _step(load("_pulumi.yml")["jobs"]["pulumi"], "Engine plan gate")
    assert step["if"] == "inputs.command == 'preview' && inputs.comment-on-pr"  # PR previews, not drift
    assert step["env"]["APPROVER"] == "${{ inputs.approved-by }}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # released through `retire`: a replace protected on both sides no approval passes (tests/test_retire.py)
    steps = [preview_step(op, {**DATABASE, "protect": False}, replaceReasons=["kmsKeyId"])
             for op in ("create-replacement", "replace")]
    (tmp_path / "steps.json").write_text(json.dumps({"steps": steps}))
    (bin_dir / "pulumi").write_text(
        "#!/bin/bash\n"
        '[ "$*" = "preview --stack prod --json --show-replacement-steps --policy-pack policy'
        ' --policy-pack-config policy/config/prod.json" ]'
        f" || {{ echo \"unexpected: $*\" >&2; exit 9; }}\ncat {tmp_path / 'steps.json'}\n")
    (bin_dir / "pulumi").chmod(0o755)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    for approver, code in (("", 1), ("carol", 0)):
        summary = tmp_path / f"summary-{code}"
        result = _bash(step["run"], tmp_path, {"STACK": "prod", "APPROVER": approver, "PYTHONPATH": str(ROOT),
                                               "GITHUB_STEP_SUMMARY": str(summary)}, bin_dir)
        assert result.returncode == code, result.stdout + result.stderr
        assert "! replace " + DATABASE["urn"] in summary.read_text()


# --- jobs that run Pulumi: secrets, clusters, credentials, time (issue 23) ------------------------

def _pulumi_step_index(steps: list[dict]) -> int:
    """The first step that runs the Pulumi CLI (the action, or `pulumi` in a script)."""
    return next(i for i, s in enumerate(steps)
                if s.get("uses", "").startswith("pulumi/actions@") or re.search(r"(^|\s)pulumi\s", s.get("run", "")))


def _jobs_running_pulumi():
    for name, job_id, job in all_jobs():
        if any(s.get("uses", "").startswith("pulumi/actions@") or re.search(r"(^|\s)pulumi\s", s.get("run", ""))
               for s in job.get("steps", [])):
            yield name, job_id, job


def test_only_the_shared_job_runs_pulumi():
    assert [(n, j) for n, j, _ in _jobs_running_pulumi()] == [("_pulumi.yml", "pulumi")]


def test_every_pulumi_command_finds_its_secrets_without_a_passphrase():
    """pulumi/pulumi pkg/cmd/pulumi/stack/secrets.go: with no secretsprovider in the stack file and
    PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER set, the CLI uses the secrets manager the state records
    (`stack init --secrets-provider awskms://...` stores it: pkg/cmd/pulumi/stack/io.go CreateStack);
    without either it falls back to the passphrase manager, which CI cannot answer. The variable
    exists since v3.134.0 (CHANGELOG); the workflows pin a later CLI."""
    for name, job_id, job in _jobs_running_pulumi():
        assert job["env"]["PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER"] == "true", (name, job_id)
        [action] = [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
        version = tuple(int(x) for x in action["with"]["pulumi-version"].split("."))
        assert version >= (3, 134, 0) and "secrets-provider" not in action["with"]
    text = "\n".join(p.read_text() for p in FILES)
    assert "PULUMI_CONFIG_PASSPHRASE" not in text
    for stack in ("stage", "prod"):
        document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        # a salt or a passphrase provider would send the CLI back to the passphrase manager
        assert "encryptionsalt" not in document and document.get("secretsprovider", "awskms://").startswith("awskms://")


def test_every_job_that_runs_pulumi_writes_a_kubeconfig_for_its_clusters_first():
    """pulumi-kubernetes treats a context it cannot find as an unreachable cluster: the kubeconfig
    (cicd/kubeconfig.py, from the stack file) comes before the first Pulumi command."""
    for name, job_id, job in _jobs_running_pulumi():
        steps = job["steps"]
        [kube] = [i for i, s in enumerate(steps) if "-m cicd.kubeconfig" in s.get("run", "")]
        assert kube < _pulumi_step_index(steps), (name, job_id)
        assert '--stack "$STACK"' in steps[kube]["run"] and steps[kube]["env"]["STACK"] == "${{ inputs.stack }}"
        # after the AWS credentials (aws eks update-kubeconfig calls DescribeCluster)
        creds = [i for i, s in enumerate(steps) if "configure-aws-credentials" in s.get("uses", "")
                 or "sts get-caller-identity" in s.get("run", "")]
        assert creds and max(creds) < kube, (name, job_id)


def test_every_preview_json_shows_the_replacement_steps():
    """Without --show-replacement-steps the JSON leaves out delete-replaced steps (pulumi/pulumi
    pkg/backend/display/display.go shouldShow), so the gate would not see those deletes."""
    commands = [line for p in FILES for line in p.read_text().split("\n\n") if re.search(r"pulumi preview\b.*--json", line, re.S)]
    assert commands
    for command in commands:
        assert "--show-replacement-steps" in command, command


# Each JavaScript action's `runs.using` at the pinned release, read from the action's action.yml at
# that tag (actions/checkout v6.1.0, actions/setup-python v6.2.0, actions/upload-artifact v6.0.0,
# aws-actions/configure-aws-credentials v6.2.3, pulumi/actions v7.0.0). GitHub removed Node 20 from
# its runners on 2026-09-16 ("Deprecation of Node 20 on GitHub Actions runners", changelog
# 2025-09-19): a node20 action no longer runs as written.
ACTION_RUNTIMES = {
    "actions/checkout@v6.1.0": "node24",
    "actions/setup-python@v6.2.0": "node24",
    "actions/upload-artifact@v6.0.0": "node24",
    "aws-actions/configure-aws-credentials@v6.2.3": "node24",
    "pulumi/actions@v7.0.0": "node24",
}


def test_every_javascript_action_runs_on_the_runners_node():
    used = {ref for p in FILES for ref in re.findall(r"uses:\s*([^\s#]+)", p.read_text()) if not ref.startswith("./")}
    assert used <= set(ACTION_RUNTIMES), f"record the runtime of {used - set(ACTION_RUNTIMES)} from its action.yml"
    assert all(ACTION_RUNTIMES[ref] == "node24" for ref in used)


def test_each_stack_names_its_own_role_and_an_empty_one_is_never_replaced_by_another():
    """`cond && a || b` yields b when a is empty: an unset prod variable would run prod with stage's
    role. Each matrix entry names its variable; `vars[...]` of an unset one is empty and the
    credentials step fails."""
    text = "\n".join(p.read_text() for p in FILES)
    assert not re.search(r"&&\s*vars\.\w+\s*\|\|", text)
    for name, job_id in (("preview.yml", "preview"), ("drift.yml", "drift")):
        job = load(name)["jobs"][job_id]
        assert job["with"]["role-arn"] == "${{ vars[matrix.role-var] }}", (name, job_id)
        assert {e["stack"]: e["role-var"] for e in job["strategy"]["matrix"]["include"]} == {
            "stage": "AWS_PREVIEW_ROLE_ARN_STAGE", "prod": "AWS_PREVIEW_ROLE_ARN_PROD"}
    for stack, job in load("deploy.yml")["jobs"].items():
        assert job["with"]["role-arn"] == f"${{{{ vars.AWS_DEPLOY_ROLE_ARN_{stack.upper()} }}}}"


# GitHub docs, "Usage limits": a job on a GitHub-hosted runner runs for at most 6 hours, on a
# self-hosted runner for up to 5 days. AWS IAM: a role session lasts at most its MaxSessionDuration,
# 12 hours at most (IAM API reference, CreateRole); configure-aws-credentials does not renew it.
HOSTED_JOB_MAX_MINUTES = 6 * 60
SELF_HOSTED_JOB_MAX_MINUTES = 5 * 24 * 60
MAX_ROLE_SESSION_SECONDS = 12 * 3600


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_deploy_job_outlasts_the_programs_rollout_budget(stack):
    """rolloutBudget.maxSeconds (helpers/rollout.py, exported by the program): a deploy killed before
    it leaves a lock, pending operations and a pending Helm release (docs/runbooks.md)."""
    from tests.conftest import synthesized

    budget = synthesized(stack).outputs["rolloutBudget"]["maxSeconds"]
    job = load("deploy.yml")["jobs"][stack]
    minutes = job["with"]["timeout-minutes"]
    assert minutes * 60 >= budget
    if budget > HOSTED_JOB_MAX_MINUTES * 60:  # no hosted runner can hold this roll
        assert json.loads(job["with"]["runs-on"])[0] == "self-hosted" and minutes <= SELF_HOSTED_JOB_MAX_MINUTES
    if budget > MAX_ROLE_SESSION_SECONDS:
        # no OIDC session can last the roll: the deploy runner's instance-profile credentials renew
        # themselves, and the job checks it is the stack's deploy role instead of assuming it
        shared = load("_pulumi.yml")["jobs"]["pulumi"]
        [creds] = [s for s in shared["steps"] if "configure-aws-credentials" in s.get("uses", "")]
        assert creds["if"] == "inputs.command != 'up'"
        assert _step(shared, "The deploy runner is the stack's deploy role")["if"] == "inputs.command == 'up'"


def test_the_program_budget_really_outgrows_hosted_runners_and_sessions():
    """Why the deploy runs where it does: prod's roll (5 servers) is longer than both limits."""
    from helpers.rollout import rollout_budget

    assert rollout_budget(servers=5)["maxSeconds"] > max(HOSTED_JOB_MAX_MINUTES * 60, MAX_ROLE_SESSION_SECONDS)


def test_a_preview_session_lasts_its_job():
    shared = load("_pulumi.yml")
    [creds] = [s for s in shared["jobs"]["pulumi"]["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    default_minutes = shared["on"]["workflow_call"]["inputs"]["timeout-minutes"]["default"]
    assert creds["with"]["role-duration-seconds"] >= default_minutes * 60
    for name, job_id, job in all_jobs():  # previews keep the default
        if job.get("uses") == REUSABLE and job["with"]["command"] == "preview":
            assert "timeout-minutes" not in job["with"], (name, job_id)


def test_the_deploy_runner_must_be_the_stacks_deploy_role(tmp_path):
    """The step's own script with a fake aws answering sts get-caller-identity (an instance profile's
    session ARN is arn:aws:sts::ACCOUNT:assumed-role/ROLE/INSTANCE)."""
    step = _step(load("_pulumi.yml")["jobs"]["pulumi"], "The deploy runner is the stack's deploy role")
    role = "arn:aws:iam::739104582266:role/intelgraph-deploy-prod"
    for caller, code in (("arn:aws:sts::739104582266:assumed-role/intelgraph-deploy-prod/i-0abc", 0),
                         ("arn:aws:sts::739104582266:assumed-role/intelgraph-deploy-stage/i-0abc", 1),
                         ("arn:aws:sts::111111111111:assumed-role/intelgraph-deploy-prod/i-0abc", 1)):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "aws").write_text(
            '#!/bin/bash\n[ "$*" = "sts get-caller-identity --region us-west-2 --query Arn --output text" ] || exit 9\n'
            f"echo {caller}\n")
        (bin_dir / "aws").chmod(0o755)
        result = _bash(step["run"], tmp_path, {"ROLE_ARN": role, "AWS_REGION": "us-west-2"}, bin_dir)
        assert result.returncode == code, (caller, result.stdout, result.stderr)


# --- the environment a job builds, with the commands it runs --------------------------------------

def _installed_requirements(job_steps: list[dict]) -> list[str]:
    [install] = [s["run"] for s in job_steps if ".venv/bin/pip install" in s.get("run", "")]
    line = next(line for line in install.splitlines() if ".venv/bin/pip install" in line and "policy/venv" not in line)
    return re.findall(r"-r\s+(\S+)", line)


@pytest.fixture(scope="module")
def job_venv(tmp_path_factory) -> Path:
    """A fresh venv from exactly the files _pulumi.yml installs into .venv (pip's cache and the
    package index only)."""
    files = _installed_requirements(load("_pulumi.yml")["jobs"]["pulumi"]["steps"])
    assert files
    venv = tmp_path_factory.mktemp("job") / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                             *(arg for f in files for arg in ("-r", str(ROOT / f)))],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def test_the_shared_jobs_environment_runs_synth_diff_and_check(job_venv, tmp_path):
    """issue 23 item 1: `synth diff` imports synth.policy_runner (pulumi_policy, jsonschema); the
    job's .venv once had neither. Both modes and `synth check`, in that venv, from a checkout."""
    from tests.test_diff import DATABASE, ROLE, document, preview_step

    retired = {**DATABASE, "protect": False}  # a protected one no approval deletes (tests/test_retire.py)
    (tmp_path / "old.json").write_text(json.dumps(document(retired, ROLE)))
    (tmp_path / "new.json").write_text(json.dumps(document(ROLE)))
    (tmp_path / "preview.json").write_text(json.dumps({"steps": [preview_step("delete", retired)]}))
    python = str(job_venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for argv, code in ((["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")], 1),
                       (["diff", "--engine", str(tmp_path / "preview.json")], 1),
                       (["diff", "--engine", str(tmp_path / "preview.json"), "--approved-by", "erin"], 0)):
        result = subprocess.run([python, "-m", "synth", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == code, result.stdout + result.stderr
        assert "! delete " + DATABASE["urn"] in result.stdout
    from synth.export import to_export
    from tests.conftest import synthesized

    (tmp_path / "stack.json").write_text(json.dumps(to_export(synthesized("stage"))))
    result = subprocess.run([python, "-m", "synth", "check", str(tmp_path / "stack.json"), "--stack", "stage"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "synth check" in result.stdout


# --- failover-aware jobs: the region, the state copy, the runner and the targets come from the ----
# stack file (issue 21: the failed-over state deploys while the primary region is down;
# docs/decisions/019, docs/cicd.md "Failover-aware jobs")

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_STATUS = {"success": True, "always": True, "cancelled": False, "failure": False}


def resolve(value, context: dict):
    """A workflow value with its ${{ }} expressions evaluated (the reader above): a whole-value
    expression keeps its type, an embedded one becomes text (a missing value is '')."""
    if not isinstance(value, str):
        return value
    whole = _EXPRESSION.fullmatch(value.strip())
    if whole:
        return Expression(whole.group(1), context, _STATUS).value()
    return _EXPRESSION.sub(lambda m: str(Expression(m.group(1), context, _STATUS).value() or ""), value)


def read_github_output(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's two forms (GitHub docs, "Workflow commands", Setting an output parameter /
    Multiline strings): name=value, and name<<DELIMITER, lines, DELIMITER."""
    outputs, lines = {}, path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        if "<<" in lines[i] and ("=" not in lines[i] or lines[i].index("<<") < lines[i].index("=")):
            name, delimiter = lines[i].split("<<", 1)
            end = lines.index(delimiter, i + 1)
            outputs[name], i = "\n".join(lines[i + 1:end]), end + 1
        else:
            name, value = lines[i].split("=", 1)
            outputs[name], i = value, i + 1
    return outputs


def split_like_pulumi_actions(value: str) -> list[str]:
    """pulumi/actions v7.0.0 src/config.ts: `target` is getMultilineInput then parseSemicolorToArray
    (src/libs/utils.ts): every line split at commas, empty items dropped, each trimmed."""
    return [item.strip() for line in value.split("\n") for item in line.split(",") if item.strip()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """This repository's files as a job's checkout sees them, with its own stack files to edit; a
    fake ./dev that "pulls" the chart by copying the pinned source synth renders everywhere else."""
    import shutil

    from synth.helm import charts_dir

    repo = tmp_path_factory.mktemp("checkout") / "repo"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    (repo / "dev").write_text(f"#!{shutil.which('bash')}\n"
                              f'echo "dev $*" >> {repo / "dev.log"}\n'
                              f'[ "$1" = charts ] && mkdir -p "$2" && cp -r {charts_dir() / "neo4j"} "$2/"\n')
    return repo


def _stack_file(repo: Path, stack: str, active: str) -> None:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    document["config"]["intelgraph-platform:dr"]["activeRegion"] = active
    (repo / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def run_where_job(repo: Path, inputs: dict, variables: dict) -> tuple[dict, dict]:
    """The `where` job of _pulumi.yml as a runner runs it: each `run` step in order with the env the
    job and the step build, its `if` evaluated against the outputs so far; returns the job's
    outputs and the context the `pulumi` job then sees."""
    job = load("_pulumi.yml")["jobs"]["where"]
    context = {"inputs": inputs, "vars": variables, "github": {"workspace": str(repo)}, "steps": {}}
    job_env = {k: str(resolve(v, context) or "") for k, v in job["env"].items()}
    for i, step in enumerate(job["steps"]):
        if "run" not in step or ".venv/bin/pip install" in step["run"]:
            continue  # checkout, setup-python, the venv: the checkout above, with this repository's venv
        if "if" in step and not resolve("${{ " + step["if"] + " }}", context):
            continue
        output = repo / f"github-output-{i}"
        output.unlink(missing_ok=True)
        env = {**job_env, **{k: str(resolve(v, context)) for k, v in step.get("env", {}).items()},
               "GITHUB_OUTPUT": str(output)}
        result = _bash(step["run"], repo, env)
        assert result.returncode == 0, (step.get("name"), result.stdout, result.stderr)
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": read_github_output(output)}
    outputs = {k: resolve(v, context) or "" for k, v in job["outputs"].items()}
    return outputs, {"inputs": inputs, "vars": variables, "needs": {"where": {"outputs": outputs}}}


DEPLOY_INPUTS = {"command": "up", "stack": "prod", "runs-on": '["self-hosted", "linux", "intelgraph-deploy-prod"]',
                 "refresh": False, "expect-no-changes": False}


def test_the_where_job_runs_first_needs_no_aws_and_installs_what_synth_targets_needs():
    jobs = load("_pulumi.yml")["jobs"]
    assert jobs["pulumi"]["needs"] == "where" and jobs["pulumi"]["runs-on"] == "${{ fromJSON(needs.where.outputs.runs-on) }}"
    where = jobs["where"]
    assert where["permissions"] == {"contents": "read"}  # no OIDC, no comment: it reads the checkout only
    assert not any("configure-aws-credentials" in s.get("uses", "") or "aws " in s.get("run", "") for s in where["steps"])
    assert _installed_requirements(where["steps"]) == _installed_requirements(jobs["pulumi"]["steps"])
    assert where["env"]["STATE_REGION"] == "${{ vars.PULUMI_STATE_REGION }}"
    assert where["env"]["PRIMARY_DOWN"] == "${{ vars.PRIMARY_REGION_DOWN }}"
    assert "vars.PULUMI_BACKEND_URL" not in (WORKFLOWS / "_pulumi.yml").read_text()  # derived, per account


@pytest.mark.parametrize("active,state_region,primary_down", [
    ("primary", "", ""),
    ("dr", "dr", "true"),  # the outage: targeted, state and secrets from the DR copies
    ("dr", "", "false"),   # the primary region is back (then rebuilt): a whole deploy, still in the DR region
])
def test_each_pulumi_step_gets_the_active_region_the_state_copy_and_the_targets(checkout, active, state_region,
                                                                                primary_down):
    """The where job on the stack file in each state, then what the pulumi job hands to each step:
    configure-aws-credentials' `aws-region` (its STS AssumeRoleWithWebIdentity), the job's
    AWS_REGION (the KMS key copy; the secrets provider names no region: ops.bootstrap_backend, decision 022), the
    action's cloud-url, target and target-dependents, and the runner."""
    from tests.test_failed_over_deploy import target_urns

    stack = "prod"
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    aws = document["intelgraph-platform:aws"]
    region = aws["primaryRegion" if active == "primary" else "drRegion"]
    state = aws["primaryRegion" if not state_region else "drRegion"]
    _stack_file(checkout, stack, active)
    (checkout / "dev.log").unlink(missing_ok=True)
    outputs, context = run_where_job(checkout, DEPLOY_INPUTS, {"PULUMI_STATE_REGION": state_region,
                                                               "PRIMARY_REGION_DOWN": primary_down})
    targeted = primary_down == "true"

    assert outputs["region"] == region and outputs["failed-over"] == str(active == "dr").lower()
    assert outputs["backend"] == f"s3://intelgraph-pulumi-state-{aws['accountId']}-{state}?region={state}&awssdk=v2"
    assert json.loads(outputs["runs-on"]) == [*json.loads(DEPLOY_INPUTS["runs-on"]), f"intelgraph-region-{region}"]
    assert outputs["targeted"] == str(targeted).lower()
    if targeted:
        assert split_like_pulumi_actions(outputs["targets"]) == target_urns(stack)
        assert (checkout / "dev.log").read_text() == f"dev charts {checkout}/../charts\n"
    else:
        assert outputs["targets"] == "" and not (checkout / "dev.log").exists()  # the whole stack, no chart

    job = load("_pulumi.yml")["jobs"]["pulumi"]
    env = {k: resolve(v, context) for k, v in job["env"].items()}
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == region and env["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
    [creds] = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert resolve(creds["with"]["aws-region"], context) == region
    [action] = [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert resolve(action["with"]["cloud-url"], context) == outputs["backend"]
    assert split_like_pulumi_actions(str(resolve(action["with"]["target"], context))) == (
        target_urns(stack) if targeted else [])
    assert action["with"]["target-dependents"] is False  # the primary region's dependents stay out
    # the deploy runner's identity check: STS in the active region, through its regional endpoint
    step = _step(job, "The deploy runner is the stack's deploy role")
    bin_dir = checkout / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "aws").write_text(
        f'#!/bin/bash\n[ "$*" = "sts get-caller-identity --region {region} --query Arn --output text" ] || exit 9\n'
        '[ "$AWS_STS_REGIONAL_ENDPOINTS" = regional ] || exit 8\n'
        "echo arn:aws:sts::481236059412:assumed-role/intelgraph-deploy-prod/i-0abc\n")
    (bin_dir / "aws").chmod(0o755)
    result = _bash(step["run"], checkout, {**env, "ROLE_ARN": "arn:aws:iam::481236059412:role/intelgraph-deploy-prod"},
                   bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    # the engine's plan gate previews exactly what the deploy would do
    gate = _step(job, "Engine plan gate")
    (bin_dir / "pulumi").write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {checkout / "pulumi-args"}\necho "{{}}"\n')
    (bin_dir / "pulumi").chmod(0o755)
    gate_env = {**env, **{k: str(resolve(v, {**context, "inputs": {**context["inputs"], "approved-by": ""}}) or "")
                          for k, v in gate["env"].items()}}
    _bash(gate["run"], checkout, {**gate_env, "GITHUB_STEP_SUMMARY": str(checkout / "summary")}, bin_dir)
    args = (checkout / "pulumi-args").read_text().splitlines()
    assert [a.removeprefix("--target=") for a in args if a.startswith("--target")] == (
        target_urns(stack) if targeted else [])
    assert args[:2] == ["preview", "--stack"] and "--target-dependents" not in args


def test_a_preview_stays_on_its_hosted_runner_in_the_active_region(checkout):
    """Previews and drift pass no runs-on: the default hosted label gets no region label."""
    _stack_file(checkout, "stage", "dr")
    inputs = {"command": "preview", "stack": "stage",
              "runs-on": load("_pulumi.yml")["on"]["workflow_call"]["inputs"]["runs-on"]["default"]}
    job = load("_pulumi.yml")["jobs"]["where"]
    context = {"inputs": inputs, "vars": {}, "github": {"workspace": str(checkout)}}
    step = _step(job, "Active region")
    output = checkout / "github-output-preview"
    result = _bash(step["run"], checkout, {**{k: str(resolve(v, context) or "") for k, v in job["env"].items()},
                                           "GITHUB_OUTPUT": str(output)})
    assert result.returncode == 0, result.stderr
    outputs = read_github_output(output)
    assert json.loads(outputs["runs-on"]) == "ubuntu-24.04" and outputs["region"] == "us-west-2"
    assert outputs["backend"].endswith("-us-east-1?region=us-east-1&awssdk=v2")  # PULUMI_STATE_REGION unset


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_every_failed_over_target_is_in_the_stack_or_created_by_the_failover(stack):
    """An update checks each target against the state and the program: it "must either have existed
    in the stack prior to running the operation, or it must be the urn for a resource that was
    created" (pulumi/pulumi pkg/resource/deploy/deployment_executor.go `checkTargets`, olds or
    stepGen.urns). So a target the failover deletes would fail every failed-over deploy; one it
    creates (the promoted writer's own secret, its bootstrap, version and rotation: decision 025)
    passes the first deploy, which creates it, and is in the state from then on. A refresh has no
    step generator: the nightly drift run (preview --refresh --expect-no-changes) fails until the
    first failed-over deploy - as it should, the stack has changes to deploy."""
    from synth import export as exporter
    from tests.test_failed_over_deploy import failed_over, normal, target_urns

    before = {r["urn"]: r for r in exporter.to_export(normal(stack))["deployment"]["resources"]}
    after = {r["urn"]: r for r in exporter.to_export(failed_over(stack))["deployment"]["resources"]}
    targets = target_urns(stack)
    assert not (gone := [u for u in targets if u not in after]), gone
    created = sorted(u for u in targets if u not in before)
    assert created == sorted(u for u in after if u not in before), created  # every create, targeted
    assert created and all("PostgresDr$" in u and "-replica-master" in u for u in created), created


def test_the_where_step_refuses_an_active_region_settings_would_refuse(checkout):
    document = yaml.safe_load((ROOT / "Pulumi.stage.yaml").read_text())
    document["config"]["intelgraph-platform:dr"]["activeRegion"] = "us-west-2"
    (checkout / "Pulumi.stage.yaml").write_text(yaml.safe_dump(document))
    job = load("_pulumi.yml")["jobs"]["where"]
    env = {k: str(resolve(v, {"inputs": {"stack": "stage", "runs-on": '"ubuntu-24.04"'}, "vars": {},
                                  "github": {"workspace": str(checkout)}}) or "") for k, v in job["env"].items()}
    result = _bash(_step(job, "Active region")["run"], checkout, {**env, "GITHUB_OUTPUT": str(checkout / "x")})
    assert result.returncode == 2
    assert "intelgraph-platform:dr.activeRegion must be one of primary, dr (got 'us-west-2')" in result.stderr


def test_dev_compiles_our_modules_checked_by_hash_and_leaves_a_broken_one_to_its_import(tmp_path):
    """./dev compiles our modules (compile_sources) so no synth compiles them again. Each .pyc must
    be checked against its source's hash at import (PEP 552 flags 0b11: a timestamp .pyc misses an
    edit of the same size within the same second), and a module that does not compile must not
    stop ./dev silently (compileall exits 1; under `set -e` the job died with no message)."""
    import shutil

    functions = re.search(r"^compile_sources\(\) \{\n.*?^\}\n", (ROOT / "dev").read_text(), re.M | re.S)
    assert functions is not None
    checkout = tmp_path / "repo"
    for package in ("benchmarks", "components", "helpers", "ops", "policy/guardrails", "settings", "synth"):
        (checkout / package).mkdir(parents=True)
        (checkout / package / "fine.py").write_text("VALUE = 1\n")
    (checkout / "synth" / "broken.py").write_text("def (:\n")
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    result = subprocess.run([shutil.which("bash") or "bash", "-c", f"set -euo pipefail\n{functions.group(0)}compile_sources"],
                            cwd=checkout, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "broken.py" in result.stdout and "SyntaxError" in result.stdout  # said, and left to the import
    compiled = sorted(checkout.glob("*/**/__pycache__/fine.*.pyc"))
    assert len(compiled) == 7
    assert {int.from_bytes(path.read_bytes()[4:8], "little") for path in compiled} == {0b11}  # checked hash
