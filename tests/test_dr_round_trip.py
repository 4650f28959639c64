"""The DR round trip as configuration (issue 21; docs/decisions/018-active-region-is-state.md): each
state is a stack file the test writes, synthesized under the mock engine, and each step is judged
the way a pull request is - `synth diff` between the two exports, the policy pack on the new one -
with the DR budget it deploys:

    normal         dr.activeRegion primary, postgres.generations {1, 1}: A writes, B replicates A
    failed over    activeRegion dr, {1, 1}: B promoted in place; A exactly as it was
    (retire A)     prod: the same, with A's and its secret's URNs in `retire` (the two-deploy retire path)
    rebuilt        activeRegion dr, {2, 1}: A and its credentials deleted (approved), C = new replica of B
                   in the primary region
    switched back  activeRegion primary, {2, 1}: C promoted in place (a planned switch); B exactly as
                   it was, still protected: a live writer is never released
    (retire B)     prod: the same, with B's and its secret's URNs in `retire`
    normal again   activeRegion primary, {2, 2}: B and its credentials deleted (approved), D = new
                   replica of C

Each writer has its own master secret, in its region (docs/decisions/025-master-secret-per-writer.md).

The promotion is an in-place update because of terraform-provider-aws
internal/service/rds/instance.go: `replicate_source_db` is Optional and not ForceNew; in
resourceInstanceUpdate, `d.HasChange("replicate_source_db")` with an empty new value calls
PromoteReadReplica (BackupRetentionPeriod and PreferredBackupWindow from the configuration) and any
other new value fails ("cannot elect new source database for replication"); and
website/docs/r/db_instance.html.markdown: "Removing the replicate_source_db attribute from an
existing RDS Replicate database managed by Terraform will promote the database to a fully
standalone database." The ForceNew fields of that schema (synth/forcenew.py) must not change:
kms_key_id and storage_encrypted keep the replica's values, and username / db_name / engine (Optional
and Computed, inherited from the source) stay unset, so what is read back is no diff.

What this test does not own (other w7 helpers): invokes that reach the primary region while it is
down, the ARC Region switch plan and its Route 53 health checks, the runbooks' outputs.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from unittest import mock

import pytest
import yaml

from policy.guardrails import exceptions as policy_exceptions
from synth import diff, engine, export, forcenew, policy_runner
from tests.conftest import STACKS, config_with, stack_settings

PROJECT = engine.PROJECT
PG = "intelgraph-pg"
INSTANCE = "aws:rds/instance:Instance"
# what the provider sets on a promotion (PromoteReadReplica's arguments, then ModifyDBInstance) and
# what the program adds to a writer: nothing else of the promoted replica may change (a stack with
# postgres.finalSnapshot also names the final snapshot the writer leaves)
PROMOTION_CHANGES = ["backupRetentionPeriod", "backupWindow", "deleteAutomatedBackups", "passwordWo",
                     "passwordWoVersion", "replicateSourceDb", "tags"]
SECRET = "aws:secretsmanager/secret:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
# the writers' credentials, by instance: generation 1's primary keeps the names it was deployed with
CREDENTIALS = {"primary": f"{PG}-master"}
FINAL_SNAPSHOT_CHANGES = ["finalSnapshotIdentifier", "skipFinalSnapshot"]


def instance_urn(stack: str, name: str) -> str:
    return child_urn(stack, INSTANCE, f"{PG}-{name}")


def child_urn(stack: str, kind: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::intelgraph:database:PostgresDr${kind}::{name}"


def credentials(instance: str) -> str:
    """The name of the master secret of the writer ``instance`` (``primary``, ``replica-g2``, ...)."""
    return CREDENTIALS.get(instance, f"{PG}-{instance}-master")


def retirement(stack: str, instance: str) -> list[str]:
    """What retiring a former writer approves: the instance, and its secret (both protected)."""
    return [instance_urn(stack, instance), child_urn(stack, SECRET, credentials(instance))]


def deleted_with(stack: str, instance: str) -> list[str]:
    """What the deploy after a former writer's retirement deletes that holds state: the instance,
    its secret and its bootstrap password (sorted, as diff verdicts are compared)."""
    return sorted([*retirement(stack, instance), child_urn(stack, PASSWORD, f"{credentials(instance)}-bootstrap")])


def states(stack: str) -> list[tuple[str, dict]]:
    """The round trip's stack files, as changes to the real one. Only prod protects stateful
    resources, so only prod takes the retire deploys (settings refuse `retire` in stage)."""
    failed_over = {"dr.activeRegion": "dr"}
    rebuilt = {"dr.activeRegion": "dr", "postgres.generations": {"primary": 2, "dr": 1}}
    switched_back = {"dr.activeRegion": "primary", "postgres.generations": {"primary": 2, "dr": 1}}
    steps = [("normal", {}), ("failed over", failed_over)]
    if stack == "prod":
        steps.append(("retire A", {**failed_over, "retire": retirement(stack, "primary")}))
    steps += [("rebuilt", rebuilt), ("switched back", switched_back)]
    if stack == "prod":
        steps.append(("retire B", {**switched_back, "retire": retirement(stack, "replica")}))
    steps.append(("normal again", {"dr.activeRegion": "primary", "postgres.generations": {"primary": 2, "dr": 2}}))
    return steps


# A retire deploy releases the retiring instance's deletion protection (so that the next deploy's
# delete, with its final snapshot, is not refused by RDS): prod's mandatory rds-deletion-protection
# then needs a time-boxed exception for that instance, approved in the same change
# (policy/exceptions.yaml, docs/decisions/011; docs/runbooks.md "Round trip").
RETIRING = {"retire A": "primary", "retire B": "replica"}


@contextmanager
def waivers(step: str):
    """The policy exceptions a step's change carries (none but the retire deploys')."""
    instance = RETIRING.get(step)
    if instance is None:
        yield
        return
    entry = policy_exceptions.Exception_("rds-deletion-protection", f"{PG}-{instance}",
                                         "retired former writer: deleted with its final snapshot by the next deploy",
                                         "platform-lead@intelgraph.example.com", date.today() + timedelta(days=7))
    with mock.patch.object(policy_exceptions, "current", lambda: policy_exceptions.Loaded((entry,), ())):
        yield


def write_stack_file(stack: str, changes: dict, path: Path) -> Path:
    """A Pulumi.<stack>.yaml as an operator would commit it for that state."""
    config = {k: json.loads(v) if v[:1] in "{[" else v for k, v in config_with(stack, changes).items()}
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


@dataclass
class Step:
    name: str
    export: dict
    plan: list[diff.Change]  # from the previous state ([] for normal)
    diff_text: str
    diff_exit: int  # without approval
    approved_exit: int  # with a named approval
    mandatory: list[tuple[str, str]]  # policy verdict: mandatory violations (policy, message)
    budget: list[dict]

    @property
    def postgres(self) -> dict:
        return self.export_outputs["postgres"]

    @property
    def export_outputs(self) -> dict:
        [stack] = [r for r in self.export["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack"]
        return stack["outputs"]

    def verdict_lines(self) -> list[str]:
        rows = ", ".join(f"{b['datastore']} {b['objective']} {b['boundSeconds']}/{b['targetSeconds']}s"
                         f"{'' if b['met'] else ' MISSED'}" for b in self.budget)
        return [f"== {self.name}: synth diff exit {self.diff_exit} (approved: {self.approved_exit}); "
                f"policy: {len(self.mandatory)} mandatory violation(s); writer {self.postgres['writerRegion']}",
                f"   DR budget: {rows}"]


def round_trip(stack: str, directory: Path) -> list[Step]:
    """Every state of the round trip, each judged against the one before; prints each verdict."""
    steps: list[Step] = []
    previous = None
    for name, changes in states(stack):
        path = write_stack_file(stack, changes, directory / f"Pulumi.{stack}.{name.replace(' ', '-')}.yaml")
        document = export.to_export(engine.synthesize(stack, engine.stack_config(stack, path)))
        plan = diff.compare(previous, document) if previous is not None else []
        text, code = diff.summary(plan, None)
        with waivers(name):
            report = policy_runner.evaluate(document, stack)
        [root] = [r for r in document["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack"]
        step = Step(name, document, plan, text, code, diff.summary(plan, "reviewer")[1],
                    [(p, f.message) for p, f in report.mandatory_violations], root["outputs"]["drBudget"])
        print("\n".join(step.verdict_lines()))
        steps.append(step)
        previous = document
    return steps


_cache: dict[str, list[Step]] = {}


@pytest.fixture(params=STACKS)
def trip(request, tmp_path_factory) -> list[Step]:
    stack = request.param
    if stack not in _cache:
        _cache[stack] = round_trip(stack, tmp_path_factory.mktemp(f"round-trip-{stack}"))
    return _cache[stack]


def by_name(steps: list[Step]) -> dict[str, Step]:
    return {s.name: s for s in steps}


def resources(step: Step) -> dict[str, dict]:
    return {r["urn"]: r for r in step.export["deployment"]["resources"]}


def provider_name(resource: dict) -> str:
    """The provider's resource name (``aws-primary``, ``eks``, ...) from ``<urn>::<id>``."""
    return (resource.get("provider") or "").rsplit("::", 1)[0].rsplit("::", 1)[-1]


