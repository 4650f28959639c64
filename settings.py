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
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

PROJECT = "intelgraph-platform"


class SettingsError(RunError):
    """Stack configuration is invalid. ``problems`` lists one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class Problems(ValueError):
    """Raised by a validator that judges several fields together, to name each bad key (relative
    to the model being validated), its value and what is allowed - not just the model's path."""

    def __init__(self, items: list[tuple[str, str, Any]]):
        self.items = items
        super().__init__("; ".join(f"{key}: {message}" for key, message, _ in items))


def _raise_any(items: list[tuple[str, str, Any]]) -> None:
    if items:
        raise Problems(items)


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


def _within(inner: str, outer: str) -> bool:
    """Whether CIDR ``inner`` lies inside ``outer``; never across IP versions (where the standard
    library's subnet_of raises TypeError instead of answering)."""
    a, b = ipaddress.ip_network(inner), ipaddress.ip_network(outer)
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.subnet_of(b)
    return isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network) and a.subnet_of(b)


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

    spec = find_spec("botocore")
    assert spec is not None and spec.origin is not None  # a pinned requirement (requirements.txt)
    catalogue = Path(spec.origin).parent / "data" / "endpoints.json"
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


# What the Kubernetes API server accepts in a CronJob's schedule: robfig/cron v3's standard parser
# (pkg/apis/batch/validation, cron.ParseStandard; robfig/cron spec.go and parser.go): per field
# '*', '?', a number or a name, a range 'a-b', a step '/n', comma lists. Names only for the month
# and the weekday, and the weekday ends at 6 (Saturday): croniter's 7, L, W and # are refused there.
_CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
                ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
                ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
_CRON_PART = re.compile(r"^(?:[*?]|(?P<low>[0-9]+|[a-z]{3})(?:-(?P<high>[0-9]+|[a-z]{3}))?)(?:/(?P<step>[0-9]+))?$")
# robfig/cron's SpecSchedule.Next gives up after five years ("If no time is found within five years,
# return zero"): a CronJob whose next run lies further off never runs.
CRON_HORIZON_YEARS = 5


def _cron_field_problem(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    for part in text.lower().split(","):
        match = _CRON_PART.match(part)
        if not match:
            return f"{name} {text!r} is not cron syntax Kubernetes accepts (*, ?, a-b, */n, lists)"
        if match["step"] is not None and int(match["step"]) == 0:
            return f"{name} {text!r}: a step of 0"
        for value in filter(None, (match["low"], match["high"])):
            number = _cron_number(value, low, names) if value in names or value.isdigit() else None
            if number is None:
                return f"{name} {text!r}: {value!r} is no {name} name" + (
                    f" ({', '.join(names)})" if names else "; use numbers")
            if not low <= number <= high:
                return f"{name} {text!r}: {number} is outside {low}-{high}"
        if match["high"] and _cron_number(match["low"], low, names) > _cron_number(match["high"], low, names):
            return f"{name} {text!r}: the range runs backwards"
    return None


def _cron_number(value: str, low: int, names: tuple[str, ...]) -> int:
    return names.index(value) + low if value in names else int(value)


def _cron(value: str) -> str:
    from datetime import datetime, timezone

    from croniter import CroniterError, croniter

    fields = value.split()
    if len(fields) != 5 or not croniter.is_valid(value):
        raise ValueError("not a valid 5-field cron schedule, e.g. '0 * * * *'")
    problems = [p for text, spec in zip(fields, _CRON_FIELDS, strict=True) if (p := _cron_field_problem(text, *spec))]
    if problems:
        raise ValueError(f"{problems[0]}: the Kubernetes API server refuses the CronJob")
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)  # fixed: the same verdict on every run
    try:
        first = croniter(value, start).get_next(datetime)
    except CroniterError:  # e.g. 30 February: no date ever matches
        first = None
    if first is None or first.year > start.year + CRON_HORIZON_YEARS:
        raise ValueError("never fires: no date matches it (e.g. day 30 or 31 of a month too short for it), "
                         f"and Kubernetes' cron library gives up after {CRON_HORIZON_YEARS} years; "
                         "name a day every chosen month has")
    return value


def _time_zone(value: str) -> str:
    # A CronJob's timeZone must be a name of the IANA database the API server embeds (Kubernetes
    # docs, "CronJob": Time zones; kube-apiserver refuses "unknown time zone"); the same database
    # Python's zoneinfo reads. Offsets ("UTC+2") and "TZ=" prefixes are no names there.
    from zoneinfo import ZoneInfo, available_timezones

    if not available_timezones():
        raise ValueError("cannot be checked: this machine has no IANA time zone database (install tzdata)")
    if value not in available_timezones():
        try:
            ZoneInfo(value)  # e.g. a link the listing leaves out
        except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError("not an IANA time zone name, e.g. 'Etc/UTC' or 'Europe/Berlin': the Kubernetes "
                             "API server refuses the CronJob") from None
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


# YAML reads `cpuLimit: 2` as a number where a string is expected. Where the number says exactly what
# the text would, it is taken as that text: a Kubernetes quantity is a number (2, 0.5: same value as
# '2', '0.50'), a 12-digit account id or a major version is an integer (16). Where it cannot, the value
# is refused with the quoting that fixes it: a version is text, and YAML reads 1.30 as 1.3 and 16.10
# as 16.1 (both real: Kubernetes 1.30, PostgreSQL 16.10); an account id with a leading zero loses it.
def _number_as_text(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    text = str(value)
    return f"{value:f}".rstrip("0").rstrip(".") if "e" in text else text


def _integer_as_text(value: Any) -> Any:
    if isinstance(value, float) and not isinstance(value, bool):
        return _must_quote(value)
    return _number_as_text(value)


def _must_quote(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"YAML read this as the number {value}, and a number cannot keep what the text said "
                         "(1.30 reads as 1.3, 16.10 as 16.1): write the value in quotes exactly as meant, e.g. \"1.30\"")
    return value


def _account_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and len(str(value)) != 12:
        raise ValueError(f"YAML read this as the number {value}: an account id with a leading zero loses it; "
                         "quote all 12 digits, e.g. \"012345678901\"")
    return _integer_as_text(value)


Quantity = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_quantity)]
Version = BeforeValidator(_must_quote)  # a version is text: a YAML number is refused, never guessed
MajorVersion = BeforeValidator(_integer_as_text)  # 16 is '16'; 16.1 may have been '16.10'

Cidr = Annotated[str, AfterValidator(_cidr)]
PrivateCidr = Annotated[str, AfterValidator(_private_cidr)]
Region = Annotated[str, AfterValidator(_region)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Image = Annotated[str, AfterValidator(_image)]
ChartVersion = Annotated[str, Version, AfterValidator(_chart_version)]
AccountId = Annotated[str, Field(pattern=r"^[0-9]{12}$"), BeforeValidator(_account_as_text)]
Port = Annotated[int, Field(ge=1, le=65535)]
Days = Annotated[int, Field(ge=1, le=3650)]
K8sName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
Arn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{0,12}:.+$")]
# The two regions of a stack: the one serving traffic, and the disaster-recovery standby.
Role = Literal["primary", "dr"]
ROLES: tuple[Role, ...] = ("primary", "dr")
_REGION_KEYS: dict[Role, str] = {"primary": "primaryRegion", "dr": "drRegion"}


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
    account_id: AccountId = Field(
        description="The 12-digit AWS account the stack deploys into; every provider refuses any other account.")
    primary_region: Region = Field(description="The AWS region that serves traffic (databases, buckets, the cluster).")
    dr_region: Region = Field(
        description="The AWS region of the disaster-recovery copies (read replica, "
                    "bucket twins, WAF); must differ from primaryRegion.")

    @field_validator("primary_region", "dr_region")
    @classmethod
    def _bucket_namespace_offered(cls, value: str) -> str:
        from components.backup_bucket import NAMESPACE_UNAVAILABLE_REGIONS

        if value in NAMESPACE_UNAVAILABLE_REGIONS:
            raise ValueError("S3 offers no account regional namespace there, and the backup buckets "
                             f"live in one; not {', '.join(sorted(NAMESPACE_UNAVAILABLE_REGIONS))}")
        return value

    @field_validator("dr_region")
    @classmethod
    def _distinct_regions(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("primary_region"):
            raise ValueError(
                "must differ from primaryRegion: a DR copy in the same region shares its failures"
            )
        return value

    def region(self, role: Role) -> str:
        return self.primary_region if role == "primary" else self.dr_region


def _public_cidr(value: str) -> str:
    network = ipaddress.ip_network(_private_cidr(value))
    if not network.is_global:
        raise ValueError("not a public range: a gateway endpoint routes to S3's public addresses "
                         "(the com.amazonaws.<region>.s3 prefix list)")
    return str(network)


class S3Path(Model):
    """Which S3 addresses pods dial. The AWS CLI, Fluent Bit and neo4j-admin resolve
    s3.<region>.amazonaws.com, so egress must allow what that name resolves to *inside the VPC*:
    the interface endpoint's ENI addresses only when private DNS is on for in-VPC resolvers
    (PrivateDnsEnabled, and not PrivateDnsOnlyForInboundResolverEndpoint, which "routes traffic that
    originates from the VPC to the gateway endpoint": EC2 API Reference, DnsOptionsSpecification);
    otherwise S3's public addresses, which a gateway endpoint routes (the managed prefix list
    com.amazonaws.<region>.s3). ops.s3_path checks a live VPC against this."""

    mode: Literal["interface", "gateway"] = Field(
        description="interface: an S3 interface endpoint with private DNS on for in-VPC resolvers; "
                    "gateway: an S3 gateway endpoint (and no such interface endpoint).")
    cidrs: Annotated[list[Cidr], Field(min_length=1)] = Field(
        description="interface: the endpoint's ENI addresses (inside vpcCidr); gateway: every CIDR of the "
                    "com.amazonaws.<region>.s3 managed prefix list, from `aws ec2 get-managed-prefix-list-entries "
                    "--prefix-list-id <pl-id>` (`aws ec2 describe-managed-prefix-lists --filters "
                    "Name=prefix-list-name,Values=com.amazonaws.<region>.s3` names the id).")

    @model_validator(mode="after")
    def _cidrs_fit_the_mode(self) -> "S3Path":
        problems = []
        for i, cidr in enumerate(self.cidrs):
            try:
                (_private_cidr if self.mode == "interface" else _public_cidr)(cidr)
            except ValueError as exc:
                problems.append((f"cidrs.{i}", f"mode {self.mode}: {exc}", cidr))
        _raise_any(problems)
        return self


class RegionNetwork(Model):
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")] = Field(
        description="The region's VPC (vpc-...), where the database subnets and security groups live.")
    # the VPC's primary CIDR block: what "this region's network" means
    vpc_cidr: PrivateCidr = Field(
        description="The VPC's primary CIDR block: every endpoint, API server and "
                    "client address of the region must lie inside it.")
    private_subnet_ids: Annotated[
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]], Field(min_length=2)
    ] = Field(description="Private subnets in at least two availability zones, for the DB subnet group.")
    # ingress.mode alb: the program's internet-facing ALB (components/waf_ingress.py) lives in these
    # subnets; an ALB needs subnets in at least two Availability Zones (ELB User Guide, "Subnets for
    # your load balancer"), and its nodes take their addresses from them, which is where the pods
    # see its requests come from (target type ip): the NetworkPolicy flow names these CIDRs.
    public_subnet_ids: Optional[Annotated[
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]], Field(min_length=2)
    ]] = Field(None, description="ingress.mode alb: public subnets (a route to an internet gateway) in at least two "
                                 "availability zones, for the region's internet-facing ALB.")
    public_subnet_cidrs: Optional[Annotated[list[PrivateCidr], Field(min_length=2)]] = Field(None,
        description="ingress.mode alb: the CIDR blocks of publicSubnetIds (inside vpcCidr, in the same order): the "
                    "ALB's nodes take their addresses there, so the pods behind it admit these.")
    # S3 is reached through whichever endpoint s3.<region>.amazonaws.com resolves to inside the VPC
    # (S3Path); IRSA reaches STS only through its interface endpoint's addresses.
    s3: S3Path = Field(description="How pods reach S3 in this region: the endpoint the VPC resolves "
                                   "s3.<region>.amazonaws.com to, and the addresses that egress allows.")
    sts_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="Addresses of the region's STS interface endpoint: the only way IRSA pods get credentials.")
    secretsmanager_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="Addresses of the region's Secrets Manager interface endpoint (private DNS on): the only "
                    "way the PostgreSQL master secret's rotation function reaches Secrets Manager.")


