"""The committed URN snapshots, per stack: every stateful resource (``urns``) and every resource
(``all``) of the deployed stacks.

A resource's URN is its identity to the engine: a renamed component or resource (or a new parent)
is a new URN, which Pulumi plans as create-new then delete-old - a replace, for a bucket or a
database. An `alias` carrying the old URN makes it the same resource again. The suite compares
each stack with its snapshot (tests/test_stateful.py); after a deliberate change, regenerate:

    .venv/bin/python -m synth.stateful            # rewrites tests/stateful_urns/<stack>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from helpers.stateful import is_stateful
from synth import engine
from synth.engine import Synthesis

SNAPSHOTS = engine.ROOT / "tests" / "stateful_urns"


def stateful_urns(synthesis: Synthesis) -> list[str]:
    return sorted(r.urn for r in synthesis.resources if is_stateful(r.type))


def stale_retirements(retire: list[str], synthesis: Synthesis) -> list[str]:
    """A problem line for each ``retire`` entry that names no stateful resource the program
    registers: left over after its resource was removed (deploy 2 removes both), or mistyped. Either
    way it releases nothing, and a later resource of that name would silently start unprotected."""
    registered = {r.urn for r in synthesis.resources if is_stateful(r.type)}
    return [f"intelgraph-platform:retire.{i}: names no resource the program registers (given: {urn}); "
            "remove the entry in the change that removes its resource, or correct the URN"
            for i, urn in enumerate(retire) if urn not in registered]


def snapshot_path(stack: str) -> Path:
    return SNAPSHOTS / f"{stack}.json"


def read_snapshot(stack: str, key: str = "urns") -> list[str]:
    """``urns``: the stateful resources; ``all``: every resource (a replaced NetworkPolicy or
    StatefulSet is an outage too, even if no data is lost)."""
    return json.loads(snapshot_path(stack).read_text())[key]


def lost(snapshot: list[str], synthesis: Synthesis) -> list[str]:
    """Snapshotted URNs that no resource has any more, neither as its URN nor as an alias."""
    carried = {r.urn for r in synthesis.resources} | {a for r in synthesis.resources for a in r.aliases}
    return [urn for urn in snapshot if urn not in carried]


def every_urn(synthesis: Synthesis, previous: list[str]) -> list[str]:
    """What a deployed stack's checkpoint may hold: the previous snapshot's URNs that the program
    still carries (as a URN or an alias: stacks not yet updated hold the old one), and the URN of
    every resource that carries none of them."""
    kept = set(previous) - set(lost(previous, synthesis))
    new = {r.urn for r in synthesis.resources if not kept & ({r.urn} | set(r.aliases))}
    return sorted(kept | new)


def write_snapshot(stack: str, synthesis: Synthesis) -> Path:
    path = snapshot_path(stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = read_snapshot(stack, "all") if path.exists() else []
    document = {
        "stack": stack,
        "regenerate": "python -m synth.stateful",
        "all": every_urn(synthesis, previous),
    }
    # the stateful ones among them (a URN's type is the last of its type chain)
    document["urns"] = [urn for urn in document["all"] if is_stateful(urn.split("::")[2].split("$")[-1])]
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main(argv: list[str]) -> int:
    for stack in argv or engine.known_stacks():
        path = write_snapshot(stack, engine.synthesize(stack))
        print(f"{stack}: {len(read_snapshot(stack))} stateful URNs -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