def stack_of(step: Step) -> str:
    return step.export["deployment"]["resources"][0]["urn"].split(":")[2]


def test_every_state_deploys_with_no_mandatory_violation(trip):
    for step in trip:
        assert step.mandatory == [], (step.name, step.mandatory)


def test_each_step_deletes_or_replaces_nothing_stateful_but_the_retired_writer(trip):
    """The retired writer goes with its credentials: its secret and its bootstrap password."""
    stack = stack_of(trip[0])
    retired = {step: deleted_with(stack, instance) for step, instance in (("rebuilt", "primary"), ("normal again", "replica"))}
    for step in trip[1:]:
        dangerous = sorted((c.action, c.urn) for c in step.plan if c.dangerous)
        assert dangerous == sorted(("delete", urn) for urn in retired.get(step.name, [])), (step.name, step.diff_text)
        # and each goes through its provider's delete (the instance's final snapshot, the secret's
        # recovery window), not only out of the state: pulumi/pulumi step.go DeleteStep.Apply skips
        # the provider when the state says RetainOnDelete - in stage too, which retires nothing
        assert not [c.urn for c in step.plan if c.action == "delete" and diff.RETAINED in c.notes], step.diff_text
        assert not any(c.refused for c in step.plan), step.diff_text  # neither AWS nor the engine refuses it
        assert step.diff_exit == (diff.EXIT_STATEFUL if dangerous else diff.EXIT_OK), step.diff_text
        assert step.approved_exit == diff.EXIT_OK, step.diff_text