class NetworkSettings(Model):
    primary: RegionNetwork = Field(description="The primary region's network.")
    dr: RegionNetwork = Field(description="The DR region's network.")

    def of(self, role: Role) -> RegionNetwork:
        return self.primary if role == "primary" else self.dr


class ClusterSettings(Model):
    """One region's EKS cluster: how the program reaches it, and what its pods must be allowed to dial."""

    context: Optional[str] = Field(None,
        description="The kubeconfig context of the EKS cluster (set exactly one of context and kubeconfigPath); "
                    "a cluster ARN must name aws.accountId, the cluster's region and clusterName.")
    kubeconfig_path: Optional[str] = Field(None,
        description="A kubeconfig file for the cluster (set exactly one of context and kubeconfigPath).")
    cluster_name: K8sName = Field(description="The EKS cluster's name.")
    oidc_provider_arn: Arn = Field(
        description="The ARN of the cluster's IAM OIDC provider, which IRSA roles trust: in aws.accountId, for oidcIssuer.")
    oidc_issuer: Annotated[str, Field(pattern=r"^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/[A-F0-9]+$")] = Field(
        description="The cluster's OIDC issuer without https:// (oidc.eks.<region>.amazonaws.com/id/<ID>).")
    # The EKS control plane's ENIs in the VPC: Neo4j discovers its peers through the API.
    api_server_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="The EKS control plane's ENI addresses in the region's VPC: Neo4j "
                    "discovery and snapshot jobs reach the API there.")
    # ...which pods dial at the `kubernetes` Service's ClusterIP: egress allows both.
    api_service_ip: Annotated[str, AfterValidator(_service_ip)] = Field(
        description="The ClusterIP of the `kubernetes` Service (the first address of "
                    "the service CIDR), which pods dial for the API.")

    @model_validator(mode="after")
    def _one_source(self) -> "ClusterSettings":
        if bool(self.context) == bool(self.kubeconfig_path):
            raise ValueError("set exactly one of 'context' or 'kubeconfigPath'")
        return self


class KubernetesSettings(Model):
    # The cluster's Kubernetes minor version: manifests are validated against its schemas.
    version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$"), Version] = Field(
        description="The clusters' Kubernetes minor version (e.g. '1.33'): manifests are validated against "
                    "its schemas; both regions run the same version, so a switch meets the same API.")
    app_namespace: K8sName = Field(
        description="The namespace of the application that uses Neo4j and Redis, in both clusters "
                    "(allowed in by their NetworkPolicies). It must exist: the program writes the redis-client "
                    "and <neo4j.clusterName>-client Secrets into it.")
    primary: ClusterSettings = Field(description="The primary region's EKS cluster.")
    dr: ClusterSettings = Field(description="The DR region's EKS cluster (a prerequisite, like the primary's).")

    def of(self, role: Role) -> ClusterSettings:
        return self.primary if role == "primary" else self.dr

    @model_validator(mode="after")
    def _two_clusters(self) -> "KubernetesSettings":
        same = [key for key in ("context", "kubeconfig_path", "cluster_name", "oidc_provider_arn")
                if getattr(self.primary, key) is not None and getattr(self.primary, key) == getattr(self.dr, key)]
        if same:
            raise ValueError(f"primary and dr name the same cluster ({', '.join(_camel(k) for k in same)}): "
                             "the DR tier must run in the DR region's own cluster")
        return self


class ObjectLockSettings(Model):
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        description="S3 Object Lock retention mode: COMPLIANCE (nobody can shorten it) or GOVERNANCE (privileged users can).")
    days: Days = Field(description="Days each object version is locked against deletion; at most expirationDays.")


# Minimum storage duration per class (S3 User Guide, "Comparing the Amazon S3 storage classes"): an
# object deleted sooner is billed the rest of it ("Constraints and considerations for transitions").
MIN_STORAGE_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}
# S3 refuses a lifecycle rule that moves objects to an IA class before they are 30 days old (S3 API
# Reference, "Transition": Days for STANDARD_IA or ONEZONE_IA); the Glacier classes accept any day.
MIN_TRANSITION_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30}


class BucketSettings(Model):
    transition_days: Days = Field(
        description="Object age in days at which the lifecycle moves objects to "
                    "transitionStorageClass (at least 30 for the IA classes).")
    transition_storage_class: Literal["STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"] = Field(
        description="The storage class objects move to; its minimum storage duration must fit the objects' remaining life.")
    expiration_days: Days = Field(
        description="Object age in days at which the lifecycle expires current versions; greater than transitionDays.")
    noncurrent_expiration_days: Days = Field(
        description="Days a noncurrent (overwritten or deleted) version is kept before it is removed.")
    object_lock: Optional[ObjectLockSettings] = Field(None, description="Object Lock default retention (prod); omit for none.")

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

    @property
    def shortest_current_days(self) -> int:
        """The age at which the shortest-lived object stops being current (lifecycle expiry here)."""
        return self.expiration_days

    @model_validator(mode="after")
    def _lifecycle(self) -> "BucketSettings":
        _raise_any(self._lifecycle_problems())  # every problem at once, the subclass's too
        return self

    def _lifecycle_problems(self) -> list[tuple[str, str, Any]]:
        cls_ = self.transition_storage_class
        problems = []
        floor = MIN_TRANSITION_DAYS.get(cls_, 0)
        if self.transition_days < floor:
            problems.append(("transitionDays", f"S3 refuses a transition to {cls_} before day {floor}",
                             self.transition_days))
        # A version is stored until it expires as noncurrent: its days in the class must cover the
        # class's minimum, or every backup pays for days it never lives.
        lived = self.shortest_current_days + self.noncurrent_expiration_days - self.transition_days
        fitting = [c for c, d in MIN_STORAGE_DAYS.items()
                   if d <= lived and self.transition_days >= MIN_TRANSITION_DAYS.get(c, 0)]
        if lived < MIN_STORAGE_DAYS[cls_]:
            problems.append(("transitionStorageClass",
                             f"objects would spend only {lived} days in {cls_} (deleted at day "
                             f"{self.shortest_current_days} + noncurrentExpirationDays "
                             f"{self.noncurrent_expiration_days}, moved at transitionDays "
                             f"{self.transition_days}) and S3 bills {cls_} for at least "
                             f"{MIN_STORAGE_DAYS[cls_]}; allowed here: {', '.join(fitting) or 'none'} "
                             "(or keep objects longer)", cls_))
        return problems


class Neo4jBackupBucketSettings(BucketSettings):
    # Every chainDays a full backup starts a new chain (neo4j/chains/<start date>/) and the hourly
    # differentials go onto it; a differential is useless without its chain's full backup.
    # a full backup at least weekly
    chain_days: Annotated[int, Field(ge=1, le=7)] = Field(
        description="Every chainDays a full backup starts a new chain; hourly "
                    "differentials go onto it (1-7: a full backup at least weekly).")
    # A chain is deleted whole (by the prune job) once its last backup is this many days old.
    retention_days: Days = Field(
        description="A chain is deleted whole by the prune job once its last backup is this many days old.")

    @property
    def shortest_current_days(self) -> int:
        # the last differential of a chain is deleted (by the prune job) retentionDays after it landed
        return min(self.expiration_days, self.retention_days)

    def _lifecycle_problems(self) -> list[tuple[str, str, Any]]:
        # S3 lifecycle expiry counts each object's own age and knows nothing of chains: it is only
        # the backstop, and must never reach the full backup of a chain that is still kept. The
        # oldest object of a chain (its full backup) is chainDays + retentionDays old when the
        # daily prune deletes the chain, one day later at worst.
        floor = self.chain_days + self.retention_days + 1
        problems = super()._lifecycle_problems()
        if self.expiration_days <= floor:
            problems.append(("expirationDays", f"must be greater than chainDays + retentionDays + 1 = {floor}: "
                             "lifecycle expiry would delete full backups that kept differentials need",
                             self.expiration_days))
        return problems


class BackupSettings(Model):
    neo4j: Neo4jBackupBucketSettings = Field(description="The Neo4j backup bucket (and its DR twin).")
    logs: BucketSettings = Field(description="The logs bucket: shipped container logs and the CloudTrail trail.")


class ResourceSettings(Model):
    cpu_request: Quantity = Field(description="CPU request (Kubernetes quantity, e.g. '500m').")
    cpu_limit: Quantity = Field(description="CPU limit; at least cpuRequest.")
    # request = limit: a datastore must not be overcommitted
    memory: Quantity = Field(
        description="Memory request and limit (equal: a datastore must not be overcommitted), e.g. '4Gi'.")

    @field_validator("cpu_limit")
    @classmethod
    def _limit_covers_request(cls, value: str, info: ValidationInfo) -> str:
        request = info.data.get("cpu_request")
        if request and quantity_value(value) < quantity_value(request):
            raise ValueError(f"must be at least cpuRequest ({request})")
        return value

    @property
    def memory_bytes(self) -> int:
        return int(quantity_value(self.memory))


