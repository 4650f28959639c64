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
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import settings
from synth.policy_runner import _options
from tests.conftest import ROOT, config_with

CANARY = Path(__file__).with_name("types_canary.py")
CONFIG = json.loads((ROOT / "pyrightconfig.json").read_text())


def _start_pyright():
    """Started when this module is collected: pyright (20-60 s on this machine) checks while the
    rest of the suite runs, instead of after it."""
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    if not pyright or not shutil.which("node"):
        return None
    out = tempfile.TemporaryFile()
    # the program (the config's include) plus the canary; --outputjson: no version check online
    proc = subprocess.Popen([pyright, "--outputjson", *CONFIG["include"], str(CANARY.relative_to(ROOT))],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    atexit.register(proc.kill)
    return proc, out


RUN = _start_pyright()


@pytest.fixture(scope="module")
def diagnostics() -> list[dict]:
    assert shutil.which("node"), "node is not installed; pyright runs on it (./dev installs npm and node's tools)"
    assert RUN, "pyright is not installed; ./dev test installs requirements-dev.txt"
    proc, out = RUN
    proc.wait(timeout=600)
    out.seek(0)
    text = out.read().decode()
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
    assert any("postgres.allowedCidrs.primary.0 fd00:40::/64 is outside network.primary.vpcCidr" in p
               for p in error.value.problems), error.value.problems
