"""`python -m synth diff`: a reviewed plan of what a change does to a stack.

Facts it follows (Pulumi docs, "Resource options" and "How Pulumi works"): the engine matches a
new resource to the old state by URN or by an alias; an old URN nobody claims is deleted; a change
to a property the provider cannot update in place replaces the resource (create, then delete the
old one). RDS's ModifyDBInstance takes no KMS key or username, so changing either is a new
instance; a new physical id behind the same URN is the export's own record of a replacement."""

from __future__ import annotations

import copy
import inspect
import json
import re
import subprocess
import sys

import pulumi_aws as aws
import pulumi_random
import pytest

from synth import diff, export, forcenew
from tests.conftest import ROOT, STACKS, synthesized

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
    # protected in the state and still in the program: the engine refuses it, approved or not
    # (pulumi/pulumi step_generator.go, `new.Protect && old.Protect`); tests/test_retire.py
    code, out = run(document(DATABASE), document(rekeyed), tmp_path, "--approved-by", "alice (platform lead)")
    assert code == 1 and diff.PROTECTED_REPLACE in out
    released = {**rekeyed, "protect": False}  # its URN in `retire`: the replace may go in that deploy
    code, out = run(document(DATABASE), document(released), tmp_path, "--approved-by", "alice (platform lead)")
    assert code == 0 and "Approved by alice (platform lead)" in out
    code, _ = run(document(DATABASE), document(released), tmp_path, "--approved-by", "  ")
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
    # (unprotected: a protected one the engine refuses whatever the approval, tests/test_retire.py)
    stack = {"urn": f"{PREFIX}pulumi:pulumi:Stack::intelgraph-platform-prod", "type": "pulumi:pulumi:Stack"}
    steps = [{"op": "same", "urn": stack["urn"], "newState": stack},
             *(preview_step(op, {**DATABASE, "protect": False}, replaceReasons=["engineVersion"])
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


# --- a plan review a person can act on (issue 25) -------------------------------------------------

def secret(plaintext: str) -> dict:
    """A Pulumi secret as `pulumi stack export --show-secrets` writes it (the signature key, then
    the JSON-encoded value)."""
    return {diff.consequences.SIG_KEY: "1b47061264138c4ac30d75fd1eb44270", "plaintext": json.dumps(plaintext)}


def test_changed_values_print_old_to_new_and_never_a_secret(tmp_path):
    small = copy.deepcopy(DATABASE)
    small["inputs"]["instanceClass"] = "db.t4g.large"
    bigger = copy.deepcopy(small)
    bigger["inputs"]["instanceClass"] = "db.r6g.large"
    # a value wrapped as a Pulumi secret, and one the resource lists in additionalSecretOutputs
    auth = resource("kubernetes:core/v1:Secret", "redis-auth", {
        "metadata": {"name": "redis-auth"}, "stringData": {"password": secret("hunter2-old")}})
    token = resource("aws:iam/role:Role", "token-role", {"name": "token-role", "description": "tok-old"},
                     additionalSecretOutputs=["description"])
    rotated, retold = copy.deepcopy(auth), copy.deepcopy(token)
    rotated["inputs"]["stringData"]["password"] = secret("hunter2-new")
    retold["inputs"]["description"] = "tok-new"
    code, out = run(document(small, auth, token), document(bigger, rotated, retold), tmp_path)
    assert "    instanceClass: db.t4g.large → db.r6g.large" in out.splitlines()
    assert "stringData.password: (secret, changed; value not shown)" in out
    assert "description: (secret, changed; value not shown)" in out
    assert not any(word in out for word in ("hunter2", "tok-old", "tok-new"))


def test_a_rendered_config_shows_only_the_lines_that_changed():
    conf = "port 6379\nmaxmemory 3221225472\nmaxmemory-policy allkeys-lru\nappendonly no\n"
    config = resource("kubernetes:core/v1:ConfigMap", "redis-config", {
        "metadata": {"name": "redis-config", "namespace": "cache"}, "data": {"redis.conf": conf}})
    grown = copy.deepcopy(config)
    grown["inputs"]["data"]["redis.conf"] = conf.replace("3221225472", "4294967296")
    found = changed(document(config), document(grown))["redis-config"]
    assert found.values == ["data.redis.conf: changed lines", "  -maxmemory 3221225472", "  +maxmemory 4294967296"]
    # pulumi-kubernetes replaces a ConfigMap whose data changes (enableConfigMapMutable defaults to
    # false, provider.go; diff.go forceNewProperties) - unless the provider turns it on
    assert found.action == "replace" and found.reason == "forced by data.redis.conf"
    eks = provider("eks", "", "pulumi:providers:kubernetes") | {"inputs": {"enableConfigMapMutable": "true"}}
    mutable = changed(document(eks, on(eks, config)), document(eks, on(eks, grown)))["redis-config"]
    assert mutable.action == "update"


REDIS_IMAGE = "redis:7.4.2-bookworm"


def redis_set(digest: str, **spec) -> dict:
    template = {"metadata": {"annotations": {"intelgraph.io/redis-conf-sha256": digest}},
                "spec": {"containers": [{"name": "redis", "image": REDIS_IMAGE}],
                         "volumes": [{"name": "config", "configMap": {"name": "redis-config"}}]}}
    return resource("kubernetes:apps/v1:StatefulSet", "redis", {
        "metadata": {"name": "redis", "namespace": "cache"}, "spec": {"replicas": 3, "template": template, **spec}})


def test_disruption_notes_name_what_restarts_and_when():
    # Kubernetes docs "StatefulSets": a new pod template rolls the pods one at a time; with no
    # volume claim template Redis (appendonly no, save "") comes back with an empty cache.
    old_cache, new_cache = redis_set("a"), redis_set("b")
    notes = changed(document(old_cache), document(new_cache))["redis"].notes
    assert len(notes) == 1 and "every pod restarts, one at a time" in notes[0] and "empty cache" in notes[0]
    kept = changed(document(redis_set("a", volumeClaimTemplates=[{"metadata": {"name": "data"}}])),
                   document(redis_set("b", volumeClaimTemplates=[{"metadata": {"name": "data"}}])))["redis"]
    assert "empty cache" not in kept.notes[0]
    # a ConfigMap read at pod start: restarted with it when the digest moves, stale when it does not
    config = resource("kubernetes:core/v1:ConfigMap", "redis-config", {
        "metadata": {"name": "redis-config", "namespace": "cache"}, "data": {"redis.conf": "maxmemory 1\n"}})
    edited = copy.deepcopy(config)
    edited["inputs"]["data"]["redis.conf"] = "maxmemory 2\n"
    with_digest = changed(document(config, old_cache), document(edited, new_cache))["redis-config"]
    assert with_digest.notes == ["read at pod start: StatefulSet redis restart(s) with it in this plan "
                                 "(their pod template changes too)"]
    stale = changed(document(config, old_cache), document(edited, old_cache))["redis-config"]
    assert "they keep the old configuration" in stale.notes[0]
    # RDS (ModifyDBInstance; User Guide "Settings for DB instances"): an instance class change is an
    # outage, all of it on a single-AZ instance, and waits for the maintenance window unless
    # applyImmediately
    single = copy.deepcopy(DATABASE)
    single["inputs"] |= {"multiAz": False, "maintenanceWindow": "sun:05:00-sun:06:00"}
    bigger = copy.deepcopy(single)
    bigger["inputs"]["instanceClass"] = "db.r6g.2xlarge"
    notes = changed(document(single), document(bigger))["pg-primary"].notes
    assert notes == ["instanceClass: an outage while the instance class changes (single-AZ: the database is "
                     "down for all of it)",
                     "instanceClass: applied in the next maintenance window (sun:05:00-sun:06:00); applyImmediately "
                     "is false, so the plan ends before the change happens"]


def neo4j_release(index: int, memory: str, skip_await: bool = False) -> dict:
    return resource("kubernetes:helm.sh/v3:Release", f"neo4j-graph-server-{index}", {
        "name": f"graph-server-{index}", "namespace": "graph", "chart": "neo4j", "version": "5.26.16",
        "repositoryOpts": {"repo": "https://helm.neo4j.com/neo4j"}, "skipAwait": skip_await,
        "values": {"neo4j": {"resources": {"memory": memory}}}},
        parent_type="intelgraph:graph:Neo4jCluster", parent=f"{PREFIX}intelgraph:graph:Neo4jCluster::neo4j")


def test_new_release_values_are_a_rolling_restart_of_every_neo4j_server():
    # components/neo4j_cluster.py: one release per server, chained by dependsOn and waiting for
    # each server (skipAwait false), so an upgrade of all releases restarts them one at a time
    before = [neo4j_release(i, "8Gi") for i in (1, 2, 3)]
    found = changed(document(*before), document(*(neo4j_release(i, "16Gi") for i in (1, 2, 3))))
    server = found["neo4j-graph-server-2"]
    assert server.values == ["values.neo4j.resources.memory: 8Gi → 16Gi"] and server.action == "update"
    assert "every Neo4j server of this cluster (3 of 3) restarts, a rolling restart, one server at a time" in server.notes[0]
    one = changed(document(*before), document(neo4j_release(1, "16Gi"), *before[1:]))["neo4j-graph-server-1"]
    assert "1 of 3 Neo4j servers of this cluster restart" in one.notes[0]
    rushed = changed(document(*before), document(*(neo4j_release(i, "16Gi", skip_await=True) for i in (1, 2, 3))))
    assert "all at once" in rushed["neo4j-graph-server-3"].notes[0]


def test_what_rds_refuses_fails_the_plan_even_when_approved(tmp_path):
    # RDS User Guide: allocated storage can only grow; ModifyDBInstance has no downgrade, and a new
    # major version needs AllowMajorVersionUpgrade
    base = copy.deepcopy(DATABASE)
    base["inputs"] |= {"allocatedStorage": 200, "engineVersion": "16.4"}
    shrunk = copy.deepcopy(base)
    shrunk["inputs"]["allocatedStorage"] = 100
    found = changed(document(base), document(shrunk))["pg-primary"]
    assert found.refused == ["allocatedStorage 200 → 100 GiB: RDS cannot shrink storage; the way to less storage "
                             "is a new instance loaded from a dump"]
    code, out = run(document(base), document(shrunk), tmp_path, "--approved-by", "alice")
    assert code == 1 and "x refused: allocatedStorage 200 → 100 GiB" in out and "the deploy would fail there" in out
    # with storage autoscaling the provider ignores a lower value (instance.go DiffSuppressFunc)
    autoscaled = copy.deepcopy(shrunk)
    autoscaled["inputs"]["maxAllocatedStorage"] = 1000
    assert not changed(document(base), document(autoscaled))["pg-primary"].refused
    older = copy.deepcopy(base)
    older["inputs"]["engineVersion"] = "15.7"
    found = changed(document(base), document(older))["pg-primary"]
    assert "is a downgrade: RDS has none" in found.refused[0] and not found.needs_review
    assert "major upgrade" not in found.reason
    newer = copy.deepcopy(base)
    newer["inputs"]["engineVersion"] = "17.2"
    found = changed(document(base), document(newer))["pg-primary"]
    assert "major upgrade without allowMajorVersionUpgrade: RDS refuses it" in found.refused[0]
    newer["inputs"]["allowMajorVersionUpgrade"] = True
    found = changed(document(base), document(newer))["pg-primary"]
    assert not found.refused and found.needs_review and found.reason == "major engine upgrade 16 -> 17"
    assert any("engineVersion: an outage" in n for n in found.notes)
    minor = copy.deepcopy(base)
    minor["inputs"]["engineVersion"] = "16"  # a major-only pin of the same line is no downgrade
    assert not changed(document(base), document(minor))["pg-primary"].refused


def test_force_new_beyond_stateful_types():
    # terraform-provider-aws ec2/vpc_security_group.go: vpc_id, name and description are ForceNew
    group = resource("aws:ec2/securityGroup:SecurityGroup", "redis-sg", {"vpcId": "vpc-1", "description": "redis"})
    moved = copy.deepcopy(group)
    moved["inputs"]["vpcId"] = "vpc-2"
    found = changed(document(group), document(moved))["redis-sg"]
    assert (found.action, found.reason, found.dangerous) == ("replace", "forced by vpcId", False)
    assert found.values == ["vpcId: vpc-1 → vpc-2"]
    # sns/topic_subscription.go topic_arn (Pulumi: `topic`); route53/health_check.go request_interval
    subscription = resource("aws:sns/topicSubscription:TopicSubscription", "pager", {"topic": "arn:a", "protocol": "https"})
    assert changed(document(subscription), document(subscription | {"inputs": {"topic": "arn:b", "protocol": "https"}}))[
        "pager"].action == "replace"


@pytest.mark.parametrize("stack", STACKS)
def test_every_synthesized_resource_type_is_in_the_force_new_table(stack):
    """A new resource type in the program fails here until its ForceNew fields are audited
    (synth/forcenew.py names the provider source file for each)."""
    types = {r.type for r in synthesized(stack).resources if r.custom and not r.type.startswith("pulumi:providers:")}
    assert sorted(t for t in types if not forcenew.known(t)) == []


def sdk_inputs(resource_type: str) -> set[str]:
    """The camelCase input names the Python SDK accepts for a resource type."""
    package, module, name = resource_type.split(":")
    sdk = {"aws": aws, "random": pulumi_random}[package]
    cls = getattr(sdk, name) if module.startswith("index") else getattr(getattr(sdk, module.split("/")[0]), name)
    names = [p for p in inspect.signature(cls._internal_init).parameters if p not in ("__self__", "resource_name",
                                                                                       "opts", "__props__")]
    return {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), n) for n in names}