class VolumeResize(Model):
    """A growth of the servers' data volumes, declared for the deploy that makes it. Kubernetes refuses
    the chart's new volumeClaimTemplates on the running StatefulSets, so the growth goes through the
    resize path (docs/runbooks.md, "Growing a Neo4j volume"), which supports growing only, and only
    on a StorageClass with allowVolumeExpansion. Remove it once the volumes have the new size."""

    from_size: Quantity = Field(
        description="The size the data claims have now (`kubectl -n <namespace> get pvc` CAPACITY); storageSize "
                    "must be larger.")
    storage_class_allows_expansion: Annotated[bool, Field(strict=True)] = Field(
        description="`kubectl get storageclass <storageClass> -o jsonpath='{.allowVolumeExpansion}'` printed true "
                    "(without it the API server refuses to grow a claim).")


class VolumeSnapshotSettings(Model):
    schedule: Cron = Field(description="Cron schedule of the EBS volume snapshots of the Neo4j servers.")
    retain: Annotated[int, Field(ge=1, le=100)] = Field(
        description="Scheduled snapshots kept per server volume.")  # scheduled snapshots kept per server volume
    kubectl_image: Image = Field(description="Pinned image with kubectl that takes and prunes the snapshots.")


MAX_NEO4J_SERVERS = 29  # primaries (at most 9) + secondaries (at most 20)


Zone = Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$")]


