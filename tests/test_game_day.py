"""The game day (issue 21, "A game day in the test suite"): the whole DR round trip of prod,

    normal -> primary region lost -> failed over -> rebuilt -> switched back -> normal again,

under the mock engine and on moto at once. The mock engine gives each state's export (the stack
files of tests/test_dr_round_trip.py, `states()`/`round_trip()`, synthesized once per session);
each step prints its `synth diff` verdict, its policy verdict and its DR budget, and the Postgres
RTO bound is checked against the Region switch plan's own steps and timeouts.

moto is the world those exports describe, built and changed only from them: every create, update
and delete the step's plan holds for the resources the round trip is about (RDS instances, the
automated-backup replication, the master secrets, their versions and rotation, the rotation
functions, the runbook-outputs parameter) becomes the API call the provider would make, in the
region of the provider the export names. While the primary region is "down", every endpoint of
us-east-1 (and the global ones it serves: Route 53, IAM, STS's legacy endpoint) refuses the
connection (tests/test_ops_runbooks.py `Outage`), so the failover's runbooks and the failed-over
deploy (its `synth targets` list) must get by with the DR region alone. After every step the world
is compared with the export: which instance writes, which replicates whom, where each secret lives
and what rotates it.

What moto cannot show, and what is therefore emulated or left out: StartDBInstanceAutomatedBackups-
Replication (moto has no such call: the replication is set as RDS reports it); Route 53, the ARC
plan's execution and the Kubernetes objects (not modelled: the plan's execution cannot be run
offline, decision 023); a rotation function's run (moto's Lambda answers without running code).
A retired writer is deleted through the provider (helpers/stateful.py `deleted_when_retired`: the
retire deploy releases its deletion protection and `retainOnDelete`), with its final snapshot, and
its secret with it: the game day checks the snapshot exists and nothing is left behind.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from dataclasses import dataclass, field
from typing import Optional

import boto3
from moto import mock_aws

from ops import dr_promote, dr_readiness
from ops._common import outputs_parameter
from synth import diff, engine, targets
from tests.conftest import fake_aws_credentials, stack_settings
from tests.test_dr_round_trip import Step, by_name, deleted_with, resources, round_trip
from tests.test_dr_round_trip import _cache as round_trip_cache
from tests.test_ops_runbooks import Outage, _fix_moto_promotion, put_lag

STACK = "prod"  # the stack that protects and retires: every step of the round trip
ACCOUNT = stack_settings(STACK).aws.account_id
PRIMARY, DR = stack_settings(STACK).aws.primary_region, stack_settings(STACK).aws.dr_region
INSTANCE, SECRET = "aws:rds/instance:Instance", "aws:secretsmanager/secret:Secret"
BACKUPS = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
VERSION, ROTATION = "aws:secretsmanager/secretVersion:SecretVersion", "aws:secretsmanager/secretRotation:SecretRotation"
ROTATION_APP = "aws:serverlessrepository/cloudFormationStack:CloudFormationStack"
PARAMETER = "aws:ssm/parameter:Parameter"
MODELLED = (INSTANCE, BACKUPS, SECRET, VERSION, ROTATION, ROTATION_APP, PARAMETER)
# a write-only bootstrap password never leaves the engine (the export holds it redacted); the
# world's instances get this one, as the first rotation would replace it anyway
BOOTSTRAP = "bootstrap-rotated-away-at-deploy"


def trip() -> dict[str, Step]:
    """prod's round trip, from tests/test_dr_round_trip.py's cache when it ran first."""
    if STACK not in round_trip_cache:
        import tempfile
        from pathlib import Path

        round_trip_cache[STACK] = round_trip(STACK, Path(tempfile.mkdtemp(prefix="game-day-")))
    return by_name(round_trip_cache[STACK])


# --- the exports: where a resource lives ------------------------------------------------------------

def region_of(step: Step, resource: dict) -> str:
    """The region of the AWS provider the export binds ``resource`` to."""
    provider = resources(step)[targets.provider_urn(resource["provider"])]
    return provider["inputs"]["region"]


def pg_resources(step: Step, kind: str) -> list[dict]:
    return [r for r in step.export["deployment"]["resources"] if r["type"] == kind
            and ("PostgresDr$" in r["urn"] or kind == PARAMETER and r["urn"].endswith("::runbook-outputs"))]


# --- the world: moto, changed only by what the exports say ------------------------------------------

@dataclass
class World:
    """moto's account, and what the game day knows about it (moto's secret ARNs, whose random
    suffix is its own, by secret name)."""

    secret_arns: dict[str, str] = field(default_factory=dict)  # name -> ARN in its home region
    retained: list[tuple[str, str]] = field(default_factory=list)  # (region, identifier) left in AWS
    refreshed: set[str] = field(default_factory=set)  # instances whose state `pulumi refresh` re-read

    def refresh(self, identifier: str) -> None:
        """`pulumi refresh --target <its URN>`: the state learns the instance is standalone."""
        self.refreshed.add(identifier)

    # The export's ARNs name what the engine would read back; moto's secrets carry suffixes of their own
    def real(self, text: str) -> str:
        for name, arn in self.secret_arns.items():
            text = re.sub(rf":secret:{re.escape(name)}-[A-Za-z0-9]{{6}}", f":secret:{name}-{arn.rsplit('-', 1)[1]}", text)
        return text

    def apply(self, before: Optional[Step], after: Step, only: Optional[set[str]] = None) -> list[str]:
        """Deploy ``after`` over ``before`` (None: from nothing), limited to the URNs ``only``
        (a targeted update), for the modelled resource types: the calls the provider makes, in
        the region of each resource's provider. Returns the URNs applied."""
        old = resources(before) if before else {}
        new = resources(after)
        changes = {c.urn: c for c in diff.compare(before.export, after.export)} if before else \
            {urn: diff.Change("create", urn, r["type"], False) for urn, r in new.items()}
        applied = []
        # creates and updates in registration order (the engine's dependency order), then deletes in
        # reverse (dependents first: pulumi/pulumi step_generator.go ScheduleDeletes)
        for urn in [u for u in new if u in changes] + [u for u in reversed(old) if u not in new and u in changes]:
            change = changes[urn]
            if change.type not in MODELLED or (only is not None and urn not in only):
                continue
            if change.type == PARAMETER and not urn.endswith("::runbook-outputs"):
                continue
            if change.action == "update" and set(change.properties) <= set(diff.OPTIONS):
                continue  # resource options (protect, retainOnDelete): the engine's state alone, no API call
            if change.action == "delete":
                assert before is not None
                self._delete(before, old[urn])
            else:
                self._put(after, new[urn], old.get(urn))
            applied.append(urn)
        return applied

    def _put(self, step: Step, resource: dict, previous: Optional[dict]) -> None:
        kind, inputs, region = resource["type"], resource["inputs"], region_of(step, resource)
        if kind == INSTANCE:
            self._instance(region, inputs, previous["inputs"] if previous else None)
        elif kind == BACKUPS:
            _replicate_backups(inputs["sourceDbInstanceArn"], region)
        elif kind == SECRET:
            self._secret(region, inputs, previous["inputs"] if previous else None)
        elif kind == VERSION and previous is None:
            # the secret's first value names its instance (the rotation function logs in to `host`)
            [instance] = [u for u in resource["dependencies"] if f"${INSTANCE}::" in u]
            db = describe(region, instance.rsplit("::", 1)[1])
            boto3.client("secretsmanager", region).put_secret_value(
                SecretId=self.real(inputs["secretId"]), SecretString=json.dumps({
                    "engine": "postgres", "host": db["Endpoint"]["Address"], "port": 5432, "dbname": "intelgraph",
                    "username": "intelgraph_admin", "password": BOOTSTRAP, "ssl": "true"}))
        elif kind == ROTATION:
            boto3.client("secretsmanager", region).rotate_secret(
                SecretId=self.real(inputs["secretId"]), RotationLambdaARN=inputs["rotationLambdaArn"],
                RotationRules={"AutomaticallyAfterDays": inputs["rotationRules"]["automaticallyAfterDays"]},
                RotateImmediately=inputs.get("rotateImmediately", True))
        elif kind == ROTATION_APP and previous is None:
            # AWS's published application creates the function (and its role); moto has no
            # Serverless Application Repository: the function is created as the template names it
            boto3.client("lambda", region).create_function(
                FunctionName=inputs["parameters"]["functionName"], Runtime="python3.12", Handler="lambda_function.handler",
                Role=f"arn:aws:iam::{ACCOUNT}:role/{ROTATION_ROLE}", Code={"ZipFile": _zip()})
        elif kind == PARAMETER:
            boto3.client("ssm", region).put_parameter(Name=inputs["name"], Type=inputs["type"], Overwrite=True,
                                                      Value=self.real(inputs["insecureValue"]))

    def _instance(self, region: str, inputs: dict, was: Optional[dict]) -> None:
        rds = boto3.client("rds", region)
        identifier = inputs["identifier"]
        if was is None and "replicateSourceDb" in inputs:
            rds.create_db_instance_read_replica(
                DBInstanceIdentifier=identifier, SourceDBInstanceIdentifier=inputs["replicateSourceDb"],
                DBInstanceClass=inputs["instanceClass"], KmsKeyId=inputs["kmsKeyId"], MultiAZ=inputs["multiAz"],
                DeletionProtection=inputs["deletionProtection"])
        elif was is None:
            rds.create_db_instance(
                DBInstanceIdentifier=identifier, Engine=inputs["engine"], DBInstanceClass=inputs["instanceClass"],
                AllocatedStorage=inputs["allocatedStorage"], MasterUsername=inputs["username"],
                MasterUserPassword=BOOTSTRAP, BackupRetentionPeriod=inputs["backupRetentionPeriod"],
                KmsKeyId=inputs["kmsKeyId"], StorageEncrypted=inputs["storageEncrypted"], MultiAZ=inputs["multiAz"],
                DeletionProtection=inputs["deletionProtection"])
        elif "replicateSourceDb" in was and "replicateSourceDb" not in inputs and identifier not in self.refreshed:
            # the state still says replica: the provider calls PromoteReadReplica (instance.go
            # resourceInstanceUpdate), which RDS refuses on a standalone instance - so a replica the
            # plan or ops.dr_promote already promoted must be refreshed first (docs/runbooks.md)
            assert describe(region, identifier).get("ReadReplicaSourceDBInstanceIdentifier"), (
                f"PromoteReadReplica on {identifier}, already standalone: refresh it before the deploy")
            rds.promote_read_replica(DBInstanceIdentifier=identifier,
                                     BackupRetentionPeriod=inputs["backupRetentionPeriod"],
                                     PreferredBackupWindow=inputs["backupWindow"])
        if was is not None and was.get("deletionProtection") != inputs["deletionProtection"]:
            # the retire deploy releases it (helpers/stateful.py): RDS refuses to delete it otherwise
            rds.modify_db_instance(DBInstanceIdentifier=identifier, DeletionProtection=inputs["deletionProtection"],
                                   ApplyImmediately=True)
        if was is not None and "passwordWo" in inputs and "passwordWo" not in was:
            # a promoted writer's own password, from its own secret (the secret per writer)
            rds.modify_db_instance(DBInstanceIdentifier=identifier, MasterUserPassword=BOOTSTRAP, ApplyImmediately=True)
        if inputs.get("tags") and (was or {}).get("tags") != inputs["tags"]:
            rds.add_tags_to_resource(ResourceName=f"arn:aws:rds:{region}:{ACCOUNT}:db:{identifier}",
                                     Tags=[{"Key": k, "Value": v} for k, v in inputs["tags"].items()])

    def _secret(self, region: str, inputs: dict, was: Optional[dict]) -> None:
        client = boto3.client("secretsmanager", region)
        replicas = {r["region"]: r["kmsKeyId"] for r in inputs.get("replicas") or []}
        if was is None:
            created = client.create_secret(
                Name=inputs["name"], KmsKeyId=inputs["kmsKeyId"], Description=inputs.get("description", ""),
                **({"AddReplicaRegions": [{"Region": r, "KmsKeyId": k} for r, k in replicas.items()]} if replicas else {}))
            self.secret_arns[inputs["name"]] = created["ARN"]
            return
        had = {r["region"] for r in was.get("replicas") or []}
        arn = self.secret_arns[inputs["name"]]
        if added := sorted(set(replicas) - had):  # in place (ReplicateSecretToRegions)
            client.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[
                {"Region": r, "KmsKeyId": replicas[r]} for r in added])
        if removed := sorted(had - set(replicas)):
            client.remove_regions_from_replication(SecretId=arn, RemoveReplicaRegions=removed)

    def _delete(self, step: Step, resource: dict) -> None:
        """The provider's delete, as the state (``resource``) describes it; a retained resource is
        only dropped from the state and left in AWS."""
        region, inputs = region_of(step, resource), resource["inputs"]
        if resource.get("retainOnDelete"):
            if resource["type"] == INSTANCE:
                self.retained.append((region, inputs["identifier"]))
            return
        if resource["type"] == INSTANCE:
            # terraform-provider-aws rds/instance.go resourceInstanceDelete: the final snapshot the
            # state names, automated backups as configured; moto, like RDS, refuses while deletion
            # protection is on
            final = {} if inputs.get("skipFinalSnapshot") else {"FinalDBSnapshotIdentifier": inputs["finalSnapshotIdentifier"]}
            boto3.client("rds", region).delete_db_instance(
                DBInstanceIdentifier=inputs["identifier"], SkipFinalSnapshot=bool(inputs.get("skipFinalSnapshot")),
                DeleteAutomatedBackups=inputs.get("deleteAutomatedBackups", True), **final)
        elif resource["type"] == SECRET:
            # secretsmanager/secret.go resourceSecretDelete: replica regions removed first, then
            # DeleteSecret with the recovery window
            client, arn = boto3.client("secretsmanager", region), self.secret_arns[inputs["name"]]
            if inputs.get("replicas"):
                client.remove_regions_from_replication(SecretId=arn,
                                                       RemoveReplicaRegions=[r["region"] for r in inputs["replicas"]])
            client.delete_secret(SecretId=arn, RecoveryWindowInDays=inputs["recoveryWindowInDays"])
        elif resource["type"] == BACKUPS:
            _replicate_backups(inputs["sourceDbInstanceArn"], None)


