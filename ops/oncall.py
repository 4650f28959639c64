"""The on-call role's permissions: exactly the IAM actions the DR runbooks list in their --help,
each on the stack's own resources, resolved from the runbook outputs (the document every deploy
writes into the DR region: __main__.py). docs/decisions/022.

Which runbooks: the ones an incident needs, ``dr_readiness``, ``region_switch`` (runs the ARC
Region switch plan and assumes its approval role, the only role that role trusts) and ``dr_promote``
(the fallback). The PITR rehearsal
runs as its Job (its own IRSA role); the major upgrade, the preflight and the state-backend
bootstrap are run by whoever deploys, with the deployer's rights.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, Optional

from ops import dr_promote, dr_readiness, region_switch
from ops._common import Permissions, parameter_arn

ON_CALL: tuple[ModuleType, ...] = (dr_readiness, region_switch, dr_promote)
ROLE_SESSION_SECONDS = 3600  # IAM's default for a role; an incident's engineer re-assumes it


def role_name(stack: str) -> str:
    return f"intelgraph-{stack}-oncall"


def role_arn(account: str, stack: str) -> str:
    return f"arn:aws:iam::{account}:role/{role_name(stack)}"


def permissions() -> list[Permissions]:
    return [module.IAM for module in ON_CALL]


def _resources(kind: str, doc: dict) -> tuple[list[str], Optional[dict]]:
    """The ARNs a resource kind (ops._common.RESOURCES) names in this stack, and a condition."""
    aws, pg = doc["aws"], doc["postgres"]
    account, dr = aws["accountId"], aws["drRegion"]
    buckets = [b["bucket"] for _, b in sorted(doc["backupBuckets"].items())]
    if kind == "*":
        return ["*"], None
    if kind == "outputs-parameter":
        return [parameter_arn(dr, account, aws["runbookOutputsParameter"])], None
    # each region's instance whatever it does (postgres.instanceArns): the writer and its replica
    # trade places at a failover, and IAM's control plane (us-east-1) may be down then, so the
    # policy must not change (docs/decisions/018-active-region-is-state.md)
    if kind == "databases":
        return [pg["instanceArns"]["primary"], pg["instanceArns"]["dr"]], None
    if kind == "master-secrets":
        # one secret per writer, named after it (components/postgres_dr.py), homed in the writer's
        # region and copied to the other while it has a replica: the copy ops.dr_promote checks is
        # in the DR region at a failover and in the primary region on the way back. A name pattern
        # in both regions, so that no failover or rebuild changes this policy.
        return [f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_name_pattern(pg)}"
                for region in (aws["primaryRegion"], dr)], None
    if kind == "health-check":
        return [f"arn:aws:route53:::healthcheck/{doc['dnsFailover']['healthCheckId']}"], None
    if kind == "region-switch-plan":
        return [doc["regionSwitch"]["planArn"]], None
    if kind == "region-switch-approval-role":
        return [doc["regionSwitch"]["approvalRoleArn"]], None
    if kind == "backup-buckets":
        return [f"arn:aws:s3:::{b}" for b in buckets], None
    if kind == "backup-objects":
        return [f"arn:aws:s3:::{b}/*" for b in buckets], None
    raise ValueError(f"no on-call resources for {kind!r}: only the on-call runbooks' kinds resolve here")


def secret_name_pattern(pg: dict) -> str:
    """The master secrets' names, as an IAM resource pattern: ``<base>-master`` for generation 1's
    writer and ``<instance>-master`` for any other (``<base>-replica-master``,
    ``<base>-primary-g2-master``, ...), then "the final hyphen and six random characters that
    Secrets Manager adds at the end of the ARN" (Secrets Manager API Reference, ``SecretId``),
    matched with IAM's one-character wildcard ``?`` (IAM User Guide, "IAM JSON policy elements:
    Resource"). ``<base>``: the instances' common name, from the primary region's instance
    (``<base>-primary`` or ``<base>-primary-g<n>``)."""
    identifier = pg["instanceArns"]["primary"].rsplit(":", 1)[-1]
    base = re.sub(r"-primary(-g[0-9]+)?$", "", identifier)
    if base == identifier:
        raise ValueError(f"{identifier} is not named <base>-primary[-g<n>]: no secret pattern")
    return f"{base}-*master-??????"


def policy(doc: dict) -> dict:
    """One statement per resource kind (and its condition), with every action any on-call runbook
    needs on it, and nothing else."""
    grouped: dict[str, set[str]] = {}
    for permission in permissions():
        for grant in permission.grants:
            grouped.setdefault(grant.resource, set()).update(grant.actions)
    statements = []
    for kind, actions in grouped.items():
        resources, condition = _resources(kind, doc)
        statement: dict[str, Any] = {
            "Sid": "".join(part.title() for part in kind.replace("*", "any-resource").split("-")),
            "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
        if condition:
            statement["Condition"] = condition
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def trust_policy(account: str, permission_set: str) -> dict:
    """Assumable only from a session of the role IAM Identity Center creates for the permission set
    (its ARN: role/aws-reserved/sso.amazonaws.com/[<region>/]AWSReservedSSO_<name>_<suffix>), by
    sts:AssumeRole through the account: no IAM user, no access key. MFA is the identity provider's
    to enforce; aws:MultiFactorAuthPresent is absent from federated sessions, so requiring it here
    would lock the SSO users out (docs/decisions/022)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "OnCallPermissionSet", "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Condition": {"ArnLike": {"aws:PrincipalArn":
                                  f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/*"
                                  f"AWSReservedSSO_{permission_set}_*"}},
    }]}
