"""checkov (Bridgecrew/Prisma, its own tool environment .tools/checkov) scans every manifest synth
writes for both stacks - our own objects and every object the Helm releases render - and finds
nothing but the reviewed skips in tests/checkov-skips.yaml, each with its reason.

One checkov run covers both stacks and a canary: a copy of a real workload made privileged and
unpinned, which must fail, so a scanner that silently checks nothing cannot pass this test.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from synth import export
from tests.conftest import ROOT, STACKS, rendered, synthesized
from tests.tools import require_tool

CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
# Kinds checkov's Kubernetes checks look at (it has none for NetworkPolicy, ConfigMap, Service...).
SCANNED_KINDS = ("StatefulSet", "CronJob", "Deployment", "Job", "Role", "RoleBinding", "ServiceAccount", "Secret")
SKIPS = yaml.safe_load((ROOT / "tests" / "checkov-skips.yaml").read_text())["skips"]


def canary(directory: Path) -> None:
    """The Redis StatefulSet, privileged and on :latest (CKV_K8S_16, CKV_K8S_14)."""
    [redis] = [o for o in export.kubernetes_objects(synthesized("prod"))
               if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "redis"]
    broken = copy.deepcopy(redis)
    broken["metadata"]["name"] = "canary"
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "redis:latest"
    container["securityContext"]["privileged"] = True
    directory.mkdir()
    (directory / "cache_StatefulSet_canary.yaml").write_text(yaml.safe_dump(broken))


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("checkov")
    for stack in STACKS:
        synthesis = synthesized(stack)
        export.write(synthesis, root / stack, export.to_export(synthesis), rendered(stack))
    canary(root / "canary")
    done = subprocess.run(
        [require_tool(str(CHECKOV)), "-d", str(root), "--framework", "kubernetes", "-o", "json", "--compact",
         "--skip-download"],  # offline: no guideline download from the vendor's API
        capture_output=True, text=True, timeout=300, env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"})
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    [report] = report if isinstance(report, list) else [report]
    assert report["summary"]["parsing_errors"] == 0
    return report


def _where(check: dict) -> str:
    return check["file_path"].lstrip("/").split("/", 1)[0]  # stage | prod | canary


def _skip_for(check: dict) -> dict | None:
    return next((s for s in SKIPS if s["check"] == check["check_id"]
                 and any(fnmatch.fnmatchcase(check["resource"], r) for r in s["resources"])), None)


def test_every_manifest_and_every_rendered_object_is_scanned(scan):
    scanned = {(_where(c), c["resource"]) for c in scan["results"]["passed_checks"] + scan["results"]["failed_checks"]}
    for stack in STACKS:
        ours = {(stack, f"{o['kind']}.{o['metadata'].get('namespace', 'default')}.{o['metadata']['name']}")
                for o in export.every_cluster_objects(synthesized(stack))
                if o["kind"] in SCANNED_KINDS}
        theirs = {(stack, f"{e['inputs']['kind']}.{e['inputs']['metadata']['namespace']}.{e['inputs']['metadata']['name']}")
                  for e in rendered(stack) if e["inputs"]["kind"] in SCANNED_KINDS}
        assert ours and theirs
        assert ours <= scanned and theirs <= scanned, sorted((ours | theirs) - scanned)


def test_nothing_fails_but_the_reviewed_skips(scan):
    unexplained = [f"{_where(c)}: {c['check_id']} {c['check_name']} on {c['resource']}"
                   for c in scan["results"]["failed_checks"] if _where(c) != "canary" and _skip_for(c) is None]
    assert unexplained == []


def test_every_skip_has_a_reason_and_still_matches_a_finding(scan):
    findings = [c for c in scan["results"]["failed_checks"] if _where(c) != "canary"]
    for skip in SKIPS:
        assert len(skip["reason"]) > 40, skip["check"]
        used = {r for r in skip["resources"] for c in findings
                if c["check_id"] == skip["check"] and fnmatch.fnmatchcase(c["resource"], r)}
        assert used == set(skip["resources"]), f"{skip['check']}: no finding left for {set(skip['resources']) - used}"


def test_the_scanner_fails_a_privileged_unpinned_workload(scan):
    failed = {c["check_id"] for c in scan["results"]["failed_checks"] if _where(c) == "canary"}
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= failed  # privileged; image tag :latest
