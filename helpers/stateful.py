"""Stateful resources: the types whose deletion by Pulumi destroys data, and the one stack
transformation that guards them all, wherever a component creates them.

Pulumi's `protect` makes the engine refuse any plan that deletes (or replaces) the resource until
an operator runs `pulumi state unprotect`; `retainOnDelete` makes a delete (also the delete half
of a replace) drop the resource from the state only, leaving it in AWS. Both are resource options
the engine keeps in the checkpoint (`pulumi stack export` shows `protect` / `retainOnDelete`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

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
    # Retiring it (setting `retire`) hands it to its provider's delete instead of leaving it in the
    # cloud, after these inputs are set in the retire deploy: the service's own guard against
    # deletion, released by the same approved change. Only where the provider's delete keeps what
    # matters (a final snapshot, a recovery window).
    deleted_when_retired: bool = False
    released: Mapping[str, Any] = field(default_factory=dict)


STATEFUL_TYPES: dict[str, Stateful] = {
    "aws:kms/key:Key": Stateful(
        "deleting schedules the key's deletion: everything encrypted with it (backups, the database) "
        "becomes unreadable"),
    "aws:s3/bucket:Bucket": Stateful("the backups themselves, and their DR-region replica"),
    # A retired instance (a former writer, once its region is rebuilt) is deleted by the provider
    # with the final snapshot its state names (skip_final_snapshot false, final_snapshot_identifier)
    # and its automated backups kept (delete_automated_backups false); RDS refuses the delete while
    # deletion protection is on ("Cannot delete protected DB Instance").
    "aws:rds/instance:Instance": Stateful("the database (primary or cross-Region replica)",
                                          deleted_when_retired=True, released={"deletion_protection": False}),
    # A retired secret (its writer's) is scheduled for deletion with its recovery window (30 days,
    # restorable) after the provider removed its replica regions (secretsmanager/secret.go
    # resourceSecretDelete: RemoveRegionsFromReplication, then DeleteSecret).
    "aws:secretsmanager/secret:Secret": Stateful(
        "the database's master credentials: the only copy of the password the rotation function set",
        deleted_when_retired=True),
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


STACK_TYPE = "pulumi:pulumi:Stack"


def guard(protect: bool, retire: Iterable[str] = ()):
    """A stack transformation: every stateful resource gets `retain_on_delete` (where it keeps
    data) and, when ``protect``, `protect`, except a resource whose URN ``retire`` lists: that one
    gets ``protect=False``, and where its kind is ``deleted_when_retired`` no `retain_on_delete` and
    its ``released`` inputs (the engine's delete step reads RetainOnDelete from the state, which
    the retire deploy writes: journal_snapshot.go "mustWrite() true because of RetainOnDelete"). In
    a stack that protects nothing such kinds are never retained: their provider's delete, with its
    final snapshot or recovery window, is the retirement there.
    Registered once in __main__.py, so a component added later is covered
    without remembering to.

    Why retiring takes its own deploy (pulumi/pulumi pkg/resource/deploy/step.go DeleteStep.Apply):
    the engine refuses to delete a resource its *state* records as protected, in preview as in
    `up`; a program that only changes ``protect`` yields a `same` step whose new state the engine
    writes (pkg/engine/journal_snapshot.go: a changed Protect must be written), and the next deploy
    may delete it."""
    retiring = frozenset(retire)
    # The qualified type of each resource registered so far (its URN's type part), so a child's
    # URN can be known here, before the engine is asked: the parent's chain, '$', its own type.
    chains: dict[pulumi.Resource, str] = {}

    def transformation(args: pulumi.ResourceTransformationArgs) -> Optional[pulumi.ResourceTransformationResult]:
        parent = args.opts.parent
        if parent is None or parent.pulumi_resource_type == STACK_TYPE:
            chain = args.type_  # children of the stack carry no parent type (urn.go NewURN)
        elif parent in chains:
            chain = f"{chains[parent]}${args.type_}"
        else:
            raise ValueError(f"{args.type_} {args.name!r}: its parent {parent.pulumi_resource_type} was registered "
                             "before the stateful guard; register the guard before the first resource")
        chains[args.resource] = chain
        kind = STATEFUL_TYPES.get(args.type_)
        if kind is None:
            return None
        urn = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{chain}::{args.name}"
        # Released: retired in a stack that protects, or in one that protects nothing (stage), where
        # its provider's delete is the retirement.
        released = kind.deleted_when_retired and (urn in retiring or not protect)
        if urn in retiring or released:
            # retain_on_delete=False, not None: merge() keeps the destination's value for a None
            options = pulumi.ResourceOptions(protect=False if urn in retiring else None,
                                             retain_on_delete=False if released else (kind.retain_on_delete or None))
            props = {**args.props, **kind.released} if urn in retiring and released else args.props
            return pulumi.ResourceTransformationResult(props, pulumi.ResourceOptions.merge(args.opts, options))
        options = pulumi.ResourceOptions(protect=(protect and kind.protect) or None,
                                         retain_on_delete=kind.retain_on_delete or None)
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, options))

    return transformation
