"""The Neo4j cluster: its servers, their volumes (growth, snapshots), backups and restore rehearsals,
and what the DR region runs of the graph."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from settings.values import (
    ChartVersion,
    Cron,
    Image,
    K8sName,
    Model,
    Problems,
    Quantity,
    ResourceSettings,
    TimeZone,
    _raise_any,
    quantity_value,
)


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
