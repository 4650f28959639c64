"""Stateful resources cannot be lost by accident: protected in prod, retained on delete, and their
URNs frozen in a committed snapshot that only an alias may move.

Facts (Pulumi docs, "Resource options"): `protect` makes the engine fail any operation that would
delete the resource; `retainOnDelete` deletes it from the state only; an `alias` tells the engine
that a new URN is an old resource, and a child inherits its parent's aliases. A URN is
stack::project::parent types$type::name, so a rename is a new resource - a replace."""

from __future__ import annotations

import copy
import tempfile
from functools import cache
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from helpers.stateful import STATEFUL_TYPES
from synth import diff, engine, export, stateful
from tests.conftest import ROOT, STACKS, run_component, synthesized

DATA_TYPES = {t for t, kind in STATEFUL_TYPES.items() if kind.retain_on_delete}


def test_prod_protects_and_retains_every_key_bucket_database_and_group():
    document = export.to_export(synthesized("prod"))
    by_type: dict[str, list[dict]] = {}
    for entry in document["deployment"]["resources"]:
        by_type.setdefault(entry["type"], []).append(entry)
    # the list: KMS keys, backup buckets and replicas, RDS instances, their groups; and the
    # database's master secret (docs/decisions/014-master-secret-not-rds-managed.md)
    assert DATA_TYPES == {"aws:kms/key:Key", "aws:s3/bucket:Bucket", "aws:rds/instance:Instance",
                          "aws:rds/parameterGroup:ParameterGroup", "aws:rds/subnetGroup:SubnetGroup",
                          "aws:secretsmanager/secret:Secret"}
    for type_ in DATA_TYPES:
        assert by_type[type_], type_
        for entry in by_type[type_]:
            assert entry.get("protect") is True and entry.get("retainOnDelete") is True, entry["urn"]
    assert len(by_type["aws:s3/bucket:Bucket"]) == 4 and len(by_type["aws:rds/instance:Instance"]) == 2
    for entry in by_type["kubernetes:helm.sh/v3:Release"]:
        assert entry.get("protect") is True and "retainOnDelete" not in entry
    # generated passwords: stateful for the plan's gate, but a rotation retires old epochs
    assert len(by_type["random:index/randomPassword:RandomPassword"]) >= 3  # Neo4j, Redis, PostgreSQL bootstrap
    for entry in by_type["random:index/randomPassword:RandomPassword"]:
        assert not entry.get("protect") and not entry.get("retainOnDelete"), entry["urn"]
    # and nothing else: a protected IAM role or alarm would only block routine changes
    for type_, entries in by_type.items():
        if type_ not in STATEFUL_TYPES:
            assert not any(e.get("protect") or e.get("retainOnDelete") for e in entries), type_


def test_stage_retains_on_delete_but_does_not_protect():
    """Except the kinds whose provider delete keeps what matters (the database's final snapshot per
    postgres.finalSnapshot, the secret's recovery window): stage retires nothing through `retire`,
    so their delete is their retirement, and a round-trip drill in stage leaves no writer running
    outside the state (helpers/stateful.py `deleted_when_retired`)."""
    resources = synthesized("stage").resources
    data = [r for r in resources if r.type in DATA_TYPES]
    assert data and not any(r.protect for r in data)
    assert {r.type for r in data if not r.retain_on_delete} == \
        {t for t, kind in STATEFUL_TYPES.items() if kind.deleted_when_retired} == \
        {"aws:rds/instance:Instance", "aws:secretsmanager/secret:Secret"}
    assert all(r.retain_on_delete for r in data if not STATEFUL_TYPES[r.type].deleted_when_retired)


@pytest.mark.parametrize("stack", STACKS)
def test_no_snapshotted_stateful_urn_is_lost(stack):
    lost = stateful.lost(stateful.read_snapshot(stack), synthesized(stack))
    assert not lost, (f"{stack}: these stateful resources would be deleted and created anew (a rename or "
                      f"a new parent changes the URN); add `aliases=[pulumi.Alias(...)]` carrying the old "
                      f"URN, or retire them deliberately (docs/contributor.md, Stateful resources): {lost}")