def test_the_retire_deploys_only_release_the_writer_that_goes(tmp_path_factory):
    """prod only: stage protects nothing, and settings refuse `retire` there."""
    if "prod" not in _cache:
        _cache["prod"] = round_trip("prod", tmp_path_factory.mktemp("round-trip-prod"))
    steps = by_name(_cache["prod"])
    for name, label in (("retire A", "primary"), ("retire B", "replica")):
        instance, secret = retirement("prod", label)
        # released for the provider's delete: the instance's final snapshot, the secret's recovery
        # window (tests/test_retire.py, helpers/stateful.py)
        assert sorted((c.action, c.urn, sorted(c.properties)) for c in steps[name].plan) == sorted([
            ("update", instance, ["deletionProtection", "protect", "retainOnDelete"]),
            ("update", secret, ["protect", "retainOnDelete"])])
        # without its exception the mandatory rule stops the retire deploy: deleting a production
        # database takes the named approval of both the plan and the waiver
        unwaived = policy_runner.evaluate(steps[name].export, "prod").mandatory_violations
        assert [(p, f.urn) for p, f in unwaived] == [("rds-deletion-protection", instance)]


def test_failing_over_changes_nothing_managed_in_the_primary_region(trip):
    """Flipping dr.activeRegion primary -> dr must deploy while the primary region is down: no
    resource of the primary region's AWS provider, the primary cluster's Kubernetes provider or
    Route 53 (its control plane is in us-east-1) is created, updated, replaced or deleted."""
    steps = by_name(trip)
    normal, failed = resources(steps["normal"]), resources(steps["failed over"])
    touched = [(c.action, c.urn, provider_name(failed.get(c.urn) or normal[c.urn])) for c in steps["failed over"].plan]
    assert touched, "the failover changes nothing at all"
    in_primary = [t for t in touched if t[2] in ("aws-primary", "eks") or ":aws:route53/" in t[1]]
    assert in_primary == [], in_primary
    # IAM is global, and its control plane is in us-east-1 (AWS whitepaper "AWS Fault Isolation
    # Boundaries", global services): with the primary region there, no IAM change may be needed
    assert [t for t in touched if ":aws:iam/" in t[1]] == []
    # and the former writer's inputs are byte for byte those it had as the writer
    a = instance_urn(stack_of(trip[0]), "primary")
    assert failed[a]["inputs"] == normal[a]["inputs"] and failed[a]["provider"] == normal[a]["provider"]


