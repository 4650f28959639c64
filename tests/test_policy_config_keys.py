"""Policy messages name the stack config key that fixes them, and a repeated advisory prints once
in the synth summary (issue 25: "the policy pack's messages name the config key to change; an
advisory repeated over many resources prints once with a count (the list on request)")."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from functools import reduce

import pytest
import yaml

from policy.guardrails import config_keys, kubernetes
from synth import export, policy_runner
from tests.conftest import ROOT, STACKS, synthesized


def reference_keys() -> set[str]:
    """The keys of the generated configuration reference (docs/configuration.md, from settings/)."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))


def test_every_key_the_pack_names_is_a_real_stack_setting():
    assert config_keys.named() - reference_keys() == set()


@pytest.mark.parametrize("stack", STACKS)
def test_each_image_key_maps_back_from_the_image_it_holds(stack):
    """The repository table is checked against the stack files: the value of each image key, read
    from Pulumi.<stack>.yaml, resolves to that very key."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    for key in set(config_keys.IMAGE_KEYS.values()):
        top, *rest = key.split(".")
        image = reduce(lambda node, part: node[part], rest, config[f"{config_keys.PROJECT}:{top}"])
        assert config_keys.image_key(image) == key, (key, image)


@pytest.mark.parametrize("stack", STACKS)
def test_every_image_the_stacks_deploy_has_a_key(stack):
    document = export.to_export(synthesized(stack), show_secrets=True)
    images = {image for e in document["deployment"]["resources"]
              if e["type"] in (*kubernetes.WORKLOADS, kubernetes.RELEASE)
              for _, image in kubernetes._workload_images(e["inputs"], e["type"])}
    assert images and {i for i in images if config_keys.image_key(i) is None} == set()


def test_every_image_advisory_names_its_key():
    report = policy_runner.evaluate(export.to_export(synthesized("prod"), show_secrets=True), "prod")
    # the images no offline source can verify stay advisory (k8s-image-digest-unverified)
    images = [f.message for policy, f in report.advisory_violations if policy == "k8s-image-digest-unverified"]
    assert images and all(f" Stack config: {config_keys.PROJECT}:" in m for m in images)


def test_a_broken_database_setting_names_the_key_that_fixes_it():
    document = export.to_export(synthesized("prod"), show_secrets=True)
    broken = copy.deepcopy(document)
    [primary] = [e for e in broken["deployment"]["resources"] if e["urn"].endswith("::intelgraph-pg-primary")
                 and e["type"] == "aws:rds/instance:Instance"]
    primary["inputs"] |= {"multiAz": False, "backupRetentionPeriod": 1}
    messages = [f.message for _, f in policy_runner.evaluate(broken, "prod").mandatory_violations]
    assert "Set multiAz: true. Stack config: intelgraph-platform:postgres.multiAz." in messages
    assert any(m.endswith("Stack config: intelgraph-platform:postgres.backupRetentionDays.") for m in messages)


def test_a_repeated_advisory_prints_once_with_a_count_and_all_with_verbose(tmp_path):
    """prod snapshots each of its five Neo4j servers with the same tag-pinned kubectl image: one
    line says so, with the count and the key; --verbose lists every one."""
    def run(*flags: str) -> list[str]:
        result = subprocess.run([sys.executable, "-m", "synth", "--stack", "prod", "--out", str(tmp_path), *flags],
                                cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        return [line for line in result.stdout.splitlines()
                if line.startswith("  [advisory] k8s-image-digest-unverified")]

    grouped, each = run(), run("--verbose")
    kubectl = [line for line in grouped if "neo4j.volumeSnapshots.kubectlImage." in line]
    assert len(kubectl) == 1 and re.search(r"k8s-image-digest-unverified x\d+ \(", kubectl[0])
    assert "--verbose lists each" in kubectl[0]
    count = int(re.search(r" x(\d+) ", kubectl[0]).group(1))
    assert len([line for line in each if "neo4j.volumeSnapshots.kubectlImage." in line]) == count > 1
    assert len(grouped) < len(each)
