"""PostgresDr: RDS PostgreSQL writer, a cross-region read replica, and PITR in both regions.

Which region writes is state (docs/decisions/018-active-region-is-state.md): ``active_region``
names it and ``generations`` the instance each region has. The writer has no replicate_source_db;
the other region's instance replicates it when it was created after it, and is otherwise the
former writer, whose inputs stay exactly as they were (failed over: nothing in the primary region
changes). A replica becomes the writer by losing replicate_source_db, which the provider applies
as PromoteReadReplica, in place.

Master credentials: RDS refuses to create a read replica of an instance whose master password it
manages in Secrets Manager (RDS User Guide, "Password management with Amazon RDS and AWS Secrets
Manager", Limitations), so the master secret is our own, one per writer: each instance that writes
(or wrote) has a Secrets Manager secret in its own region under that region's customer key, which
replicates to the other region while an instance there replicates it, and is rotated on schedule by
the rotation function AWS publishes for PostgreSQL (Serverless Application Repository, single user),
which runs in the region's private subnets and reaches the database and Secrets Manager (interface
endpoint) only through the VPC. An instance gets its password write-only (password_wo) from a
bootstrap of its own - at creation, or in the update that promotes it - and the rotation at that
deploy replaces it with one Secrets Manager generates: what state keeps (encrypted, as a secret) is
dead from then on (docs/decisions/014-master-secret-not-rds-managed.md, 025-master-secret-per-writer.md).
A promotion therefore leaves the former writer's secret as it was (its copy in the new writer's
region still holds the password the promoted instance kept until the deploy that follows), and no
secret ever has to be promoted, adopted or replicated over one of the same name.

Every instance forces TLS, allows IAM authentication and is reachable on 5432 only from the
configured CIDRs of its region and its region's rotation function. The replica follows the writer
by ARN - a cross-region replica must name its source by ARN and bring a KMS key and subnet group of
its own region - and the writer's automated backups are replicated to the other region, so
point-in-time restore exists there too.

WAL-G is not used: it needs host access and archive_command, which RDS does not give; RDS's
own transaction-log backups are the PITR mechanism (docs/decisions/005-no-wal-g-rds-pitr.md).

Heartbeat: an idle primary makes the replica report up to five minutes of lag, so both parameter
groups preload pg_cron and HEARTBEAT_SQL (run once on the primary, see docs/operator.md) schedules an
upsert every 15 s. pg_cron over a pod: it runs inside the primary, needs no network path, role or
token, accepts second intervals ('[1-59] seconds', pg_cron 1.5+; RDS for PostgreSQL 16 ships
1.6), never runs on a hot standby, and keeps running on the replica once it is promoted (its jobs
replicate with the data). If the heartbeat is missing, the replica-lag alarm says so.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Literal, Optional

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from helpers import dr_budget
from helpers.alerting import alarm, alert_topic
from helpers.log_groups import log_group, log_key
from helpers.validation import require

PORT = 5432
CA_CERTIFICATE = "rds-ca-rsa2048-g1"
LOG_EXPORTS = ["postgresql", "upgrade"]
HTTPS = 443
# The rotation function AWS publishes for RDS PostgreSQL, single-user scheme (Secrets Manager User
# Guide, "Rotation function templates"), at the version aws-cdk-lib pins for the aws partition
# (aws-secretsmanager/lib/secret-rotation.ts, SecretRotationApplication.POSTGRES_ROTATION_SINGLE_USER).
ROTATION_APPLICATION = ("arn:aws:serverlessrepo:us-east-1:297356227824:applications/"
                        "SecretsManagerRDSPostgreSQLRotationSingleUser")
ROTATION_APPLICATION_VERSION = "1.1.671"
# The template creates the function's role and its Secrets Manager invoke permission.
ROTATION_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"]
# GetRandomPassword's exclusions the function uses by default (its EXCLUDE_CHARACTERS), which also
# covers what RDS refuses in a master password ('/', '"', '@', space): the bootstrap uses letters
# and digits only.
BOOTSTRAP_PASSWORD_LENGTH = 40
# On an instance promoted in place: the name of the instance it replicated (policy/guardrails/stack.py)
PROMOTED_FROM_TAG = "intelgraph.io/promoted-from"


@dataclass(frozen=True)
class DbNetwork:
    """Where one region's database sits (VPC, subnets) and who may reach it."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    # Clients of the database in this region: after a failover the DR instance serves the DR
    # region's workloads, whose addresses are not the primary VPC's.
    allowed_cidrs: tuple[str, ...] = ()
    # The region's Secrets Manager interface endpoint (private DNS on): the rotation function's
    # only way to Secrets Manager.
    secretsmanager_endpoint_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PostgresDrArgs:
    account_id: str
    dr_provider: pulumi.ProviderResource
    primary_region: str
    dr_region: str
    primary_network: DbNetwork
    dr_network: DbNetwork
    engine_version: str
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    backup_retention_days: int
    multi_az: bool
    deletion_protection: bool
    final_snapshot: bool
    maintenance_window: str
    backup_window: str
    database_insights: Literal["standard", "advanced"]
    monitoring_interval_seconds: int
    replica_lag_threshold_seconds: int
    auto_minor_version_upgrade: bool = True  # then engine_version is the major version only
    database_name: str = "intelgraph"
    master_username: str = "intelgraph_admin"
    master_secret_rotation_days: int = 7
    # a declared major upgrade: the version it starts from (settings: postgres.majorUpgrade.fromVersion;
    # snapshot taken and target checked by ops.pg_major_upgrade)
    major_upgrade_from: Optional[str] = None
    log_retention_days: int = 30  # the exported postgresql/upgrade log groups
    # Which region holds the writer, and which instance each region has (settings dr.activeRegion,
    # postgres.generations; docs/decisions/018-active-region-is-state.md).
    active_region: Region = "primary"
    generations: tuple[int, int] = (1, 1)  # (primary, dr)

    def __post_init__(self) -> None:
        problems = []
        if self.backup_retention_days < 1:
            problems.append("backup_retention_days must be at least 1: replicas and PITR need backups")
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            problems.append("max_allocated_storage_gb must be at least allocated_storage_gb")
        for label, network in (("primary_network", self.primary_network), ("dr_network", self.dr_network)):
            if not network.allowed_cidrs:
                problems.append(f"{label}.allowed_cidrs must name at least one client network of that region")
            if not network.secretsmanager_endpoint_cidrs:
                problems.append(f"{label}.secretsmanager_endpoint_cidrs must name the region's Secrets Manager "
                                "endpoint: the rotation function reaches Secrets Manager only through it")
        if self.primary_region == self.dr_region:
            problems.append("dr_region must differ from primary_region")
        if not 1 <= self.master_secret_rotation_days <= 1000:
            problems.append("master_secret_rotation_days must be 1-1000 (Secrets Manager RotationRules)")
        if self.major_upgrade_from is None and self.auto_minor_version_upgrade == ("." in self.engine_version):
            problems.append("engine_version must be the major version only with auto_minor_version_upgrade, "
                            "and major.minor without it (RDS upgrades minors itself)")
        if self.replica_lag_threshold_seconds < 1:
            problems.append("replica_lag_threshold_seconds must be positive")
        if len(self.primary_network.subnet_ids) < 2 or len(self.dr_network.subnet_ids) < 2:
            problems.append("each region needs at least two subnets (two AZs) for a DB subnet group")
        if self.major_upgrade_from is not None and "." not in self.engine_version:
            problems.append("engine_version must be the exact target version during a major upgrade")
        if min(self.generations) < 1 or self.generations[0] - self.generations[1] not in (0, 1):
            problems.append("generations (primary, dr) must be >= 1 with primary equal to dr or dr + 1")
        require("PostgresDrArgs", problems)

    @property
    def major_upgrade(self) -> bool:
        return self.major_upgrade_from is not None

    @property
    def family(self) -> str:
        return f"postgres{self.engine_version.split('.')[0]}"

    @property
    def replica_family(self) -> str:
        """The DR parameter group's family: the old one while an upgrade is declared. RDS applies a
        custom parameter group to a read replica only after the replica's upgrade completes (RDS
        User Guide, "How to perform a major version upgrade for RDS for PostgreSQL", "Handle read
        replicas"), and nothing promises that upgrade for a cross-Region replica: the group moves
        in the deploy after, once ops.pg_major_upgrade --after saw the replica on the new major."""
        return f"postgres{self.major_upgrade_from.split('.')[0]}" if self.major_upgrade_from else self.family