def _each_once(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("each zone once")
    return value


Zones = Annotated[list[Zone], Field(min_length=1), AfterValidator(_each_once)]


class Neo4jDrSettings(Model):
    """What the DR region runs of the graph until a region switch (components/regional_tier.py)."""

    # pilot-light: no servers; a switch creates them, then seeding fills the databases from the newest
    # chain replicated to the DR bucket. warm: a cluster of the primary's shape runs, its databases
    # reseeded from that chain on refreshSchedule and held READ ONLY, so a switch only promotes them
    # (components/neo4j_dr.py; helpers/dr_budget.py counts each path's steps).
    mode: Literal["pilot-light", "warm"] = Field(
        description="pilot-light (no DR servers until a switch creates them and fills them from the replicated "
                    "backups) or warm (a running DR cluster of the primary's shape, reseeded from the replicated "
                    "backups on refreshSchedule and promoted as it is on a switch).")
    # warm only: how often the DR databases are reseeded. Each refresh takes them offline for a seed
    # (dr.neo4jRestoreEstimateSeconds + the chain's differentials), and the longest gap between two
    # refreshes adds to the graph's RPO (a switch promotes what the last refresh loaded).
    refresh_schedule: Optional[Cron] = Field(None,
        description="warm mode: cron schedule of the refresh that reseeds the DR databases from the newest "
                    "replicated chain (its longest gap adds to the Neo4j RPO); not set in pilot-light mode.")
    zones: Zones = Field(
        description="The DR cluster's availability zones (in aws.drRegion); with 3 or more, primaries spread one per zone.")
    # like neo4j.bootstrap, for the deploy that creates the DR servers (warm mode's first deploy,
    # or the switch that brings up a pilot-light region's servers)
    bootstrap: Annotated[bool, Field(strict=True)] = Field(
        False, description="true only for the deploy that creates the DR servers; false afterwards.")


class Neo4jSettings(Model):
    namespace: K8sName = Field(description="Namespace of the Neo4j servers and their backup jobs.")
    cluster_name: K8sName = Field(
        description="The cluster's name (neo4j.name); each server is the Helm release '<clusterName>-server-<n>'.")
    chart_version: ChartVersion = Field(description="Exact version of the official neo4j/neo4j Helm chart.")
    image: Image = Field(description="Pinned Neo4j Enterprise image (clustering is Enterprise-only).")
    aws_cli_image: Image = Field(description="Pinned AWS CLI image used by the backup, prune and rehearsal jobs.")
    restore_namespace: K8sName = Field(description="Namespace of the weekly restore rehearsal; must differ from namespace.")
    accept_license_agreement: Literal["yes", "eval"] = Field(
        description="Neo4j Enterprise licence acceptance: 'yes' (licensed) or 'eval'.")
    primaries: Annotated[int, Field(ge=1, le=9)] = Field(
        description="Number of primary servers: 1 (standalone) or 3 and more (a cluster keeps quorum).")
    secondaries: Annotated[int, Field(ge=0, le=20)] = Field(
        description="Number of read-only secondary servers (need at least 3 primaries).")
    # The availability zones the cluster's nodes run in (topology.kubernetes.io/zone values):
    # with 3 or more, primaries are spread over them as a scheduling requirement.
    zones: Zones = Field(
        description="The availability zones (of aws.primaryRegion) the nodes run in; with 3 or more, "
                    "primaries are spread one per zone.")
    resources: ResourceSettings = Field(
        description="CPU and memory of each server; heap and page cache are derived from the memory limit.")
    storage_class: K8sName = Field(
        description="StorageClass of the servers' data volumes (and of the backup jobs' scratch volumes).")
    storage_size: Quantity = Field(description="Size of each server's data volume (e.g. '200Gi').")
    volume_resize: Optional[VolumeResize] = Field(None,
        description="Set for the deploy that grows storageSize (the resize path, docs/runbooks.md); omit otherwise.")
    backup_schedule: Cron = Field(
        description="Cron schedule of the backups (a full backup starts each chain, differentials after).")
    backup_freshness_slack_minutes: Annotated[int, Field(ge=1, le=1440)] = Field(
        description="Minutes a backup may be late before the newest backup counts as stale.")
    restore_rehearsal_schedule: Cron = Field(description="Cron schedule of the weekly restore rehearsal.")
    time_zone: TimeZone = Field("Etc/UTC", description="IANA time zone of the CronJob schedules.")
    volume_snapshots: VolumeSnapshotSettings = Field(description="Scheduled EBS snapshots of the servers' volumes.")
    dr: Neo4jDrSettings = Field(description="The graph in the DR region: pilot-light or warm.")
    # Raise by one to rotate the admin password and the application's user (helpers/neo4j_password.py).
    password_epoch: Annotated[int, Field(ge=0)] = Field(0, description=(
        "Raise by one to rotate the Neo4j admin password and hand the application the other of its two "
        "users (app_a/app_b) with a new password; 0 at a first install (bootstrap). Restart every client "
        "before raising it again: the previous user keeps working until then (docs/runbooks.md)."))
    # true only for the deploy that creates the cluster: its releases then go in without Helm's
    # wait, so the primaries can form the cluster (components/neo4j_cluster.py). false (default):
    # every release waits for its server, so upgrades roll one server at a time.
    bootstrap: Annotated[bool, Field(strict=True)] = Field(
        False, description="true only for the stack's first deploy (the cluster forms without Helm's wait); "
                           "false afterwards, so upgrades roll one server at a time.")

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

    # The first install sets the initial password (the chart's NEO4J_AUTH); a rotation from epoch
    # N-1 needs a running cluster, and the releases wait for the Secret that waits for the rotation
    # Job (helpers/neo4j_password.py): with both, the Job can never succeed.
    @field_validator("bootstrap")
    @classmethod
    def _install_at_epoch_zero(cls, value: bool, info: ValidationInfo) -> bool:
        epoch = info.data.get("password_epoch", 0)
        if value and epoch:
            raise ValueError(f"a first install starts at neo4j.passwordEpoch 0 (given: {epoch}): the rotation Job "
                             "needs the running cluster, which waits for the Secret that waits for the Job; "
                             "install at 0, then raise the epoch in a later deploy")
        return value

    @field_validator("resources")
    @classmethod
    def _fits_neo4j_memory(cls, value: "ResourceSettings") -> "ResourceSettings":
        from components.neo4j_cluster import memory_plan  # the one place the arithmetic lives

        try:
            memory_plan(value.memory_bytes)
        except ValueError as exc:
            raise Problems([("memory", str(exc), value.memory)]) from None
        return value

    @field_validator("image")
    @classmethod
    def _enterprise(cls, value: str) -> str:
        # clustering (primaries/secondaries, the chart's minimumClusterSize) is Enterprise-only
        # (Neo4j Operations Manual, "Clustering"): the community image would start standalone servers
        if "enterprise" not in value.split("/")[-1].partition(":")[2]:
            raise ValueError("must be a Neo4j Enterprise image (tag '<version>-enterprise'): clustering "
                             "is Enterprise-only")
        return value

    @field_validator("cluster_name")
    @classmethod
    def _release_name_fits(cls, value: str) -> str:
        # Each server is a Helm release '<clusterName>-server-<n>', and Helm refuses release names
        # over 53 characters ("release name check failed: ... must not be longer than 53").
        longest = f"{value}-server-{MAX_NEO4J_SERVERS}"
        if len(longest) > 53:
            raise ValueError(f"at most {53 - len('-server-') - len(str(MAX_NEO4J_SERVERS))} characters: "
                             f"the release name {longest!r} would exceed Helm's 53")
        return value

    @model_validator(mode="after")
    def _resize_path_supports_it(self) -> "Neo4jSettings":
        resize = self.volume_resize
        if resize is None:
            return self
        problems = []
        if quantity_value(self.storage_size) < quantity_value(resize.from_size):
            # PersistentVolumeClaim update validation: "field can not be less than previous value"
            problems.append(("storageSize", f"smaller than volumeResize.fromSize {resize.from_size}: a volume "
                             "cannot shrink (Kubernetes refuses a smaller claim request)", self.storage_size))
        elif quantity_value(self.storage_size) == quantity_value(resize.from_size):
            problems.append(("volumeResize", f"storageSize is already {resize.from_size}: nothing grows; remove "
                             "volumeResize", resize.from_size))
        if not resize.storage_class_allows_expansion:
            # Kubernetes docs, "Persistent Volumes" (expanding claims): only a claim whose StorageClass
            # sets allowVolumeExpansion: true can grow
            problems.append(("volumeResize.storageClassAllowsExpansion", f"StorageClass {self.storage_class} "
                             "must set allowVolumeExpansion: true, or the API server refuses to grow its claims; "
                             "move to a class that does (a new volume, restored from a snapshot)", False))
        _raise_any(problems)
        return self

    @field_validator("restore_namespace")
    @classmethod
    def _rehearsal_apart(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("namespace"):
            raise ValueError("must differ from neo4j.namespace: restore rehearsals never touch production")
        return value

    @property
    def memory_plan(self):
        """Heap, page cache and reserve of each server (components.neo4j_cluster.memory_plan)."""
        from components.neo4j_cluster import memory_plan

        return memory_plan(self.resources.memory_bytes)

    @property
    def store_bytes(self) -> int:
        return int(quantity_value(self.storage_size))


class RedisPasswordRotation(Model):
    """Which password epoch is current, and which step of the roll to it this deploy is
    (helpers/redis_auth.py: servers -> clients -> none). Each state is checked here; the order
    between deploys is the engine's to enforce (the step witnesses in helpers/redis_auth.py), since
    settings never see the previous deploy."""

    epoch: Annotated[int, Field(ge=0)] = Field(0, description=(
        "Which password generation is current. Raise it by one, together with rollover: servers; never lower it."))
    rollover: Literal["none", "servers", "clients"] = Field("none", description=(
        "Step of a roll to a new epoch, one per deploy in this order: servers (accept both), clients (hand "
        "clients the new one, in kubernetes.appNamespace's redis-client Secret), none (drop the old one, once "
        "every client restarted). A skipped step fails the preview (docs/runbooks.md)."))

    @field_validator("rollover")
    @classmethod
    def _needs_previous(cls, value: str, info: ValidationInfo) -> str:
        if value != "none" and info.data.get("epoch", 0) < 1:
            raise ValueError("a rollover needs a previous password: set epoch to 1 or more")
        return value


class RedisSettings(Model):
    namespace: K8sName = Field(description="Namespace of the Redis StatefulSet.")
    image: Image = Field(description="Pinned redis-server image.")
    exporter_image: Image = Field(description="Pinned redis_exporter image (metrics sidecar).")
    replicas: Annotated[int, Field(ge=1, le=9)] = Field(description="Number of independent cache pods.")
    resources: ResourceSettings = Field(
        description="CPU and memory of each pod; maxmemory is 75% of the limit (50% with persistence).")
    persistence: bool = Field(description="Keep data on a volume (AOF); a pure cache runs without.")
    storage_class: Optional[K8sName] = Field(None, description="StorageClass of the data volume (with persistence).")
    storage_size: Optional[Quantity] = Field(None, description="Size of the data volume (with persistence).")
    maxmemory_policy: Literal[
        "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
        "volatile-random", "volatile-ttl", "noeviction",
    ] = Field(description="redis.conf maxmemory-policy: what Redis evicts when full.")
    timeout_seconds: Annotated[int, Field(ge=0, le=86400)] = Field(
        description="redis.conf timeout: close idle clients after this many seconds (0: never).")
    tcp_keepalive_seconds: Annotated[int, Field(ge=0, le=7200)] = Field(description="redis.conf tcp-keepalive in seconds.")
    slowlog_slower_than_micros: Annotated[int, Field(ge=-1)] = Field(
        description="redis.conf slowlog-log-slower-than in microseconds (-1: off).")
    slowlog_max_len: Annotated[int, Field(ge=1, le=100000)] = Field(description="redis.conf slowlog-max-len.")
    password_rotation: RedisPasswordRotation = Field(
        default_factory=lambda: RedisPasswordRotation.model_validate({}), description="The Redis password's rotation state.")

    @model_validator(mode="after")
    def _volume_and_room_for_data(self) -> "RedisSettings":
        from components.redis_cache import maxmemory_bytes  # the one place the share is decided

        problems = []
        if self.persistence and not (self.storage_class and self.storage_size):
            problems.append(("persistence", "persistence needs storageClass and storageSize", self.persistence))
        try:
            maxmemory_bytes(self.resources.memory_bytes, self.persistence)
        except ValueError as exc:
            problems.append(("resources.memory", str(exc), self.resources.memory))
        _raise_any(problems)
        return self


class RegionCidrs(Model):
    primary: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(description="CIDRs inside network.primary.vpcCidr.")
    dr: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(description="CIDRs inside network.dr.vpcCidr.")


_DAY_TIME = r"(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]"


class PostgresMajorUpgrade(Model):
    """A declared major version upgrade of the primary (deploy 1 of 2: the cross-Region replica's
    parameter group follows once it is removed). Check it first: ``python -m ops.pg_major_upgrade``
    verifies the preconditions and the exact target, and takes the snapshot named here."""

    from_version: Annotated[str, Field(pattern=r"^[0-9]{2}\.[0-9]+$"), Version] = Field(
        description="The running major.minor version the upgrade starts from.")
    # the manual snapshot taken just before (automated backups expire; a manual snapshot stays)
    snapshot_identifier: Annotated[str, Field(pattern=r"^[a-zA-Z]([a-zA-Z0-9]|-[a-zA-Z0-9]){0,254}$")] = Field(
        description="The manual snapshot taken just before the upgrade (the way back).")
    method: Literal["in-place", "blue-green"] = Field("in-place",
        description="Upgrade path: in-place (blue-green is refused for this topology).")

    @field_validator("method")
    @classmethod
    def _path_this_topology_supports(cls, value: str) -> str:
        if value == "blue-green":
            raise ValueError(
                "RDS blue/green deployments do not support cross-Region read replicas (RDS User Guide, "
                "'Limitations for blue/green deployments'), and this primary has one; use in-place "
                "(docs/runbooks.md, 'PostgreSQL major upgrade': RDS promises to upgrade in-Region read "
                "replicas with the primary, and ops.pg_major_upgrade --after checks the cross-Region one)")
        return value


class PostgresGenerations(Model):
    """Which instance exists in each region (docs/decisions/018-active-region-is-state.md). Each
    round trip creates a new cross-Region replica where the old instance was retired: generation 1
    keeps the names the stacks were first deployed with, generation n > 1 adds ``-g<n>``. The
    instances are born in the order primary 1, DR 1, primary 2, DR 2, ..., each a replica of the one
    before (primary 1 alone was created as a writer)."""

    primary: Annotated[int, Field(ge=1)] = Field(1, description="Generation of the primary region's instance.")
    dr: Annotated[int, Field(ge=1)] = Field(1, description="Generation of the DR region's instance.")

    @model_validator(mode="after")
    def _born_in_turn(self) -> "PostgresGenerations":
        # primary g is born after DR g-1 and before DR g: any other pair names an instance whose
        # source (the one born just before it) is not in the stack
        if self.primary - self.dr not in (0, 1):
            raise ValueError(
                f"primary {self.primary} and dr {self.dr}: primary must equal dr (normal, failed over) or be "
                "dr + 1 (rebuilt: the new primary-region replica of the DR writer); a region's generation "
                "goes up by one, after its old instance was retired (docs/runbooks.md, 'Region switch')")
        return self


class PostgresSettings(Model):
    # "16" (major only) with autoMinorVersionUpgrade, "16.4" (pinned minor) without: RDS upgrades
    # minors itself when allowed, and a pinned minor would then read back as a downgrade that RDS
    # refuses on every later `up` (aws_db_instance engine_version: a prefix of the actual version
    # is kept as configured; anything else is replaced by the version read back).
    engine_version: Annotated[str, Field(pattern=r"^[0-9]{2}(\.[0-9]+)?$"), MajorVersion] = Field(
        description="PostgreSQL version: the major only with autoMinorVersionUpgrade, major.minor without; "
                    "the exact target version while majorUpgrade is declared.")
    auto_minor_version_upgrade: bool = Field(description="Let RDS apply minor upgrades in the maintenance window.")
    instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] = Field(
        description="RDS instance class of the primary and the replica (db.<family>.<size>).")
    allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = Field(description="Allocated storage in GiB.")
    max_allocated_storage_gb: Annotated[int, Field(ge=20, le=65536)] = Field(
        description="Storage autoscaling ceiling in GiB; at least 10% above allocatedStorageGb.")
    backup_retention_days: Annotated[int, Field(ge=1, le=35)] = Field(
        description="Automated backup (PITR) retention in days, 1-35.")
    multi_az: bool = Field(description="Run a standby in a second availability zone.")
    deletion_protection: bool = Field(description="Refuse to delete the instances.")
    # Per region: the DR instance, once promoted, serves the DR region's clients.
    allowed_cidrs: RegionCidrs = Field(description="Client networks admitted to the database, per region.")
    database_insights: Literal["standard", "advanced"] = Field(description="CloudWatch Database Insights mode.")
    monitoring_interval_seconds: Literal[1, 5, 10, 15, 30, 60] = Field(
        description="Enhanced Monitoring interval (1, 5, 10, 15, 30 or 60 s).")
    final_snapshot: bool = Field(description="Take a final snapshot when an instance is deleted.")
    maintenance_window: Annotated[str, Field(pattern=rf"^{_DAY_TIME}-{_DAY_TIME}$")] = Field(
        description="Weekly maintenance window, ddd:hh:mm-ddd:hh:mm (UTC), at least 30 minutes, clear of backupWindow.")
    backup_window: Annotated[str, Field(pattern=r"^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$")] = Field(
        description="Daily backup window, hh:mm-hh:mm (UTC), at least 30 minutes.")
    # Secrets Manager allows 1-1000 days; 7 is what RDS itself would have used.
    master_secret_rotation_days: Annotated[int, Field(ge=1, le=365)] = Field(7,
        description="Rotation interval of the master secret (AWS's PostgreSQL single-user rotation function).")
    major_upgrade: Optional[PostgresMajorUpgrade] = Field(None,
        description="A declared major version upgrade (one major step, deploy 1 of 2: docs/runbooks.md); omit otherwise.")
    generations: PostgresGenerations = Field(default_factory=lambda: PostgresGenerations.model_validate({}),
        description="Which instance exists in each region ({primary: 1, dr: 1} until a failover's rebuild): "
                    "raised by one per region when its old instance is replaced by a new replica.")

    @model_validator(mode="before")
    @classmethod
    def _no_managed_master_password(cls, data: Any) -> Any:
        # Said here, not as "unknown key": the primary is a replication source and the DR replica
        # becomes one once promoted, and RDS refuses a read replica of an instance whose master
        # password it manages in Secrets Manager (RDS User Guide, "Password management with Amazon
        # RDS and AWS Secrets Manager", Limitations; docs/decisions/014-master-secret-not-rds-managed.md).
        if isinstance(data, dict) and {"manageMasterUserPassword", "manage_master_user_password"} & data.keys():
            raise ValueError(
                "manageMasterUserPassword is not allowed: both instances are, or become after a promotion, "
                "replication sources, and RDS refuses to create a read replica when the source manages its "
                "master password with Secrets Manager (RDS User Guide, 'Password management with Amazon RDS "
                "and AWS Secrets Manager', Limitations); the master secret is our own multi-Region secret")
        return data

    @field_validator("max_allocated_storage_gb")
    @classmethod
    def _autoscaling_headroom(cls, value: int, info: ValidationInfo) -> int:
        # RDS User Guide, "Managing capacity automatically with Amazon RDS storage autoscaling": the
        # maximum storage threshold must be at least 10% more than the allocated storage.
        allocated = info.data.get("allocated_storage_gb")
        if allocated is not None and value * 10 < allocated * 11:
            raise ValueError(f"must be at least 10% above allocatedStorageGb ({allocated}): at least "
                             f"{-(-allocated * 11 // 10)}; RDS refuses a smaller maximum storage threshold")
        return value

    @field_validator("major_upgrade")
    @classmethod
    def _one_major_step(cls, value: Optional[PostgresMajorUpgrade], info: ValidationInfo):
        """The in-place path, one major version per change; the way back is the snapshot of the
        step before. RDS documents the replica upgrade for in-Region read replicas only (RDS User
        Guide, "How to perform a major version upgrade for RDS for PostgreSQL", "Handle read
        replicas"): the replica here is cross-Region, checked by ``ops.pg_major_upgrade --after``."""
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
    def _windows_rds_accepts(self) -> "PostgresSettings":
        _raise_any(rds_window_problems(self.maintenance_window, self.backup_window))
        return self

    @model_validator(mode="after")
    def _version_matches_upgrade_policy(self) -> "PostgresSettings":
        major_only = "." not in self.engine_version
        if self.major_upgrade is not None:
            # Given a major version only, RDS picks its default minor (ModifyDBInstance, EngineVersion),
            # which need not be a valid upgrade target of the running minor (terraform-aws-modules/
            # terraform-aws-rds #627): the upgrade names the exact target ops.pg_major_upgrade checked.
            if major_only:
                raise ValueError(
                    f"engineVersion {self.engine_version!r} with majorUpgrade: name the exact target version "
                    "that `python -m ops.pg_major_upgrade` checked against RDS's valid upgrade targets "
                    f"(e.g. '{self.engine_version}.2'); RDS would otherwise pick its default minor, which "
                    f"need not be a valid target from {self.major_upgrade.from_version}")
            return self
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


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7 * 1440


def _minutes(day_time: str) -> int:
    """Minutes since Monday 00:00 of 'ddd:hh:mm', or since midnight of 'hh:mm'."""
    *day, hours, minutes = day_time.split(":")
    if int(hours) > 23:
        raise ValueError(f"{day_time!r} is no time of day (hours 00-23)")
    return (_DAYS.index(day[0]) * 1440 if day else 0) + int(hours) * 60 + int(minutes)


def _span(window: str, period: int) -> tuple[int, int]:
    """(start, length in minutes) of a window that may wrap past the end of its day or week."""
    start, end = (_minutes(t) for t in window.split("-"))
    return start, (end - start) % period


def rds_window_problems(maintenance: str, backup: str) -> list[tuple[str, str, Any]]:
    """What RDS refuses in the two windows (RDS API Reference, CreateDBInstance and ModifyDBInstance:
    PreferredBackupWindow 'hh24:mi-hh24:mi', PreferredMaintenanceWindow 'ddd:hh24:mi-ddd:hh24:mi', each
    at least 30 minutes, in UTC, and neither may conflict with the other; RDS User Guide, "Backup
    window": the backup window can't overlap the weekly maintenance window)."""
    problems, spans = [], {}
    for key, window, period in (("maintenanceWindow", maintenance, _WEEK), ("backupWindow", backup, 1440)):
        try:
            spans[key] = start, length = _span(window, period)
        except ValueError as exc:
            problems.append((key, str(exc), window))
            continue
        if length < 30:
            problems.append((key, "must be at least 30 minutes long (RDS refuses a shorter window)", window))
    if len(spans) == 2 and not problems:
        (m_start, m_len), (b_start, b_len) = spans["maintenanceWindow"], spans["backupWindow"]
        # the backup window recurs every day of the week; two spans on the week's circle overlap when
        # either starts inside the other
        days = [d for d in range(7) for b in [(b_start + d * 1440) % _WEEK]
                if (b - m_start) % _WEEK < m_len or (m_start - b) % _WEEK < b_len]
        if days:
            problems.append(("maintenanceWindow", f"overlaps backupWindow {backup} on {_DAYS[days[0]]}: RDS refuses "
                             "a maintenance window that conflicts with the backup window; move one of them",
                             maintenance))
    return problems


class LoadBalancer(Model):
    dns_name: Annotated[str, Field(pattern=r"^[a-z0-9-]+\.[a-z]{2}-[a-z]+-[0-9]\.elb\.amazonaws\.com$")] = Field(
        description="The load balancer's DNS name (<name>.<region>.elb.amazonaws.com).")
    zone_id: Annotated[str, Field(pattern=r"^Z[A-Z0-9]{8,32}$")] = Field(
        description="The load balancer's canonical hosted zone id (for alias records).")


class HealthCheckSettings(Model):
    fqdn: str = Field(description="A name only the primary serves, checked by Route 53 (not the failover record name).")
    request_interval_seconds: Literal[10, 30] = Field(description="Route 53 health-check request interval: 10 or 30 seconds.")
    failure_threshold: Annotated[int, Field(ge=1, le=10)] = Field(
        description="Consecutive failed checks (1-10) before the primary counts as unhealthy.")
    regions: Annotated[
        list[Literal["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1",
                     "ap-southeast-2", "ap-northeast-1", "sa-east-1"]],
        Field(min_length=3),
    ] = Field(description="Route 53 checker regions (at least 3).")


class DnsSettings(Model):
    hosted_zone_id: Annotated[str, Field(pattern=r"^Z[A-Z0-9]{8,32}$")] = Field(
        description="The Route 53 hosted zone of recordName.")
    record_name: str = Field(description="The failover record clients use.")
    health_check: HealthCheckSettings = Field(description="The health check of the primary.")
    # ingress.mode alb: none - DNS aliases the ALB the program creates. Only the
    # nginx compatibility mode names the primary load balancer (the ingress-nginx controller's).
    primary_load_balancer: Optional[LoadBalancer] = Field(None,
        description="nginx mode only: the ingress-nginx controller's load balancer (alb mode aliases the program's ALB).")
    dr_load_balancer: Optional[LoadBalancer] = Field(None,
        description="nginx mode only: the DR cluster's ingress-nginx load balancer (alb mode aliases the program's DR ALB).")

    @model_validator(mode="after")
    def _checked_name_is_not_the_failover_name(self) -> "DnsSettings":
        if self.health_check.fqdn.rstrip(".") == self.record_name.rstrip("."):
            raise ValueError(
                f"healthCheck.fqdn {self.health_check.fqdn!r} is the failover recordName: the check would "
                "follow the failover to the DR region; use a name that only the primary serves, e.g. "
                f"'primary.{self.record_name}'")
        return self


class RateLimitSettings(Model):
    requests_per_second: Annotated[int, Field(ge=1, le=100000)] = Field(
        description="Sustained requests per second allowed per client IP.")
    burst_multiplier: Annotated[int, Field(ge=1, le=10)] = Field(
        description="Burst allowance as a multiple of requestsPerSecond.")


class IngressSettings(Model):
    mode: Literal["alb", "nginx"] = Field(description="alb (ALB Ingress with AWS WAF) or nginx (compatibility mode).")
    namespace: K8sName = Field(description="The application's namespace of serviceName (it must exist: the edge's "
                               "TargetGroupBinding, or nginx mode's Ingress, is created there).")
    host: str = Field(description="The public host name served.")
    service_name: K8sName = Field(description="The application's Service the edge sends to (in namespace); it need "
                                  "not exist at deploy time (alb mode binds it with a TargetGroupBinding).")
    service_port: Port = Field(description="The backend Service's port.")
    # alb mode: the ALB sends to the pods' own addresses (target type ip), on the port the Service's
    # targetPort names; the security group rule and the NetworkPolicy flow need it as a number.
    pod_port: Optional[Port] = Field(None,
        description="alb mode: the port the Service's pods listen on (its targetPort for servicePort); default "
                    "servicePort. The ALB sends there directly; ops.preflight compares it with the live Service.")
    certificate_arn: Arn = Field(
        description="ACM certificate of the host (TLS 1.3 policy), in aws.accountId and aws.primaryRegion.")
    # ACM certificates are regional: an ALB takes only a certificate of its own region.
    dr_certificate_arn: Optional[Arn] = Field(None,
        description="alb mode: ACM certificate of the host for the DR region's ALB, in aws.accountId and aws.drRegion.")
    rate_limit: RateLimitSettings = Field(description="Per-IP rate limit.")
    allowlist_cidrs: list[PrivateCidr] = Field(description="Client CIDRs exempt from the rate limit.")
    max_body_size_mb: Annotated[int, Field(ge=1, le=64)] = Field(description="Largest request body in MB.")
    tls_secret_name: Optional[K8sName] = Field(None,
        description="nginx mode only: the Secret holding the TLS certificate.")  # nginx mode only: TLS terminates in the cluster

    @model_validator(mode="after")
    def _nginx_needs_tls_secret(self) -> "IngressSettings":
        if self.mode == "nginx" and not self.tls_secret_name:
            raise ValueError("mode nginx needs tlsSecretName: TLS is always on")
        return self


class EgressAllow(Model):
    namespace: K8sName = Field(description="The namespace allowed out: one the stack manages (neo4j.namespace, "
                               "neo4j.restoreNamespace, redis.namespace, pgRestoreRehearsal.namespace, "
                               "logs.shipper.namespace).")
    cidr: PrivateCidr = Field(description="The destination CIDR (never the whole internet).")
    ports: Annotated[list[Port], Field(min_length=1)] = Field(description="The destination TCP ports.")
    reason: Annotated[str, Field(min_length=10)] = Field(description="Why this exception exists (reviewed).")


class EgressSettings(Model):
    allowlist: list[EgressAllow] = Field([], description="Reviewed egress exceptions beyond the components' own flows.")


class ObservabilitySettings(Model):
    prometheus_release_label: K8sName = Field(
        description="The `release` label kube-prometheus-stack selects ServiceMonitors and rules by.")
    prometheus_namespace: K8sName = Field(description="Namespace of Prometheus (allowed in to scrape).")
    grafana_dashboard_label: str = Field(description="The label the Grafana sidecar loads dashboard ConfigMaps by.")


_EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class AlertSubscriber(Model):
    protocol: Literal["email", "https"] = Field(description="email or https.")
    endpoint: str = Field(description="An e-mail address, or an https:// URL without credentials.")

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
    primary: Subscribers = Field(description="Subscribers of the primary region's alarm topics.")
    dr: Subscribers = Field(description="Subscribers of the DR region's alarm topics.")


class SecretKeyRef(Model):
    """A key of a Kubernetes Secret that exists in each namespace with alerts (created by the
    secrets pipeline, never by this program: its value must not pass through config or state)."""

    name: K8sName = Field(description="The Secret's name (created by the secrets pipeline, not this program).")
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")] = Field(description="The key inside the Secret.")


class AlertmanagerSettings(Model):
    # PagerDuty Events v2 routing key: severity=critical pages
    pager_secret: SecretKeyRef = Field(
        description="PagerDuty Events v2 routing key: severity=critical pages.")
    # Slack incoming-webhook URL: severity=warning (and anything else)
    chat_secret: SecretKeyRef = Field(
        description="Slack incoming-webhook URL: severity=warning and unlabelled alerts.")
    chat_channel: Annotated[str, Field(pattern=r"^#[a-z0-9_-]{1,79}$")] = Field(description="The Slack channel ('#name').")


class AlertingSettings(Model):
    subscribers: AlertSubscribers = Field(description="Who CloudWatch alarm topics notify, per region.")
    alertmanager: AlertmanagerSettings = Field(description="Where Prometheus alerts are routed.")


class PgRestoreRehearsalSettings(Model):
    """The weekly PostgreSQL point-in-time restore rehearsal (ops/pg_restore_rehearsal)."""

    schedule: Cron = Field(description="Cron schedule of the weekly PostgreSQL point-in-time restore rehearsal.")
    time_zone: TimeZone = Field("Etc/UTC", description="IANA time zone of the schedule.")
    # Python 3 with boto3 (AWS Lambda's base image ships both); the runbook is mounted from a ConfigMap.
    image: Image = Field(description="Pinned Python 3 image with boto3 that runs the rehearsal.")
    namespace: K8sName = Field(description="Namespace of the rehearsal CronJob.")
    # The addresses through which the cluster reaches the RDS API of the DR region (an interface
    # endpoint reached over the peering); default-deny allows nothing else.
    dr_rds_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="Addresses of the DR region's RDS API interface endpoint (inside network.dr.vpcCidr).")
    # That interface endpoint's own DNS name, which the runbook calls (AWS_ENDPOINT_URL_RDS): its
    # private DNS answers only inside the DR VPC, so from the primary VPC boto3 would resolve
    # rds.<dr region>.amazonaws.com to public addresses that default-deny refuses.
    dr_rds_endpoint_url: Annotated[str, Field(pattern=(
        r"^https://vpce-[0-9a-f]{8,17}-[0-9a-z]{8}(-[a-z]{2}-[a-z]+-\d[a-z])?"
        r"\.rds\.[a-z]{2}(-gov)?-[a-z]+-\d\.vpce\.amazonaws\.com$"))] = Field(
        description="DNS name of the DR region's RDS interface endpoint (https://vpce-...rds.<drRegion>.vpce.amazonaws.com).")
    timeout_minutes: Annotated[int, Field(ge=15, le=720)] = Field(description="The rehearsal's own timeout in minutes.")