@pytest.mark.parametrize("stack", STACKS)
def test_every_stateful_resource_is_in_the_snapshot(stack):
    snapshot = set(stateful.read_snapshot(stack))
    # in it under its URN, or under the URN a deployed stack still holds it by (its alias)
    missing = sorted(r.urn for r in synthesized(stack).resources
                     if stateful.is_stateful(r.type) and not snapshot & {r.urn, *r.aliases})
    assert not missing, f"new stateful resources: run `python -m synth.stateful` and commit: {missing}"


@cache
def renamed_postgres() -> engine.Synthesis:
    """prod, with the PostgresDr component renamed and no alias: the refactor the issue fears."""
    source = (ROOT / "__main__.py").read_text()
    assert source.count('PostgresDr(\n    "intelgraph-pg",') == 1
    program = Path(tempfile.mkdtemp()) / "__main__.py"
    program.write_text(source.replace('PostgresDr(\n    "intelgraph-pg",', 'PostgresDr(\n    "pg",'))
    return engine.synthesize("prod", program=program)


def test_renaming_a_component_without_an_alias_fails_the_snapshot():
    renamed = renamed_postgres()
    lost = stateful.lost(stateful.read_snapshot("prod"), renamed)
    assert lost and all("::intelgraph-pg-" in urn for urn in lost)
    assert any(urn.endswith("aws:rds/instance:Instance::intelgraph-pg-primary") for urn in lost)


def _thing(component: str, kind: str = "Thing", component_alias=None, key_alias=None) -> dict:
    """A component with a KMS key named after it (the house convention), as a refactor leaves it."""
    provider = aws.Provider("p", region="us-east-1")
    thing = pulumi.ComponentResource(f"intelgraph:test:{kind}", component, None, pulumi.ResourceOptions(
        aliases=[component_alias] if component_alias else None))
    aws.kms.Key(f"{component}-key", opts=pulumi.ResourceOptions(parent=thing, provider=provider,
                                                                aliases=[key_alias] if key_alias else None))
    return {}


def test_an_alias_carries_the_old_urn_through_a_rename():
    before = run_component(lambda: _thing("vault"))
    snapshot = stateful.stateful_urns(before)
    assert snapshot == ["urn:pulumi:prod::intelgraph-platform::intelgraph:test:Thing$aws:kms/key:Key::vault-key"]
    # renamed: the key's name follows the component's, so the key needs its own alias
    assert stateful.lost(snapshot, run_component(lambda: _thing("safe"))) == snapshot
    renamed = run_component(lambda: _thing("safe", key_alias=pulumi.Alias(name="vault-key")))
    assert stateful.lost(snapshot, renamed) == []
    # a new component type is in every child's URN; the child inherits the component's alias
    assert stateful.lost(snapshot, run_component(lambda: _thing("vault", kind="Vault"))) == snapshot
    moved = run_component(lambda: _thing("vault", kind="Vault",
                                         component_alias=pulumi.Alias(type_="intelgraph:test:Thing")))
    assert stateful.lost(snapshot, moved) == []
    # and the export carries the alias, as a checkpoint does
    [key] = [e for e in export.to_export(moved)["deployment"]["resources"] if e["type"] == "aws:kms/key:Key"]
    assert key["urn"].endswith("intelgraph:test:Vault$aws:kms/key:Key::vault-key") and snapshot[0] in key["aliases"]


# Deployed resources removed on purpose, each by a reviewed migration its decision record describes
# (type and name: the same in both stacks). Nothing else may leave the `all` list.
REMOVED = {
    # the edge's Ingresses: the program owns the ALBs now; `pulumi up --exclude` both URNs, move DNS,
    # then `pulumi up` deletes them (docs/decisions/020-the-edge-alb-is-the-programs.md)
    ("kubernetes:networking.k8s.io/v1:Ingress", "api"): "020",
    ("kubernetes:networking.k8s.io/v1:Ingress", "api-dr"): "020",
}


def _type_and_name(urn: str) -> tuple[str, str]:
    qualified, name = urn.rsplit("::", 1)
    return qualified.rsplit("$", 1)[-1].rsplit("::", 1)[-1], name


