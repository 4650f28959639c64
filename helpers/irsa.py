"""IRSA: an IAM role that exactly the named Kubernetes service accounts may assume, and those
service accounts. Pods get short-lived credentials from the EKS OIDC provider; no AWS keys exist
anywhere in the cluster."""

from __future__ import annotations

import json
from typing import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s


def trust_policy(oidc_provider_arn: str, oidc_issuer: str, subjects: Sequence[tuple[str, str]]) -> dict:
    """Trust for AssumeRoleWithWebIdentity from ``(namespace, service account)`` pairs only."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{oidc_issuer}:aud": "sts.amazonaws.com",
                f"{oidc_issuer}:sub": [f"system:serviceaccount:{ns}:{sa}" for ns, sa in subjects],
            }},
        }],
    }


def irsa_role(
    name: str,
    *,
    oidc_provider_arn: str,
    oidc_issuer: str,
    subjects: Sequence[tuple[str, str]],
    policy: pulumi.Input[str],
    description: str,
    opts: pulumi.ResourceOptions,
    api_token: bool = False,
    name_by_account: bool = False,
) -> tuple[aws.iam.Role, list[k8s.core.v1.ServiceAccount]]:
    """The role, its inline policy, and one annotated ServiceAccount per subject. ``api_token``:
    the pods also call the Kubernetes API (a Neo4j server's discovery), so the account's API token
    is mounted; otherwise it is not. ``name_by_account``: each account's resource is named after
    its namespace and account, so a role serving several accounts of one namespace (or a varying
    set of them) keeps every account's URN; otherwise after the namespace alone, as the accounts
    deployed before it are."""
    role = aws.iam.Role(
        name,
        description=description,
        assume_role_policy=json.dumps(trust_policy(oidc_provider_arn, oidc_issuer, subjects)),
        max_session_duration=3600,
        opts=opts,
    )
    aws.iam.RolePolicy(name, role=role.id, policy=policy, opts=opts)
    accounts = [
        k8s.core.v1.ServiceAccount(
            f"{name}-{namespace}-{account}" if name_by_account else f"{name}-{namespace}",
            metadata={
                "name": account,
                "namespace": namespace,
                "annotations": {
                    "eks.amazonaws.com/role-arn": role.arn,
                    "eks.amazonaws.com/sts-regional-endpoints": "true",
                },
            },
            # IRSA mounts its own projected web-identity token; the Kubernetes API token only where
            # the pods call the API
            automount_service_account_token=api_token,
            opts=opts,
        )
        for namespace, account in subjects
    ]
    return role, accounts
