"""The log scrubber's throughput under LuaJIT (Fluent Bit embeds it), on realistic records
(benchmarks/scrub_bench.lua builds them: access logs, parsed JSON app logs, Java lines, about one in
twenty with personal data or a credential, each with its kubernetes metadata). Goal from issue 24
item 11: at least 20 MB/s. Reported, never asserted: timings belong to the machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILTER = ROOT / "components" / "scripts" / "scrub.lua"
DRIVER = Path(__file__).resolve().parent / "scrub_bench.lua"
GOAL_MB_PER_S = 20.0


def scrubber_throughput(records: int = 20000, rounds: int = 5) -> dict:
    luajit = shutil.which("luajit")
    if luajit is None:
        raise RuntimeError("luajit is not installed (Debian package luajit): the scrubber figure needs Fluent Bit's Lua")
    out = subprocess.run([luajit, str(DRIVER), str(FILTER), str(records), str(rounds)],
                         check=True, capture_output=True, text=True, timeout=600).stdout.split()
    payload, seconds = int(out[0]), float(out[1])
    rate = payload / seconds / 1e6
    return {"records": records, "payload_mb": round(payload / 1e6, 2), "median_s": round(seconds, 4),
            "mb_per_s": round(rate, 1), "goal_mb_per_s": GOAL_MB_PER_S, "meets_goal": rate >= GOAL_MB_PER_S}
