"""PostgreSQL on RDS: the primary and its cross-Region replica, a declared major upgrade, the
instance generations of a round trip, and the maintenance and backup windows RDS accepts."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import Field, ValidationInfo, field_validator, model_validator

from settings.values import MajorVersion, Model, PrivateCidr, Version, _raise_any


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