def promotion(step: Step, urn: str) -> diff.Change:
    [change] = [c for c in step.plan if c.urn == urn]
    return change


def test_a_promotion_is_an_in_place_update_that_touches_no_force_new_field(trip):
    """terraform-provider-aws internal/service/rds/instance.go (module docstring): removing
    replicate_source_db promotes in place; the other changes are what a writer needs."""
    stack, steps = stack_of(trip[0]), by_name(trip)
    for name, promoted, source in (("failed over", "replica", "primary"), ("switched back", "primary-g2", "replica")):
        change = promotion(steps[name], instance_urn(stack, promoted))
        expected = PROMOTION_CHANGES + (FINAL_SNAPSHOT_CHANGES if stack_settings(stack).postgres.final_snapshot else [])
        assert (change.action, sorted(change.properties)) == ("update", sorted(expected)), change.line()
        inputs = resources(steps[name])[change.urn]["inputs"]
        assert "replicateSourceDb" not in inputs and inputs["tags"] == {"intelgraph.io/promoted-from": f"{PG}-{source}"}
        assert not set(change.properties) & set(forcenew.AWS[INSTANCE])
        # the plan says what the promotion does, and that the retention comes with it, not later
        assert any(n.startswith("replicateSourceDb: removed - the replica is promoted") for n in change.notes)
        assert not any("backupRetentionPeriod" in n and "maintenance window" in n for n in change.notes)
        # inherited from the source and ForceNew: unset, so the value read back is no diff
        assert not {"username", "dbName", "engine", "allocatedStorage"} & set(inputs)
        assert inputs["storageEncrypted"] is True and inputs["backupRetentionPeriod"] >= 1
        # its own password, from its own bootstrap: password_wo_version new, so the provider's
        # ModifyDBInstance after PromoteReadReplica carries MasterUserPassword (instance.go
        # dbInstancePopulateModify: `if d.HasChange("password_wo_version")`)
        assert inputs["passwordWoVersion"] == 1


def test_the_writer_and_its_replica_follow_the_state(trip):
    stack = stack_of(trip[0])
    expected = {  # state: (writer, replica or None)
        "normal": ("primary", "replica"), "failed over": ("replica", None), "retire A": ("replica", None),
        "rebuilt": ("replica", "primary-g2"),
        "switched back": ("primary-g2", None), "retire B": ("primary-g2", None),
        "normal again": ("primary-g2", "replica-g2"),
    }
    for step in trip:
        writer, replica = expected[step.name]
        everything = resources(step)
        pg = step.postgres
        assert pg["writerArn"].endswith(f":db:{PG}-{writer}") and pg["primaryArn"] == pg["writerArn"]
        assert pg["writerRegion"] in pg["writerArn"]
        writer_db = everything[instance_urn(stack, writer)]["inputs"]
        assert "replicateSourceDb" not in writer_db
        replicas = [r for r in everything.values() if r["type"] == INSTANCE and "replicateSourceDb" in r["inputs"]]
        if replica is None:
            assert replicas == [] and "replicaArn" not in pg
            continue
        [db] = replicas
        assert db["urn"] == instance_urn(stack, replica) and db["inputs"]["replicateSourceDb"] == pg["writerArn"]
        assert pg["replicaArn"].endswith(f":db:{PG}-{replica}")
        # a cross-Region replica: another region's provider, and that region's key
        assert provider_name(db) != provider_name(everything[instance_urn(stack, writer)])
        assert db["inputs"]["kmsKeyId"] != writer_db["kmsKeyId"]
        # the lag alarm watches the replica, in the replica's region
        [lag] = [r for r in everything.values() if r["type"] == "aws:cloudwatch/metricAlarm:MetricAlarm"
                 and r["inputs"].get("metricName") == "ReplicaLag"]
        assert lag["inputs"]["dimensions"] == {"DBInstanceIdentifier": f"{PG}-{replica}"}
        assert provider_name(lag) == provider_name(db)


