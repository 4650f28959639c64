"""PostgresDr on the mock engine: the replica follows the primary by ARN from the DR region,
PITR is replicated, the master credentials live in our own multi-Region secret that AWS's
rotation function rotates through the VPC, nothing carries a readable password, and prod is
stricter than stage."""

from __future__ import annotations

import json

import pytest

from components.postgres_dr import DbNetwork, PostgresDrArgs
from synth import export
from tests.conftest import region_of, stack_settings

INSTANCE = "aws:rds/instance:Instance"



def test_replica_follows_the_primary_by_arn_with_dr_region_key_and_subnets(any_stack):
    primary = any_stack.named("intelgraph-pg-primary", INSTANCE)
    replica = any_stack.named("intelgraph-pg-replica", INSTANCE)
    aws = stack_settings(any_stack.stack).aws
    assert region_of(any_stack, primary) == aws.primary_region
    assert region_of(any_stack, replica) == aws.dr_region
    assert replica.inputs["replicateSourceDb"] == primary.outputs["arn"]
    assert replica.inputs["replicateSourceDb"].startswith(f"arn:aws:rds:{aws.primary_region}:{aws.account_id}:")

    dr_key = any_stack.named("intelgraph-pg-dr-key", "aws:kms/key:Key")
    assert replica.inputs["kmsKeyId"] == dr_key.outputs["arn"] and f":{aws.dr_region}:" in dr_key.outputs["arn"]
    dr_subnets = any_stack.named("intelgraph-pg-dr-subnets", "aws:rds/subnetGroup:SubnetGroup")
    assert replica.inputs["dbSubnetGroupName"] == dr_subnets.outputs["name"]
    assert region_of(any_stack, dr_subnets) == aws.dr_region


def test_replica_carries_none_of_the_arguments_a_replica_must_not(any_stack):
    replica = any_stack.named("intelgraph-pg-replica", INSTANCE)
    for forbidden in ("username", "password", "dbName", "manageMasterUserPassword",
                      "masterUserSecretKmsKeyId", "engine", "engineVersion", "allocatedStorage",
                      "backupRetentionPeriod"):  # PostgreSQL replicas run no automated backups
        assert forbidden not in replica.inputs, forbidden


def test_primary_is_encrypted_private_iam_enabled_with_a_write_only_bootstrap_password(any_stack):
    primary = any_stack.named("intelgraph-pg-primary", INSTANCE)
    key = any_stack.named("intelgraph-pg-primary-key", "aws:kms/key:Key").outputs["arn"]
    i = primary.inputs
    assert i["storageEncrypted"] is True and i["kmsKeyId"] == key
    # RDS refuses a read replica of a source that manages its password in Secrets Manager
    # (RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager", Limitations)
    assert "manageMasterUserPassword" not in i and "masterUserSecretKmsKeyId" not in i
    assert "password" not in i and i["passwordWoVersion"] == 1
    assert i["passwordWo"]["value"] == any_stack.named("intelgraph-pg-master-bootstrap").outputs["result"]  # a secret
    assert i["publiclyAccessible"] is False and i["iamDatabaseAuthenticationEnabled"] is True
    assert i["backupRetentionPeriod"] > 0 and i["deleteAutomatedBackups"] is False
    assert i["performanceInsightsEnabled"] is True and i["performanceInsightsKmsKeyId"] == key
    assert i["monitoringRoleArn"] == any_stack.named("intelgraph-pg-monitoring", "aws:iam/role:Role").outputs["arn"]
    assert set(i["enabledCloudwatchLogsExports"]) == {"postgresql", "upgrade"}
    assert i["autoMinorVersionUpgrade"] is True and i["maintenanceWindow"]
    assert i["engineVersion"] == "16"


def test_pitr_is_replicated_to_the_dr_region_with_the_dr_key(any_stack):
    [replication] = any_stack.of_type(
        "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication")
    assert region_of(any_stack, replication) == stack_settings(any_stack.stack).aws.dr_region
    assert replication.inputs["sourceDbInstanceArn"] == any_stack.named("intelgraph-pg-primary", INSTANCE).outputs["arn"]
    assert replication.inputs["kmsKeyId"] == any_stack.named("intelgraph-pg-dr-key", "aws:kms/key:Key").outputs["arn"]
    # the DR copy keeps what the primary keeps: postgres.backupRetentionDays at both destinations
    days = stack_settings(any_stack.stack).postgres.backup_retention_days
    assert replication.inputs["retentionPeriod"] == days
    assert any_stack.named("intelgraph-pg-primary", INSTANCE).inputs["backupRetentionPeriod"] == days


