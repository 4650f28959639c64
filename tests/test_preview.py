"""A new stack's first preview: every value a provider computes (ids, ARNs, random names) is
unknown, and the engine hands the pack the sentinel 04da6b54-80e4-46f7-96ec-b56ff0331ba9 (pulumi
sdk/python pulumi/runtime/rpc.py UNKNOWN; pulumi_policy proxy.py). A rule that only decides at
`pulumi up` catches a violation after the resource exists, so rules decide from what a preview
knows: the resource a value comes from (property dependencies), URNs and parents."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from pulumi.runtime.rpc import UNKNOWN

from synth import engine, export, policy_runner
from tests.conftest import ROOT
from tests.test_policy_pack import entry


@pytest.fixture(scope="module")
def previews() -> dict[str, dict]:
    return {s: export.to_export(engine.synthesize(s, preview=True), show_secrets=True) for s in ("prod", "stage")}


def test_a_first_preview_knows_only_inputs(previews):
    replica = entry(previews["prod"], "intelgraph-pg-replica", ":Instance")
    assert replica["inputs"]["replicateSourceDb"] == UNKNOWN  # the primary's ARN


def test_a_bucket_policy_is_known_text_at_a_first_preview(previews):
    """The bucket's `arn` is computed (unknown), but an account regional name is known from config,
    so the TLS-only policy built from it is text the pack reads. A policy built from `bucket.arn`
    stays unknown even as an object: the provider's Check turns a policy document holding an
    unknown into one unknown string (pulumi-terraform-bridge TransformJSONDocument)."""
    bucket = entry(previews["prod"], "neo4j-backups", ":Bucket")
    assert bucket["outputs"]["arn"] == UNKNOWN
    name = bucket["inputs"]["bucket"]
    assert name.endswith("-us-east-1-an") and bucket["inputs"]["bucketNamespace"] == "account-regional"
    policy = json.loads(entry(previews["prod"], "neo4j-backups-tls-only", ":BucketPolicy")["inputs"]["policy"])
    assert policy["Statement"][0]["Resource"] == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]


@pytest.mark.parametrize("stack", ["prod", "stage"])
def test_every_judgement_decides_at_a_first_preview(previews, stack):
    report = policy_runner.evaluate(previews[stack], stack)
    assert [(p, f.urn, f.message) for p, f in report.undecided] == []
    assert report.mandatory_violations == []


PREVIEW_BREAKS = [
    ("route53-primary-health-check", "api-failover-primary", ":Record", lambda e: e["inputs"].pop("healthCheckId")),
    ("rds-encrypted-customer-key", "intelgraph-pg-replica", ":Instance", lambda e: e["inputs"].pop("kmsKeyId")),
    # the replica is recognised by the primary it comes from, while that primary's ARN is unknown
    ("dr-replica-cross-region", "intelgraph-pg-replica", ":Instance", lambda e: e["outputs"].update(region="us-east-1")),
    ("s3-backup-replicated", "neo4j-backups-replication", ":BucketReplicationConfig",
     lambda e: e["outputs"]["rules"][0].update(status="Disabled")),
    ("s3-backup-object-lock", "neo4j-backups-object-lock", ":BucketObjectLockConfiguration",
     lambda e: e.update(type="aws:s3/other:Other")),
    ("s3-bucket-fully-hardened", "logs-backups-versioning", ":BucketVersioning",
     lambda e: e.update(type="aws:s3/other:Other")),
    # the Secret's data is unknown as a whole; where it comes from is known
    ("k8s-secret-generated", "redis-password", ":RandomPassword", lambda e: e.update(type="aws:iam/accessKey:AccessKey")),
    # the edge: the Ingress's TLS policy is known text, the WebACL's rules are its inputs
    ("alb-tls12-policy", "api", ":Ingress",
     lambda e: e["inputs"]["metadata"]["annotations"].pop("alb.ingress.kubernetes.io/ssl-policy")),
    ("waf-acl-blocks", "api-acl", ":WebAcl",
     lambda e: [rule.update({"overrideAction" if "overrideAction" in rule else "action": {"count": {}}})
                for rule in e["outputs"]["rules"]]),
]


@pytest.mark.parametrize("rule,name,suffix,mutate", PREVIEW_BREAKS, ids=[b[0] for b in PREVIEW_BREAKS])
def test_a_violation_is_caught_at_preview_not_after_up(previews, rule, name, suffix, mutate):
    broken = copy.deepcopy(previews["prod"])
    mutate(entry(broken, name, suffix))
    report = policy_runner.evaluate(broken, "prod")
    assert rule in {p for p, _ in report.mandatory_violations}, report.undecided


def test_an_unknown_object_around_a_value_proves_nothing(previews):
    """An unknown WebACL ARN is an attached WebACL; unknown annotations may hold none at all."""
    broken = copy.deepcopy(previews["prod"])
    ingress = entry(broken, "api", ":Ingress")
    assert ingress["inputs"]["metadata"]["annotations"]["alb.ingress.kubernetes.io/wafv2-acl-arn"] == UNKNOWN
    ingress["inputs"]["metadata"]["annotations"] = UNKNOWN
    report = policy_runner.evaluate(broken, "prod")
    assert ("k8s-ingress-waf", ingress["urn"]) in {(p, f.urn) for p, f in report.undecided}


def test_a_first_preview_reaches_the_same_verdict_under_the_engine(previews):
    """The pack run as the engine runs a preview (PULUMI_DRY_RUN=true) on the preview export."""
    from tests.pulumi_engine import PolicyPackProcess
    from tests.test_policy_engine import SECRETS_WITH_GENERATED_DATA, assert_same_verdict

    with PolicyPackProcess("prod", engine.stack_config("prod"), dry_run=True) as pack:
        _, under_engine = assert_same_verdict(pack, previews["prod"], "prod")
    assert under_engine.undecided == set()
    secrets = {(p, u.rsplit("::", 1)[-1]) for p, u, _ in under_engine.not_applicable}
    assert secrets == {(rule, name) for rule in ("k8s-secret-no-aws-keys", "k8s-secret-no-placeholders")
                       for name in SECRETS_WITH_GENERATED_DATA}


def test_synth_preview_passes_when_every_judgement_decides(tmp_path):
    result = subprocess.run([sys.executable, "-m", "synth", "--stack", "prod", "--preview", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cannot decide" not in result.stdout
    assert (tmp_path / "stack.json").is_file() and (tmp_path / "policy-report.json").is_file()


def test_synth_preview_reports_what_cannot_decide_and_fails(tmp_path, monkeypatch, capsys):
    """A bucket policy built from the computed ARN (what the program did before) cannot decide."""
    import synth.__main__ as cli
    from components import backup_bucket

    monkeypatch.setattr(backup_bucket, "tls_only_policy", lambda arn, extra=(): UNKNOWN)
    assert cli.main(["--stack", "prod", "--preview", "--out", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert "4 judgements cannot decide" in out and "[cannot decide] s3-tls-only on neo4j-backups-tls-only" in out

