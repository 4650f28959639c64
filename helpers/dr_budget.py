"""The DR budget: recovery bounds computed from what the stack deploys, against its targets.

Pure arithmetic, no resources: __main__.py derives alarm thresholds from it, exports the result,
synth prints it and the policy pack judges it. Every term says where its number comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Sequence

# An alias record to an ELB carries the load balancer's 60 s TTL: resolvers may keep answering
# with the failed primary for that long after Route 53 flips (Route 53 Developer Guide,
# "Values specific for simple alias records").
ALIAS_TO_ELB_TTL_SECONDS = 60

# RDS uploads PostgreSQL transaction logs to S3 every five minutes; LatestRestorableTime trails
# by at most that (RDS User Guide, "Restoring a DB instance to a specified time").
RDS_LOG_UPLOAD_SECONDS = 300

# An idle PostgreSQL primary writes no WAL, so an RDS read replica reports lag of up to five
# minutes with nothing to replicate (RDS User Guide, "Working with read replicas for PostgreSQL":
# replica lag on an idle primary). A heartbeat row written on the primary every 15 s (pg_cron,
# see components/postgres_dr.py) keeps WAL flowing: a healthy replica then never trails by more
# than one heartbeat, and lag beyond two heartbeats is real.
HEARTBEAT_INTERVAL_SECONDS = 15

# Replica-lag alarm shape: RDS publishes ReplicaLag once a minute; with the heartbeat one
# datapoint above the threshold is already real lag, so the alarm fires on the first.
LAG_PERIOD_SECONDS = 60
LAG_EVALUATION_PERIODS = 1


@dataclass(frozen=True)
class Bound:
    """One recovery objective: its target, the bound the deployment guarantees, and why."""

    datastore: str
    objective: str  # "RTO" | "RPO"
    target_seconds: int
    bound_seconds: int
    terms: dict[str, int] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return self.bound_seconds <= self.target_seconds

    def as_output(self) -> dict:
        return {
            "datastore": self.datastore,
            "objective": self.objective,
            "targetSeconds": self.target_seconds,
            "boundSeconds": self.bound_seconds,
            "met": self.met,
            "terms": dict(self.terms),
        }


def lag_alarm_threshold_seconds(heartbeat_interval_seconds: int = HEARTBEAT_INTERVAL_SECONDS) -> int:
    """The lowest threshold a healthy replica never crosses: two heartbeat intervals (the idle
    sawtooth peaks at one). Lower would alarm on a healthy replica and make dr_promote refuse."""
    return 2 * heartbeat_interval_seconds


def dns_detection_seconds(request_interval_seconds: int, failure_threshold: int) -> int:
    """Route 53 marks an endpoint unhealthy after ``failure_threshold`` failed checks in a row."""
    return request_interval_seconds * failure_threshold


def _term(step_name: str) -> str:
    """A plan step's name as a budget term: promote-postgres -> promotePostgres."""
    head, *rest = step_name.split("-")
    return head + "".join(part.capitalize() for part in rest)


def switch_seconds(steps: Sequence[tuple[str, int]]) -> dict[str, int]:
    """The Region switch plan's steps run one after another, each stopped at its timeout
    (components/region_switch.py): together they take at most the sum of the timeouts."""
    terms = {_term(name): seconds for name, seconds in steps}
    if len(terms) != len(steps) or not all(re.fullmatch(r"[a-z][A-Za-z]*", t) for t in terms):
        raise ValueError(f"switch steps need distinct lower-case hyphenated names, not {[n for n, _ in steps]}")
    return terms


def postgres_bounds(
    *, rto_target: int, rpo_target: int, request_interval_seconds: int, failure_threshold: int,
    switch_steps: Sequence[tuple[str, int]], lag_threshold_seconds: int,
) -> list[Bound]:
    """RTO: the probe's verdict pages the on-call, who starts the Region switch plan; its steps
    (approval, promotion, tier scaling, the health checks that move traffic) each end by their
    timeout, and resolvers may keep the old answer for the alias's TTL after the last one."""
    detection = dns_detection_seconds(request_interval_seconds, failure_threshold)
    rto_terms = {
        "dnsDetection": detection,
        **switch_seconds(switch_steps),
        "aliasTtl": ALIAS_TO_ELB_TTL_SECONDS,
    }
    # Failing over to the replica loses at most the lag it was allowed before the alarm fired
    # (the threshold, two heartbeats) plus what accrues while the alarm detects it; restoring
    # from PITR instead loses at most one log-upload interval.
    replica_rpo = {"lagAlarmThreshold": lag_threshold_seconds,
                   "lagAlarmDetection": LAG_PERIOD_SECONDS * LAG_EVALUATION_PERIODS}
    return [
        Bound("postgres", "RTO", rto_target, sum(rto_terms.values()), rto_terms),
        Bound("postgres", "RPO", rpo_target, sum(replica_rpo.values()), replica_rpo),
        Bound("postgres-pitr", "RPO", rpo_target, RDS_LOG_UPLOAD_SECONDS,
              {"transactionLogUpload": RDS_LOG_UPLOAD_SECONDS}),
    ]


def postgres_pitr_rto(*, rto_target: int, restore_estimate_seconds: int) -> Bound:
    """Restoring to a point in time in the DR region (when the replica is unusable - a bad write
    replicates too) takes as long as RDS needs to build the instance from the replicated backups:
    AWS publishes no figure, so ops.pg_restore_rehearsal measures it every week and prints it."""
    return Bound("postgres-pitr", "RTO", rto_target, restore_estimate_seconds,
                 {"pitrRestore": restore_estimate_seconds})