@pytest.mark.parametrize("label", ["primary", "dr"])
def test_each_region_forces_tls_and_admits_5432_only_from_platform_networks(any_stack, label):
    params = any_stack.named(f"intelgraph-pg-{label}-params", "aws:rds/parameterGroup:ParameterGroup")
    values = {p["name"]: p["value"] for p in params.inputs["parameters"]}
    assert values["rds.force_ssl"] == "1" and params.inputs["family"] == "postgres16"
    group = any_stack.named(f"intelgraph-pg-{label}-db", "aws:ec2/securityGroup:SecurityGroup")
    assert group.inputs.get("egress") in (None, [])
    for rule in group.inputs["ingress"]:
        assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (5432, 5432, "tcp")
        assert "0.0.0.0/0" not in rule.get("cidrBlocks", [])


def test_prod_is_multi_az_protected_and_keeps_a_final_snapshot(prod, stage):
    p = prod.named("intelgraph-pg-primary", INSTANCE).inputs
    assert p["multiAz"] and p["deletionProtection"] and p["skipFinalSnapshot"] is False
    assert p["finalSnapshotIdentifier"] == "intelgraph-pg-primary-final"
    assert p["databaseInsightsMode"] == "advanced" and p["performanceInsightsRetentionPeriod"] == 465
    # stage protects and retains nothing of the database (helpers/stateful.py): its delete is real,
    # so it keeps a final snapshot too
    s = stage.named("intelgraph-pg-primary", INSTANCE).inputs
    assert not s["multiAz"] and not s["deletionProtection"] and s["skipFinalSnapshot"] is False
    assert s["finalSnapshotIdentifier"] == "intelgraph-pg-primary-final"
    assert s["databaseInsightsMode"] == "standard" and s["performanceInsightsRetentionPeriod"] == 7