def test_every_force_new_field_is_an_input_the_sdk_has():
    # the table uses the engine's names (pulumi-aws renames some: alarm_name is `name`,
    # topic_arn is `topic`): a misspelt field would never match a change
    wrong = {t: [f for f in fields if f not in sdk_inputs(t)]
             for t, fields in {**forcenew.AWS, **forcenew.RANDOM}.items()}
    assert {t: f for t, f in wrong.items() if f} == {}


def test_a_delete_and_create_of_one_resource_suggest_the_exact_alias(tmp_path):
    moved = copy.deepcopy(DATABASE)
    moved["urn"] = moved["urn"].replace("::pg-primary", "::postgres-primary")
    found = changed(document(DATABASE), document(moved))
    assert found["pg-primary"].hint == f"looks renamed to {moved['urn']}"
    assert found["postgres-primary"].hint == ('if this is pg-primary renamed, keep it: opts=pulumi.ResourceOptions('
                                              'aliases=[pulumi.Alias(name="pg-primary")])')
    code, out = run(document(DATABASE), document(moved), tmp_path)
    assert code == 1 and '    > if this is pg-primary renamed' in out


def test_renaming_a_component_suggests_the_alias_for_it_and_each_child_named_after_it():
    """Pulumi docs ("aliases"): a child's aliases combine with its parent's, so renaming PostgresDr
    needs the component's old name, and each child named after it its own old name."""
    from tests.test_stateful import renamed_postgres

    found = diff.compare(export.to_export(synthesized("prod")), export.to_export(renamed_postgres()))
    by_name = {(c.action, c.urn.rsplit("::", 1)[-1]): c for c in found}
    component = by_name[("create", "pg")]
    assert component.hint == ('if this is intelgraph-pg renamed, keep it: '
                              'opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="intelgraph-pg")])')
    # its children are named from the component, so each needs its old name too
    database = by_name[("create", "pg-primary")]
    assert database.hint == ('if this is intelgraph-pg-primary renamed, keep it: opts=pulumi.ResourceOptions('
                             'aliases=[pulumi.Alias(name="intelgraph-pg-primary")]), together with the alias on its '
                             "parent pg (Pulumi combines a child's aliases with its parent's)")
    assert by_name[("delete", "intelgraph-pg-primary")].hint.startswith("looks renamed to ")


