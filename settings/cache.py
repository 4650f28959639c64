"""The Redis cache and the rotation of its password."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, ValidationInfo, field_validator, model_validator

from settings.values import Image, K8sName, Model, Quantity, ResourceSettings, _raise_any


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