Region = Literal["primary", "dr"]
# Generation 1 keeps the names the stacks were first deployed with (their URNs): the DR region's
# instance is "-replica" whatever it is today; generation n > 1 adds "-g<n>".
NAMES: dict[Region, str] = {"primary": "primary", "dr": "replica"}


@dataclass(frozen=True)
class Placement:
    """One instance: its region and generation, and so its name and its place in the birth order
    primary 1, DR 1, primary 2, DR 2, ... Primary 1 was created as a writer; every other instance
    was created as a cross-Region replica of the one born just before it."""

    region: Region
    generation: int

    @property
    def born(self) -> int:
        return 2 * self.generation - (1 if self.region == "primary" else 0)

    def name(self, base: str) -> str:
        stem = f"{base}-{NAMES[self.region]}"
        return stem if self.generation == 1 else f"{stem}-g{self.generation}"

    @property
    def source(self) -> "Placement":
        """The instance this one was created as a replica of (never asked of primary 1)."""
        if self.region == "dr":
            return Placement("primary", self.generation)
        return Placement("dr", self.generation - 1)


def _in_region(arn: str, region: str) -> str:
    return arn.replace(f":{arn.split(':')[3]}:", f":{region}:", 1)


@dataclass(frozen=True)
class _Region:
    """What each region provides a database instance with."""

    region: str
    network: DbNetwork
    key: aws.kms.Key
    secret_key: aws.kms.Key  # the master secret's (or its replica's) key: the rotation function decrypts with it
    rotation_group: aws.ec2.SecurityGroup
    subnet_group: aws.rds.SubnetGroup
    security_group: aws.ec2.SecurityGroup
    parameter_group: aws.rds.ParameterGroup
    topic: aws.sns.Topic
    opts: pulumi.ResourceOptions