class LogShipperSettings(Model):
    namespace: K8sName = Field(description="Namespace of the Fluent Bit DaemonSet (not a workload namespace).")
    image: Image = Field(description="Pinned Fluent Bit image.")  # Fluent Bit


class LogSettings(Model):
    # Every CloudWatch log group the stack creates or causes (RDS exports, WAF) keeps this long.
    retention_days: int = Field(
        description="Retention of every CloudWatch log group of the stack (a value CloudWatch Logs accepts).")
    shipper: LogShipperSettings = Field(description="The container log shipper.")

    @field_validator("retention_days")
    @classmethod
    def _cloudwatch_retention(cls, value: int) -> int:
        from helpers.log_groups import RETENTION_DAYS

        if value not in RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {', '.join(map(str, RETENTION_DAYS))}")
        return value


class DrTarget(Model):
    rto_seconds: Annotated[int, Field(ge=1)] = Field(description="Recovery time objective in seconds.")
    rpo_seconds: Annotated[int, Field(ge=1)] = Field(description="Recovery point objective in seconds.")


class RegionSwitchSettings(Model):
    # Each step of the ARC Region switch plan (components/region_switch.py) stops the execution when
    # it outlasts its timeout, so the sum of the timeouts bounds the switch (helpers/dr_budget.py).
    approval_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = Field(2,
        description="Region switch: the on-call's window to approve the switch (ManualApproval step timeout).")
    promotion_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = Field(10,
        description="Region switch: timeout of the PostgreSQL replica promotion step (at least the measured "
                    "dr.replicaPromotionEstimateSeconds).")
    scaling_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = Field(15,
        description="Region switch: timeout of the EKS scaling step (the DR tier's scaled-down workloads).")
    traffic_timeout_minutes: Annotated[int, Field(ge=1, le=1440)] = Field(1,
        description="Region switch: timeout of the Route 53 health-check step that moves traffic.")


