"""Key policies: every customer key the stack creates starts from the same statement."""

from __future__ import annotations


def key_policy(account_id: str, *service_statements: dict) -> dict:
    """A key policy whose first statement leaves administration of the key to IAM in this account
    (the key policy AWS KMS itself creates by default, "Default key policy"), followed by the grants
    to the AWS services that use the key."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AccountAdministersKeyThroughIam", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}, "Action": "kms:*", "Resource": "*"},
            *service_statements,
        ],
    }