class PostgresDr(pulumi.ComponentResource):
    """The writer is the instance of ``active_region``; the other region's instance replicates it
    when it was born after the writer, and otherwise is the former writer, left exactly as it was
    (failed over: the primary region may be down, and nothing there may change)."""

    writer_endpoint: pulumi.Output[str]
    writer_arn: pulumi.Output[str]
    replica_endpoint: Optional[pulumi.Output[str]]  # None while no region replicates the writer
    replica_arn: Optional[pulumi.Output[str]]
    writer_secret_arn: pulumi.Output[str]  # the writer's own secret, in its region: what clients read
    replica_secret_arn: Optional[pulumi.Output[str]]  # its copy in the replica's region, while one replicates
    replica_kms_key_arn: pulumi.Output[str]  # DR-region key: also for the promoted replica's secret

    def __init__(self, name: str, args: PostgresDrArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:database:PostgresDr", name, None, opts)
        self._name, self._args = name, args

        placements: dict[Region, Placement] = {"primary": Placement("primary", args.generations[0]),
                                                "dr": Placement("dr", args.generations[1])}
        writer = placements[args.active_region]
        other = placements["dr" if args.active_region == "primary" else "primary"]
        # the other region replicates the writer only if it was created after it (as its replica)
        replica = other if other.born > writer.born else None
        regions: dict[Region, _Region] = {
            "primary": self._region("primary", args.primary_region, args.primary_network,
                                    pulumi.ResourceOptions(parent=self), replica is placements["primary"]),
            "dr": self._region("dr", args.dr_region, args.dr_network,
                               pulumi.ResourceOptions(parent=self, provider=args.dr_provider),
                               replica is placements["dr"]),
        }
        monitoring_role, monitoring_policy = self._monitoring_role()
        # RDS checks the role when the instance is created or modified: without the policy attached
        # yet, CreateDBInstance fails ("IAM role ARN value is invalid or does not include the
        # required permissions for: ENHANCED_MONITORING", pulumi/pulumi #5628, claranet/terraform-aws-
        # aurora #23); the role alone is not enough
        self._waits = pulumi.ResourceOptions(depends_on=[monitoring_policy])
        self._monitoring = monitoring_role
        # Every instance that writes or wrote has a bootstrap password of its own (a replica has the
        # password of its source): the writer, and the former writer until it is retired.
        writers = [p for p in (writer, other) if p is not replica]
        bootstraps = {p.region: self._bootstrap(p) for p in writers}

        # The writer first: the replica names it. The writer's and the former writer's inputs do not
        # depend on which of them is active, so a failover changes nothing in the former's region.
        writer_db = self._instance(writer, regions[writer.region], bootstraps[writer.region])
        other_db = (self._replica(other, regions[other.region], writer_db) if replica
                    else self._instance(other, regions[other.region], bootstraps[other.region]))
        instances = {writer.region: writer_db, other.region: other_db}
        # Automated backups replicated to the other region, for PITR there. A writer in the primary
        # region replicates its own to the DR region (which is up: the writer got there by a planned
        # switch, or never left). A writer in the DR region may have got there in an outage of the
        # primary: the replication stays with the earlier born of the two (the writer with its
        # replica, or the former writer, untouched) until the primary region is rebuilt.
        source = writer if writer.region == "primary" else min((writer, other), key=lambda p: p.born)
        target: Region = "dr" if source.region == "primary" else "primary"
        aws.rds.InstanceAutomatedBackupsReplication(
            f"{name}-backups-to-dr" if source.born == 1 else f"{source.name(name)}-backups-to-{target}",
            source_db_instance_arn=instances[source.region].arn,
            kms_key_id=regions[target].key.arn,
            retention_period=args.backup_retention_days,
            opts=regions[target].opts,
        )

        for placement in (writer, other):
            self._health_alarms(placement.name(name), instances[placement.region], regions[placement.region])
        # Right after a promotion there is no replica: the former replica's lag alarm stays, quiet
        # (ReplicaLag is no longer emitted; missing data is then not a breach). Deleting it would break
        # the failed-over deploy: its --target list would name a resource gone from the stack
        # (pulumi/pulumi deployment_executor.go checkTargets).
        lagging = replica or writer
        alarm(
            f"{lagging.name(name)}-lag",
            description=(f"Replica lag above {args.replica_lag_threshold_seconds}s: failing over "
                         "now would lose more data than the RPO allows." if replica else
                         "Promoted writer: it replicates nothing, so this replica-lag alarm stays quiet "
                         "until the next rebuild replaces it."),
            namespace="AWS/RDS", metric="ReplicaLag",
            dimensions={"DBInstanceIdentifier": instances[lagging.region].identifier},
            statistic="Maximum", comparison="GreaterThanThreshold",
            threshold=args.replica_lag_threshold_seconds,
            period_seconds=dr_budget.LAG_PERIOD_SECONDS, evaluation_periods=dr_budget.LAG_EVALUATION_PERIODS,
            unit="Seconds", treat_missing_data="breaching" if replica else "notBreaching",
            topic=regions[lagging.region].topic, opts=regions[lagging.region].opts,
        )

        self.writer_region: Region = writer.region
        self.writer_endpoint = writer_db.endpoint
        self.writer_arn = writer_db.arn
        self.replica_endpoint = instances[replica.region].endpoint if replica else None
        self.replica_arn = instances[replica.region].arn if replica else None
        self.replica_kms_key_arn = regions["dr"].key.arn
        self.dr_instance_arn = instances["dr"].arn  # the DR region's instance, writer or replica
        # each region's instance whatever it does: what IAM policies name, so a failover changes none
        self.instance_arns: dict[Region, pulumi.Output[str]] = {"primary": instances["primary"].arn,
                                                                 "dr": instances["dr"].arn}
        # a rotation function in each region: every writer's secret rotates in its own region
        functions: dict[Region, pulumi.Output[str]] = {label: self._rotation_function(label, region)
                                                       for label, region in regions.items()}
        secrets = {p.region: self._master_secret(p, instances[p.region], bootstraps[p.region], regions, functions)
                   for p in writers}
        self.writer_secret_arn = secrets[writer.region]
        # A replica's ARN is the primary's with the region changed (Secrets Manager API Reference,
        # StopReplicationToReplica, "ARN").
        self.replica_secret_arn = (self.writer_secret_arn.apply(lambda arn: _in_region(arn, regions[replica.region].region))
                                   if replica else None)
        # what the runbooks and clients need (the postgres export)
        self.secret_outputs = {
            "writerSecretArn": self.writer_secret_arn,
            **({"replicaSecretArn": self.replica_secret_arn} if replica else {}),
            "masterSecretRotationDays": args.master_secret_rotation_days,
        }
        # by region role: __main__ subscribes each region's on-call endpoints (alerting.subscribe)
        self.alert_topics = {"primary": regions["primary"].topic, "dr": regions["dr"].topic}
        # what ops/pg_restore_rehearsal restores into: the DR region's key, network and parameters
        dr_region = regions["dr"]
        self.dr_restore_target = {
            "kmsKeyArn": dr_region.key.arn, "subnetGroup": dr_region.subnet_group.name,
            "securityGroupId": dr_region.security_group.id, "parameterGroup": dr_region.parameter_group.name,
            "instanceClass": args.instance_class,
        }
        self.register_outputs({
            "replicaKmsKeyArn": self.replica_kms_key_arn,
            "writerEndpoint": self.writer_endpoint,
            "writerArn": self.writer_arn,
            **({"replicaEndpoint": self.replica_endpoint, "replicaArn": self.replica_arn} if replica else {}),
            **self.secret_outputs,
        })

    def _instance(self, placement: Placement, region: "_Region", bootstrap: random.RandomPassword) -> aws.rds.Instance:
        """A standalone instance: the writer, or the former writer. Primary 1 was created as one
        (engine, master user, bootstrap password); any other instance was created as a replica and
        promoted in place by removing replicate_source_db (terraform-provider-aws
        internal/service/rds/instance.go resourceInstanceUpdate: PromoteReadReplica with the
        configured backup retention and window, then ModifyDBInstance for the rest; any other new
        source is refused: "cannot elect new source database for replication"). A promoted instance
        keeps its replica inputs: the ForceNew fields a replica inherits from its source (username,
        db_name, engine: Optional+Computed, so unset reads back without a diff) stay unset,
        kms_key_id and storage_encrypted stay as they were. Its own bootstrap password (password_wo,
        new in the promoting update, so ModifyDBInstance sends it as MasterUserPassword after the
        promotion) replaces the one it kept from its source; its own secret rotates it at once."""
        args, identifier = self._args, placement.name(self._name)
        writes = dict(
            backup_retention_period=args.backup_retention_days,
            backup_window=args.backup_window,
            # Keep automated backups (and so PITR) even if the instance is deleted.
            delete_automated_backups=False,
            skip_final_snapshot=not args.final_snapshot,
            final_snapshot_identifier=f"{identifier}-final" if args.final_snapshot else None,
            # RDS refuses a new major engineVersion without AllowMajorVersionUpgrade; apply it now,
            # right after the runbook's snapshot, not in some later maintenance window
            **({"allow_major_version_upgrade": True, "apply_immediately": True} if args.major_upgrade else {}),
            # Never manage_master_user_password: RDS then refuses the replica (module docstring).
            # Write-only: sent when the version changes (at create, or at the promotion), never read
            # back; bumping the version would send it again and undo the rotations, so it stays 1.
            password_wo=bootstrap.result,
            password_wo_version=1,
        )
        if placement.born > 1:
            return self._replica(placement, region, None, writes)
        return aws.rds.Instance(
            identifier,
            identifier=identifier,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            db_name=args.database_name,
            username=args.master_username,
            multi_az=args.multi_az,
            deletion_protection=args.deletion_protection,
            storage_encrypted=True,
            **writes,
            **self._common(region),
            opts=pulumi.ResourceOptions.merge(region.opts, self._waits),
        )

    def _replica(self, placement: Placement, region: "_Region", source: Optional[aws.rds.Instance],
                 writes: Optional[dict] = None) -> aws.rds.Instance:
        """An instance created as a cross-Region replica: of ``source`` while it replicates, or
        promoted (``source`` None, with the writer's ``writes``) - the same inputs otherwise, so the
        promotion is an in-place update."""
        args, identifier = self._args, placement.name(self._name)
        role = ({"replicate_source_db": source.arn, "skip_final_snapshot": True} if source is not None else
                # which instance it was promoted from: the policy pack's dr-replica-cross-region rule
                # reads it (a failed-over pair waits for the rebuild), and so can an operator
                {**(writes or {}), "tags": {PROMOTED_FROM_TAG: placement.source.name(self._name)}})
        return aws.rds.Instance(
            identifier,
            identifier=identifier,
            # Cross-region: the source must be the ARN. A replica never carries username, password,
            # db_name or a managed password.
            **role,
            # RDS ignores this on a cross-region replica (kms_key_id decides), but the provider reads
            # back `true`, and the field is ForceNew and not computed: left unset, the second `up`
            # would replace the replica (terraform-provider-aws #34434, #3470).
            storage_encrypted=True,
            instance_class=args.instance_class,
            multi_az=args.multi_az,  # HA from the moment it is promoted
            deletion_protection=args.deletion_protection,
            # RDS for PostgreSQL runs no automated backups on a read replica; PITR in its region
            # comes from the writer's replicated backups, and the promotion turns backups on.
            **self._common(region),
            opts=pulumi.ResourceOptions.merge(region.opts, self._waits),
        )

    def _bootstrap(self, placement: Placement) -> random.RandomPassword:
        """The password an instance is given before its secret's first rotation replaces it (at the
        same deploy); until then it is a secret in state (the provider marks the result secret) and
        the write-only password_wo / secret_string_wo, which the provider never reads back."""
        return random.RandomPassword(f"{self._credentials_name(placement)}-bootstrap", length=BOOTSTRAP_PASSWORD_LENGTH,
                                     special=False, opts=pulumi.ResourceOptions(parent=self))

    def _credentials_name(self, placement: Placement) -> str:
        """The secret's name: primary 1's keeps the name (and URNs) it was first deployed with."""
        return f"{self._name}-master" if placement.born == 1 else f"{placement.name(self._name)}-master"

    def _master_secret(self, placement: Placement, instance: aws.rds.Instance, bootstrap: random.RandomPassword,
                       regions: dict[Region, _Region], functions: dict[Region, pulumi.Output[str]]) -> pulumi.Output[str]:
        """One writer's credentials, in its region: the secret, its first value (what the rotation
        function expects: engine, host, port, dbname, username, password), and rotation by that
        region's function from the deploy that creates it. Returns the secret's ARN."""
        args, name = self._args, self._credentials_name(placement)
        home = regions[placement.region]
        other: Region = "dr" if placement.region == "primary" else "primary"
        # Replicated while the other region's instance was born after this one, as its replica (or
        # still is): readable there when this region is down, where the promoted replica keeps this
        # password until the deploy that gives it its own. A writer promoted during an outage gets
        # its replica at the rebuild, in place (ReplicateSecretToRegions).
        replicated = Placement(other, args.generations[0 if other == "primary" else 1]).born > placement.born
        secret = aws.secretsmanager.Secret(
            name,
            name=name,
            description=f"{placement.name(self._name)}: master user credentials (engine, host, port, dbname, "
                        "username, password)",
            kms_key_id=home.secret_key.arn,
            replicas=[{"region": regions[other].region, "kms_key_id": regions[other].secret_key.arn}] if replicated else [],
            recovery_window_in_days=30,
            opts=home.opts,
        )
        initial = aws.secretsmanager.SecretVersion(
            f"{name}-initial",
            secret_id=secret.id,
            secret_string_wo=pulumi.Output.json_dumps({
                "engine": "postgres", "host": instance.address, "port": PORT, "dbname": args.database_name,
                "username": args.master_username, "password": bootstrap.result,
                # "true": TLS with certificate and host name checks, no fallback to plain text
                # (the function's get_ssl_config); the parameter group refuses plain text anyway.
                "ssl": "true",
            }),
            secret_string_wo_version=1,
            # Rotations add versions; this one only gives the secret its first value.
            opts=pulumi.ResourceOptions.merge(home.opts, pulumi.ResourceOptions(
                ignore_changes=["secretStringWo", "secretStringWoVersion"])),
        )
        # Immediately: the bootstrap password stops working at the deploy that set it.
        aws.secretsmanager.SecretRotation(
            f"{name}-secret-rotation",
            secret_id=secret.id,
            rotation_lambda_arn=functions[placement.region],
            rotation_rules={"automatically_after_days": args.master_secret_rotation_days},
            rotate_immediately=True,
            opts=pulumi.ResourceOptions.merge(home.opts, pulumi.ResourceOptions(depends_on=[initial, instance])),
        )
        return secret.arn

    def _rotation_function(self, label: str, region: _Region) -> pulumi.Output[str]:
        """AWS's PostgreSQL single-user rotation function in this region's private subnets: its
        security group lets it reach the database (5432) and the Secrets Manager endpoint (443)
        and nothing else. Returns the function's ARN."""
        name = f"{self._name}-{label}"
        egress = {"db": {"referenced_security_group_id": region.security_group.id, "from_port": PORT, "to_port": PORT,
                         "description": "PostgreSQL: the database whose password it rotates"}}
        egress.update({f"secretsmanager-{i}": {"cidr_ipv4": cidr, "from_port": HTTPS, "to_port": HTTPS,
                                               "description": f"Secrets Manager interface endpoint {cidr}"}
                       for i, cidr in enumerate(region.network.secretsmanager_endpoint_cidrs)})
        rules = [aws.vpc.SecurityGroupEgressRule(f"{name}-rotation-{rule}", security_group_id=region.rotation_group.id,
                                                 ip_protocol="tcp", opts=region.opts, **spec)
                 for rule, spec in egress.items()]
        stack = aws.serverlessrepository.CloudFormationStack(
            f"{name}-rotation",
            name=f"{name}-rotation",
            application_id=ROTATION_APPLICATION,
            semantic_version=ROTATION_APPLICATION_VERSION,
            capabilities=ROTATION_CAPABILITIES,
            parameters={
                # the regional name: with private DNS it resolves to the interface endpoint
                "endpoint": f"https://secretsmanager.{region.region}.amazonaws.com",
                "functionName": f"{name}-rotation",
                "vpcSubnetIds": ",".join(region.network.subnet_ids),
                "vpcSecurityGroupIds": region.rotation_group.id,
                # the template grants the function's role this key, for the secret's value
                "kmsKeyArn": region.secret_key.arn,
            },
            # a function that exists can reach what it rotates: Secrets Manager runs it at once
            opts=pulumi.ResourceOptions.merge(region.opts, pulumi.ResourceOptions(depends_on=rules)),
        )
        return stack.outputs.apply(lambda outputs: (outputs or {}).get("RotationLambdaARN", ""))

    def _region(self, label: Region, region_name: str, network: DbNetwork, opts: pulumi.ResourceOptions,
                replicates: bool) -> _Region:
        """Keys, subnet group, security groups, parameter group and alert topic of one region;
        ``replicates``: its instance is a replica of the writer."""
        name, args = f"{self._name}-{label}", self._args
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts {name}: storage, Performance Insights",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=opts,
        )
        # Its own key: the rotation function's role may decrypt the secret, not the database's key.
        secret_key = aws.kms.Key(
            f"{name}-secret-key",
            description=f"Encrypts {name}'s master secret (or its replica)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=opts,
        )
        subnet_group = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=list(network.subnet_ids), opts=opts)
        # No inline rules: its egress rules are resources of their own (they name the database's
        # group, which names this one). The provider revokes AWS's default allow-all egress.
        rotation_group = aws.ec2.SecurityGroup(
            f"{name}-rotation",
            description=f"Master secret rotation function {name}: 5432 to the database, 443 to Secrets Manager",
            vpc_id=network.vpc_id,
            opts=opts,
        )
        ingress: list[aws.ec2.SecurityGroupIngressArgsDict] = [{
            "description": f"PostgreSQL from {cidr}",
            "protocol": "tcp", "from_port": PORT, "to_port": PORT, "cidr_blocks": [cidr],
        } for cidr in network.allowed_cidrs]
        ingress.append({
            "description": "PostgreSQL from the master secret's rotation function",
            "protocol": "tcp", "from_port": PORT, "to_port": PORT, "security_groups": [rotation_group.id],
        })
        security_group = aws.ec2.SecurityGroup(
            f"{name}-db",
            description=f"PostgreSQL {name}: 5432 from the platform networks only",
            vpc_id=network.vpc_id,
            # No egress rules: the database initiates no connections.
            ingress=ingress,
            opts=opts,
        )
        parameter_group = aws.rds.ParameterGroup(
            f"{name}-params",
            family=args.replica_family if replicates else args.family,
            description=f"{name}: TLS only, slow-query and connection logging",
            parameters=[{"name": k, "value": v, "apply_method": "pending-reboot" if k in STATIC else "immediate"}
                        for k, v in parameters(args.database_name).items()],
            opts=opts,
        )
        topic = alert_topic(f"{name}-alerts", args.account_id, opts)
        # everything placed with these opts (the instance first) waits for its log groups
        logs = self._log_groups(Placement(label, args.generations[0 if label == "primary" else 1]), region_name, opts)
        return _Region(region_name, network, key, secret_key, rotation_group, subnet_group, security_group,
                       parameter_group, topic,
                       pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=logs)))

    def _log_groups(self, placement: Placement, region: str, opts: pulumi.ResourceOptions) -> list[aws.cloudwatch.LogGroup]:
        """The groups RDS exports this region's instance logs to (/aws/rds/instance/<id>/<log>),
        created before the instance so RDS does not create them without expiry or our key. The
        postgresql log carries query text (slow queries, errors): its personal data is masked.
        Every generation's groups stay (the pgaudit trail of a retired instance expires by retention)."""
        key = log_key(f"{self._name}-{placement.region}-logs", opts, account_id=self._args.account_id, region=region)
        return [log_group(f"{identifier}-{export}-logs", group_name=f"/aws/rds/instance/{identifier}/{export}",
                          retention_days=self._args.log_retention_days, key=key, opts=opts,
                          mask_personal_data=export == "postgresql")
                for identifier in (Placement(placement.region, g).name(self._name)
                                   for g in range(1, placement.generation + 1))
                for export in LOG_EXPORTS]

    def _monitoring_role(self) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
        """Enhanced Monitoring publishes OS metrics through this role (IAM is global)."""
        role = aws.iam.Role(
            f"{self._name}-monitoring",
            description="RDS Enhanced Monitoring",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "monitoring.rds.amazonaws.com"}}],
            }),
            opts=pulumi.ResourceOptions(parent=self),
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{self._name}-monitoring",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role, attachment

    def _common(self, region: _Region) -> dict:
        """Arguments every instance has, writer or replica: placement, encryption, observability."""
        args = self._args
        advanced = args.database_insights == "advanced"
        return dict(
            kms_key_id=region.key.arn,
            storage_type="gp3",
            max_allocated_storage=args.max_allocated_storage_gb,
            db_subnet_group_name=region.subnet_group.name,
            vpc_security_group_ids=[region.security_group.id],
            parameter_group_name=region.parameter_group.name,
            publicly_accessible=False,
            iam_database_authentication_enabled=True,
            ca_cert_identifier=CA_CERTIFICATE,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=args.auto_minor_version_upgrade,
            maintenance_window=args.maintenance_window,
            database_insights_mode=args.database_insights,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=region.key.arn,
            # Advanced Database Insights requires the 15-month (465-day) retention.
            performance_insights_retention_period=465 if advanced else 7,
            monitoring_interval=args.monitoring_interval_seconds,
            monitoring_role_arn=self._monitoring.arn,
            enabled_cloudwatch_logs_exports=LOG_EXPORTS,
        )

    def _health_alarms(self, name: str, instance: aws.rds.Instance, region: _Region) -> None:
        rds_alarm = functools.partial(alarm, namespace="AWS/RDS", dimensions={"DBInstanceIdentifier": instance.identifier},
                                      topic=region.topic, opts=region.opts)
        rds_alarm(f"{name}-cpu", description="CPU above 80% for 15 minutes",
              metric="CPUUtilization", statistic="Average", comparison="GreaterThanThreshold",
              threshold=80, period_seconds=300, evaluation_periods=3, unit="Percent")
        free_floor = int(self._args.allocated_storage_gb * 0.1 * 2**30)
        rds_alarm(f"{name}-free-storage",
              description="Free storage below 10% of the allocated size; autoscaling may be at its cap",
              metric="FreeStorageSpace", statistic="Minimum", comparison="LessThanThreshold",
              threshold=free_floor, period_seconds=300, evaluation_periods=1, unit="Bytes")


