"""Retiring a protected resource: two reviewed deploys, both green (issue 23 item 8).

What the Pulumi engine does (pulumi/pulumi, pkg/resource/deploy; read at 1b59498, Aug 2026):
* step.go `DeleteStep.Apply`: `if !s.replacing && s.old.Protect` -> "cannot be deleted because it
  is protected", checked *before* the dry-run branch: a pull request that removes a protected
  resource fails its own preview, and no approval changes that;
* step_generator.go: a replace is refused when `new.Protect && old.Protect` ("we do allow
  unprotecting and replacing to happen in a single update cycle");
* a program that only turns `protect` off makes no provider call: a `same` step whose new state
  the engine writes (pkg/engine/journal_snapshot.go: "mustWrite() true because of Protect"), and
  which the display shows (pkg/backend/display/display.go shouldShow: a same step whose Protect
  changed is shown).

So the approved path: deploy 1 lists the URN in the `retire` setting (the program stops
protecting it: a protect change, nothing else); deploy 2 removes the resource and the entry (the
engine's delete passes, the plan's approval is still required for a stateful delete).
The walk below uses a real removal: prod's second Neo4j secondary (`neo4j.secondaries` 2 -> 1).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

import settings
from helpers.stateful import STATEFUL_TYPES, is_stateful
from synth import diff, engine, export
from tests.conftest import ROOT, config_with, synthesized

SERVER_5 = ("urn:pulumi:prod::intelgraph-platform::intelgraph:tier:RegionalTier$intelgraph:graph:Neo4jCluster"
            "$kubernetes:helm.sh/v3:Release::neo4j-graph-server-5")
# prod's warm DR cluster has the primary's shape: removing a server removes its DR twin too
DR_SERVER_5 = SERVER_5.replace("::neo4j-graph-server-5", "::neo4j-dr-graph-server-5")
SERVERS_5 = [DR_SERVER_5, SERVER_5]


def state(config: dict[str, str]) -> dict:
    return export.to_export(engine.synthesize("prod", config))


@pytest.fixture(scope="module")
def deploys() -> dict[str, dict]:
    """The stack's export after each step: today, deploy 1 (retire listed), deploy 2 (removed),
    and the shortcut that removes it without deploy 1."""
    return {
        "today": export.to_export(synthesized("prod")),
        "deploy 1": state(config_with("prod", {"retire": SERVERS_5})),
        "deploy 2": state(config_with("prod", {"neo4j.secondaries": 1})),
    }


def by_urn(document: dict) -> dict[str, dict]:
    return {r["urn"]: r for r in document["deployment"]["resources"]}


def test_the_retired_resource_is_registered_unprotected_and_nothing_else_changes(deploys):
    today, first = by_urn(deploys["today"]), by_urn(deploys["deploy 1"])
    for server in SERVERS_5:
        assert today[server].get("protect") is True and "protect" not in first[server]
    assert {u: r.get("protect") for u, r in today.items() if u not in SERVERS_5} == \
        {u: r.get("protect") for u, r in first.items() if u not in SERVERS_5}
    plan = diff.compare(deploys["today"], deploys["deploy 1"])
    assert sorted((c.action, c.urn, c.properties, c.values) for c in plan) == \
        [("update", server, ["protect"], ["protect: true → false"]) for server in SERVERS_5]
    text, code = diff.summary(plan, None)
    assert code == diff.EXIT_OK and f"update   SP {SERVER_5}  [protect]" in text  # no approval needed


def test_removing_a_protected_resource_without_deploy_1_is_refused_even_when_approved(deploys):
    plan = diff.compare(deploys["today"], deploys["deploy 2"])
    # (the pre-change snapshot Job goes too, unprotected)
    assert sorted((c.action, c.urn, c.protected, c.refused) for c in plan if c.refused) == \
        [("delete", server, True, [diff.PROTECTED_DELETE]) for server in SERVERS_5]
    text, code = diff.summary(plan, "alice")
    assert code == diff.EXIT_STATEFUL and "the engine refuses" in text and "`retire`" in text


def test_deploy_2_deletes_it_with_the_plans_approval_only(deploys):
    plan = diff.compare(deploys["deploy 1"], deploys["deploy 2"])
    assert sorted((c.action, c.urn) for c in plan if c.dangerous) == [("delete", server) for server in SERVERS_5]
    assert not any(c.refused for c in plan)  # the engine lets the delete through: the state says unprotected
    assert diff.summary(plan, None)[1] == diff.EXIT_STATEFUL  # the gate still asks for the review
    assert diff.summary(plan, "alice")[1] == diff.EXIT_OK


def preview_step(op: str, old: dict | None, new: dict | None) -> dict:
    """A `pulumi preview --json` step (pkg/display/json.go PreviewStep: op, urn, oldState, newState)."""
    keep = ("urn", "type", "custom", "protect", "retainOnDelete")
    return {"op": op, "urn": (old or new or {})["urn"],
            "oldState": {k: old[k] for k in keep if k in old} if old else None,
            "newState": {k: new[k] for k in keep if k in new} if new else None}


def test_the_engines_preview_of_each_deploy_gets_the_same_verdicts(deploys):
    today, first = by_urn(deploys["today"])[SERVER_5], by_urn(deploys["deploy 1"])[SERVER_5]
    # deploy 1: the same step that turns protect off is shown, as an update of `protect`
    plan = diff.engine_plan({"steps": [preview_step("same", today, first), preview_step("same", today, today)]})
    assert [(c.action, c.properties) for c in plan] == [("update", ["protect"])]
    assert diff.summary(plan, None)[1] == diff.EXIT_OK
    # deploy 2: the delete of an unprotected server, approved by review
    plan = diff.engine_plan({"steps": [preview_step("delete", first, None)]})
    assert plan[0].dangerous and not plan[0].refused and diff.summary(plan, "alice")[1] == diff.EXIT_OK
    # the shortcut: a delete whose state still says protected
    plan = diff.engine_plan({"steps": [preview_step("delete", today, None)]})
    assert plan[0].refused == [diff.PROTECTED_DELETE] and diff.summary(plan, "alice")[1] == diff.EXIT_STATEFUL
    # a replace of a resource protected on both sides is refused; once retired it may ride along
    steps = [preview_step(op, today, today) for op in ("create-replacement", "replace", "delete-replaced")]
    assert diff.engine_plan({"steps": steps})[0].refused == [diff.PROTECTED_REPLACE]
    steps = [preview_step(op, today, first) for op in ("create-replacement", "replace", "delete-replaced")]
    assert not diff.engine_plan({"steps": steps})[0].refused


def test_the_guard_computes_the_engines_urn_for_every_stateful_resource():
    """The guard knows a URN before the engine does (parent types $-joined, pkg/resource/urn.go):
    retiring every stateful URN the program registers leaves none of them protected."""
    # the kinds prod protects (generated passwords are stateful for the gate, never protected)
    urns = [r.urn for r in synthesized("prod").resources if is_stateful(r.type) and STATEFUL_TYPES[r.type].protect]
    assert any(u.count("$") >= 2 for u in urns)  # nested components too (RegionalTier > Neo4jCluster)
    released = engine.synthesize("prod", config_with("prod", {"retire": urns}))
    assert {r.urn: r.protect for r in released.resources if r.urn in urns} == {u: False for u in urns}
    # retired, each is still retained - except the kinds whose provider delete keeps what matters
    assert {r.urn: bool(r.retain_on_delete) for r in released.resources if r.urn in urns} == \
        {r.urn: STATEFUL_TYPES[r.type].retain_on_delete and not STATEFUL_TYPES[r.type].deleted_when_retired
         for r in released.resources if r.urn in urns}


def test_a_retired_database_and_its_secret_go_through_their_providers_delete():
    """A retired RDS instance is deleted by the provider, not left running unmanaged: with its final
    snapshot (its state names one: skip_final_snapshot false, final_snapshot_identifier) and its
    automated backups kept, once the retire deploy turned off deletion protection, which RDS
    enforces ("Cannot delete protected DB Instance, please disable deletion protection and try
    again": RDS API Reference, DeleteDBInstance, InvalidDBInstanceState) - and the engine deletes
    through the provider only when the state says RetainOnDelete false (pulumi/pulumi step.go
    DeleteStep.Apply), which the retire deploy writes (journal_snapshot.go mustWrite "because of
    RetainOnDelete"). Its secret goes with its recovery window. A KMS key stays retained."""
    pg = "urn:pulumi:prod::intelgraph-platform::intelgraph:database:PostgresDr$"
    instance, secret = f"{pg}aws:rds/instance:Instance::intelgraph-pg-primary", \
        f"{pg}aws:secretsmanager/secret:Secret::intelgraph-pg-master"
    key = f"{pg}aws:kms/key:Key::intelgraph-pg-primary-key"
    today = by_urn(export.to_export(synthesized("prod")))
    first = by_urn(state(config_with("prod", {"retire": [instance, secret, key]})))
    assert today[instance]["inputs"]["deletionProtection"] is True and today[instance]["retainOnDelete"] is True
    assert first[instance]["inputs"]["deletionProtection"] is False and "retainOnDelete" not in first[instance]
    assert first[instance]["inputs"]["skipFinalSnapshot"] is False
    assert first[instance]["inputs"]["finalSnapshotIdentifier"] == "intelgraph-pg-primary-final"
    assert first[instance]["inputs"]["deleteAutomatedBackups"] is False
    assert "retainOnDelete" not in first[secret] and first[secret]["inputs"]["recoveryWindowInDays"] == 30
    assert first[key]["retainOnDelete"] is True and "protect" not in first[key]
    plan = {c.urn: c for c in diff.compare(export.to_export(synthesized("prod")), export.to_export(
        engine.synthesize("prod", config_with("prod", {"retire": [instance, secret]}))))}
    assert sorted(plan[instance].properties) == ["deletionProtection", "protect", "retainOnDelete"]
    assert sorted(plan[secret].properties) == ["protect", "retainOnDelete"]
    assert diff.summary(list(plan.values()), None)[1] == diff.EXIT_OK  # releasing needs no approval; deleting does


def problems(changes: dict, stack: str = "prod") -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        settings.validate(config_with(stack, changes), stack=stack)
    return caught.value.problems


@pytest.mark.parametrize(("entry", "message"), [
    ("neo4j-graph-server-5", "not a resource URN"),
    (SERVER_5.replace("::intelgraph-platform::", "::other-project::"), "names project 'other-project'"),
    (SERVER_5.replace("kubernetes:helm.sh/v3:Release", "kubernetes:apps/v1:StatefulSet"),
     "names a kubernetes:apps/v1:StatefulSet, which the program never protects"),
    (SERVER_5.replace("urn:pulumi:prod::", "urn:pulumi:stage::"), "is not a URN of this stack (prod)"),
])
def test_a_bad_retire_entry_stops_before_anything_registers(entry, message):
    [problem] = problems({"retire": [entry]})
    assert problem.startswith("intelgraph-platform:retire.0: ") and message in problem


def test_retire_is_for_prod_only_and_lists_each_urn_once():
    [twice] = problems({"retire": [SERVER_5, SERVER_5]})
    assert twice.startswith("intelgraph-platform:retire.1: is listed twice")
    stage_urn = SERVER_5.replace("urn:pulumi:prod::", "urn:pulumi:stage::")
    [stage] = problems({"retire": [stage_urn]}, "stage")
    assert stage.startswith("intelgraph-platform:retire.0: only prod protects resources")


def test_a_stale_retire_entry_fails_synth_with_exit_2(tmp_path):
    """Deploy 2 removes the resource and its entry together; an entry left behind (or mistyped)
    releases nothing, and a later resource of that name would start unprotected."""
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["intelgraph-platform:neo4j"]["secondaries"] = 1
    document["config"]["intelgraph-platform:retire"] = [SERVER_5]
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "synth", "--stack", "prod", "--stack-file",
                             str(tmp_path / "Pulumi.prod.yaml"), "--out", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"intelgraph-platform:retire.0: names no resource the program registers (given: {SERVER_5})" \
        in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_retire_is_optional_in_the_project_file():
    """A key Pulumi.yaml declares without a default is required in every stack (pulumi/pulumi
    pkg/workspace/config.go, "Stack '%v' is missing configuration value"); an array needs `items`
    (sdk/go/common/workspace/project.go Validate)."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["retire"]
    assert declared["default"] == [] and declared["type"] == "array" and declared["items"] == {"type": "string"}
    assert settings.validate(config_with("prod", {"retire": json.loads(json.dumps(declared["default"]))}),
                             stack="prod").retire == []
