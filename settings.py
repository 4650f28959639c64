"""Typed stack settings: the only module that reads stack configuration.

Every key of the project namespace (``intelgraph-platform:*``) is validated at once against the
models below. Unknown keys are errors (a typo must never pass silently) and every problem is
reported with its full key path, the value given and what is allowed, before a single resource
is registered. Adding a component is adding a model and a field on ``StackSettings``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pulumi.errors import RunError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

PROJECT = "intelgraph-platform"


class SettingsError(RunError):
    """Stack configuration is invalid. ``problems`` lists one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


# --- value types -------------------------------------------------------------------------------

_QUANTITY = re.compile(
    r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)
_SUFFIX = {
    None: 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def quantity_value(quantity: str) -> float:
    """The numeric value of a Kubernetes quantity: bytes for memory, cores for CPU."""
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError(
            "not a Kubernetes quantity; use a number with an optional suffix such as "
            "'512Mi', '4Gi', '500m' or '2'"
        )
    return float(match["num"]) * _SUFFIX[match["suffix"]]


def _quantity(value: str) -> str:
    if quantity_value(value) <= 0:
        raise ValueError("must be greater than zero")
    return value


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a valid CIDR block ({exc}); e.g. '10.0.0.0/16'") from None
    return str(network)


def _private_cidr(value: str) -> str:
    network = ipaddress.ip_network(_cidr(value))
    if network.prefixlen == 0:
        raise ValueError(
            "an allow to the whole internet defeats default-deny; name the destination's CIDR"
        )
    return str(network)


@cache
def aws_regions() -> frozenset[str]:
    """The commercial AWS regions, from the endpoint catalogue botocore ships (AWS's own list,
    not a regex of ours). Read as data: a botocore session costs half a second to build."""
    from importlib.util import find_spec

    catalogue = Path(find_spec("botocore").origin).parent / "data" / "endpoints.json"
    partitions = json.loads(catalogue.read_text())["partitions"]
    return frozenset(next(p for p in partitions if p["partition"] == "aws")["regions"])


def _service_ip(value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("not an IPv4 address; e.g. '172.20.0.1'") from None
    # The API server gives the `kubernetes` Service the first address of the service CIDR
    # (Kubernetes docs, "Service ClusterIP allocation"); EKS uses 10.100.0.0/16 or 172.20.0.0/16.
    if not address.is_private or int(address) & 0xFF != 1:
        raise ValueError("must be the `kubernetes` Service's ClusterIP: the first (.1) address of the "
                         "cluster's private service CIDR, e.g. '172.20.0.1' (kubectl get svc kubernetes)")
    return value


def _region(value: str) -> str:
    if value not in aws_regions():
        raise ValueError(f"unknown AWS region; allowed: {', '.join(sorted(aws_regions()))}")
    return value


def _cron(value: str) -> str:
    from croniter import croniter

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError("not a valid 5-field cron schedule, e.g. '0 * * * *'")
    return value


_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._\-/][a-z0-9]+)*(?::[0-9]+/[a-z0-9._\-/]+)?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def _image(value: str) -> str:
    match = _IMAGE.match(value)
    if not match:
        raise ValueError("not an image reference; e.g. 'redis:7.4.2-alpine'")
    if not match["tag"] and not match["digest"]:
        raise ValueError("image is not pinned; add a version tag or an @sha256 digest")
    if match["tag"] == "latest":
        raise ValueError("':latest' is not a pin; use a version tag or an @sha256 digest")
    return value


_SEMVER = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")


def _chart_version(value: str) -> str:
    if not _SEMVER.match(value):
        raise ValueError("pin an exact chart version such as '5.26.16' (no ranges)")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]