# Parameters for both regions. rds.force_ssl refuses plaintext connections; the rest makes slow
# queries, lock waits and connection churn visible in the exported postgresql log.
PARAMETERS = {
    "rds.force_ssl": "1",
    "log_min_duration_statement": "1000",
    "log_connections": "1",
    "log_disconnections": "1",
    "log_lock_waits": "1",
    "log_temp_files": "10240",
    "log_autovacuum_min_duration": "10000",
    # pgaudit (session audit): DDL and role changes (CREATE/ALTER/DROP, GRANT/REVOKE, CREATE ROLE)
    # are the who-changed-the-schema-or-privileges trail; READ/WRITE would log every query's text
    # (personal data, volume). Parameter values are not logged: they are the data itself. The
    # extension also needs `CREATE EXTENSION pgaudit;` once per database (docs/runbooks.md).
    "shared_preload_libraries": "pg_stat_statements,pgaudit",
    "pgaudit.log": "ddl,role",
    "pgaudit.log_parameter": "0",
    "pgaudit.log_catalog": "0",
    "pgaudit.log_relation": "0",
}


# pg_cron runs the heartbeat; preloading and its database are postmaster settings (reboot).
HEARTBEAT_LIBRARY = "pg_cron"
STATIC = {"rds.force_ssl", "shared_preload_libraries", "cron.database_name"}