class DrSettings(Model):
    # The region holding the PostgreSQL writer and taking the traffic: each value deploys, moving
    # between them replaces nothing that holds data (docs/decisions/018-active-region-is-state.md),
    # and the failed-over one deploys while the primary region's APIs are down (docs/decisions/019,
    # docs/runbooks.md "Deploy the failed-over state").
    active_region: Role = Field("primary", description=(
        "Which region holds the writers and takes the traffic: primary, or dr once failed over "
        "(docs/runbooks.md, 'Region switch')."))
    postgres: DrTarget = Field(description="PostgreSQL failover targets.")
    neo4j: DrTarget = Field(description="Neo4j restore targets.")
    # AWS publishes no SLA for promoting a read replica: measure it in a stage failover drill
    # (ops/dr_promote prints how long promotion took) and record it here.
    replica_promotion_estimate_seconds: Annotated[int, Field(ge=60, le=7200)] = Field(
        description="Measured time to promote the read replica (ops/dr_promote prints it).")
    # Time to restore a chain's full backup, and to replay one (hourly) differential onto it; the
    # weekly restore rehearsal measures both (it prints the artifacts restored and the time taken).
    neo4j_restore_estimate_seconds: Annotated[int, Field(ge=60, le=86400)] = Field(
        description="Measured time to restore a chain's full backup.")
    neo4j_differential_estimate_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(
        description="Measured time to replay one differential backup.")
    # pilot-light only: the switch creates the DR servers, and they must schedule, attach new
    # volumes, start and form the cluster before the restore begins (measure it in a DR drill).
    neo4j_cluster_start_estimate_seconds: Optional[Annotated[int, Field(ge=60, le=7200)]] = Field(None,
        description="neo4j.dr.mode pilot-light: measured time for the switch to start the DR servers "
                    "and form the cluster (a DR drill prints it).")
    # PostgreSQL point-in-time restore in the DR region (when the replica cannot be used, e.g. a
    # bad write replicated to it): the target, and the time ops.pg_restore_rehearsal measures.
    postgres_pitr_rto_seconds: Annotated[int, Field(ge=60)] = Field(
        description="Target time for a point-in-time restore in the DR region.")
    postgres_pitr_restore_estimate_seconds: Annotated[int, Field(ge=60, le=86400)] = Field(
        description="Measured point-in-time restore time (ops.pg_restore_rehearsal).")
    # Who may assume the on-call role (docs/decisions/022): the users of this IAM Identity Center
    # permission set. Identity Center names the role it creates in the account
    # AWSReservedSSO_<permission set>_<suffix> (IAM Identity Center User Guide, "Referencing
    # permission sets in resource policies"); permission set names: 1-32 of [\w+=,.@-].
    on_call_permission_set: Annotated[str, Field(pattern=r"^[\w+=,.@-]{1,32}$")] = Field(
        "IntelGraphOnCall", description="IAM Identity Center permission set whose users may assume the "
                                        "on-call role (intelgraph-<stack>-oncall).")
    region_switch: RegionSwitchSettings = Field(default_factory=lambda: RegionSwitchSettings.model_validate({}),
        description="Step timeouts of the ARC Region switch plan (they bound the switch's RTO).")

    @model_validator(mode="after")
    def _promotion_step_outlasts_the_measured_promotion(self) -> "DrSettings":
        # a timeout below what a drill measured would stop a normal switch half way
        if self.region_switch.promotion_timeout_minutes * 60 < self.replica_promotion_estimate_seconds:
            raise ValueError(
                f"regionSwitch.promotionTimeoutMinutes ({self.region_switch.promotion_timeout_minutes}) is shorter "
                f"than replicaPromotionEstimateSeconds ({self.replica_promotion_estimate_seconds} s): the plan would "
                "stop a promotion that takes as long as the drill measured")
        return self


def _retired_urn(value: str) -> str:
    # The engine's URN (pulumi/pulumi sdk/go/common/resource/urn.go): urn:pulumi:<stack>::<project>::
    # <parent types $-joined, then the type>::<name>. The stack is checked against the one being
    # deployed in StackSettings (the model alone does not know it).
    from helpers.stateful import STATEFUL_TYPES

    parts = value.split("::", 3)
    if len(parts) != 4 or not parts[0].startswith("urn:pulumi:") or not all(parts):
        raise ValueError("not a resource URN; copy it from `pulumi stack --show-urns` or synth's stack.json, "
                         f"e.g. 'urn:pulumi:prod::{PROJECT}::aws:kms/key:Key::intelgraph-pg-primary-key'")
    if parts[1] != PROJECT:
        raise ValueError(f"names project {parts[1]!r}; only this project's resources ({PROJECT}) can be retired here")
    kind = parts[2].split("$")[-1]
    if kind not in STATEFUL_TYPES:
        raise ValueError(f"names a {kind}, which the program never protects; only these are: "
                         f"{', '.join(sorted(STATEFUL_TYPES))}")
    return value


RetiredUrn = Annotated[str, AfterValidator(_retired_urn)]