@pytest.mark.parametrize("stack", STACKS)
def test_no_resource_of_the_deployed_stack_changes_its_urn(stack):
    """The snapshot's `all` holds every URN of the deployed stacks (taken before the Kubernetes
    tier became one component per region): each must still be some resource's URN or alias, or
    the next `up` deletes it and creates a new one - for a StatefulSet or a NetworkPolicy an
    outage, not only a diff. Only REMOVED's entries go, and each of them is really gone."""
    lost = stateful.lost(stateful.read_snapshot(stack, "all"), synthesized(stack))
    unplanned = [urn for urn in lost if _type_and_name(urn) not in REMOVED]
    assert not unplanned, f"{stack}: resources whose URN changed without an alias: {unplanned}"
    assert {_type_and_name(urn) for urn in lost} == set(REMOVED), "a REMOVED entry the program still registers"
    for decision in set(REMOVED.values()):
        assert list((ROOT / "docs" / "decisions").glob(f"{decision}-*.md")), decision


def test_the_primary_tier_keeps_the_urns_of_the_top_level_resources_it_replaced():
    synthesis = synthesized("prod")
    snapshot = stateful.read_snapshot("prod", "all")
    project = "urn:pulumi:prod::intelgraph-platform::"
    # e.g. the Redis StatefulSet: top level before the tier, under intelgraph:tier:RegionalTier now
    before = f"{project}intelgraph:cache:RedisCache$kubernetes:apps/v1:StatefulSet::redis"
    assert before in snapshot
    [statefulset] = [r for r in synthesis.resources if before in r.aliases]
    assert statefulset.urn == (f"{project}intelgraph:tier:RegionalTier$intelgraph:cache:RedisCache"
                               "$kubernetes:apps/v1:StatefulSet::redis")


def test_regenerating_keeps_the_deployed_urns_that_aliases_still_carry():
    synthesis = synthesized("prod")
    previous = stateful.read_snapshot("prod", "all")
    regenerated = stateful.every_urn(synthesis, previous)
    assert {urn for urn in previous if _type_and_name(urn) not in REMOVED} <= set(regenerated)
    # a resource new since the snapshot is added under its own URN
    assert "urn:pulumi:prod::intelgraph-platform::intelgraph:tier:RegionalTier::primary" in regenerated
    # and one the program no longer carries is dropped
    gone = "urn:pulumi:prod::intelgraph-platform::intelgraph:cache:RedisCache::gone"
    assert gone not in stateful.every_urn(synthesis, [*previous, gone])


def _nested() -> dict:
    outer = pulumi.ComponentResource("intelgraph:test:Outer", "outer")
    inner = pulumi.ComponentResource("intelgraph:test:Inner", "outer-inner", None, pulumi.ResourceOptions(parent=outer))
    aws.kms.Key("outer-inner-key", opts=pulumi.ResourceOptions(parent=inner, provider=aws.Provider("p", region="us-east-1")))
    return {}


def test_a_urn_carries_the_whole_type_chain_of_its_parents():
    """The engine builds a URN from the parent's qualified type - every type from the stack down
    (pulumi/pulumi pkg/resource/urn.go NewURN, called with parent.QualifiedType()); the SDK's mock
    keeps only the parent's last type. A snapshot taken with the mock's URNs would name resources
    no deployed stack holds once a component nests another (as RegionalTier nests them all)."""
    [key] = [r for r in run_component(_nested).resources if r.type == "aws:kms/key:Key"]
    assert key.urn == ("urn:pulumi:prod::intelgraph-platform::intelgraph:test:Outer$intelgraph:test:Inner"
                       "$aws:kms/key:Key::outer-inner-key")


@pytest.mark.parametrize("name", ["neo4j-admin-password", "redis-password"])
def test_replacing_a_generated_password_needs_the_named_approval(name):
    """A replaced RandomPassword (length is ForceNew: pulumi-random's resource_password.go) is a new
    credential no server or client has: it flips credentials outside the rotation, so the plan
    marks it like any stateful replace (issue 24 item 9)."""
    before = export.to_export(synthesized("prod"))
    after = copy.deepcopy(before)
    [entry] = [e for e in after["deployment"]["resources"]
               if e["type"] == "random:index/randomPassword:RandomPassword" and e["urn"].endswith(f"::{name}")]
    entry["inputs"]["length"] = entry["inputs"]["length"] + 1
    [change] = [c for c in diff.compare(before, after) if c.urn == entry["urn"]]
    assert change.action == "replace" and change.stateful and change.dangerous
