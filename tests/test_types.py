"""The program type-checks against the pinned SDKs' own types: pyright (basic mode, the settings
in pyrightconfig.json) over the program reports no error, so a wrong argument name, a key an
``...ArgsDict`` does not declare, a ``str | None`` where a ``str`` is required or a splatted
options dict fails here, before anyone runs a preview. tests/types_canary.py proves that this
run catches each of those (and so that pyright resolved the SDKs in .venv at all).

Kubernetes objects: the SDK sends a dict key it does not know as given (pulumi/runtime/rpc.py,
``py_name_to_pulumi_name.get(k) or k``), so the API's camelCase field names work, but its
``...ArgsDict`` types declare only the snake_case Python names. Small specs use those typed names
(the SDK translates them; the synthesized stacks are unchanged); the pod templates stay in the
API's names, each call with a targeted ``pyright: ignore`` naming this file, and are checked
strictly against the Kubernetes JSON schemas instead (tests/test_manifests.py). An ignore that is
no longer needed is itself an error (reportUnnecessaryTypeIgnoreComment). tests/ is not checked.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import settings
from synth.policy_runner import _options
from tests.conftest import ROOT, config_with

CANARY = Path(__file__).with_name("types_canary.py")
CONFIG = json.loads((ROOT / "pyrightconfig.json").read_text())


PYRIGHT_OUT = "INTELGRAPH_PYRIGHT_OUT"  # where the run started for this session writes its report


def start_pyright(config) -> None:
    """Called once per session, in the process that starts it (the xdist controller when there are
    workers, which inherit the environment): pyright (20-60 s) checks while the rest of the suite
    runs. Only when this module is part of the run."""
    if PYRIGHT_OUT in os.environ or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    this = Path(__file__).resolve()
    if not any(this == p or p in this.parents for p in (Path(a.split("::")[0]).resolve() for a in config.args)):
        return
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    if not pyright or not shutil.which("node"):
        return
    report = Path(tempfile.mkdtemp(prefix="pyright-")) / "report.json"
    # the program (the config's include) plus the canary; --outputjson: no version check online;
    # the report appears whole, when pyright is done
    command = [pyright, "--outputjson", *CONFIG["include"], str(CANARY.relative_to(ROOT))]
    proc = subprocess.Popen(["sh", "-c", f'"$@" > "{report}.part" 2>&1; mv "{report}.part" "{report}"', "sh", *command],
                            cwd=ROOT)
    atexit.register(proc.kill)
    os.environ[PYRIGHT_OUT] = str(report)


@pytest.fixture(scope="module")
def diagnostics() -> list[dict]:
    assert shutil.which("node"), "node is not installed; pyright runs on it (./dev installs npm and node's tools)"
    assert PYRIGHT_OUT in os.environ, "pyright is not installed; ./dev test installs requirements-dev.txt"
    report_path = Path(os.environ[PYRIGHT_OUT])
    deadline = time.monotonic() + 600
    while not report_path.exists():
        assert time.monotonic() < deadline, "pyright did not finish within 10 minutes"
        time.sleep(0.5)
    text = report_path.read_text()
    report = json.loads(text[text.index("{"):])
    assert report["summary"]["filesAnalyzed"] >= len(_program_files()) + 1, report["summary"]
    return report["generalDiagnostics"]


def _program_files() -> list[Path]:
    files = [p for entry in CONFIG["include"] for p in
             ((ROOT / entry).rglob("*.py") if (ROOT / entry).is_dir() else [ROOT / entry])]
    return [p for p in files if "venv" not in p.relative_to(ROOT).parts]


def _where(d: dict) -> str:
    return f"{Path(d['file']).relative_to(ROOT)}:{d['range']['start']['line'] + 1}"


def test_program_has_no_type_errors(diagnostics):
    errors = [d for d in diagnostics if Path(d["file"]) != CANARY and d["severity"] == "error"]
    assert not errors, "pyright (pyrightconfig.json):\n" + "\n".join(
        f"{_where(d)} {d.get('rule', '')}: {d['message']}" for d in errors)


def test_pyright_catches_the_canary_mistakes(diagnostics):
    expected = {(i, m.group(1)) for i, line in enumerate(CANARY.read_text().splitlines(), 1)
                if (m := re.search(r"# expect: (\w+)", line))}
    found = {(d["range"]["start"]["line"] + 1, d.get("rule")) for d in diagnostics if Path(d["file"]) == CANARY}
    assert len(expected) == 4 and found == expected


def test_policy_options_without_timeouts_are_what_the_engine_sends():
    # pulumi_policy/policy.py, _get_resource_options: a resource without customTimeouts reaches a
    # policy as PolicyCustomTimeouts(0, 0, 0), never None (pyright: the SDK's type is not Optional)
    timeouts = _options({"urn": "urn:pulumi:prod::p::aws:s3/bucket:Bucket::b"}).custom_timeouts
    assert (timeouts.create_seconds, timeouts.update_seconds, timeouts.delete_seconds) == (0, 0, 0)


def test_an_ipv6_database_client_is_a_settings_error_not_a_crash():
    # ipaddress: subnet_of across IP versions raises TypeError (found by pyright); a VPC's primary
    # CIDR is IPv4 (Amazon VPC User Guide, "VPC CIDR blocks"), so an IPv6 client is never inside it
    with pytest.raises(settings.SettingsError) as error:
        settings.validate(config_with("prod", {"postgres.allowedCidrs.primary": ["fd00:40::/64"]}))
    assert any("postgres.allowedCidrs.primary.0: outside network.primary.vpcCidr" in p and "fd00:40::/64" in p
               for p in error.value.problems), error.value.problems