def final_snapshot(region: str, identifier: str) -> str:
    [snapshot] = boto3.client("rds", region).describe_db_snapshots(DBSnapshotIdentifier=f"{identifier}-final")["DBSnapshots"]
    assert snapshot["DBInstanceIdentifier"] == identifier
    return snapshot["DBSnapshotIdentifier"]


ROTATION_ROLE = "intelgraph-pg-rotation"


def _zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", "def handler(event, context):\n    pass\n")
    return buffer.getvalue()


def _replicate_backups(source_arn: str, to_region: Optional[str]) -> None:
    # moto has no StartDBInstanceAutomatedBackupsReplication: set what RDS then reports on the source
    from moto.rds.models import rds_backends

    region, identifier = source_arn.split(":")[3], source_arn.rsplit(":", 1)[1]
    database = rds_backends[ACCOUNT][region].databases[identifier]
    database.db_instance_automated_backups_replications = [] if to_region is None else [
        {"DBInstanceAutomatedBackupsArn": f"arn:aws:rds:{to_region}:{ACCOUNT}:auto-backup:ab-{identifier}"}]


def describe(region: str, identifier: str) -> dict:
    [db] = boto3.client("rds", region).describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    return db


# --- the world against the export ---------------------------------------------------------------------

def moto_instances() -> dict[str, dict]:
    """Every PostgreSQL instance in the account, by ARN, read from moto's backends (not through the
    API: the primary region's endpoints may be refusing)."""
    from moto.rds.models import rds_backends

    found = {}
    for region in (PRIMARY, DR):
        for identifier, db in rds_backends[ACCOUNT][region].databases.items():
            found[db.db_instance_arn] = {"region": region, "identifier": identifier, "source": db.source_db_instance_identifier,
                                         "kms": db.kms_key_id, "deletionProtection": db.deletion_protection,
                                         "tags": {t["Key"]: t["Value"] for t in db.tags or []}}
    return found