class StackSettings(Model):
    """The whole ``intelgraph-platform:*`` namespace of one stack."""

    environment: Literal["stage", "prod"] = Field(
        description="stage or prod (prod protects stateful resources and enables prod-only rules).")
    aws: AwsSettings = Field(description="Account and regions.")
    network: NetworkSettings = Field(description="The VPCs of both regions.")
    kubernetes: KubernetesSettings = Field(description="The EKS cluster.")
    backups: BackupSettings = Field(description="Backup and log buckets.")
    neo4j: Neo4jSettings = Field(description="The Neo4j cluster, its backups and rehearsals.")
    redis: RedisSettings = Field(description="The Redis cache.")
    postgres: PostgresSettings = Field(description="PostgreSQL primary and cross-region replica.")
    dns: DnsSettings = Field(description="Health-checked DNS failover.")
    ingress: IngressSettings = Field(description="The API edge.")
    egress: EgressSettings = Field(
        default_factory=lambda: EgressSettings.model_validate({}), description="Reviewed egress exceptions.")
    observability: ObservabilitySettings = Field(description="Prometheus and Grafana integration.")
    dr: DrSettings = Field(description="Disaster-recovery targets and measured estimates.")
    alerting: AlertingSettings = Field(description="On-call routing.")
    pg_restore_rehearsal: PgRestoreRehearsalSettings = Field(description="The PostgreSQL restore rehearsal.")
    logs: LogSettings = Field(description="Log retention and shipping.")
    # The approved way to remove a protected resource (docs/cicd.md, "Retiring a protected resource"):
    # the engine refuses, in preview too, to delete a resource its state records as protected, so a
    # reviewed deploy first releases it (listed here), and a later one removes it from the code.
    retire: list[RetiredUrn] = Field(
        [], description="URNs of protected resources being retired: the program stops protecting them "
                        "(deploy 1); remove the resource and its entry together in a later change (deploy 2).")

    @model_validator(mode="after")
    def _across_sections(self, info: ValidationInfo) -> "StackSettings":
        # every rule that relates sections, all reported at once
        stack = (info.context or {}).get("stack")
        _raise_any(self._addresses_in_their_regions_network() + self._shipper_apart_from_its_sources()
                   + self._workloads_in_namespaces_of_their_own() + self._load_balancers_match_the_ingress_mode()
                   + self._rehearsal_endpoint_in_the_dr_region() + self._retired_in_this_stack(stack)
                   + self._clusters_in_the_stacks_account_and_regions() + self._allowlist_in_managed_namespaces()
                   + self._zones_in_their_regions() + self._dr_mode_measured()
                   + (self._bucket_names_fit(stack) if stack else []))
        return self

    def _retired_in_this_stack(self, stack: Optional[str]) -> list[tuple[str, str, Any]]:
        # Whether each entry names a resource the program registers is known only after it ran:
        # synth checks that (exit 2, synth/stateful.py stale_retirements).
        problems, seen = [], set()
        for i, urn in enumerate(self.retire):
            if not self.is_prod:
                problems.append((f"retire.{i}", "only prod protects resources (environment stage protects "
                                 "nothing): a stage resource is removed by removing it from the code", urn))
            elif stack is not None and not urn.startswith(f"urn:pulumi:{stack}::"):
                problems.append((f"retire.{i}", f"is not a URN of this stack ({stack}): it would release nothing "
                                 "here", urn))
            elif urn in seen:
                problems.append((f"retire.{i}", "is listed twice", urn))
            seen.add(urn)
        return problems

    def _bucket_names_fit(self, stack: str) -> list[tuple[str, str, Any]]:
        # A backup bucket's name holds the stack, the account and its region (components/backup_bucket.py);
        # S3 refuses what does not fit only at `pulumi up`. __main__ names each bucket '<section>-backups'.
        from components.backup_bucket import bucket_name_problem

        problems = []
        for key, region in (("aws.primaryRegion", self.aws.primary_region), ("aws.drRegion", self.aws.dr_region)):
            found = {bucket_name_problem(stack, f"{section}-backups", self.aws.account_id, region)
                     for section in BackupSettings.model_fields} - {None}
            problems += [(key, f"{problem}: use a shorter stack name or another region", region)
                         for problem in sorted(p for p in found if p)]  # the stack name's letters: validate()
        return problems

    def _addresses_in_their_regions_network(self) -> list[tuple[str, str, Any]]:
        # A security group or NetworkPolicy allowing another region's addresses allows nobody there:
        # database clients, the interface endpoints and the EKS control plane's ENIs all live in
        # their region's VPC (VPC User Guide: an ENI takes its address from a subnet of its VPC).
        lists = [(f"postgres.allowedCidrs.{label}", label, getattr(self.postgres.allowed_cidrs, label))
                 for label in ("primary", "dr")]
        lists += [(f"network.{label}.{alias}", label, getattr(getattr(self.network, label), field))
                  for label in ("primary", "dr")
                  for alias, field in (("stsEndpointCidrs", "sts_endpoint_cidrs"),
                                       ("secretsmanagerEndpointCidrs", "secretsmanager_endpoint_cidrs"))]
        # an interface endpoint's ENIs are in the VPC (a gateway's public ranges: S3Path)
        lists += [(f"network.{label}.s3.cidrs", label, getattr(self.network, label).s3.cidrs)
                  for label in ("primary", "dr") if getattr(self.network, label).s3.mode == "interface"]
        lists += [(f"kubernetes.{role}.apiServerCidrs", role, self.kubernetes.of(role).api_server_cidrs)
                  for role in ROLES]
        lists += [("pgRestoreRehearsal.drRdsEndpointCidrs", "dr", self.pg_restore_rehearsal.dr_rds_endpoint_cidrs)]
        lists += [(f"network.{label}.publicSubnetCidrs", label, getattr(self.network, label).public_subnet_cidrs or [])
                  for label in ("primary", "dr")]
        problems = []
        for key, label, cidrs in lists:
            vpc = ipaddress.ip_network(getattr(self.network, label).vpc_cidr)
            problems += [(f"{key}.{i}", f"outside network.{label}.vpcCidr {vpc}: nothing of the {label} "
                          f"region is reachable there", cidr)
                         for i, cidr in enumerate(cidrs) if not _within(cidr, str(vpc))]
        return problems

    def _shipper_apart_from_its_sources(self) -> list[tuple[str, str, Any]]:
        # The shipper ships every workload namespace's logs; in one of them it would ship its own (a loop).
        workloads = {"neo4j.namespace": self.neo4j.namespace, "neo4j.restoreNamespace": self.neo4j.restore_namespace,
                     "redis.namespace": self.redis.namespace, "pgRestoreRehearsal.namespace": self.pg_restore_rehearsal.namespace,
                     "kubernetes.appNamespace": self.kubernetes.app_namespace}
        clash = [key for key, ns in workloads.items() if ns == self.logs.shipper.namespace]
        return [("logs.shipper.namespace", f"must differ from {', '.join(clash)}: the shipper would ship its own logs",
                 self.logs.shipper.namespace)] if clash else []

    def _workloads_in_namespaces_of_their_own(self) -> list[tuple[str, str, Any]]:
        # Each namespace gets the default-deny NetworkPolicies plus its workload's flows: Neo4j, its
        # restore rehearsal and Redis sharing one would leave only one workload's flows allowed.
        owners: dict[str, str] = {}
        problems = []
        for key, namespace in (("neo4j.namespace", self.neo4j.namespace),
                               ("neo4j.restoreNamespace", self.neo4j.restore_namespace),
                               ("redis.namespace", self.redis.namespace)):
            if namespace in owners:
                problems.append((key, f"must differ from {owners[namespace]}: each of Neo4j, its restore rehearsal "
                                 "and Redis runs in a default-deny namespace of its own", namespace))
            owners.setdefault(namespace, key)
        return problems

    def _load_balancers_match_the_ingress_mode(self) -> list[tuple[str, str, Any]]:
        # alb mode: DNS aliases the ALBs the program creates (one per region, in its public subnets),
        # and each ALB needs a certificate of its own region. nginx mode: the controllers' load
        # balancers, from config.
        problems: list[tuple[str, str, Any]] = []
        alb = self.ingress.mode == "alb"
        for role in ROLES:
            key = f"dns.{role}LoadBalancer"
            lb = getattr(self.dns, f"{role}_load_balancer")
            if alb and lb is not None:
                problems.append((key, "must not be set with ingress.mode alb: DNS aliases the WAF-protected ALB the "
                                 "program creates; a name from config could be an unprotected ALB",
                                 lb.dns_name))
            if not alb and lb is None:
                problems.append((key, f"is required with ingress.mode nginx: name the {role} cluster's "
                                 "ingress-nginx load balancer", None))
        if self.dns.primary_load_balancer is not None and self.dns.primary_load_balancer == self.dns.dr_load_balancer:
            problems.append(("dns.primaryLoadBalancer.dnsName", "must differ from dns.drLoadBalancer: failover "
                             "to the same load balancer fails over to nothing", self.dns.primary_load_balancer.dns_name))
        for role in ROLES:
            net = self.network.of(role)
            ids, cidrs = net.public_subnet_ids, net.public_subnet_cidrs
            if alb and (ids is None or cidrs is None):
                problems.append((f"network.{role}.publicSubnet{'Ids' if ids is None else 'Cidrs'}",
                                 "is required with ingress.mode alb: the program's internet-facing ALB lives in the "
                                 "region's public subnets (at least two availability zones)", None))
            elif ids is not None and cidrs is not None and len(ids) != len(cidrs):
                problems.append((f"network.{role}.publicSubnetCidrs", f"names {len(cidrs)} CIDRs for {len(ids)} "
                                 "publicSubnetIds: one CIDR per subnet, in the same order", cidrs))
            elif cidrs is not None and len(set(cidrs)) != len(cidrs):
                problems.append((f"network.{role}.publicSubnetCidrs", "lists a CIDR twice: each subnet has its own",
                                 cidrs))
        if alb and self.ingress.dr_certificate_arn is None:
            problems.append(("ingress.drCertificateArn", "is required with ingress.mode alb: the DR region's ALB "
                             "needs an ACM certificate issued in aws.drRegion", None))
        if self.dns.health_check.fqdn == self.ingress.host:
            problems.append(("dns.healthCheck.fqdn", f"must differ from ingress.host ({self.ingress.host})",
                             self.dns.health_check.fqdn))
        return problems

    def _dr_mode_measured(self) -> list[tuple[str, str, Any]]:
        # the DR budget of a pilot-light graph counts the servers' start; a warm one's are running
        estimate, mode = self.dr.neo4j_cluster_start_estimate_seconds, self.neo4j.dr.mode
        if mode == "pilot-light" and estimate is None:
            return [("dr.neo4jClusterStartEstimateSeconds", "is required with neo4j.dr.mode pilot-light: the "
                     "switch starts the DR servers before it can restore (measure it in a DR drill)", None)]
        if mode == "warm" and estimate is not None:
            return [("dr.neo4jClusterStartEstimateSeconds", "applies only to neo4j.dr.mode pilot-light: a warm "
                     "DR cluster is already running; remove it", estimate)]
        refresh = self.neo4j.dr.refresh_schedule
        if mode == "warm" and refresh is None:
            return [("neo4j.dr.refreshSchedule", "is required with neo4j.dr.mode warm: the DR databases are "
                     "reseeded from the replicated chain on this schedule", None)]
        if mode == "pilot-light" and refresh is not None:
            return [("neo4j.dr.refreshSchedule", "applies only to neo4j.dr.mode warm: a pilot-light region runs "
                     "no servers to refresh; remove it", refresh)]
        if refresh is not None:
            from helpers.dr_budget import cron_gaps_seconds, seed_seconds

            seed = seed_seconds(self.neo4j.backup_schedule, self.backups.neo4j.chain_days,
                                self.dr.neo4j_restore_estimate_seconds, self.dr.neo4j_differential_estimate_seconds)
            if min(cron_gaps_seconds(refresh)) <= seed:
                # a refresh still seeding when the next is due: the CronJob skips it (concurrencyPolicy
                # Forbid) and the database is offline most of the time
                return [("neo4j.dr.refreshSchedule", f"runs closer together than one seed takes ({seed}s: "
                         "dr.neo4jRestoreEstimateSeconds plus the chain's differentials); space the runs wider",
                         refresh)]
        return []

    def _zones_in_their_regions(self) -> list[tuple[str, str, Any]]:
        # Each region's servers run in its cluster; 3 or more zones make their spread a DoNotSchedule
        # constraint over 3 zones (components/neo4j_cluster.py pod_placement, minDomains 3): counting a
        # zone of another region, where the cluster has no node, leaves a primary unscheduled. A zone
        # name is its region's name and a letter (EC2 User Guide, "Availability Zones").
        problems = []
        for key, zones, role in zip(("neo4j.zones", "neo4j.dr.zones"), (self.neo4j.zones, self.neo4j.dr.zones), ROLES,
                                    strict=True):
            region, region_key = self.aws.region(role), f"aws.{_REGION_KEYS[role]}"
            problems += [(f"{key}.{i}", f"is not an availability zone of {region_key} {region} ({region}a, "
                          f"{region}b, ...): the cluster has no node there, and with 3 zones the primaries must "
                          "spread over 3 (DoNotSchedule)", zone)
                         for i, zone in enumerate(zones) if not re.fullmatch(rf"{re.escape(region)}[a-z]", zone)]
        return problems

    def _rehearsal_endpoint_in_the_dr_region(self) -> list[tuple[str, str, Any]]:
        url = self.pg_restore_rehearsal.dr_rds_endpoint_url
        if f".rds.{self.aws.dr_region}.vpce." in url:
            return []
        return [("pgRestoreRehearsal.drRdsEndpointUrl", f"is not an RDS interface endpoint of aws.drRegion "
                 f"{self.aws.dr_region}: the rehearsal restores in the DR region", url)]

    def _clusters_in_the_stacks_account_and_regions(self) -> list[tuple[str, str, Any]]:
        # Every AWS provider refuses any account but aws.accountId (allowed_account_ids), and each
        # region's tier runs in that region's cluster; an ARN of another account or region is a deploy
        # that fails half-way (or an IRSA trust, an ALB listener, that never works). ARN formats: IAM
        # User Guide, "IAM ARNs" (oidc-provider/<issuer>), EKS (cluster/<name>), ACM (certificate/<id>);
        # an ALB takes only an ACM certificate of its own region (ACM User Guide, "Integrated services").
        account = self.aws.account_id
        problems: list[tuple[str, str, Any]] = []

        def expect(key: str, arn: str, service: str, arn_region: Optional[str], region_key: str, resource: str,
                   shown: str) -> None:
            parts = arn.split(":", 5)
            wanted = f"arn:aws:{service}:{arn_region or ''}:{account}:{shown}"
            if parts[2] != service:
                problems.append((key, f"is not an {service} ARN; expected {wanted}", arn))
            elif (parts[3] or None) != arn_region:
                problems.append((key, f"is in region {parts[3] or '(none)'}, not {region_key} {arn_region}" if arn_region
                                 else f"names region {parts[3]}, but {service} is global (no region); expected {wanted}",
                                 arn))
            elif parts[4] != account:
                problems.append((key, f"is in account {parts[4]}, not aws.accountId {account}: every provider "
                                 "refuses any other account", arn))
            elif not re.fullmatch(resource, parts[5]):
                problems.append((key, f"names {parts[5]}, expected {shown}", arn))

        for role in ROLES:
            kube, region, region_key = self.kubernetes.of(role), self.aws.region(role), f"aws.{_REGION_KEYS[role]}"
            at = f"kubernetes.{role}"
            issuer = f"oidc-provider/{kube.oidc_issuer}"  # the provider IRSA roles trust is the issuer's
            expect(f"{at}.oidcProviderArn", kube.oidc_provider_arn, "iam", None, region_key, re.escape(issuer), issuer)
            issuer_region = kube.oidc_issuer.split(".")[2]
            if issuer_region != region:
                problems.append((f"{at}.oidcIssuer", f"is the issuer of a cluster in {issuer_region}, not "
                                 f"{region_key} {region}: the {role} tier runs in its own region's cluster",
                                 kube.oidc_issuer))
            if kube.context and kube.context.startswith("arn:"):
                # `aws eks update-kubeconfig` names the context after the cluster's ARN (unless --alias):
                # such a context says which cluster it reaches, and CI writes it from clusterName (cicd/kubeconfig.py)
                if re.fullmatch(r"arn:aws:eks:[a-z0-9-]+:[0-9]{12}:cluster/.+", kube.context):
                    expect(f"{at}.context", kube.context, "eks", region, region_key, r"cluster/.+",
                           f"cluster/{kube.cluster_name}")
                    reached = kube.context.rpartition(":cluster/")[2]
                    if reached != kube.cluster_name:
                        problems.append((f"{at}.clusterName", f"disagrees with {at}.context, which reaches "
                                         f"the cluster {reached!r}: CI writes that context for clusterName (aws eks "
                                         "update-kubeconfig --name clusterName --alias context), so CI and a local "
                                         "run would deploy to different clusters", kube.cluster_name))
                else:
                    problems.append((f"{at}.context", "is an ARN but not an EKS cluster's "
                                     f"(arn:aws:eks:{region}:{account}:cluster/{kube.cluster_name})", kube.context))
        for key, arn, role in zip(("ingress.certificateArn", "ingress.drCertificateArn"),
                                  (self.ingress.certificate_arn, self.ingress.dr_certificate_arn), ROLES, strict=True):
            if arn is not None:
                expect(key, arn, "acm", self.aws.region(role), f"aws.{_REGION_KEYS[role]}", r"certificate/[0-9a-f-]+",
                       "certificate/<id>")
        return problems

    def _allowlist_in_managed_namespaces(self) -> list[tuple[str, str, Any]]:
        # The namespaces the program creates with default-deny egress (components/regional_tier.py);
        # an entry for any other would create that namespace: a typo becomes an empty namespace, and
        # one that exists already (the application's, the Ingress's) fails the deploy.
        managed = sorted({self.neo4j.namespace, self.neo4j.restore_namespace, self.redis.namespace,
                          self.pg_restore_rehearsal.namespace, self.logs.shipper.namespace})
        return [(f"egress.allowlist.{i}.namespace", f"is not a namespace this stack manages; allowed: "
                 f"{', '.join(managed)} (egress elsewhere is its owner's to allow)", entry.namespace)
                for i, entry in enumerate(self.egress.allowlist) if entry.namespace not in managed]

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def replica_lag_threshold_seconds(self) -> int:
        """The replica-lag alarm's threshold (from the replication heartbeat, helpers/dr_budget.py)."""
        from helpers.dr_budget import lag_alarm_threshold_seconds

        return lag_alarm_threshold_seconds()


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