def test_alarms_watch_lag_cpu_and_storage_and_notify_an_encrypted_topic(prod):
    alarms = {a.name: a for a in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    lag = alarms["intelgraph-pg-replica-lag"].inputs
    assert lag["metricName"] == "ReplicaLag" and lag["dimensions"] == {"DBInstanceIdentifier": "intelgraph-pg-replica"}
    assert lag["threshold"] == 30  # two heartbeats: a healthy replica never trails by more
    assert (lag["period"], lag["evaluationPeriods"]) == (60, 1)
    assert lag["treatMissingData"] == "breaching"
    for name in ("intelgraph-pg-primary-cpu", "intelgraph-pg-replica-cpu",
                 "intelgraph-pg-primary-free-storage", "intelgraph-pg-replica-free-storage"):
        assert name in alarms
    topics = {t.outputs["arn"]: t for t in prod.of_type("aws:sns/topic:Topic")}
    for alarm in alarms.values():
        [action] = alarm.inputs["alarmActions"]
        assert topics[action].inputs["kmsMasterKeyId"].startswith("arn:aws:kms:")
    assert region_of(prod, alarms["intelgraph-pg-replica-lag"]) == stack_settings("prod").aws.dr_region


def test_outputs_expose_endpoints_arns_and_the_master_secret(prod):
    outputs, aws = prod.outputs["postgres"], stack_settings("prod").aws
    assert outputs["primaryEndpoint"].endswith(f".{aws.primary_region}.rds.amazonaws.com:5432")
    assert outputs["replicaEndpoint"].endswith(f".{aws.dr_region}.rds.amazonaws.com:5432")
    # the writer's own secret, in its region (decision 025), and its copy where the replica is: a
    # replica's ARN is the primary's with its region (Secrets Manager API, StopReplicationToReplica)
    assert outputs["writerSecretArn"].startswith(
        f"arn:aws:secretsmanager:{aws.primary_region}:{aws.account_id}:secret:intelgraph-pg-master-")
    assert outputs["replicaSecretArn"] == outputs["writerSecretArn"].replace(f":{aws.primary_region}:",
                                                                            f":{aws.dr_region}:")
    assert outputs["masterSecretRotationDays"] == stack_settings("prod").postgres.master_secret_rotation_days


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_no_plaintext_password_anywhere_in_stack_json(stack):
    from tests.conftest import synthesized

    synthesis = synthesized(stack)
    text = json.dumps(export.to_export(synthesis))
    generated = [p.outputs["result"] for p in synthesis.of_type("random:index/randomPassword:RandomPassword")]
    # Neo4j admin, Neo4j application user and Redis in each region's tier (prod's DR graph is warm;
    # stage's pilot-light DR tier has Redis only), and the PostgreSQL bootstrap
    assert len(generated) == {"prod": 7, "stage": 5}[stack]
    for password in generated:
        assert password not in text
    for instance in synthesis.of_type(INSTANCE):
        assert "password" not in instance.inputs
    # write-only and secret: the state keeps it encrypted only (pulumi-terraform-bridge #3215)
    [primary] = [e for e in export.to_export(synthesis)["deployment"]["resources"]
                 if e["urn"].endswith("::intelgraph-pg-primary")]
    assert primary["inputs"]["passwordWo"] == export.secret_marker()


@pytest.mark.parametrize("changes,words", [
    ({"backup_retention_days": 0}, "backup_retention_days must be at least 1"),
    ({"max_allocated_storage_gb": 10}, "max_allocated_storage_gb must be at least"),
    ({"dr_network": DbNetwork("vpc-2", ("subnet-3", "subnet-4"))}, "dr_network.allowed_cidrs must name"),
    ({"dr_network": DbNetwork("vpc-1", ("subnet-1",), ("10.1.0.0/16",), ("10.1.1.9/32",))}, "at least two subnets"),
    ({"dr_network": DbNetwork("vpc-2", ("subnet-3", "subnet-4"), ("10.1.0.0/16",))},
     "dr_network.secretsmanager_endpoint_cidrs must name"),
    ({"dr_region": "us-east-1"}, "dr_region must differ"),
    ({"engine_version": "16.4"}, "major version only with auto_minor_version_upgrade"),
])
def test_args_are_validated_with_the_field_named(changes, words):
    base = dict(
        account_id="481236059412", dr_provider=None, primary_region="us-east-1", dr_region="us-west-2",
        primary_network=DbNetwork("vpc-1", ("subnet-1", "subnet-2"), ("10.0.0.0/16",), ("10.0.1.9/32",)),
        dr_network=DbNetwork("vpc-2", ("subnet-3", "subnet-4"), ("10.1.0.0/16",), ("10.1.1.9/32",)),
        engine_version="16",
        instance_class="db.t4g.large", allocated_storage_gb=50, max_allocated_storage_gb=100,
        backup_retention_days=7, multi_az=False, deletion_protection=False, final_snapshot=False,
        maintenance_window="sun:05:00-sun:06:00",
        backup_window="03:00-04:00", database_insights="standard", monitoring_interval_seconds=60,
        replica_lag_threshold_seconds=120,
    )
    with pytest.raises(ValueError, match=words):
        PostgresDrArgs(**{**base, **changes})


# The aws_db_instance schema's ForceNew arguments (terraform-provider-aws,
# internal/service/rds/instance.go, which pulumi-aws bridges), with whether the schema marks them
# Computed. After every `up` the provider reads the instance back; a Computed field left unset
# accepts whatever AWS reports, but a ForceNew field that is not Computed and is left unset
# diffs against the value read back - and a ForceNew diff is a replacement on the second `up`
# (terraform-provider-aws #34434, #3470: `storage_encrypted` on an encrypted replica). With a
# fixed identifier that replacement fails with DBInstanceAlreadyExists, or on deletion protection.
FORCE_NEW = {  # engine-camelCase name: computed
    "availabilityZone": True, "characterSetName": True, "customIamInstanceProfile": False,
    "dbName": True, "identifier": True, "identifierPrefix": True, "kmsKeyId": True,
    "ncharCharacterSetName": True, "restoreToPointInTime": False, "snapshotIdentifier": True,
    "storageEncrypted": False, "timezone": True, "username": True, "engine": True,
}
# What RDS reports for a PostgreSQL instance and the provider's Read stores (DescribeDBInstances:
# StorageEncrypted, KmsKeyId, DBInstanceIdentifier always; the rest only for other engines or
# for restores, which this program never does).
READ_BACK_FOR_POSTGRES = {"storageEncrypted", "kmsKeyId", "identifier"}


@pytest.mark.parametrize("role", ["primary", "replica"])
def test_every_force_new_field_the_provider_reads_back_is_set_explicitly(any_stack, role):
    inputs = any_stack.named(f"intelgraph-pg-{role}", INSTANCE).inputs
    not_computed = {f for f, computed in FORCE_NEW.items() if not computed}
    # Not computed and read back: unset would be a diff, i.e. a replacement, on the second `up`.
    must_set = (not_computed & READ_BACK_FOR_POSTGRES) | {"identifier", "kmsKeyId"}
    missing = sorted(f for f in must_set if f not in inputs)
    assert not missing, f"{role}: ForceNew fields the provider reads back but the program leaves unset: {missing}"
    assert inputs["storageEncrypted"] is True  # what RDS reports for an instance with our key


@pytest.mark.parametrize("label", ["primary", "dr"])
def test_each_region_admits_its_own_network_so_the_promoted_replica_has_clients(any_stack, label):
    # A security group admits sources by the addresses packets arrive with; after failover the
    # DR instance is reached by the DR region's workloads, from the DR VPC's CIDR - the primary
    # VPC's CIDRs admit nobody there (VPC User Guide, security group rules).
    import ipaddress

    from synth import engine

    network = json.loads(engine.stack_config(any_stack.stack)["intelgraph-platform:network"])[label]
    vpc = ipaddress.ip_network(network["vpcCidr"])
    group = any_stack.named(f"intelgraph-pg-{label}-db", "aws:ec2/securityGroup:SecurityGroup")
    assert group.inputs["vpcId"] == network["vpcId"]
    cidrs = [c for rule in group.inputs["ingress"] for c in rule.get("cidrBlocks", [])]
    assert cidrs and all(ipaddress.ip_network(c).subnet_of(vpc) for c in cidrs), (cidrs, vpc)


def test_a_dr_client_cidr_outside_the_dr_vpc_is_a_settings_error():
    import settings
    from tests.conftest import config_with

    with pytest.raises(settings.SettingsError, match=r"postgres.allowedCidrs.dr.0: outside "
                                                     r"network.dr.vpcCidr 10.41.0.0/16.*given: \"10.40.0.0/16\""):
        settings.validate(config_with("prod", {"postgres.allowedCidrs.dr": ["10.40.0.0/16"]}))


def engine_version_after_read(configured: str, actual: str, pending: str = "") -> str:
    """terraform-provider-aws internal/service/rds compareActualEngineVersion (bridged by
    pulumi-aws): on read, engine_version keeps the configured value only when it equals the
    actual version or is a prefix of it ("16" for "16.8"); otherwise it becomes the actual one."""
    if configured and configured == pending:
        return configured
    head = actual[: len(configured) + 1] if len(actual) > len(configured) else actual
    if configured != actual and configured + "." == head:
        return configured
    return actual


def test_the_engine_version_survives_an_automatic_minor_upgrade(any_stack):
    # RDS User Guide, "Automatically upgrading the minor engine version": with
    # auto_minor_version_upgrade RDS moves the instance to newer minors in the maintenance window.
    # The next `up` compares config with what the provider read back; a pinned "16.4" reads back
    # as "16.8", a diff back to 16.4 - a downgrade RDS refuses.
    primary = any_stack.named("intelgraph-pg-primary", INSTANCE).inputs
    assert primary["autoMinorVersionUpgrade"] is True
    configured = primary["engineVersion"]
    major = configured.split(".")[0]
    for upgraded in (f"{major}.8", f"{major}.12", f"{major}.8.1"):
        assert engine_version_after_read(configured, upgraded) == configured, upgraded
    assert engine_version_after_read("16.4", "16.8") == "16.8"  # the diff the old pin produced


@pytest.mark.parametrize("version,auto,words", [
    ("16.4", True, "pins a minor version while autoMinorVersionUpgrade is on"),
    ("16", False, "names no minor version while autoMinorVersionUpgrade is off"),
])
def test_settings_tie_the_engine_version_to_the_upgrade_policy(version, auto, words):
    import settings
    from tests.conftest import config_with

    with pytest.raises(settings.SettingsError, match=words):
        settings.validate(config_with("prod", {"postgres.engineVersion": version,
                                               "postgres.autoMinorVersionUpgrade": auto}))
    settings.validate(config_with("prod", {"postgres.engineVersion": "16.4" if not auto else "16",
                                           "postgres.autoMinorVersionUpgrade": auto}))


# --- heartbeat: keeps an idle primary's replica from reporting false lag

@pytest.mark.parametrize("label", ["primary", "dr"])
def test_both_parameter_groups_load_pg_cron_for_the_heartbeat(any_stack, label):
    # pg_cron must be in shared_preload_libraries and cron.database_name names the database its
    # jobs run in (RDS User Guide, "Scheduling maintenance with the PostgreSQL pg_cron
    # extension"); both are static, so RDS only accepts them with pending-reboot. The DR group
    # needs them too: after promotion the replica keeps the heartbeat going.
    params = {p["name"]: p for p in any_stack.named(
        f"intelgraph-pg-{label}-params", "aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]}
    assert "pg_cron" in params["shared_preload_libraries"]["value"].split(",")
    assert params["cron.database_name"]["value"] == any_stack.named("intelgraph-pg-primary", INSTANCE).inputs["dbName"]
    for static in ("shared_preload_libraries", "cron.database_name"):
        assert params[static]["applyMethod"] == "pending-reboot"


def test_other_preloaded_libraries_are_kept(monkeypatch):
    from components import postgres_dr

    monkeypatch.setitem(postgres_dr.PARAMETERS, "shared_preload_libraries", "pgaudit")
    assert postgres_dr.parameters("db")["shared_preload_libraries"] == "pgaudit,pg_cron"


def test_the_heartbeat_sql_upserts_one_row_every_15_seconds():
    """Parsed with PostgreSQL's own parser (pglast = libpg_query): pg_cron accepts '[1-59] seconds'
    schedules from 1.5 on (citusdata/pg_cron README), and the job's command must be valid SQL that
    writes the table the script creates - a heartbeat that fails writes no WAL."""
    import re

    from pglast import ast, parse_sql

    from components.postgres_dr import heartbeat_sql
    from helpers import dr_budget

    statements = [s.stmt for s in parse_sql(heartbeat_sql())]
    assert isinstance(statements[0], ast.CreateExtensionStmt) and statements[0].extname == "pg_cron"
    [table] = [s for s in statements if isinstance(s, ast.CreateStmt)]
    schedules = {}
    for select in (s for s in statements if isinstance(s, ast.SelectStmt)):
        [target] = select.targetList
        call = target.val
        assert [n.sval for n in call.funcname] == ["cron", "schedule"]
        name, schedule, command = (a.val.sval for a in call.args)
        schedules[name] = (schedule, command)
    schedule, command = schedules["dr-heartbeat"]
    interval = re.fullmatch(r"\s*([1-9]|[1-5][0-9])\s+seconds?\s*", schedule)
    assert interval and int(interval[1]) == dr_budget.HEARTBEAT_INTERVAL_SECONDS <= 30
    [insert] = [s.stmt for s in parse_sql(command)]
    assert isinstance(insert, ast.InsertStmt) and insert.relation.relname == table.relation.relname
    assert insert.onConflictClause is not None  # one row, updated in place: the table never grows
    [purge] = [s.stmt for s in parse_sql(schedules["dr-heartbeat-history"][1])]
    assert isinstance(purge, ast.DeleteStmt) and purge.relation.relname == "job_run_details"
    with pytest.raises(ValueError, match="1-59 seconds"):
        heartbeat_sql(60)


# --- master credentials: our own multi-Region secret, rotated by AWS's function through the VPC --

SECRET = "aws:secretsmanager/secret:Secret"
RDS_MANAGED_REPLICA_LIMITATION = (
    "RDS User Guide, 'Password management with Amazon RDS and AWS Secrets Manager', Limitations: creating a "
    "read replica when the source manages credentials with Secrets Manager is not supported (every engine but "
    "SQL Server); terraform-aws-modules/terraform-aws-rds #512, #532 show the InvalidParameterValue")


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_no_replication_source_or_future_source_manages_its_master_password(stack):
    # The contract over what both stacks synthesize: every instance that is a replication source
    # (the primary) or becomes one when promoted (the replica, which the rebuilt primary region
    # replicates) has no RDS-managed master password - RDS would refuse the replica.
    from tests.conftest import synthesized

    synthesis = synthesized(stack)
    instances = synthesis.of_type(INSTANCE)
    sources = {i.inputs["replicateSourceDb"] for i in instances if "replicateSourceDb" in i.inputs}
    assert sources, "no replica: nothing to check"
    for instance in instances:
        role = "source" if instance.outputs["arn"] in sources else "replica (a source once promoted)"
        assert not instance.inputs.get("manageMasterUserPassword"), f"{instance.name} ({role}): " + RDS_MANAGED_REPLICA_LIMITATION
        assert "masterUserSecretKmsKeyId" not in instance.inputs, instance.name


def test_settings_refuse_a_managed_master_password_and_say_why():
    import settings
    from tests.conftest import config_with

    with pytest.raises(settings.SettingsError) as caught:
        settings.validate(config_with("prod", {"postgres.manageMasterUserPassword": True}))
    message = str(caught.value)
    assert "manageMasterUserPassword is not allowed" in message
    assert "RDS refuses to create a read replica when the source manages its master password" in message
    assert "Password management with Amazon RDS and AWS Secrets Manager" in message


def test_the_master_secret_is_ours_under_customer_keys_and_replicated_to_the_dr_region(any_stack):
    aws = stack_settings(any_stack.stack).aws
    secret = any_stack.named("intelgraph-pg-master", SECRET)
    primary_key = any_stack.named("intelgraph-pg-primary-secret-key", "aws:kms/key:Key").outputs["arn"]
    dr_key = any_stack.named("intelgraph-pg-dr-secret-key", "aws:kms/key:Key").outputs["arn"]
    assert region_of(any_stack, secret) == aws.primary_region and f":{aws.primary_region}:" in primary_key
    assert secret.inputs["kmsKeyId"] == primary_key
    # a multi-Region secret: the replica's key must be a key of the replica's region
    assert secret.inputs["replicas"] == [{"region": aws.dr_region, "kmsKeyId": dr_key}]
    assert f":{aws.dr_region}:" in dr_key
    assert secret.inputs["recoveryWindowInDays"] == 30
    # not the database's own keys: the rotation function's role may decrypt the secret only
    assert primary_key != any_stack.named("intelgraph-pg-primary-key", "aws:kms/key:Key").outputs["arn"]


def test_the_secret_starts_with_what_the_rotation_function_reads_and_the_instance_was_given(any_stack):
    # SecretsManagerRDSPostgreSQLRotationSingleUser (aws-samples/aws-secrets-manager-rotation-lambdas,
    # lambda_function.py) requires host, username, password and engine 'postgres', reads dbname and
    # port, and logs in with the current version before it sets a new password; "ssl": "true" means
    # TLS with certificate checks and no plain-text fallback (its get_ssl_config).
    document = export.to_export(any_stack, show_secrets=True)
    entries = {e["urn"].rsplit("::", 1)[-1]: e for e in document["deployment"]["resources"]}
    value = json.loads(json.loads(entries["intelgraph-pg-master-initial"]["inputs"]["secretStringWo"]["plaintext"]))
    primary = any_stack.named("intelgraph-pg-primary", INSTANCE)
    given = json.loads(entries["intelgraph-pg-primary"]["inputs"]["passwordWo"]["plaintext"])
    assert value == {"engine": "postgres", "host": primary.outputs["address"], "port": 5432,
                     "dbname": primary.inputs["dbName"], "username": primary.inputs["username"],
                     "password": given, "ssl": "true"}
    version = any_stack.named("intelgraph-pg-master-initial")
    assert version.inputs["secretId"] == any_stack.named("intelgraph-pg-master", SECRET).outputs["arn"]


def test_rotation_starts_at_deploy_on_the_config_schedule_with_the_primary_regions_function(any_stack):
    # Immediately: the bootstrap password (in state, encrypted) stops working at the first `up`.
    rotation = any_stack.named("intelgraph-pg-master-secret-rotation")
    function = any_stack.named("intelgraph-pg-primary-rotation",
                               "aws:serverlessrepository/cloudFormationStack:CloudFormationStack")
    assert rotation.inputs["secretId"] == any_stack.named("intelgraph-pg-master", SECRET).outputs["arn"]
    assert rotation.inputs["rotationLambdaArn"] == function.outputs["outputs"]["RotationLambdaARN"]
    assert rotation.inputs["rotateImmediately"] is True
    assert rotation.inputs["rotationRules"] == {
        "automaticallyAfterDays": stack_settings(any_stack.stack).postgres.master_secret_rotation_days}
    assert region_of(any_stack, rotation) == stack_settings(any_stack.stack).aws.primary_region


@pytest.mark.parametrize("label", ["primary", "dr"])
def test_each_regions_rotation_function_reaches_the_database_and_secrets_manager_through_the_vpc_only(
        any_stack, label):
    # The chain: AWS's published function (pinned SAR version, aws-cdk-lib's pin) runs in the
    # region's private subnets with its own security group; that group may open 5432 to the
    # database's group (which admits it) and 443 to the Secrets Manager interface endpoint's
    # addresses from config - nothing else; the function's endpoint is the regional name that
    # private DNS resolves to that endpoint; it may decrypt the secret's key of its region.
    from components import postgres_dr
    from synth import engine

    settings = stack_settings(any_stack.stack)
    region = getattr(settings.aws, f"{label}_region")
    network = getattr(settings.network, label)
    stack = any_stack.named(f"intelgraph-pg-{label}-rotation",
                            "aws:serverlessrepository/cloudFormationStack:CloudFormationStack")
    group = any_stack.named(f"intelgraph-pg-{label}-rotation", "aws:ec2/securityGroup:SecurityGroup")
    db_group = any_stack.named(f"intelgraph-pg-{label}-db", "aws:ec2/securityGroup:SecurityGroup")
    key = any_stack.named(f"intelgraph-pg-{label}-secret-key", "aws:kms/key:Key")
    assert region_of(any_stack, stack) == region == region_of(any_stack, group)
    assert stack.inputs["applicationId"] == postgres_dr.ROTATION_APPLICATION
    assert stack.inputs["semanticVersion"] == "1.1.671"
    assert set(stack.inputs["capabilities"]) == {"CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"}
    parameters = stack.inputs["parameters"]
    assert parameters["endpoint"] == f"https://secretsmanager.{region}.amazonaws.com"
    assert parameters["vpcSubnetIds"].split(",") == list(network.private_subnet_ids)
    assert parameters["vpcSecurityGroupIds"] == group.id
    assert parameters["kmsKeyArn"] == key.outputs["arn"]

    assert group.inputs["vpcId"] == network.vpc_id == db_group.inputs["vpcId"]
    assert not group.inputs.get("ingress") and not group.inputs.get("egress")  # rules are resources
    rules = [r for r in any_stack.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
             if r.inputs["securityGroupId"] == group.id]
    to_db = [r for r in rules if r.inputs.get("referencedSecurityGroupId") == db_group.id]
    assert [(r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"]) for r in to_db] == [("tcp", 5432, 5432)]
    https = sorted(r.inputs["cidrIpv4"] for r in rules if r not in to_db)
    assert https == sorted(network.secretsmanager_endpoint_cidrs)
    assert all((r.inputs["ipProtocol"], r.inputs["fromPort"], r.inputs["toPort"]) == ("tcp", 443, 443)
               for r in rules if r not in to_db)
    admitted = [rule for rule in db_group.inputs["ingress"] if group.id in rule.get("securityGroups", [])]
    assert [(r["protocol"], r["fromPort"], r["toPort"]) for r in admitted] == [("tcp", 5432, 5432)]
    # the endpoint addresses are the region's (settings check them against its VPC)
    raw = json.loads(engine.stack_config(any_stack.stack)["intelgraph-platform:network"])[label]
    assert raw["secretsmanagerEndpointCidrs"] == list(network.secretsmanager_endpoint_cidrs)


def test_both_instances_wait_for_the_enhanced_monitoring_policy(any_stack):
    """RDS checks the monitoring role's permissions at CreateDBInstance: created before the managed
    policy is attached, the instance fails with "IAM role ARN value is invalid or does not include
    the required permissions for: ENHANCED_MONITORING" (pulumi/pulumi #5628; claranet/terraform-aws-
    aurora #23 adds the same dependency)."""
    attachment = any_stack.named("intelgraph-pg-monitoring", "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    for role in ("primary", "replica"):
        assert attachment.urn in any_stack.named(f"intelgraph-pg-{role}", "aws:rds/instance:Instance").dependencies
