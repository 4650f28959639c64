"""S3 guardrails: each rule passes the real stacks, fails a realistic bad case, and treats a
value unknown during preview as "cannot tell yet"."""

from __future__ import annotations

import json

import pytest
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE

from policy.guardrails import s3
from synth import policy_runner

BUCKET_NAME = "intelgraph-prod-neo4j-backups-481236059412-us-east-1-an"
ARN = f"arn:aws:s3:::{BUCKET_NAME}"
KEY = "arn:aws:kms:us-east-1:481236059412:key/d275d6ba-455a-4128-810b-d4e232a2543b"


def one(type_: str, inputs: dict, name: str = "subject") -> dict:
    return {"version": 3, "deployment": {"resources": [{
        "urn": f"urn:pulumi:prod::intelgraph-platform::{type_}::{name}", "custom": True, "id": name,
        "type": type_, "inputs": inputs, "outputs": {}}]}}


def verdict(document: dict, rule) -> policy_runner.Verdict:
    [result] = policy_runner.evaluate(document, policies=[rule], config={}).verdicts
    return result


GOOD_SSE = {"bucket": BUCKET_NAME, "rules": [{"applyServerSideEncryptionByDefault": {
    "sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}, "bucketKeyEnabled": True}]}
GOOD_POLICY = {"bucket": BUCKET_NAME, "policy": json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [ARN, f"{ARN}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})}
GOOD_LIFECYCLE = {"bucket": BUCKET_NAME, "rules": [{
    "id": "r", "status": "Enabled", "expiration": {"days": 90},
    "noncurrentVersionExpiration": {"noncurrentDays": 30}}]}
GOOD_BLOCK = {"bucket": BUCKET_NAME, **{flag: True for flag in s3.PUBLIC_ACCESS_FLAGS}}

CASES = [
    # rule, resource type, good inputs, bad inputs, words in the message
    (s3.account_regional, s3.BUCKET, {"bucket": BUCKET_NAME, "bucketNamespace": "account-regional"},
     {"bucket": "intelgraph-prod-neo4j-backups-ae6dc970", "bucketNamespace": "global"}, "'account-regional'"),
    (s3.sse_kms, s3.ENCRYPTION, GOOD_SSE,
     {**GOOD_SSE, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"},
                             "bucketKeyEnabled": True}]}, "set it to 'aws:kms'"),
    (s3.sse_kms, s3.ENCRYPTION, GOOD_SSE,
     {**GOOD_SSE, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"},
                             "bucketKeyEnabled": True}]}, "customer-managed KMS key"),
    (s3.sse_kms, s3.ENCRYPTION, GOOD_SSE,
     {**GOOD_SSE, "rules": [{**GOOD_SSE["rules"][0], "bucketKeyEnabled": False}]}, "bucketKeyEnabled: true"),
    (s3.versioning, s3.VERSIONING, {"bucket": BUCKET_NAME, "versioningConfiguration": {"status": "Enabled"}},
     {"bucket": BUCKET_NAME, "versioningConfiguration": {"status": "Suspended"}}, "set it to 'Enabled'"),
    # each of the four blocks, off or unset
    *[(s3.public_access, s3.PUBLIC_ACCESS, GOOD_BLOCK, {**GOOD_BLOCK, flag: False}, f"Set {flag} to true")
      for flag in s3.PUBLIC_ACCESS_FLAGS],
    (s3.public_access, s3.PUBLIC_ACCESS, GOOD_BLOCK,
     {k: v for k, v in GOOD_BLOCK.items() if k != "restrictPublicBuckets"}, "Set restrictPublicBuckets to true"),
    (s3.sse_kms, s3.ENCRYPTION, GOOD_SSE,  # unset is off (S3 API: BucketKeyEnabled defaults to false)
     {**GOOD_SSE, "rules": [{"applyServerSideEncryptionByDefault": GOOD_SSE["rules"][0][
         "applyServerSideEncryptionByDefault"]}]}, "bucketKeyEnabled: true"),
    (s3.lifecycle, s3.LIFECYCLE, GOOD_LIFECYCLE,  # a disabled rule expires nothing
     {"bucket": BUCKET_NAME, "rules": [{"id": "r", "status": "Enabled", "expiration": {"days": 90}},
                                       {"id": "old", "status": "Disabled",
                                        "noncurrentVersionExpiration": {"noncurrentDays": 30}}]},
     "noncurrentVersionExpiration.noncurrentDays"),
    (s3.tls_only, s3.POLICY, GOOD_POLICY,
     {"bucket": BUCKET_NAME, "policy": json.dumps({"Version": "2012-10-17", "Statement": [{
         "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::481236059412:root"},
         "Action": "s3:GetObject", "Resource": f"{ARN}/*"}]})}, "aws:SecureTransport"),
    (s3.lifecycle, s3.LIFECYCLE, GOOD_LIFECYCLE,
     {"bucket": BUCKET_NAME, "rules": [{"id": "r", "status": "Enabled",
                                        "transitions": [{"days": 30, "storageClass": "GLACIER"}]}]},
     "expiration.days"),
]


@pytest.mark.parametrize("rule,type_,good,bad,words", CASES, ids=[f"{c[0].name}-{i}" for i, c in enumerate(CASES)])
def test_rule_passes_good_and_fails_bad_with_the_fix_in_the_message(rule, type_, good, bad, words):
    passing = verdict(one(type_, good), rule)
    assert passing.evaluated == 1 and passing.violations == []
    failing = verdict(one(type_, bad), rule)
    assert failing.violations, f"{rule.name} accepted {bad}"
    assert any(words in v.message for v in failing.violations), failing.violations


def test_rules_ignore_other_resource_types():
    result = verdict(one("aws:kms/key:Key", {"description": "x"}), s3.versioning)
    assert result.evaluated == 0 and result.violations == []  # ignored is not judged


def test_unknown_value_during_preview_is_cannot_tell_not_a_pass_or_crash():
    document = one(s3.PUBLIC_ACCESS, {**GOOD_BLOCK, "blockPublicAcls": UNKNOWN_BOOLEAN_VALUE})
    result = verdict(document, s3.public_access)
    assert result.violations == [] and result.evaluated == 0
    assert "can't be known during preview" in result.cannot_tell[0].message
    policy_doc = one(s3.POLICY, {"bucket": BUCKET_NAME, "policy": UNKNOWN_STRING_VALUE})
    assert verdict(policy_doc, s3.tls_only).cannot_tell


def test_stack_rule_finds_a_bucket_missing_its_hardening():
    document = one(s3.BUCKET, {"bucket": BUCKET_NAME}, name="naked")
    document["deployment"]["resources"].append(one(s3.VERSIONING, {
        "bucket": BUCKET_NAME, "versioningConfiguration": {"status": "Enabled"}})["deployment"]["resources"][0])
    [violation] = verdict(document, s3.bucket_hardened).violations
    assert violation.urn.endswith("::naked")
    assert "BucketPublicAccessBlock" in violation.message and "BucketVersioning" not in violation.message


def test_pack_config_can_relax_a_rule_to_advisory():
    document = one(s3.VERSIONING, {"bucket": BUCKET_NAME, "versioningConfiguration": {"status": "Suspended"}})
    report = policy_runner.evaluate(document, policies=[s3.versioning],
                                    config={"s3-versioning-enabled": "advisory"})
    assert report.mandatory_violations == [] and len(report.advisory_violations) == 1