def _describe(error: ErrorDetails) -> list[str]:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    raised = (error.get("ctx") or {}).get("error")
    if isinstance(raised, Problems):  # a validator of several fields names each bad key itself
        return [f"{PROJECT}:" + ".".join(map(str, (*loc, key))) + f": {message} (given: {json.dumps(given, default=str)})"
                for key, message, given in raised.items]
    return [_describe_one(error, loc)]


def _describe_one(error: ErrorDetails, loc: tuple) -> str:
    key = f"{PROJECT}:" + ".".join(str(p) for p in loc) if loc else f"{PROJECT}:<stack>"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc)
        return f"{key}: unknown key; allowed keys here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (given: {json.dumps(error.get('input'), default=str)})"


# The config namespaces something reads besides the project's: the engine's own (`pulumi:`, e.g.
# disable-default-providers) and those of the provider packages in requirements.txt (a test holds the
# two together). A key in any other namespace - a misspelt project prefix - is read by nothing.
PROVIDER_NAMESPACES = ("aws", "kubernetes", "random")
ENGINE_NAMESPACE = "pulumi"


def _foreign_keys(raw_config: dict[str, str]) -> list[str]:
    from difflib import get_close_matches

    known = (PROJECT, ENGINE_NAMESPACE, *PROVIDER_NAMESPACES)
    problems = []
    for key in sorted(raw_config):
        namespace, colon, name = key.partition(":")
        if colon and namespace in known:
            continue
        guess = get_close_matches(namespace, known, n=1)
        problems.append(f"{key}: {'unknown config namespace ' + repr(namespace) if colon else 'no namespace'}, so "
                        f"nothing reads it; allowed: {PROJECT} (this project), {ENGINE_NAMESPACE} (the engine), "
                        f"{', '.join(PROVIDER_NAMESPACES)} (providers)"
                        + (f"; did you mean {guess[0]}:{name or key}?" if guess else ""))
    return problems


def validate(raw_config: dict[str, str], stack: Optional[str] = None) -> StackSettings:
    """Validate the project namespace of a stack's config (``{"project:key": "text"}``) and refuse keys
    of namespaces nothing reads; with the ``stack``'s name, also what depends on it (bucket names)."""
    prefix = f"{PROJECT}:"
    foreign = _foreign_keys(raw_config)
    document = {
        key[len(prefix):]: _decode(value)
        for key, value in raw_config.items()
        if key.startswith(prefix)
    }
    if stack is not None:
        from components.backup_bucket import NAME_PART

        if not NAME_PART.fullmatch(stack):
            # not a config key, but config cannot fix it: the stack's name goes into bucket names
            raise SettingsError([f"stack name {stack!r}: S3 bucket names hold it; use lowercase letters, "
                                 "digits and '-' (a letter or digit first and last), e.g. 'prod-eu'"])
    try:
        validated = StackSettings.model_validate(document, context={"stack": stack})
    except ValidationError as exc:
        raise SettingsError(foreign + [line for e in exc.errors() for line in _describe(e)]) from None
    if foreign:
        raise SettingsError(foreign)
    return validated


def load() -> StackSettings:
    """Read and validate this stack's configuration from the Pulumi runtime."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # pulumi.Config can only look keys up one at a time; to reject unknown keys we need them
    # all: the engine passes them in PULUMI_CONFIG, the mock engine through set_all_config.
    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return validate(everything, stack=pulumi.get_stack())