def moto_secrets() -> dict[tuple[str, str], dict]:
    """Every secret in the account, by (region, name): where it is homed and what rotates it."""
    from moto.secretsmanager.models import ReplicaSecret, secretsmanager_backends

    found = {}
    for region in (PRIMARY, DR):
        for secret in secretsmanager_backends[ACCOUNT][region].secrets.values():
            home = secret.source.region if isinstance(secret, ReplicaSecret) else region
            source = secret.source if isinstance(secret, ReplicaSecret) else secret
            found[(region, secret.name)] = {
                "arn": secret.arn, "home": home, "replicas": sorted(r.region for r in source.replicas),
                "kms": source.kms_key_id, "status": secret.status if isinstance(secret, ReplicaSecret) else None,
                "rotation": source.rotation_lambda_arn if source.rotation_enabled else None}
    return found


def assert_world_is(step: Step, world: World) -> None:
    """Which instance writes, which replicates whom, where each secret lives and what rotates it:
    as the export says."""
    pg = step.postgres
    live = moto_instances()
    declared = {r["outputs"]["arn"]: r for r in pg_resources(step, INSTANCE)}
    leftover = {arn for arn in live if (live[arn]["region"], live[arn]["identifier"]) in world.retained}
    assert set(live) - leftover == set(declared), (step.name, sorted(live), sorted(declared))
    for arn, resource in declared.items():
        inputs, db = resource["inputs"], live[arn]
        assert db["region"] == region_of(step, resource), arn
        assert db["source"] == inputs.get("replicateSourceDb"), (step.name, arn, db["source"])
        assert db["kms"] == inputs["kmsKeyId"] and db["deletionProtection"] == inputs["deletionProtection"], arn
        assert inputs.get("tags", {}).items() <= db["tags"].items(), arn
    assert live[pg["writerArn"]]["source"] is None and live[pg["writerArn"]]["region"] == pg["writerRegion"]
    if "replicaArn" in pg:
        assert live[pg["replicaArn"]]["source"] == pg["writerArn"], step.name
    else:  # failed over: the former writer is still there, writing nothing anyone is pointed at
        assert [a for a in declared if a != pg["writerArn"]] and all(live[a]["source"] is None for a in declared)

    secrets = moto_secrets()
    for resource in pg_resources(step, SECRET):
        inputs, home = resource["inputs"], region_of(step, resource)
        secret = secrets[(home, inputs["name"])]
        assert secret["home"] == home and secret["kms"] == inputs["kmsKeyId"], (step.name, inputs["name"], secret)
        wanted = sorted(r["region"] for r in inputs.get("replicas") or [])
        assert secret["replicas"] == wanted, (step.name, inputs["name"], secret["replicas"], wanted)
        for replica in inputs.get("replicas") or []:
            # in sync, not "Replication failed" on a name the region already has (ReplicateSecretToRegions
            # refuses one without ForceOverwriteReplicaSecret: Secrets Manager API Reference); moto
            # does not keep a replica's own key, so that is not compared
            assert secrets[(replica["region"], inputs["name"])]["status"] == "InSync", (step.name, inputs["name"])
    for resource in pg_resources(step, ROTATION):
        inputs = resource["inputs"]
        [(where, name)] = [key for key, s in secrets.items() if s["arn"] == world.real(inputs["secretId"])]
        assert secrets[(where, name)]["rotation"] == inputs["rotationLambdaArn"], (step.name, name)
        assert inputs["rotationLambdaArn"].split(":")[3] == where  # rotated by its own region's function
    # the writer's secret, the one its clients read: its own, homed in the writer's region and
    # rotated there (one secret per writer, docs/decisions/025-master-secret-per-writer.md)
    writer_secret = world.real(pg["writerSecretArn"])
    [(where, name)] = [key for key, s in secrets.items() if s["arn"] == writer_secret]
    assert where == secrets[(where, name)]["home"] == pg["writerRegion"], (step.name, name, secrets[(where, name)])
    assert secrets[(where, name)]["rotation"], (step.name, name)
    if "replicaArn" in pg:
        replica_region = pg["replicaArn"].split(":")[3]
        copy = world.real(pg["replicaSecretArn"])
        assert copy.split(":")[3] == replica_region and any(s["arn"] == copy for s in secrets.values()), step.name

    # the runbooks' outputs in the DR region are this state's (what --stack reads during an outage)
    [parameter] = pg_resources(step, PARAMETER)
    assert region_of(step, parameter) == DR
    from moto.ssm.models import ssm_backends

    published = ssm_backends[ACCOUNT][DR].get_parameter(outputs_parameter(STACK)).value
    assert json.loads(published) == json.loads(world.real(parameter["inputs"]["insecureValue"])), step.name
    # the on-call role reaches every master secret there is, in either region, in every state, by the
    # name pattern its policy holds - the same policy in every state (IAM may be down at a failover)
    [policy] = [r for r in step.export["deployment"]["resources"] if r["urn"].endswith("::oncall-runbooks")]
    [granted] = [st["Resource"] for st in json.loads(policy["inputs"]["policy"])["Statement"]
                 if "secretsmanager:DescribeSecret" in st["Action"]]
    assert all(any(fnmatch.fnmatchcase(s["arn"], pattern) for pattern in granted) for s in secrets.values()), granted


