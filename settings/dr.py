"""Disaster recovery: the active region, the RTO and RPO targets and the measured estimates that bound
them, the Region switch plan's step timeouts, and the retirement of protected resources."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import AfterValidator, Field, model_validator

from settings.values import PROJECT, Model, Role


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