def parameters(database_name: str) -> dict[str, str]:
    """PARAMETERS plus what the heartbeat needs, keeping any other preloaded library."""
    preload = [lib for lib in PARAMETERS.get("shared_preload_libraries", "").split(",") if lib]
    return {**PARAMETERS, "shared_preload_libraries": ",".join([*preload, HEARTBEAT_LIBRARY]),
            "cron.database_name": database_name}


def heartbeat_sql(interval_seconds: int = dr_budget.HEARTBEAT_INTERVAL_SECONDS) -> str:
    """What the master user runs once on the primary (database_name) after the reboot that loads
    pg_cron. Idempotent: cron.schedule with an existing job name updates that job."""
    if not 1 <= interval_seconds <= 59:
        raise ValueError("pg_cron second intervals are 1-59 seconds")
    return f"""\
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE TABLE IF NOT EXISTS dr_heartbeat (
    id smallint PRIMARY KEY CHECK (id = 1),
    beat_at timestamptz NOT NULL
);
SELECT cron.schedule('dr-heartbeat', '{interval_seconds} seconds',
    $$INSERT INTO dr_heartbeat (id, beat_at) VALUES (1, now())
      ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at$$);
-- pg_cron records every run; at {60 // interval_seconds} a minute, keep one day of them.
SELECT cron.schedule('dr-heartbeat-history', '17 3 * * *',
    $$DELETE FROM cron.job_run_details WHERE end_time < now() - interval '1 day'$$);
"""