# --- the DR budget against the plan -----------------------------------------------------------------

def postgres_rto_is_the_plans(step: Step) -> Optional[int]:
    """The Postgres RTO bound is the probe's detection + the steps of the plan's workflow that
    activates the replica's region, each ended by its timeout + the alias TTL (docs/decisions/023);
    and that workflow's promotion step promotes the replica the export names. None while there is
    no replica (no row)."""
    rows = [b for b in step.budget if (b["datastore"], b["objective"]) == ("postgres", "RTO")]
    if "replicaArn" not in step.postgres:
        assert rows == [], step.name
        return None
    [row] = rows
    activating = step.postgres["replicaArn"].split(":")[3]
    [plan] = [r for r in step.export["deployment"]["resources"] if r["type"] == "aws:arcregionswitch/plan:Plan"]
    [workflow] = [w for w in plan["inputs"]["workflows"] if w["workflowTargetRegion"] == activating]
    timeouts = []
    for plan_step in workflow["steps"]:
        [config] = [v for k, v in plan_step.items() if k.endswith("Configs")]
        [block] = config
        timeouts.append(block["timeoutMinutes"] * 60)
        if plan_step["executionBlockType"] == "RdsPromoteReadReplica":
            assert block["dbInstanceArnMap"][activating] == step.postgres["replicaArn"], step.name
    terms = row["terms"]
    assert sum(timeouts) == row["boundSeconds"] - terms["dnsDetection"] - terms["aliasTtl"], (step.name, row)
    assert row["boundSeconds"] == sum(terms.values()) and row["met"], row
    return row["boundSeconds"]