def test_two_exports_of_different_stacks_are_refused_in_one_line(tmp_path):
    stage = json.loads(json.dumps(document(ROLE)).replace("urn:pulumi:prod::", "urn:pulumi:stage::"))
    code, out = run(document(ROLE), stage, tmp_path)
    assert code == 2 and out.strip().splitlines() == [
        "synth diff: the exports are of different stacks (intelgraph-platform/prod and intelgraph-platform/stage); "
        "compare two exports of the same stack"]


# --- volumeClaimTemplates: forbidden on update; only the resize path grows a volume -------------------
# Kubernetes pkg/apis/apps/validation/validation.go (ValidateStatefulSetUpdate): "updates to statefulset
# spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy',
# 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden". The Neo4j chart renders
# each server's StatefulSet with a `data` claim template from `volumes.data` (templates/_volumeTemplate.tpl),
# so `helm upgrade` with a new size fails at the API server on every run.

RELEASE_1 = "neo4j-graph-server-1"


def _prod_with_volume(**dynamic) -> dict:
    document_ = copy.deepcopy(export.to_export(synthesized("prod")))
    for entry in document_["deployment"]["resources"]:
        if entry["type"] == "kubernetes:helm.sh/v3:Release" and entry["urn"].endswith(f"::{RELEASE_1}"):
            entry["inputs"]["values"]["volumes"]["data"]["dynamic"].update(dynamic)
    return document_


