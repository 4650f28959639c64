"""The contract test of the policy pack: the pack runs exactly as the Pulumi engine runs it
(tests/pulumi_engine.py names the engine sources), and `synth check` must reach the same verdict
on every case - the real stacks, broken copies, secrets, unknowns, waivers and pack configs.

Facts this rests on (pulumi/pulumi and pulumi/pulumi-policy):
* Analyze judges a resource's inputs, AnalyzeStack every resource's outputs (step_generator.go).
* Secrets reach the pack decrypted; numbers arrive as doubles (protobuf Struct), so a rule sees
  14.0 where the export says 14 (analyzer_plugin.go MarshalProperties KeepSecrets).
* A value unknown during preview is the sentinel 04da6b54-80e4-46f7-96ec-b56ff0331ba9; the Python
  SDK answers "can't run policy ... during preview" as an advisory diagnostic (pulumi_policy
  policy.py Analyze).
* The config is reconciled and validated before Configure; an invalid one stops the run
  (pkg/resource/analyzer/config.go).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from synth import engine, export, policy_runner
from tests.conftest import ROOT, synthesized
from tests.pulumi_engine import POLICY_DIR, PolicyPackProcess, Refused
from tests.test_policy_pack import BREAKS, entry

STACKS = ("prod", "stage")


@pytest.fixture(scope="module")
def exports() -> dict[str, dict]:
    """The real stacks as `pulumi stack export --show-secrets` would write them."""
    return {s: export.to_export(synthesized(s), show_secrets=True) for s in STACKS}


@pytest.fixture(scope="module")
def packs():
    started = {s: PolicyPackProcess(s, engine.stack_config(s)) for s in STACKS}
    yield started
    for pack in started.values():
        pack.close()


def synth_verdict(report: policy_runner.Report) -> tuple[set, set, set]:
    level = {"remediate": "mandatory"}
    violations = {(v.policy, level.get(v.level, v.level), f.urn, f.message) for v in report.verdicts for f in v.violations}
    undecided = {(v.policy, f.urn, f.message) for v in report.verdicts for f in v.cannot_tell}
    waived = {(v.policy, f.urn, f.message) for v in report.verdicts if v.kind == "resource"
              for f in (*v.waived, *v.not_applicable)}  # the engine hears "not applicable" for both
    return violations, undecided, waived


def assert_same_verdict(pack: PolicyPackProcess, document: dict, stack: str, config: dict | None = None):
    config = policy_runner.pack_config(stack) if config is None else config
    under_engine = pack.run(document, config)
    report = policy_runner.evaluate(document, stack, config=config)
    violations, undecided, waived = synth_verdict(report)
    assert violations == under_engine.violations
    assert undecided == under_engine.undecided
    assert waived == under_engine.not_applicable
    assert bool(report.mandatory_violations) == under_engine.fails
    return report, under_engine


@pytest.mark.parametrize("stack", STACKS)
def test_the_real_stacks_reach_the_same_verdict_under_the_engine(packs, exports, stack):
    report, under_engine = assert_same_verdict(packs[stack], exports[stack], stack)
    assert not under_engine.fails and under_engine.undecided == set()
    if stack == "stage":  # the prod-only rules are advisory there, and do fire
        assert {p for p, level, _, _ in under_engine.violations if level == "advisory"} == {
            "rds-deletion-protection", "rds-multi-az", "s3-backup-object-lock"}


CASES = ["rds-backup-retention", "dr-replica-cross-region", "neo4j-min-primaries", "dr-budget-within-targets",
         "k8s-cronjob-bounded", "s3-backup-replicated", "k8s-image-pinned", "s3-sse-kms-customer-key",
         "k8s-netpol-no-internet-egress", "k8s-namespace-default-deny", "route53-primary-health-check",
         "s3-bucket-fully-hardened", "k8s-secret-generated", "edge-waf"]


@pytest.mark.parametrize("rule", CASES)
def test_a_broken_copy_fails_both_ways_with_the_same_message(packs, exports, rule):
    """Numbers as floats (retention days, quorum, seconds), stack rules on outputs."""
    [(_, name, suffix, mutate, words)] = [b for b in BREAKS if b[0] == rule]
    broken = copy.deepcopy(exports["prod"])
    mutate(entry(broken, name, suffix))
    report, under_engine = assert_same_verdict(packs["prod"], broken, "prod")
    assert under_engine.fails
    assert any(p == rule and words in m for p, _, _, m in under_engine.violations), under_engine.violations


def test_a_secret_is_judged_by_its_value_as_the_engine_decrypts_it(packs, exports):
    """A placeholder inside a secret Secret: the engine shows it to the pack; synth check too."""
    broken = copy.deepcopy(exports["prod"])
    secret = entry(broken, "redis-auth", ":Secret")
    marker = secret["inputs"]["stringData"]
    assert "plaintext" in marker, marker  # the Secret's data is a Pulumi secret
    marker["plaintext"] = json.dumps({"password": "<ssm:redis/password>"})
    _, under_engine = assert_same_verdict(packs["prod"], broken, "prod")
    assert ("k8s-secret-no-placeholders", "mandatory", secret["urn"],
            "Secret key password holds a placeholder, not a secret; feed it from a generated secret.") \
        in under_engine.violations


# every Secret whose data comes from a generated password: the stores' own, the handover to the
# app-user Job, and the application's copies in its namespace (helpers/neo4j_password.py, RedisCache)
# the primary tier's, and the DR tier's copies (its components are named '<component>-dr')
_PRIMARY_SECRETS = ("redis-auth", "neo4j-auth", "redis-client", "neo4j-client", "neo4j-app-user-0")
SECRETS_WITH_GENERATED_DATA = (*_PRIMARY_SECRETS, *(re.sub(r"^(redis|neo4j)-", r"\1-dr-", n) for n in _PRIMARY_SECRETS))


def test_an_encrypted_secret_cannot_decide_and_says_how_to_export(packs):
    """A plain `pulumi stack export` keeps secrets encrypted: synth check cannot read them, while
    the engine could - so it says "cannot decide" and names --show-secrets, never a pass."""
    report = policy_runner.evaluate(export.to_export(synthesized("prod")), "prod")
    undecided = {(p, f.urn.rsplit("::", 1)[-1]): f.message for p, f in report.undecided}
    assert set(undecided) == {(rule, name) for rule in ("k8s-secret-no-aws-keys", "k8s-secret-no-placeholders")
                              for name in SECRETS_WITH_GENERATED_DATA}
    assert all("--show-secrets" in m for m in undecided.values())


def test_unknown_values_decide_alike_in_both(packs, exports):
    """An unknown key ARN is still a key (it decides); an unknown policy document cannot decide."""
    broken = copy.deepcopy(exports["prod"])
    primary = entry(broken, "intelgraph-pg-primary", ":Instance")
    primary["inputs"]["kmsKeyId"] = UNKNOWN_STRING_VALUE
    tls = entry(broken, "neo4j-backups-tls-only", ":BucketPolicy")
    tls["inputs"]["policy"] = UNKNOWN_STRING_VALUE
    stack = broken["deployment"]["resources"][0]
    stack["outputs"]["drBudget"] = UNKNOWN_STRING_VALUE
    _, under_engine = assert_same_verdict(packs["prod"], broken, "prod")
    assert under_engine.undecided == {
        ("s3-tls-only", tls["urn"], "string value at .policy can't be known during preview"),
        ("dr-budget-within-targets", None, "string value at .drBudget can't be known during preview")}
    assert not under_engine.fails


@pytest.mark.parametrize("config", [
    {"all": "advisory"},  # every rule relaxed: nothing mandatory, the same advisories
    {"rds-backup-retention": {"minimumDays": 30}},  # a setting over its default
    {"all": "mandatory", "rds-multi-az": "disabled"},
])
def test_pack_configs_reconcile_as_the_engine_does(packs, exports, config):
    broken = copy.deepcopy(exports["prod"])
    entry(broken, "intelgraph-pg-primary", ":Instance")["inputs"].update(multiAz=False, backupRetentionPeriod=20)
    assert_same_verdict(packs["prod"], broken, "prod", config)


@pytest.mark.parametrize("config,words", [
    ({"rds-backup-retention": {"minimumDays": "14"}}, "minimumDays"),  # a string, the schema says integer
    ({"rds-backup-retention": {"minimumDays": 0}}, "minimum"),  # below the schema's minimum
    ({"rds-multi-az": "strict"}, "not a valid enforcement level"),
    ({"rds-multi-az": 3}, "must be"),
    ({"rds-multi-az": {"enforcementLevel": 5}}, "not a valid enforcement level"),
    ([["rds-multi-az", "advisory"]], "must be a JSON object"),
])
def test_a_config_the_engine_refuses_exits_2_with_the_reason(packs, exports, tmp_path, config, words):
    if isinstance(config, dict):  # the CLI refuses a non-object file before the engine sees it
        with pytest.raises(Refused):
            packs["prod"].reconcile(config)
    (tmp_path / "stack.json").write_text(json.dumps(exports["prod"]))
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "-m", "synth", "check", str(tmp_path / "stack.json"),
                             "--policy-pack-config", str(tmp_path / "config.json")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr


def test_misspelt_names_are_refused_though_the_engine_would_ignore_them(exports):
    for config in ({"rds-multi-azz": "advisory"}, {"rds-backup-retention": {"minimumDayz": 3}},
                   {"all": {"enforcementLevel": "advisory", "minimumDays": 3}}):
        with pytest.raises(policy_runner.ConfigError):
            policy_runner.evaluate(exports["prod"], config=config)


@pytest.fixture(scope="module")
def waived_pack(tmp_path_factory):
    """The pack with an exception in force (its own exceptions.yaml), launched as the engine would."""
    pack_dir = tmp_path_factory.mktemp("pack") / "policy"
    shutil.copytree(POLICY_DIR, pack_dir, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    (pack_dir / "venv").symlink_to(POLICY_DIR / "venv")
    (pack_dir / "exceptions.yaml").write_text(json.dumps({"exceptions": [
        {"policy": "rds-multi-az", "resource": "intelgraph-pg-primary", "approver": "platform-lead@intelgraph.example.com",
         "reason": "single-AZ during the storage migration", "expires": "2099-12-31"},
        {"policy": "k8s-image-pinned", "resource": "no-such-workload", "approver": "platform-lead@intelgraph.example.com",
         "reason": "a stale entry that names nothing", "expires": "2099-12-31"}]}))
    pack = PolicyPackProcess("prod", engine.stack_config("prod"), pack_dir=pack_dir)
    yield pack, pack_dir / "exceptions.yaml"
    pack.close()


def test_a_waiver_shows_in_the_real_preview(waived_pack, exports, monkeypatch):
    from policy.guardrails import exceptions as policy_exceptions

    pack, path = waived_pack
    broken = copy.deepcopy(exports["prod"])
    primary = entry(broken, "intelgraph-pg-primary", ":Instance")
    primary["inputs"]["multiAz"] = False
    monkeypatch.setattr(policy_exceptions, "FILE", path)  # the offline runner reads the same file
    _, under_engine = assert_same_verdict(pack, broken, "prod")
    assert not under_engine.fails
    [(policy, urn, reason)] = under_engine.not_applicable
    assert (policy, urn) == ("rds-multi-az", primary["urn"]) and "until 2099-12-31" in reason
    shown = {(p, level, u) for p, level, u, _ in under_engine.violations}
    assert ("policy-exceptions-in-use", "advisory", primary["urn"]) in shown  # visible in the preview
    assert any("matches no resource" in m for p, _, _, m in under_engine.violations if p == "policy-exceptions-in-use")


def test_the_pack_keeps_no_state_between_runs(waived_pack, exports):
    """One engine process judges many previews (or, in tests, many cases): a second run's
    verdict must not carry the first run's waivers."""
    pack, _ = waived_pack
    first = pack.run(exports["prod"], policy_runner.pack_config("prod"))
    second = pack.run(exports["prod"], policy_runner.pack_config("prod"))
    assert first.violations == second.violations and first.not_applicable == second.not_applicable == set()


def test_the_engine_runs_the_pack_from_its_own_venv():
    """PulumiPolicy.yaml names the venv the engine uses; ./dev creates it from the pinned file."""
    import yaml

    options = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())["runtime"]["options"]
    assert options["virtualenv"] == "venv"
    python = POLICY_DIR / "venv" / "bin" / "python"
    pins = [line for line in (POLICY_DIR / "requirements.txt").read_text().splitlines() if "==" in line]
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, timeout=60).stdout
    assert all(pin.lower() in frozen.lower().replace("_", "-") for pin in pins), (pins, frozen)
    assert Path(ROOT / "dev").read_text().count("setup_policy_venv") >= 3
