"""The longest a deploy may legitimately run: the Neo4j roll, one server after another.

Each server's turn is a chain of two waits the engine holds the deploy for (components/
neo4j_cluster.py, components/neo4j_snapshots.py): the pre-change volume snapshot Job, then the
server's ``helm upgrade`` (Helm's wait, RELEASE_TIMEOUT_SECONDS). The releases form one
``depends_on`` chain, so the turns add up; everything else in the program is created or updated in
parallel with the roll and waits far less (the RDS update timeouts are minutes, not hours).

A deploy that is killed before this bound leaves the backend's lock, pending operations and a
Helm release in ``pending-upgrade`` (docs/runbooks.md, "Interrupted deploy"), so the deploy job's
timeout and its AWS credentials must outlast it (tests/test_rollout_budget.py).
"""

from __future__ import annotations

from components.neo4j_cluster import RELEASE_TIMEOUT_SECONDS
from components.neo4j_snapshots import PRE_CHANGE_DEADLINE_SECONDS

# The engine's wait for a pre-change snapshot Job: its custom create/update timeout, the Job's
# deadline rounded down to minutes plus 5 (components/neo4j_snapshots.py, before_change).
PRE_CHANGE_TIMEOUT_SECONDS = (PRE_CHANGE_DEADLINE_SECONDS // 60 + 5) * 60
# Starting the program, planning and the engine's bookkeeping around the roll.
ENGINE_OVERHEAD_SECONDS = 600


def rollout_budget(servers: int, release_timeout_seconds: int = RELEASE_TIMEOUT_SECONDS,
                   snapshot_timeout_seconds: int = PRE_CHANGE_TIMEOUT_SECONDS,
                   overhead_seconds: int = ENGINE_OVERHEAD_SECONDS) -> dict[str, int]:
    """Worst-case seconds for one deploy that changes every server: per server its snapshot wait
    (0 when the cluster takes no pre-change snapshots) and its release wait, in a row."""
    for name, value in (("servers", servers), ("release_timeout_seconds", release_timeout_seconds),
                        ("snapshot_timeout_seconds", snapshot_timeout_seconds),
                        ("overhead_seconds", overhead_seconds)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a whole number of at least 0 (got {value!r})")
    if servers < 1:
        raise ValueError(f"servers must be at least 1 (got {servers})")
    per_server = release_timeout_seconds + snapshot_timeout_seconds
    return {"servers": servers, "perServerSeconds": per_server, "overheadSeconds": overhead_seconds,
            "maxSeconds": servers * per_server + overhead_seconds}