LOG: list[str] = []  # what the game day printed, shown at its end (and when it fails)


def judge(step: Step, retired: list[str]) -> None:
    """The step as a pull request is judged: its diff (no stateful replace or delete but the
    retired instance's, which the named approval allows), its policy verdict, its budget."""
    LOG.extend(step.verdict_lines())
    dangerous = sorted((c.action, c.urn) for c in step.plan if c.dangerous)
    assert dangerous == sorted(("delete", urn) for urn in retired), (step.name, step.diff_text)
    assert step.approved_exit == diff.EXIT_OK and step.mandatory == [], (step.name, step.diff_text, step.mandatory)
    bound = postgres_rto_is_the_plans(step)
    LOG.append(f"   Postgres RTO bound {bound}s = detection + the plan's steps' timeouts + alias TTL" if bound
               else "   Postgres RTO: no replica, no row")


# --- the game day ---------------------------------------------------------------------------------------

def test_game_day(monkeypatch, capsys):
    started = time.monotonic()
    LOG.clear()
    try:
        walk(monkeypatch, capsys)
    finally:
        LOG.append(f"game day: {time.monotonic() - started:.1f}s")
        print("\n".join(LOG))


def walk(monkeypatch, capsys) -> None:
    steps = trip()
    capsys.readouterr()  # the round trip's own verdicts, when it ran here: judge() logs them per step
    urn = {s.name: {r["inputs"]["identifier"]: r["urn"] for r in pg_resources(s, INSTANCE)} for s in steps.values()}
    fake_aws_credentials(monkeypatch, ACCOUNT)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        _fix_moto_promotion(monkeypatch)
        outage = Outage(monkeypatch, PRIMARY)
        outage.end()  # the region is up until the game day takes it down
        world = World()
        boto3.client("iam").create_role(RoleName=ROTATION_ROLE, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))

        # normal: the world the normal export describes, deployed from nothing
        normal = steps["normal"]
        judge(normal, [])
        world.apply(None, normal)
        assert_world_is(normal, world)
        put_lag(10, "intelgraph-pg-replica")
        code, out = run(capsys, dr_readiness.main, ["--stack", STACK])
        for row in ("replica-status", "replica-lag", "pitr-replication"):
            assert f"PASS  {row}" in out, out

        # primary region lost: the runbooks read the DR region's outputs and promote there
        outage.down = True
        code, out = run(capsys, dr_readiness.main, ["--stack", STACK])
        assert code == 1 and "PASS  replica-status" in out and "FAIL  pitr-replication" in out, out
        assert "Could not connect to the endpoint URL" in out
        refused_before = len(outage.refused)
        code, out = run(capsys, dr_promote.main, ["--stack", STACK, "--accept-data-loss", "--timeout-seconds", "5"])
        assert code == 0 and "is now a standalone writer" in out, out
        assert "--state failed-over" in out  # its next step: the failed-over deploy by target list
        assert len(outage.refused) == refused_before, outage.refused[refused_before:]  # nothing of us-east-1
        assert moto_instances()[normal.postgres["replicaArn"]]["source"] is None
        world.refresh("intelgraph-pg-replica")  # its step 2, a DR-region call

        # failed over: deployed by its target list while us-east-1 still refuses every call
        failed = steps["failed over"]
        judge(failed, [])
        config = engine.stack_config(STACK)
        target_list = targets.targets(normal.export, failed.export, targets.dr_region_of(config, STACK))
        everything = {**resources(normal), **resources(failed)}
        dr_side = targets.dr_region_of(config, STACK)
        assert target_list and not [u for u in target_list if everything[u].get("provider") and not dr_side.serves(
            everything[targets.provider_urn(everything[u]["provider"])])]
        pg_changes = {c.urn for c in failed.plan if c.type in MODELLED}
        assert pg_changes <= set(target_list), sorted(pg_changes - set(target_list))
        applied = world.apply(normal, failed, only=set(target_list))
        assert urn["failed over"]["intelgraph-pg-replica"] in applied
        assert len(outage.refused) == refused_before, outage.refused[refused_before:]
        assert_world_is(failed, world)
        assert moto_instances()[failed.postgres["writerArn"]]["tags"] == {
            "intelgraph.io/promoted-from": "intelgraph-pg-primary"}

        # the primary region is back: a whole `up` converges what the targeted one left, then the
        # rebuild (prod retires A in a deploy of its own first)
        outage.down = False
        assert world.apply(normal, failed, only={u for u in resources(failed) if u not in target_list}) == []
        judge(steps["retire A"], [])
        # the retire deploy releases A's deletion protection; protect and retainOnDelete are the engine's
        assert world.apply(failed, steps["retire A"]) == [urn["normal"]["intelgraph-pg-primary"]]
        rebuilt = steps["rebuilt"]
        judge(rebuilt, deleted_with(STACK, "primary"))
        world.apply(steps["retire A"], rebuilt)
        assert world.retained == []  # deleted by the provider, with its final snapshot
        assert final_snapshot(PRIMARY, "intelgraph-pg-primary") == "intelgraph-pg-primary-final"
        assert_world_is(rebuilt, world)
        put_lag(5, "intelgraph-pg-primary-g2", PRIMARY)  # a planned switchover waits for the lag to drain
        code, out = run(capsys, dr_readiness.main, ["--stack", STACK])
        assert "PASS  replica-status" in out and "following intelgraph-pg-replica" in out, out

        # switched back: a planned switchover, the other way - promote C, deploy the switched-back
        # state (B the former writer, still protected), then retire B and deploy normal again
        code, out = run(capsys, dr_promote.main, ["--stack", STACK, "--timeout-seconds", "5"])
        # the DR writer's secret has its copy in the primary region since the rebuild: the runbook
        # reads it there and promotes C
        assert code == 0 and "intelgraph-pg-primary-g2 in us-east-1 is now a standalone writer" in out, out
        assert "PASS  writer-secret" in out and "a copy of the us-west-2 secret" in out
        assert "Commit the switched-back state" in out and "--state failed-over" not in out
        world.refresh("intelgraph-pg-primary-g2")
        back = steps["switched back"]
        judge(back, [])
        world.apply(rebuilt, back)
        assert_world_is(back, world)
        judge(steps["retire B"], [])
        assert world.apply(back, steps["retire B"]) == [urn["normal"]["intelgraph-pg-replica"]]
        again = steps["normal again"]
        judge(again, deleted_with(STACK, "replica"))
        world.apply(steps["retire B"], again)
        assert world.retained == []
        assert final_snapshot(DR, "intelgraph-pg-replica") == "intelgraph-pg-replica-final"
        assert_world_is(again, world)
        assert again.postgres["writerRegion"] == normal.postgres["writerRegion"] == PRIMARY


def run(capsys, command, argv: list[str]) -> tuple[int, str]:
    """A runbook as the on-call runs it; its output goes into the game day's log."""
    code = command(argv)
    captured = capsys.readouterr()
    LOG.append(f"$ python -m ops.{command.__module__.rsplit('.', 1)[-1]} {' '.join(argv)}   -> exit {code}")
    LOG.extend(f"   {line}" for line in (captured.out + captured.err).splitlines())
    return code, captured.out + captured.err