@cache
def cron_gaps_seconds(schedule: str, start: datetime | None = None) -> tuple[int, ...]:
    """Every interval between two consecutive runs of ``schedule`` over a week."""
    from croniter import croniter

    start = start or datetime(2024, 1, 1, tzinfo=timezone.utc)
    runs = croniter(schedule, start)
    previous = runs.get_next(datetime)
    end = previous + timedelta(days=7)
    gaps = []
    while previous < end:
        current = runs.get_next(datetime)
        gaps.append(int((current - previous).total_seconds()))
        previous = current
    return tuple(gaps)


def cron_max_gap_seconds(schedule: str, start: datetime | None = None) -> int:
    """Longest interval between two runs of ``schedule`` over a week (the backup RPO)."""
    return max(cron_gaps_seconds(schedule, start))


def differentials_per_chain(backup_schedule: str, chain_days: int) -> int:
    """Differentials a chain can hold: every backup after its full one (the restore replays them all
    when it restores the chain's newest artifact)."""
    return max(0, chain_days * 86400 // cron_max_gap_seconds(backup_schedule) - 1)


def seed_seconds(backup_schedule: str, chain_days: int, restore_estimate_seconds: int,
                 differential_estimate_seconds: int) -> int:
    """Seeding a database from a chain's newest artifact: its full backup, then every differential
    replayed onto it (Neo4j operations manual, "Restore a database backup" and, for a seed from a
    URI, "Managing databases in a cluster": the CloudSeedProvider seeds the chain ending at a
    differential artifact); the newest artifact of a full chain has the most to replay."""
    return restore_estimate_seconds + differentials_per_chain(backup_schedule, chain_days) * differential_estimate_seconds


def neo4j_bounds(*, rto_target: int, rpo_target: int, backup_schedule: str, chain_days: int,
                 full_backup_seconds: int, restore_estimate_seconds: int,
                 differential_estimate_seconds: int, dr_mode: str, replication_sla_seconds: int,
                 request_interval_seconds: int, failure_threshold: int,
                 cluster_start_seconds: int = 0, refresh_schedule: str | None = None,
                 tier_scaling_seconds: int = 0) -> list[Bound]:
    """Bounds of the DR path: the primary region is lost, and the DR cluster's graph is what the
    newest backup chain replicated to the DR bucket seeds (components/scripts/neo4j_dr_seed.sh).

    The newest backup the DR bucket can hold: backups complete at most the longest gap between two
    of them apart - hourly, except when a chain starts: that run first closes the old chain with a
    differential, then takes the full backup, during which nothing newer completes - and the DR
    copy trails by up to the bucket's replication SLA (S3 Replication Time Control: 15 minutes for
    99.99 % of objects, a percentile rather than a maximum: ops.dr_readiness fails on a copy still
    pending past it), so a backup that completed just before the loss may never reach the DR region.
    Seeding the newest artifact seeds its chain: the full backup, then every differential replayed.
    The switch starts when Route 53 marks the primary unhealthy, and clients reach the DR region
    once resolvers drop the alias's TTL, as for PostgreSQL.

    pilot-light: no DR servers run. The switch starts them and waits for the cluster to form
    (``cluster_start_seconds``, the whole deploy as a drill measures it), then seeds the databases
    from the newest chain in the DR bucket: RTO counts the start and the seed, RPO the chain's age.
    warm: the DR cluster runs, and a refresh (``refresh_schedule``) reseeds its databases from the
    newest chain; the switch promotes what the last refresh loaded. RPO adds the longest gap between
    two refreshes (the copy ages until the next one lands). RTO counts one seed: a switch that lands
    while a refresh runs waits for it (the database is offline while its store is replaced).
    When the Region switch plan scales the graph's StatefulSets up (its EKS scaling step), that
    step's timeout counts too (``tier_scaling_seconds``).
    """
    if dr_mode not in ("pilot-light", "warm"):
        raise ValueError(f"dr_mode must be pilot-light or warm, not {dr_mode!r}")
    if (dr_mode == "warm") != (refresh_schedule is not None):
        raise ValueError("a warm DR graph needs its refresh_schedule, and only a warm one has one")
    interval = cron_max_gap_seconds(backup_schedule)
    differentials = differentials_per_chain(backup_schedule, chain_days)
    rpo_terms = {"backupInterval": interval}
    if full_backup_seconds > interval:
        rpo_terms["fullBackupOverrun"] = full_backup_seconds - interval
    rpo_terms["bucketReplication"] = replication_sla_seconds
    if refresh_schedule is not None:
        rpo_terms["refreshInterval"] = cron_max_gap_seconds(refresh_schedule)
    rto_terms = {"dnsDetection": dns_detection_seconds(request_interval_seconds, failure_threshold),
                 "aliasTtl": ALIAS_TO_ELB_TTL_SECONDS,
                 **({"clusterStart": cluster_start_seconds} if dr_mode == "pilot-light" else {}),
                 **({"tierScaling": tier_scaling_seconds} if tier_scaling_seconds else {}),
                 "restoreFullBackup": restore_estimate_seconds,
                 "replayDifferentials": differentials * differential_estimate_seconds}
    return [
        Bound("neo4j", "RTO", rto_target, sum(rto_terms.values()), rto_terms),
        Bound("neo4j", "RPO", rpo_target, sum(rpo_terms.values()), rpo_terms),
    ]
