"""The value types every section is built from: Kubernetes quantities, CIDRs, AWS regions, the cron
schedules and time zones the API server accepts, pinned images and chart versions, the text a YAML number
may stand for, the two regions' roles; ``Model``, the base of every section, and ``ResourceSettings``,
the CPU and memory of a datastore's pods. ``Problems`` lets a validator of several fields name each bad key."""

from __future__ import annotations

import ipaddress
import json
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

PROJECT = "intelgraph-platform"


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


# The CPU and memory of a datastore's pods (Neo4j's servers, Redis's cache pods).
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