def test_growing_a_chart_rendered_volume_is_refused_unless_the_resize_path_runs_first(tmp_path):
    base = export.to_export(synthesized("prod"))
    grown = _prod_with_volume(requests={"storage": "300Gi"})
    [change] = [c for c in diff.compare(base, grown) if c.action != "create" and c.properties]
    assert change.urn.endswith(RELEASE_1) and not change.refused and change.needs_review
    assert change.resize == [
        "rendered StatefulSet graph-server-1: volumeClaimTemplates data storage 200Gi → 300Gi: Kubernetes forbids "
        "updating a StatefulSet's volumeClaimTemplates (apps/v1 validation: only replicas, ordinals, template, "
        "updateStrategy, persistentVolumeClaimRetentionPolicy and minReadySeconds may change), so the deploy fails "
        "unless the resize path runs first (docs/runbooks.md, 'Growing a Neo4j volume'): expand each PVC, then "
        "delete the StatefulSet with --cascade=orphan"]
    code, out = run(base, grown, tmp_path)
    assert code == 1 and "x refused unless the resize path runs first: rendered StatefulSet graph-server-1" in out
    # an approval records that the operator runs the resize path before the deploy
    code, out = run(base, grown, tmp_path, "--approved-by", "alice")
    assert code == 0, out


