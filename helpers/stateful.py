"""Stateful resources: the types whose deletion by Pulumi destroys data, and the one stack
transformation that guards them all, wherever a component creates them.

Pulumi's `protect` makes the engine refuse any plan that deletes (or replaces) the resource until
an operator runs `pulumi state unprotect`; `retainOnDelete` makes a delete (also the delete half
of a replace) drop the resource from the state only, leaving it in AWS. Both are resource options
the engine keeps in the checkpoint (`pulumi stack export` shows `protect` / `retainOnDelete`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi


@dataclass(frozen=True)
class Stateful:
    why: str
    # Retaining an AWS resource leaves data behind for an operator; retaining a Helm release would
    # leave a running server nobody manages (its volume survives `helm uninstall` anyway: a
    # StatefulSet's claims are kept unless persistentVolumeClaimRetentionPolicy says Delete).
    retain_on_delete: bool = True
    # protect in prod; not where the program itself retires the resource (a rotated password)
    protect: bool = True


STATEFUL_TYPES: dict[str, Stateful] = {
    "aws:kms/key:Key": Stateful(
        "deleting schedules the key's deletion: everything encrypted with it (backups, the database) "
        "becomes unreadable"),
    "aws:s3/bucket:Bucket": Stateful("the backups themselves, and their DR-region replica"),
    "aws:rds/instance:Instance": Stateful("the database (primary or cross-Region replica)"),
    "aws:secretsmanager/secret:Secret": Stateful(
        "the database's master credentials: the only copy of the password the rotation function set"),
    "aws:rds/parameterGroup:ParameterGroup": Stateful(
        "RDS refuses to delete a parameter group an instance uses; a replace fails halfway"),
    "aws:rds/subnetGroup:SubnetGroup": Stateful(
        "RDS refuses to delete a subnet group an instance uses; a replace fails halfway"),
    "kubernetes:helm.sh/v3:Release": Stateful(
        "a Neo4j server: its data volume is named after the release, so a new release starts empty",
        retain_on_delete=False),
    # Nothing in the cloud to keep or lose, but a replacement (a ForceNew argument, a rename) is a
    # new password the servers and clients never saw: it flips credentials outside the rotation
    # (helpers/neo4j_password.py, helpers/redis_auth.py). Stateful, so `synth diff` asks for the
    # named approval; not protected, because a rotation retires the previous epoch's password.
    "random:index/randomPassword:RandomPassword": Stateful(
        "a generated credential (Neo4j, Redis, the database's bootstrap): a new one reaches no server "
        "or client without the rotation", retain_on_delete=False, protect=False),
}


def is_stateful(resource_type: str) -> bool:
    return resource_type in STATEFUL_TYPES


def guard(protect: bool):
    """A stack transformation: every stateful resource gets `retain_on_delete` (where it keeps
    data) and, when ``protect``, `protect`. Registered once in __main__.py, so a component added
    later is covered without remembering to."""

    def transformation(args: pulumi.ResourceTransformationArgs) -> Optional[pulumi.ResourceTransformationResult]:
        kind = STATEFUL_TYPES.get(args.type_)
        if kind is None:
            return None
        options = pulumi.ResourceOptions(protect=(protect and kind.protect) or None,
                                         retain_on_delete=kind.retain_on_delete or None)
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, options))

    return transformation
