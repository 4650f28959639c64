"""The backup and log buckets: their lifecycle and Object Lock, S3's storage minimums, and the Neo4j
backup chains that lifecycle expiry must never break."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import Field, ValidationInfo, field_validator, model_validator

from settings.values import Days, Model, _raise_any


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