WRITERS = {  # state: the writer, and the former writer that still exists beside it
    "normal": ("primary", None), "failed over": ("replica", "primary"), "retire A": ("replica", "primary"),
    "rebuilt": ("replica", None), "switched back": ("primary-g2", "replica"), "retire B": ("primary-g2", "replica"),
    "normal again": ("primary-g2", None),
}


def test_each_writer_has_its_own_secret_in_its_region_copied_where_its_replica_is(trip):
    """Decision 025: one secret per writer, homed in the writer's region under that region's key,
    rotated there, replicated to the other region only while an instance there replicates it (a
    failed-over writer's gains its copy at the rebuild, in place: terraform-provider-aws
    secretsmanager/secret.go, `replica` is not ForceNew; ReplicateSecretToRegions). No secret is
    ever promoted or replicated over one of the same name."""
    stack = stack_of(trip[0])
    for step in trip:
        everything, pg = resources(step), step.postgres
        writer, former = WRITERS[step.name]
        secrets = {r["inputs"]["name"]: r for r in everything.values() if r["type"] == SECRET}
        assert sorted(secrets) == sorted(credentials(i) for i in (writer, former) if i), step.name
        secret = secrets[credentials(writer)]
        db = everything[instance_urn(stack, writer)]
        assert provider_name(secret) == provider_name(db), step.name  # the writer's region
        assert pg["writerSecretArn"].split(":")[3] == pg["writerRegion"]
        assert f":secret:{credentials(writer)}-" in pg["writerSecretArn"]
        [key] = [r for r in everything.values() if r["type"] == "aws:kms/key:Key"
                 and r["outputs"].get("arn") == secret["inputs"]["kmsKeyId"]]
        assert provider_name(key) == provider_name(db), step.name
        replicas = secret["inputs"].get("replicas") or []
        if "replicaArn" in pg:
            replica_region = pg["replicaArn"].split(":")[3]
            assert [r["region"] for r in replicas] == [replica_region], step.name
            assert pg["replicaSecretArn"] == pg["writerSecretArn"].replace(f":{pg['writerRegion']}:", f":{replica_region}:")
        else:
            assert replicas == [] and "replicaSecretArn" not in pg, step.name
        rotations = [r for r in everything.values() if r["type"] == "aws:secretsmanager/secretRotation:SecretRotation"
                     and r["inputs"]["secretId"] == secret["id"]]
        [rotation] = rotations
        assert provider_name(rotation) == provider_name(db) and rotation["inputs"]["rotateImmediately"] is True
        assert f":{pg['writerRegion']}:" in rotation["inputs"]["rotationLambdaArn"]


def test_no_replica_is_ever_given_a_password(trip):
    """AWS refuses to change the master password of a PostgreSQL read replica ("Cannot change
    master user password on an RDS postgres Read Replica because it uses physical replication",
    terraform-aws-modules/terraform-aws-rds #526), and the provider sends password_wo after creating a
    replica (instance.go resourceInstanceCreate): a replica never carries one."""
    for step in trip:
        for r in resources(step).values():
            if r["type"] == INSTANCE and "replicateSourceDb" in r["inputs"]:
                assert not {"passwordWo", "passwordWoVersion", "password"} & set(r["inputs"]), (step.name, r["urn"])


def test_the_dr_budget_drops_the_replica_rows_only_while_there_is_no_replica(trip):
    rows = {s.name: {(b["datastore"], b["objective"]) for b in s.budget} for s in trip}
    with_replica = rows["normal"]
    assert ("postgres", "RPO") in with_replica and ("postgres", "RTO") in with_replica
    for step in trip:
        expected = with_replica if "replicaArn" in step.postgres else \
            with_replica - {("postgres", "RTO"), ("postgres", "RPO")}
        assert rows[step.name] == expected, step.name
        assert all(b["met"] for b in step.budget), step.name