@pytest.mark.parametrize("dynamic,words", [
    ({"requests": {"storage": "100Gi"}}, "storage 200Gi → 100Gi: a volume cannot shrink"),
    ({"storageClassName": "gp2"}, "changes more than its storage request"),
], ids=["shrink", "storage-class"])
def test_what_no_resize_path_gets_through_fails_the_plan_even_when_approved(tmp_path, dynamic, words):
    base = export.to_export(synthesized("prod"))
    edited = _prod_with_volume(**dynamic)
    [change] = [c for c in diff.compare(base, edited) if c.properties]
    assert len(change.refused) == 1 and words in change.refused[0] and not change.resize
    code, out = run(base, edited, tmp_path, "--approved-by", "alice")
    assert code == 1 and "the deploy would fail there" in out


def test_release_values_that_leave_the_claim_templates_alone_are_no_resize():
    base = export.to_export(synthesized("prod"))
    edited = copy.deepcopy(base)
    for entry in edited["deployment"]["resources"]:
        if entry["urn"].endswith(f"::{RELEASE_1}"):
            entry["inputs"]["values"]["neo4j"]["resources"]["memory"] = "40Gi"
    [change] = [c for c in diff.compare(base, edited) if c.properties]
    assert not change.resize and not change.refused and not change.needs_review


def test_a_statefulsets_own_claim_templates_are_a_replace_that_leaves_the_claims_as_they_are():
    """pulumi-kubernetes replaces a StatefulSet whose claim templates change (ForceNew table), which
    deletes its pods; a template only makes claims that do not exist yet, so the old ones keep their size."""
    def claim(size: str) -> dict:
        return {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3",
                                                         "resources": {"requests": {"storage": size}}}}
    old = redis_set("a", volumeClaimTemplates=[claim("10Gi")])
    grown = changed(document(old), document(redis_set("a", volumeClaimTemplates=[claim("20Gi")])))["redis"]
    assert grown.action == "replace" and "spec.volumeClaimTemplates" in grown.reason
    assert any("the existing claims keep their size and class" in n for n in grown.notes), grown.notes
    # and no claim template change, no such note
    same = changed(document(old), document(redis_set("b", volumeClaimTemplates=[claim("10Gi")])))["redis"]
    assert same.action == "update" and not any("claims keep" in n for n in same.notes)
