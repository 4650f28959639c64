"""The committed URN snapshot of every stateful resource, per stack.

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


def snapshot_path(stack: str) -> Path:
    return SNAPSHOTS / f"{stack}.json"


def read_snapshot(stack: str) -> list[str]:
    return json.loads(snapshot_path(stack).read_text())["urns"]


def lost(snapshot: list[str], synthesis: Synthesis) -> list[str]:
    """Snapshotted URNs that no resource has any more, neither as its URN nor as an alias."""
    carried = {r.urn for r in synthesis.resources} | {a for r in synthesis.resources for a in r.aliases}
    return [urn for urn in snapshot if urn not in carried]


def write_snapshot(stack: str, synthesis: Synthesis) -> Path:
    path = snapshot_path(stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "stack": stack,
        "regenerate": "python -m synth.stateful",
        "urns": stateful_urns(synthesis),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main(argv: list[str]) -> int:
    for stack in argv or engine.known_stacks():
        path = write_snapshot(stack, engine.synthesize(stack))
        print(f"{stack}: {len(read_snapshot(stack))} stateful URNs -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
