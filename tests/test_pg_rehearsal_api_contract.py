"""Every RDS API parameter the PITR rehearsal runbook sends exists in the botocore service model it
runs with (issue 24 item 1: BackupRetentionPeriod on RestoreDBInstanceToPointInTime exists only in
botocore releases of 2026; an older boto3 refuses the call before it is sent, on every run).

The model is read with botocore's own loader (botocore.loaders: the rds "service-2" model, each
operation's input shape and its members), for the botocore that requirements.txt pins - the one
these tests ran against and the one the job must import (docs/decisions/016). The job's image is
built from images/pg-restore-rehearsal (the same pins and their whole closure, installed with
--no-deps), the CronJob tells the runbook the pin, and the runbook exits 2 under any other
botocore, before its first call."""

from __future__ import annotations

import ast
import importlib.metadata
import re

import boto3
import botocore
import botocore.loaders
import pytest
from packaging.requirements import Requirement

from components import pg_restore_rehearsal as component
from ops import pg_restore_rehearsal as runbook
from ops._common import PINNED_BOTOCORE_ENV
from synth.export import kubernetes_objects
from tests.conftest import ROOT, STACKS, synthesized

RUNBOOK = ROOT / "ops" / "pg_restore_rehearsal.py"


def pinned(package: str) -> str:
    [version] = re.findall(rf"^{package}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    return version


def rds_calls(source: str) -> list[tuple[str, set[str]]]:
    """(method, keyword names) of every call on a client named ``rds``; ** unpacking of a dict
    literal counts its keys, anything else fails (the test must see every parameter)."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "rds":
            names: set[str] = set()
            for kw in node.keywords:
                if kw.arg is not None:
                    names.add(kw.arg)
                    continue
                assert isinstance(kw.value, ast.Name), f"line {node.lineno}: **{ast.unparse(kw.value)} hides parameters"
                names |= unpacked_keys(source, kw.value.id)
            calls.append((node.func.attr, names))
    return calls


def unpacked_keys(source: str, variable: str) -> set[str]:
    """The keys ``variable`` may hold: of every dict literal assigned to it, or, when it is assigned
    the result of a function of the same module, of every dict literal that function returns."""
    tree = ast.parse(source)
    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets):
            values = [node.value]
            if isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name) \
                    and node.value.func.id in functions:
                values = [r.value for r in ast.walk(functions[node.value.func.id])
                          if isinstance(r, ast.Return) and r.value is not None]
            for value in values:
                for d in ast.walk(value):
                    if isinstance(d, ast.Dict):
                        keys |= {k.value for k in d.keys if isinstance(k, ast.Constant)}
    assert keys, f"{variable}: no dict literal found"
    return keys


def test_the_suite_runs_the_pinned_botocore():
    assert (boto3.__version__, botocore.__version__) == (pinned("boto3"), pinned("botocore"))


def test_the_call_reader_sees_keywords_and_unpacked_dicts():
    source = 'when = {"A": 1} if x else {"B": 2}\nrds.op(C=1, **when)\n'
    assert rds_calls(source) == [("op", {"A", "B", "C"})]
    with pytest.raises(AssertionError):
        rds_calls("rds.op(**make())\n")


def test_every_parameter_the_rehearsal_sends_exists_in_the_pinned_rds_model():
    model = botocore.loaders.create_loader().load_service_model("rds", "service-2")
    client = boto3.client("rds", region_name="us-east-1")
    operations = client.meta.method_to_api_mapping
    calls = [(m, names) for m, names in rds_calls(RUNBOOK.read_text()) if m in operations]
    sent = {m for m, _ in calls}
    assert {"restore_db_instance_to_point_in_time", "describe_db_instances", "delete_db_instance"} <= sent
    for method, names in calls:
        operation = model["operations"][operations[method]]
        members = set(model["shapes"][operation["input"]["shape"]]["members"])
        assert names <= members, f"{operations[method]} has no {sorted(names - members)} in botocore {botocore.__version__}"
    [(_, restore)] = [c for c in calls if c[0] == "restore_db_instance_to_point_in_time"]
    assert "BackupRetentionPeriod" in restore  # the parameter issue 24 names is among those checked


IMAGE = ROOT / "images" / "pg-restore-rehearsal"


def image_pins() -> dict[str, str]:
    lines = [line for line in (IMAGE / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("==") for line in lines)


def test_the_job_image_installs_the_pins_and_their_whole_closure():
    pins = image_pins()
    assert (pins["boto3"], pins["botocore"]) == (pinned("boto3"), pinned("botocore"))
    # every pin is the version this suite runs with, and every dependency of a pinned package is
    # pinned too (importlib.metadata: the installed distributions' Requires-Dist), so --no-deps misses none
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name
        for requirement in map(Requirement, importlib.metadata.requires(name) or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                assert requirement.name in pins, f"{name} needs {requirement.name}, which the image does not pin"
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.12-slim@sha256:[0-9a-f]{64}$", dockerfile, re.M)  # by digest
    assert "pip install --no-cache-dir --no-deps -r /tmp/requirements.txt" in dockerfile


@pytest.mark.parametrize("stack", STACKS)
def test_the_job_tells_the_runbook_the_pinned_botocore(stack):
    # the rehearsal runs in the DR cluster (docs/decisions/018-active-region-is-state.md)
    [job] = [o for o in kubernetes_objects(synthesized(stack), "dr")
             if o["kind"] == "CronJob" and o["metadata"]["name"] == component.JOB]
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[PINNED_BOTOCORE_ENV] == pinned("botocore") == botocore.__version__


def test_the_runbook_refuses_another_botocore_before_any_call(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(PINNED_BOTOCORE_ENV, "1.40.0")
    monkeypatch.setattr(runbook, "rehearse", lambda *a, **k: pytest.fail("must not reach AWS"))
    assert runbook.main(["--outputs", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert f"botocore {botocore.__version__}" in err and "is not the pinned 1.40.0" in err
    runbook.check_botocore(botocore.__version__)  # the pin itself passes
    runbook.check_botocore(None)  # an operator's own run outside the job: not asked