Cidr = Annotated[str, AfterValidator(_cidr)]
PrivateCidr = Annotated[str, AfterValidator(_private_cidr)]
Region = Annotated[str, AfterValidator(_region)]
Cron = Annotated[str, AfterValidator(_cron)]
Image = Annotated[str, AfterValidator(_image)]
ChartVersion = Annotated[str, AfterValidator(_chart_version)]
AccountId = Annotated[str, Field(pattern=r"^[0-9]{12}$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Days = Annotated[int, Field(ge=1, le=3650)]
K8sName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
Arn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{0,12}:.+$")]


def _camel(name: str) -> str:
    # Not pydantic's to_camel: that turns "neo4j" into "neo4J".
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


class Model(BaseModel):
    """Strict, immutable, camelCase in YAML, snake_case in Python."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=_camel, populate_by_name=True
    )


# --- the stack's sections ----------------------------------------------------------------------


class AwsSettings(Model):
    account_id: AccountId
    primary_region: Region
    dr_region: Region

    @field_validator("dr_region")
    @classmethod
    def _distinct_regions(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("primary_region"):
            raise ValueError(
                "must differ from primaryRegion: a DR copy in the same region shares its failures"
            )
        return value


class RegionNetwork(Model):
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
    vpc_cidr: PrivateCidr  # the VPC's primary CIDR block: what "this region's network" means
    private_subnet_ids: Annotated[
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]], Field(min_length=2)
    ]
    # Interface endpoints (PrivateLink): backup jobs reach S3, and IRSA reaches STS, only
    # through these addresses - not through public AWS ranges, which change.
    s3_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)]
    sts_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)]


class NetworkSettings(Model):
    primary: RegionNetwork
    dr: RegionNetwork


class KubernetesSettings(Model):
    context: Optional[str] = None
    kubeconfig_path: Optional[str] = None
    cluster_name: K8sName
    # The cluster's Kubernetes minor version: manifests are validated against its schemas.
    version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$")]
    oidc_provider_arn: Arn
    oidc_issuer: Annotated[str, Field(pattern=r"^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/[A-F0-9]+$")]
    app_namespace: K8sName
    # The EKS control plane's ENIs in the VPC: Neo4j discovers its peers through the API.
    api_server_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)]
    # ...which pods dial at the `kubernetes` Service's ClusterIP: egress allows both.
    api_service_ip: Annotated[str, AfterValidator(_service_ip)]

    @model_validator(mode="after")
    def _one_source(self) -> "KubernetesSettings":
        if bool(self.context) == bool(self.kubeconfig_path):
            raise ValueError("set exactly one of 'context' or 'kubeconfigPath'")
        return self


class ObjectLockSettings(Model):
    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: Days


class BucketSettings(Model):
    transition_days: Days
    transition_storage_class: Literal["STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"]
    expiration_days: Days
    noncurrent_expiration_days: Days
    object_lock: Optional[ObjectLockSettings] = None

    @field_validator("expiration_days")
    @classmethod
    def _after_transition(cls, value: int, info: ValidationInfo) -> int:
        if value <= info.data.get("transition_days", 0):
            raise ValueError("must be greater than transitionDays")
        return value

    @field_validator("object_lock")
    @classmethod
    def _lock_within_expiry(cls, value, info: ValidationInfo):
        if value and value.days > info.data.get("expiration_days", value.days):
            raise ValueError("objectLock.days cannot exceed expirationDays")
        return value


class Neo4jBackupBucketSettings(BucketSettings):
    # Every chainDays a full backup starts a new chain (neo4j/chains/<start date>/) and the hourly
    # differentials go onto it; a differential is useless without its chain's full backup.
    chain_days: Annotated[int, Field(ge=1, le=7)]  # a full backup at least weekly
    # A chain is deleted whole (by the prune job) once its last backup is this many days old.
    retention_days: Days

    @model_validator(mode="after")
    def _expiry_behind_whole_chain_deletion(self) -> "Neo4jBackupBucketSettings":
        # S3 lifecycle expiry counts each object's own age and knows nothing of chains: it is only
        # the backstop, and must never reach the full backup of a chain that is still kept. The
        # oldest object of a chain (its full backup) is chainDays + retentionDays old when the
        # daily prune deletes the chain, one day later at worst.
        floor = self.chain_days + self.retention_days + 1
        if self.expiration_days <= floor:
            raise ValueError(
                f"expirationDays ({self.expiration_days}) must be greater than chainDays + retentionDays + 1"
                f" = {floor}: lifecycle expiry would delete full backups that kept differentials need")
        return self


class BackupSettings(Model):
    neo4j: Neo4jBackupBucketSettings
    logs: BucketSettings


class ResourceSettings(Model):
    cpu_request: Quantity
    cpu_limit: Quantity
    memory: Quantity  # request = limit: a datastore must not be overcommitted

    @field_validator("cpu_limit")
    @classmethod
    def _limit_covers_request(cls, value: str, info: ValidationInfo) -> str:
        request = info.data.get("cpu_request")
        if request and quantity_value(value) < quantity_value(request):
            raise ValueError(f"must be at least cpuRequest ({request})")
        return value


class VolumeSnapshotSettings(Model):
    schedule: Cron
    retain: Annotated[int, Field(ge=1, le=100)]  # scheduled snapshots kept per server volume
    kubectl_image: Image


class Neo4jSettings(Model):
    namespace: K8sName
    cluster_name: K8sName
    chart_version: ChartVersion
    image: Image
    aws_cli_image: Image
    restore_namespace: K8sName
    accept_license_agreement: Literal["yes", "eval"]
    primaries: Annotated[int, Field(ge=1, le=9)]
    secondaries: Annotated[int, Field(ge=0, le=20)]
    # The availability zones the cluster's nodes run in (topology.kubernetes.io/zone values):
    # with 3 or more, primaries are spread over them as a scheduling requirement.
    zones: Annotated[list[Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$")]], Field(min_length=1)]
    resources: ResourceSettings
    storage_class: K8sName
    storage_size: Quantity
    backup_schedule: Cron
    backup_freshness_slack_minutes: Annotated[int, Field(ge=1, le=1440)]
    restore_rehearsal_schedule: Cron
    time_zone: str = "Etc/UTC"
    volume_snapshots: VolumeSnapshotSettings
    # Raise by one to rotate the admin password (components/neo4j_password.py).
    password_epoch: Annotated[int, Field(ge=0)] = 0

    # The chart clusters only from neo4j.minimumClusterSize >= 3 (templates/_helpers.tpl
    # "neo4j.isClusterEnabled"); below that every release is a standalone server.
    @field_validator("primaries")
    @classmethod
    def _quorum(cls, value: int) -> int:
        if value == 2:
            raise ValueError("must be 1 (standalone) or at least 3: two primaries lose quorum when "
                             "either fails, and the chart only clusters from 3")
        return value

    @field_validator("secondaries")
    @classmethod
    def _needs_a_cluster(cls, value: int, info: ValidationInfo) -> int:
        primaries = info.data.get("primaries")
        if value and primaries is not None and primaries < 3:
            raise ValueError(f"secondaries need a cluster of at least 3 primaries (given primaries: "
                             f"{primaries}); the chart clusters only from minimumClusterSize 3, so "
                             f"with fewer each server would run as its own standalone database")
        return value

    @field_validator("zones")
    @classmethod
    def _distinct_zones(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each zone once")
        return value

    @field_validator("resources")
    @classmethod
    def _fits_neo4j_memory(cls, value: "ResourceSettings") -> "ResourceSettings":
        from components.neo4j_cluster import memory_plan  # the one place the arithmetic lives

        memory_plan(int(quantity_value(value.memory)))
        return value


class RedisPasswordRotation(Model):
    """Which password epoch is current, and which step of the roll to it this deploy is
    (components/redis_auth.py: servers -> clients -> none)."""

    epoch: Annotated[int, Field(ge=0)] = 0
    rollover: Literal["none", "servers", "clients"] = "none"

    @field_validator("rollover")
    @classmethod
    def _needs_previous(cls, value: str, info: ValidationInfo) -> str:
        if value != "none" and info.data.get("epoch", 0) < 1:
            raise ValueError("a rollover needs a previous password: set epoch to 1 or more")
        return value


class RedisSettings(Model):
    namespace: K8sName
    image: Image
    exporter_image: Image
    replicas: Annotated[int, Field(ge=1, le=9)]
    resources: ResourceSettings
    persistence: bool
    storage_class: Optional[K8sName] = None
    storage_size: Optional[Quantity] = None
    maxmemory_policy: Literal[
        "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
        "volatile-random", "volatile-ttl", "noeviction",
    ]
    timeout_seconds: Annotated[int, Field(ge=0, le=86400)]
    tcp_keepalive_seconds: Annotated[int, Field(ge=0, le=7200)]
    slowlog_slower_than_micros: Annotated[int, Field(ge=-1)]
    slowlog_max_len: Annotated[int, Field(ge=1, le=100000)]
    password_rotation: RedisPasswordRotation = RedisPasswordRotation()

    @model_validator(mode="after")
    def _volume(self) -> "RedisSettings":
        if self.persistence and not (self.storage_class and self.storage_size):
            raise ValueError("persistence needs storageClass and storageSize")
        return self


class RegionCidrs(Model):
    primary: Annotated[list[PrivateCidr], Field(min_length=1)]
    dr: Annotated[list[PrivateCidr], Field(min_length=1)]


_DAY_TIME = r"(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]"


class PostgresMajorUpgrade(Model):
    """A declared major version upgrade of the primary (and, with it, its replica). Check it first:
    ``python -m ops.pg_major_upgrade`` verifies the preconditions and takes the snapshot named here."""

    from_version: Annotated[str, Field(pattern=r"^[0-9]{2}\.[0-9]+$")]
    # the manual snapshot taken just before (automated backups expire; a manual snapshot stays)
    snapshot_identifier: Annotated[str, Field(pattern=r"^[a-zA-Z]([a-zA-Z0-9]|-[a-zA-Z0-9]){0,254}$")]
    method: Literal["in-place", "blue-green"] = "in-place"

    @field_validator("method")
    @classmethod
    def _path_this_topology_supports(cls, value: str) -> str:
        if value == "blue-green":
            raise ValueError(
                "RDS blue/green deployments support neither Secrets Manager-managed master passwords nor "
                "cross-Region read replicas (RDS User Guide, 'Limitations for blue/green deployments'), and "
                "this primary has both; use in-place (RDS upgrades the read replica along with the primary)")
        return value


class PostgresSettings(Model):
    # "16" (major only) with autoMinorVersionUpgrade, "16.4" (pinned minor) without: RDS upgrades
    # minors itself when allowed, and a pinned minor would then read back as a downgrade that RDS
    # refuses on every later `up` (aws_db_instance engine_version: a prefix of the actual version
    # is kept as configured; anything else is replaced by the version read back).
    engine_version: Annotated[str, Field(pattern=r"^[0-9]{2}(\.[0-9]+)?$")]
    auto_minor_version_upgrade: bool
    instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")]
    allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)]
    max_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)]
    backup_retention_days: Annotated[int, Field(ge=1, le=35)]
    multi_az: bool
    deletion_protection: bool
    # Per region: the DR instance, once promoted, serves the DR region's clients.
    allowed_cidrs: RegionCidrs
    database_insights: Literal["standard", "advanced"]
    monitoring_interval_seconds: Literal[1, 5, 10, 15, 30, 60]
    final_snapshot: bool
    maintenance_window: Annotated[str, Field(pattern=rf"^{_DAY_TIME}-{_DAY_TIME}$")]
    backup_window: Annotated[str, Field(pattern=r"^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$")]
    # RDS's own default for its managed master secret; Secrets Manager allows 1-1000 days.
    master_secret_rotation_days: Annotated[int, Field(ge=1, le=365)] = 7
    major_upgrade: Optional[PostgresMajorUpgrade] = None

    @field_validator("major_upgrade")
    @classmethod
    def _one_major_step(cls, value: Optional[PostgresMajorUpgrade], info: ValidationInfo):
        """The in-place path, one major version per change: RDS upgrades the cross-Region replica
        with the primary, and the way back is the snapshot of the step before."""
        target = info.data.get("engine_version")
        if value is None or target is None:
            return value
        source, goal = int(value.from_version.split(".")[0]), int(target.split(".")[0])
        if goal == source:
            raise ValueError(f"engineVersion {target} is the same major version as fromVersion "
                             f"{value.from_version}: not a major upgrade; remove majorUpgrade")
        if goal < source:
            raise ValueError(f"engineVersion {target} is older than fromVersion {value.from_version}: RDS "
                             "cannot downgrade; restore the snapshot instead")
        if goal != source + 1:
            raise ValueError(f"{value.from_version} -> {target} skips a major version; upgrade one major "
                             f"version per change: engineVersion {source + 1}.x first")
        return value

    @model_validator(mode="after")
    def _version_matches_upgrade_policy(self) -> "PostgresSettings":
        major_only = "." not in self.engine_version
        if self.auto_minor_version_upgrade and not major_only:
            raise ValueError(
                f"engineVersion {self.engine_version!r} pins a minor version while autoMinorVersionUpgrade is "
                f"on: RDS will upgrade past it and every later `up` would try a downgrade; give the major "
                f"version only ({self.engine_version.split('.')[0]!r})")
        if not self.auto_minor_version_upgrade and major_only:
            raise ValueError(
                f"engineVersion {self.engine_version!r} names no minor version while autoMinorVersionUpgrade "
                "is off: pin the minor (e.g. '16.4') so upgrades happen only when you change it")
        return self


class LoadBalancer(Model):
    dns_name: Annotated[str, Field(pattern=r"^[a-z0-9-]+\.[a-z]{2}-[a-z]+-[0-9]\.elb\.amazonaws\.com$")]
    zone_id: Annotated[str, Field(pattern=r"^Z[A-Z0-9]{8,32}$")]


class HealthCheckSettings(Model):
    fqdn: str
    request_interval_seconds: Literal[10, 30]
    failure_threshold: Annotated[int, Field(ge=1, le=10)]
    regions: Annotated[
        list[Literal["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1",
                     "ap-southeast-2", "ap-northeast-1", "sa-east-1"]],
        Field(min_length=3),
    ]


class DnsSettings(Model):
    hosted_zone_id: Annotated[str, Field(pattern=r"^Z[A-Z0-9]{8,32}$")]
    record_name: str
    health_check: HealthCheckSettings
    # ingress.mode alb: none - DNS aliases the ALB the program's own Ingress creates. Only the
    # nginx compatibility mode names the primary load balancer (the ingress-nginx controller's).
    primary_load_balancer: Optional[LoadBalancer] = None
    dr_load_balancer: LoadBalancer

    @model_validator(mode="after")
    def _checked_name_is_not_the_failover_name(self) -> "DnsSettings":
        if self.health_check.fqdn.rstrip(".") == self.record_name.rstrip("."):
            raise ValueError(
                f"healthCheck.fqdn {self.health_check.fqdn!r} is the failover recordName: the check would "
                "follow the failover to the DR region; use a name that only the primary serves, e.g. "
                f"'primary.{self.record_name}'")
        return self


class RateLimitSettings(Model):
    requests_per_second: Annotated[int, Field(ge=1, le=100000)]
    burst_multiplier: Annotated[int, Field(ge=1, le=10)]


class IngressSettings(Model):
    mode: Literal["alb", "nginx"]
    namespace: K8sName
    host: str
    service_name: K8sName
    service_port: Port
    certificate_arn: Arn
    rate_limit: RateLimitSettings
    allowlist_cidrs: list[PrivateCidr]
    max_body_size_mb: Annotated[int, Field(ge=1, le=64)]
    tls_secret_name: Optional[K8sName] = None  # nginx mode only: TLS terminates in the cluster

    @model_validator(mode="after")
    def _nginx_needs_tls_secret(self) -> "IngressSettings":
        if self.mode == "nginx" and not self.tls_secret_name:
            raise ValueError("mode nginx needs tlsSecretName: TLS is always on")
        return self


class EgressAllow(Model):
    namespace: K8sName
    cidr: PrivateCidr
    ports: Annotated[list[Port], Field(min_length=1)]
    reason: Annotated[str, Field(min_length=10)]


class EgressSettings(Model):
    allowlist: list[EgressAllow] = []


class ObservabilitySettings(Model):
    prometheus_release_label: K8sName
    prometheus_namespace: K8sName
    grafana_dashboard_label: str


_EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class AlertSubscriber(Model):
    protocol: Literal["email", "https"]
    endpoint: str

    @model_validator(mode="after")
    def _endpoint_fits_protocol(self) -> "AlertSubscriber":
        from urllib.parse import urlsplit

        if self.protocol == "email" and not _EMAIL.match(self.endpoint):
            raise ValueError(f"endpoint {self.endpoint!r} is not an e-mail address")
        if self.protocol == "https":
            url = urlsplit(self.endpoint)
            if url.scheme != "https" or not url.hostname:
                raise ValueError(f"endpoint {self.endpoint!r} is not an https:// URL")
            if url.username or url.password or url.query:
                # config is plain text in git: a key in the URL would be a secret in config
                raise ValueError("endpoint must carry no credentials (user:password@ or ?query); "
                                 "point it at a relay that holds the paging service's key")
        return self


def _subscribers(value: list) -> list:
    if not value:
        raise ValueError("the stack's CloudWatch alarms in this region would notify nobody; "
                         "add at least one {protocol: email|https, endpoint: ...}")
    return value


Subscribers = Annotated[list[AlertSubscriber], AfterValidator(_subscribers)]


class AlertSubscribers(Model):
    # one list per region: each region's alarms publish to topics in that region
    primary: Subscribers
    dr: Subscribers


class SecretKeyRef(Model):
    """A key of a Kubernetes Secret that exists in each namespace with alerts (created by the
    secrets pipeline, never by this program: its value must not pass through config or state)."""

    name: K8sName
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")]


class AlertmanagerSettings(Model):
    pager_secret: SecretKeyRef  # PagerDuty Events v2 routing key: severity=critical pages
    chat_secret: SecretKeyRef  # Slack incoming-webhook URL: severity=warning (and anything else)
    chat_channel: Annotated[str, Field(pattern=r"^#[a-z0-9_-]{1,79}$")]


class AlertingSettings(Model):
    subscribers: AlertSubscribers
    alertmanager: AlertmanagerSettings


class PgRestoreRehearsalSettings(Model):
    """The weekly PostgreSQL point-in-time restore rehearsal (ops/pg_restore_rehearsal)."""

    schedule: Cron
    time_zone: str = "Etc/UTC"
    # Python 3 with boto3 (AWS Lambda's base image ships both); the runbook is mounted from a ConfigMap.
    image: Image
    namespace: K8sName
    # The addresses through which the cluster reaches the RDS API of the DR region (an interface
    # endpoint reached over the peering); default-deny allows nothing else.
    dr_rds_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)]
    # That interface endpoint's own DNS name, which the runbook calls (AWS_ENDPOINT_URL_RDS): its
    # private DNS answers only inside the DR VPC, so from the primary VPC boto3 would resolve
    # rds.<dr region>.amazonaws.com to public addresses that default-deny refuses.
    dr_rds_endpoint_url: Annotated[str, Field(pattern=(
        r"^https://vpce-[0-9a-f]{8,17}-[0-9a-z]{8}(-[a-z]{2}-[a-z]+-\d[a-z])?"
        r"\.rds\.[a-z]{2}(-gov)?-[a-z]+-\d\.vpce\.amazonaws\.com$"))]
    timeout_minutes: Annotated[int, Field(ge=15, le=720)]


class LogShipperSettings(Model):
    namespace: K8sName
    image: Image  # Fluent Bit


class LogSettings(Model):
    # Every CloudWatch log group the stack creates or causes (RDS exports, WAF) keeps this long.
    retention_days: int
    shipper: LogShipperSettings

    @field_validator("retention_days")
    @classmethod
    def _cloudwatch_retention(cls, value: int) -> int:
        from components.log_groups import RETENTION_DAYS

        if value not in RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {', '.join(map(str, RETENTION_DAYS))}")
        return value


class DrTarget(Model):
    rto_seconds: Annotated[int, Field(ge=1)]
    rpo_seconds: Annotated[int, Field(ge=1)]


class DrSettings(Model):
    postgres: DrTarget
    neo4j: DrTarget
    # AWS publishes no SLA for promoting a read replica: measure it in a stage failover drill
    # (ops/dr_promote prints how long promotion took) and record it here.
    replica_promotion_estimate_seconds: Annotated[int, Field(ge=60, le=7200)]
    # Time to restore a chain's full backup, and to replay one (hourly) differential onto it; the
    # weekly restore rehearsal measures both (it prints the artifacts restored and the time taken).
    neo4j_restore_estimate_seconds: Annotated[int, Field(ge=60, le=86400)]
    neo4j_differential_estimate_seconds: Annotated[int, Field(ge=1, le=3600)]
    # PostgreSQL point-in-time restore in the DR region (when the replica cannot be used, e.g. a
    # bad write replicated to it): the target, and the time ops.pg_restore_rehearsal measures.
    postgres_pitr_rto_seconds: Annotated[int, Field(ge=60)]
    postgres_pitr_restore_estimate_seconds: Annotated[int, Field(ge=60, le=86400)]


class StackSettings(Model):
    """The whole ``intelgraph-platform:*`` namespace of one stack."""

    environment: Literal["stage", "prod"]
    aws: AwsSettings
    network: NetworkSettings
    kubernetes: KubernetesSettings
    backups: BackupSettings
    neo4j: Neo4jSettings
    redis: RedisSettings
    postgres: PostgresSettings
    dns: DnsSettings
    ingress: IngressSettings
    egress: EgressSettings = EgressSettings()
    observability: ObservabilitySettings
    dr: DrSettings
    alerting: AlertingSettings
    pg_restore_rehearsal: PgRestoreRehearsalSettings
    logs: LogSettings

    @model_validator(mode="after")
    def _database_clients_are_in_their_regions_network(self) -> "StackSettings":
        # A security group in one VPC admitting another region's CIDRs admits nobody there.
        problems = []
        for label in ("primary", "dr"):
            vpc = ipaddress.ip_network(getattr(self.network, label).vpc_cidr)
            for i, cidr in enumerate(getattr(self.postgres.allowed_cidrs, label)):
                if not ipaddress.ip_network(cidr).subnet_of(vpc):
                    problems.append(f"postgres.allowedCidrs.{label}.{i} {cidr} is outside network.{label}.vpcCidr "
                                    f"{vpc}: the {label} database would admit nobody of its region from there")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _primary_load_balancer_matches_the_ingress_mode(self) -> "StackSettings":
        given = self.dns.primary_load_balancer is not None
        if self.ingress.mode == "alb" and given:
            raise ValueError(
                "dns.primaryLoadBalancer must not be set with ingress.mode alb: DNS aliases the ALB the "
                "program's WAF-protected Ingress creates; a name from config could be an unprotected ALB")
        if self.ingress.mode == "nginx" and not given:
            raise ValueError("dns.primaryLoadBalancer is required with ingress.mode nginx: name the "
                             "ingress-nginx controller's load balancer")
        if self.dns.health_check.fqdn == self.ingress.host:
            raise ValueError(f"dns.healthCheck.fqdn must differ from ingress.host ({self.ingress.host})")
        return self

    @model_validator(mode="after")
    def _rehearsal_endpoint_is_in_the_dr_region(self) -> "StackSettings":
        url = self.pg_restore_rehearsal.dr_rds_endpoint_url
        if f".rds.{self.aws.dr_region}.vpce." not in url:
            raise ValueError(f"pgRestoreRehearsal.drRdsEndpointUrl {url!r} is not an RDS interface endpoint of "
                             f"aws.drRegion {self.aws.dr_region}: the rehearsal restores in the DR region")
        return self

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


# --- loading -----------------------------------------------------------------------------------


def _decode(raw: str) -> Any:
    # Pulumi hands structured config to the program as JSON text; scalars stay strings and
    # pydantic converts them ("3" -> 3), so "123456789012" never turns into a number by accident.
    text = raw.strip()
    if text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _allowed_keys(loc: tuple) -> list[str]:
    """The aliases allowed at the parent of ``loc`` (for 'unknown key' messages)."""
    model: Any = StackSettings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # a list index: the list's item model was reached in the step before
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = next(
            (f for name, f in model.model_fields.items() if f.alias == part or name == part),
            None,
        )
        if field is None:
            return []
        annotation = field.annotation
        # unwrap Optional[...] and list[...] to reach the model
        for _ in range(3):
            args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                break
            annotation = args[0] if args else annotation
        model = annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(f.alias or n for n, f in model.model_fields.items())
    return []


def _describe(error: dict) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = f"{PROJECT}:" + ".".join(str(p) for p in loc) if loc else f"{PROJECT}:<stack>"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc)
        return f"{key}: unknown key; allowed keys here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (given: {json.dumps(error.get('input'), default=str)})"


def validate(raw_config: dict[str, str]) -> StackSettings:
    """Validate the project namespace of a stack's config (``{"project:key": "text"}``)."""
    prefix = f"{PROJECT}:"
    document = {
        key[len(prefix):]: _decode(value)
        for key, value in raw_config.items()
        if key.startswith(prefix)
    }
    try:
        return StackSettings.model_validate(document)
    except ValidationError as exc:
        raise SettingsError([_describe(e) for e in exc.errors()]) from None


def load() -> StackSettings:
    """Read and validate this stack's configuration from the Pulumi runtime."""
    from pulumi.runtime import config as runtime_config

    # pulumi.Config can only look keys up one at a time; to reject unknown keys we need them
    # all: the engine passes them in PULUMI_CONFIG, the mock engine through set_all_config.
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return validate(everything)
