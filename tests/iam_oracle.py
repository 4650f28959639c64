"""What IAM action each AWS call a runbook makes is authorized as, and a recorder of those calls.

A runbook's --help lists the IAM actions it needs (ops._common.Permissions). The tests run each
runbook against moto with a botocore event hook on the default session (every ``boto3.client`` the
runbooks create is that session's), map each call to its IAM action and compare: every call is
listed, and every listed action that is not ``implied`` was called. The hook is
``before-parameter-build``, which botocore emits for every call just before ``before-call``: a test
that answers an operation itself from a ``before-call`` handler (tests/test_preflight.py ``answer``)
stops the ``before-call`` chain, not this one.

The action of an API call is mostly ``<service>:<Operation>``; S3 is where they differ (Service
Authorization Reference, "Actions defined by Amazon S3": HeadObject and GetObject are s3:GetObject,
ListObjectsV2 is s3:ListBucket, the bucket-configuration calls have their own names).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import boto3

from ops._common import Permissions

S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "GetBucketReplication": "s3:GetReplicationConfiguration",
    "PutBucketReplication": "s3:PutReplicationConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
}


def iam_action(service: str, operation: str) -> str:
    if service == "s3":
        return S3_ACTIONS.get(operation, f"s3:{operation}")
    return f"{service}:{operation}"


@contextlib.contextmanager
def recorded(monkeypatch) -> Iterator[set[str]]:
    """The IAM actions of every call made through boto3's default session inside the block."""
    calls: set[str] = set()

    def record(model, **_) -> None:  # (params, model, context)
        calls.add(iam_action(model.service_model.service_name, model.name))

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-parameter-build", record)
    yield calls


def assert_exactly_covered(permissions: Permissions, calls: set[str]) -> None:
    listed = permissions.actions | set(permissions.unpermissioned)
    called_not_listed = calls - listed
    assert not called_not_listed, f"called but not in --help: {sorted(called_not_listed)}"
    direct = {a for g in permissions.grants if not g.implied for a in g.actions} | set(permissions.unpermissioned)
    listed_not_called = direct - calls
    assert not listed_not_called, f"in --help but never called (mark it implied, or drop it): {sorted(listed_not_called)}"


def help_lists(module, permissions: Permissions, capsys) -> None:
    """--help prints every action of ``permissions``, one per line."""
    import pytest

    with pytest.raises(SystemExit):
        module.main(["--help"])
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.split("IAM actions this command needs", 1)[1].splitlines()[1:] if line.strip()}
    assert listed == permissions.actions | set(permissions.unpermissioned)
