"""`python -m synth diff`: a reviewed plan of what a change does to a stack.

Facts it follows (Pulumi docs, "Resource options" and "How Pulumi works"): the engine matches a
new resource to the old state by URN or by an alias; an old URN nobody claims is deleted; a change
to a property the provider cannot update in place replaces the resource (create, then delete the
old one). RDS's ModifyDBInstance takes no KMS key or username, so changing either is a new
instance; a new physical id behind the same URN is the export's own record of a replacement."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

from synth import diff, export
from tests.conftest import ROOT, synthesized

PREFIX = "urn:pulumi:prod::intelgraph-platform::"
DB = "aws:rds/instance:Instance"


def resource(type_: str, name: str, inputs: dict, *, id_: str | None = None, parent_type: str = "", **extra) -> dict:
    chain = f"{parent_type}$" if parent_type else ""
    return {"urn": f"{PREFIX}{chain}{type_}::{name}", "custom": True, "id": id_ or name, "type": type_,
            "inputs": inputs, "outputs": dict(inputs), **extra}


def document(*resources: dict) -> dict:
    stack = {"urn": f"{PREFIX}pulumi:pulumi:Stack::intelgraph-platform-prod", "custom": False,
             "type": "pulumi:pulumi:Stack", "inputs": {}, "outputs": {}}
    return {"version": 3, "deployment": {"resources": [stack, *copy.deepcopy(list(resources))]}}


DATABASE = resource(DB, "pg-primary", {"identifier": "pg-primary", "kmsKeyId": "arn:aws:kms:us-east-1:1:key/a",
                                       "instanceClass": "db.r6g.xlarge", "username": "app"},
                    protect=True, retainOnDelete=True, parent_type="intelgraph:database:PostgresDr")
ROLE = resource("aws:iam/role:Role", "backup-role", {"name": "backup-role", "tags": {"team": "graph"}})


def run(old: dict, new: dict, tmp_path, *flags: str) -> tuple[int, str]:
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    result = subprocess.run([sys.executable, "-m", "synth", "diff", str(tmp_path / "old.json"),
                             str(tmp_path / "new.json"), *flags],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def changed(old: dict, new: dict) -> dict[str, diff.Change]:
    return {c.urn.rsplit("::", 1)[-1]: c for c in diff.compare(old, new)}


def test_no_change_is_an_empty_plan_and_passes(tmp_path):
    code, out = run(document(DATABASE, ROLE), document(DATABASE, ROLE), tmp_path)
    assert code == 0 and "0 to create, 0 to update, 0 to replace, 0 to delete" in out


def test_an_in_place_update_names_its_properties_and_passes():
    bigger = copy.deepcopy(DATABASE)
    bigger["inputs"]["instanceClass"] = "db.r6g.2xlarge"
    role = copy.deepcopy(ROLE)
    role["inputs"]["tags"]["team"] = "data"
    found = changed(document(DATABASE, ROLE), document(bigger, role))
    assert found["pg-primary"].action == "update" and found["pg-primary"].properties == ["instanceClass"]
    assert found["backup-role"].properties == ["tags.team"]
    assert diff.summary(list(found.values()), None)[1] == diff.EXIT_OK


def test_a_new_kms_key_on_the_database_is_a_replace_that_needs_a_named_approval(tmp_path):
    rekeyed = copy.deepcopy(DATABASE)
    rekeyed["inputs"]["kmsKeyId"] = "arn:aws:kms:us-east-1:1:key/b"
    found = changed(document(DATABASE), document(rekeyed))["pg-primary"]
    assert (found.action, found.stateful, found.protected) == ("replace", True, True)
    # and the fixed identifier means the create-first replacement would fail half-way
    # and the fixed identifier stays while the old database is retained under it: the replacement
    # cannot be created, and deleteBeforeReplace would only forget the old one (never advised)
    assert found.reason.startswith("forced by kmsKeyId; the fixed name 'pg-primary' stays and the old one is "
                                   "retained under it") and "deleteBeforeReplace would not help" in found.reason
    code, out = run(document(DATABASE), document(rekeyed), tmp_path)
    assert code == 1 and "! replace " + DATABASE["urn"] in out and "Not approved" in out
    code, out = run(document(DATABASE), document(rekeyed), tmp_path, "--approved-by", "alice (platform lead)")
    assert code == 0 and "Approved by alice (platform lead)" in out
    code, _ = run(document(DATABASE), document(rekeyed), tmp_path, "--approved-by", "  ")
    assert code == 1  # a blank name is no approval


def test_a_new_physical_id_is_a_replace_even_outside_the_table():
    reworded = copy.deepcopy(ROLE)
    reworded["inputs"]["description"], reworded["id"] = "backups", "backup-role-v2"
    found = changed(document(ROLE), document(reworded))["backup-role"]
    assert found.action == "replace" and "backup-role -> backup-role-v2" in found.reason
    assert found.properties == ["description"] and not found.dangerous  # an IAM role holds no data


def test_a_rename_without_an_alias_deletes_the_database_and_with_one_it_is_the_same(tmp_path):
    moved = copy.deepcopy(DATABASE)
    moved["urn"] = moved["urn"].replace("::pg-primary", "::postgres-primary")
    found = changed(document(DATABASE), document(moved))
    assert found["pg-primary"].action == "delete" and found["postgres-primary"].action == "create"
    assert run(document(DATABASE), document(moved), tmp_path)[0] == 1
    moved["aliases"] = [DATABASE["urn"]]
    found = changed(document(DATABASE), document(moved))
    assert list(found) == ["postgres-primary"]
    assert found["postgres-primary"].action == "update" and found["postgres-primary"].aliased_from == DATABASE["urn"]
    assert run(document(DATABASE), document(moved), tmp_path)[0] == 0


def test_a_protected_resource_of_any_type_blocks_its_delete(tmp_path):
    guarded = resource("aws:route53/record:Record", "api", {"name": "api"}, protect=True)
    code, out = run(document(guarded, ROLE), document(ROLE), tmp_path)
    assert code == 1 and "delete   P " in out


def test_stateful_changes_are_listed_first_and_kubernetes_immutables_are_replaces():
    statefulset = resource("kubernetes:apps/v1:StatefulSet", "redis", {
        "metadata": {"name": "redis"}, "spec": {"replicas": 3, "volumeClaimTemplates": [{"size": "1Gi"}]}})
    grown = copy.deepcopy(statefulset)
    grown["inputs"]["spec"]["volumeClaimTemplates"] = [{"size": "2Gi"}]
    bigger = copy.deepcopy(DATABASE)
    bigger["inputs"]["instanceClass"] = "db.r6g.2xlarge"
    plan = diff.compare(document(statefulset, DATABASE), document(grown, bigger))
    assert [c.urn.rsplit("::", 1)[-1] for c in plan] == ["pg-primary", "redis"]
    assert plan[1].action == "replace" and plan[1].reason == "forced by spec.volumeClaimTemplates"


def test_a_damaged_export_is_bad_input(tmp_path):
    code, out = run({"version": 3}, document(ROLE), tmp_path)
    assert code == 2 and "deployment.resources" in out


def test_renaming_a_real_component_fails_the_diff_of_two_synth_runs(tmp_path):
    """main against a branch that renamed PostgresDr: both databases, their keys and groups would go."""
    from tests.test_stateful import renamed_postgres

    old = export.to_export(synthesized("prod"))
    new = export.to_export(renamed_postgres())
    dangerous = {c.urn.rsplit("::", 1)[-1] for c in diff.compare(old, new) if c.dangerous}
    assert {"intelgraph-pg-primary", "intelgraph-pg-replica", "intelgraph-pg-primary-key",
            "intelgraph-pg-primary-params", "intelgraph-pg-dr-subnets"} <= dangerous
    code, out = run(old, new, tmp_path)
    lines = out.splitlines()
    assert code == 1 and lines[1].startswith("  delete   SP ")
    assert lines.index(next(x for x in lines if x.startswith("  create   S"))) > lines.index(
        next(x for x in lines if x.startswith("  delete   SP ")))


def test_a_new_parameter_group_description_is_a_replace_and_a_new_identifier_a_rename():
    # terraform-provider-aws internal/service/rds/parameter_group.go: description is ForceNew (RDS
    # has no API to change it); rds/instance.go since v5 renames in place (NewDBInstanceIdentifier,
    # #31232 closing #507; issue 25 cites #32590): a reboot and a new endpoint name, not a new database.
    group = resource("aws:rds/parameterGroup:ParameterGroup", "pg-params",
                     {"name": "pg-params", "family": "postgres16", "description": "TLS only"},
                     protect=True, retainOnDelete=True)
    reworded = copy.deepcopy(group)
    reworded["inputs"]["description"] = "TLS only, logical replication"
    found = changed(document(group), document(reworded))["pg-params"]
    assert found.action == "replace" and found.reason.startswith("forced by description") and found.dangerous
    renamed = copy.deepcopy(DATABASE)
    renamed["inputs"]["identifier"] = "pg-primary-2"
    found = changed(document(DATABASE), document(renamed))["pg-primary"]
    assert found.action == "update" and not found.dangerous
    assert found.values == ["identifier: pg-primary → pg-primary-2"]
    assert any("rename: the instance reboots and its endpoint's DNS name changes" in n for n in found.notes)


def provider(name: str, region: str, type_: str = "pulumi:providers:aws") -> dict:
    return resource(type_, name, {"region": region}, id_=f"{name}-uuid")


def on(provider_: dict, res: dict) -> dict:
    return {**copy.deepcopy(res), "provider": f"{provider_['urn']}::{provider_['id']}"}


def test_a_new_region_on_the_provider_replaces_every_resource_it_manages(tmp_path):
    # pulumi/pulumi step_generator.go: a provider whose DiffConfig reports a replacement replaces
    # every resource it manages; pulumi-aws does so when `region` changes (pulumi/pulumi-aws#4000);
    # a resource does not move to another region in place.
    primary, elsewhere = provider("aws-primary", "us-east-1"), provider("aws-dr", "us-west-2")
    old = document(primary, elsewhere, on(primary, DATABASE), on(primary, ROLE), on(elsewhere, ROLE) | {
        "urn": ROLE["urn"] + "-dr"})
    moved = copy.deepcopy(old)
    moved["deployment"]["resources"][1]["inputs"]["region"] = "eu-west-1"
    found = changed(old, moved)
    assert found["pg-primary"].action == found["backup-role"].action == "replace"
    assert found["pg-primary"].reason.startswith("its provider aws-primary is changed: region us-east-1 -> eu-west-1")
    assert found["pg-primary"].dangerous and "backup-role-dr" not in found  # the other provider's stay
    assert found["aws-primary"].action == "update"
    code, out = run(old, moved, tmp_path)
    assert code == 1 and "! replace " + DATABASE["urn"] in out


def test_a_resource_handed_to_another_provider_is_replaced_when_the_provider_config_differs():
    # step_generator.go providerChanged: a changed provider reference is judged by the new
    # provider's DiffConfig against the old provider's inputs; an alias of the old one is the same.
    primary, dr = provider("aws-primary", "us-east-1"), provider("aws-dr", "us-west-2")
    twin = provider("aws-primary-2", "us-east-1")
    old = document(primary, dr, twin, on(primary, DATABASE))
    found = changed(old, document(primary, dr, twin, on(dr, DATABASE)))["pg-primary"]
    assert found.action == "replace" and found.reason.startswith(
        "its provider aws-dr is another one: region us-east-1 -> us-west-2")
    # the same region through another provider object: no replacement
    assert "pg-primary" not in changed(old, document(primary, dr, twin, on(twin, DATABASE)))
    # a provider we do not model: its DiffConfig is unknown here, so the plan assumes the replace
    k8s_a, k8s_b = (provider(n, "", "pulumi:providers:kubernetes") for n in ("eks", "eks-2"))
    release = resource("kubernetes:helm.sh/v3:Release", "neo4j", {"name": "neo4j"})
    found = changed(document(k8s_a, k8s_b, on(k8s_a, release)), document(k8s_a, k8s_b, on(k8s_b, release)))
    assert found["neo4j"].action == "replace" and "its provider changes" in found["neo4j"].reason
    aliased = {**k8s_b, "aliases": [k8s_a["urn"]]}
    assert "neo4j" not in changed(document(k8s_a, on(k8s_a, release)), document(aliased, on(aliased, release)))


def preview_step(op: str, res: dict, **extra) -> dict:
    state = {k: res[k] for k in ("urn", "type", "custom", "inputs") if k in res}
    state |= {k: res[k] for k in ("protect", "retainOnDelete") if k in res}
    return {"op": op, "urn": res["urn"], "oldState": state, "newState": state, "detailedDiff": None, **extra}


def test_the_engines_own_preview_json_gates_a_stateful_replace(tmp_path):
    # `pulumi preview --json` (pulumi/pulumi pkg/display/json.go PreviewStep): a replacement is
    # create-replacement + replace + delete-replaced steps of one URN, with replaceReasons; the
    # oldState carries protect and retainOnDelete. The engine knows what our table cannot (a
    # provider's own DiffConfig, a replaceOnChanges option).
    stack = {"urn": f"{PREFIX}pulumi:pulumi:Stack::intelgraph-platform-prod", "type": "pulumi:pulumi:Stack"}
    steps = [{"op": "same", "urn": stack["urn"], "newState": stack},
             *(preview_step(op, DATABASE, replaceReasons=["engineVersion"])
               for op in ("create-replacement", "replace", "delete-replaced")),
             preview_step("update", ROLE, diffReasons=["tags"])]
    plan = diff.engine_plan({"steps": steps, "changeSummary": {"replace": 1, "update": 1}})
    assert [(c.action, c.urn.rsplit("::", 1)[-1]) for c in plan] == [("replace", "pg-primary"), ("update", "backup-role")]
    assert plan[0].dangerous and plan[0].reason == "the engine replaces it: engineVersion"
    assert plan[1].properties == ["tags"] and not plan[1].dangerous
    (tmp_path / "preview.json").write_text(json.dumps({"steps": steps}))
    cli = [sys.executable, "-m", "synth", "diff", "--engine", str(tmp_path / "preview.json")]
    result = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "! replace " + DATABASE["urn"] in result.stdout
    result = subprocess.run([*cli, "--approved-by", "bob"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    # only updates: passes; not preview output: bad input
    assert diff.summary(diff.engine_plan({"steps": [steps[0], steps[-1]]}), None)[1] == diff.EXIT_OK
    (tmp_path / "bad.json").write_text(json.dumps(document(ROLE)))
    bad = subprocess.run(cli[:-1] + [str(tmp_path / "bad.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "pulumi preview --json" in bad.stderr
