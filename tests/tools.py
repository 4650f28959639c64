"""Real tools the tests rely on. Missing in CI is a failure, never a skip: .ci/run installs them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml


def require_tool(name: str) -> str:
    path = shutil.which(name)
    assert path, (f"{name} is not installed; run ./dev test, which installs every tool the tests "
                  f"use (Debian packages, helm, the analyzers' environments under .tools/)")
    return path


def promtool_check(groups: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    return subprocess.run([require_tool("promtool"), "check", "rules", str(rules)],
                          capture_output=True, text=True, timeout=60)