def test_the_restore_rehearsal_restores_the_writers_backups_from_the_dr_cluster(trip):
    for step in trip:
        [code] = [r for r in step.export["deployment"]["resources"]
                  if r["type"] == "kubernetes:core/v1:ConfigMap" and r["urn"].endswith("::pg-restore-rehearsal-code")]
        assert provider_name(code) == "eks-dr"
        outputs = json.loads(code["inputs"]["data"]["outputs.json"])
        assert outputs["postgres"]["primaryArn"] == step.postgres["writerArn"], step.name


def test_the_round_trip_ends_as_normal(trip):
    """The same shape as normal: writer in the primary region, replica in the DR region, the same
    policy verdict and budget; only the instances' names (generation 2) differ, and generation 1's
    log groups stay until their retention ends."""
    steps = by_name(trip)
    normal, back = steps["normal"], steps["normal again"]
    assert back.postgres["writerRegion"] == normal.postgres["writerRegion"]
    assert back.budget == normal.budget and back.mandatory == normal.mandatory == []

    def shape(step: Step) -> dict[str, int]:
        counted: dict[str, int] = {}
        for r in step.export["deployment"]["resources"]:
            if "PostgresDr$" in r["urn"] and "logGroup" not in r["type"] and "logDataProtection" not in r["type"]:
                counted[r["type"]] = counted.get(r["type"], 0) + 1
        return counted

    assert shape(back) == shape(normal)


def test_the_policy_pack_excuses_only_a_failed_over_pair(trip):
    """dr-replica-cross-region wants a cross-Region replica of every standalone instance. Between a
    failover and the rebuild it cannot hold: the promoted instance (tagged with the instance it
    replicated, by the program) and that former source in another region are excused - and nothing
    else is. The promoted writer is still judged as the source it becomes at the rebuild
    (rds-replication-source-password-not-managed), and like any writer it has a write-only password."""
    from components.postgres_dr import PROMOTED_FROM_TAG
    from policy.guardrails.rds import PROMOTED_FROM

    assert PROMOTED_FROM == PROMOTED_FROM_TAG  # the pack runs in its own environment: one spelling, checked
    stack = stack_of(trip[0])
    failed = by_name(trip)["failed over"].export
    b = instance_urn(stack, "replica")

    def violations(mutate) -> list[tuple[str, str]]:
        document = json.loads(json.dumps(failed))
        [entry] = [r for r in document["deployment"]["resources"] if r["urn"] == b]
        mutate(entry)
        return sorted((p, f.urn or "") for p, f in policy_runner.evaluate(document, stack).mandatory_violations)

    def untag(entry):
        for side in ("inputs", "outputs"):
            entry[side].pop("tags", None)

    def tag_itself(entry):  # names an instance of its own region: not a failed-over pair
        for side in ("inputs", "outputs"):
            entry[side]["tags"] = {PROMOTED_FROM: f"{PG}-replica"}

    a = instance_urn(stack, "primary")
    assert violations(lambda e: None) == []
    assert violations(untag) == [("dr-replica-cross-region", a), ("dr-replica-cross-region", b)]
    assert violations(tag_itself) == [("dr-replica-cross-region", a), ("dr-replica-cross-region", b)]

    def managed(entry):  # RDS refuses a replica of it at the rebuild: the rule says so now
        entry["outputs"]["manageMasterUserPassword"] = True

    assert violations(managed) == [("rds-replication-source-password-not-managed", b)]


def test_a_writer_in_the_primary_region_replicates_its_own_backups_to_the_dr_region(trip):
    """PITR in the other region: a writer in the primary region replicates its automated backups to
    the DR region from the deploy that makes it the writer (a planned switch back included: the
    restore rehearsal in the DR cluster restores the writer's backups). A writer in the DR region
    may have got there in an outage: the replication stays with the earlier born instance, whose
    region's resources a failed-over deploy must not need (docs/decisions/018)."""
    stack = stack_of(trip[0])
    for step in trip:
        pg, everything = step.postgres, resources(step)
        [replication] = [r for r in everything.values()
                         if r["type"] == "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"]
        source = replication["inputs"]["sourceDbInstanceArn"]
        primary = stack_settings(stack).aws.primary_region
        if pg["writerRegion"] == primary:
            assert source == pg["writerArn"], step.name
            assert provider_name(replication) == "aws-dr", step.name
        else:
            assert source != pg["writerArn"] or "replicaArn" in pg, step.name
