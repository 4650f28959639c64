"""synth, end to end through its command line: artifacts, export format, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT


def synth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synth", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


# -X importtime writes one line per module the process imports to stderr (Python docs, command line
# "-X importtime"): the prod run below lists what the program imported, and its stderr is the rest.
IMPORT_TIME = "import time:"


@pytest.fixture(scope="module")
def prod_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, list[str]]:
    out = tmp_path_factory.mktemp("prod")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "synth", "--stack", "prod", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = result.stderr.splitlines()
    imported = [line.rsplit("|", 1)[1].strip() for line in lines if line.startswith(IMPORT_TIME)]
    result.stderr = "".join(f"{line}\n" for line in lines if not line.startswith(IMPORT_TIME))
    return result, out, imported


@pytest.fixture(scope="module")
def prod_out(prod_run) -> tuple[subprocess.CompletedProcess, Path]:
    result, out, _ = prod_run
    return result, out


def test_prod_synth_exits_clean_and_writes_the_three_artifacts(prod_out):
    result, out = prod_out
    assert result.returncode == 0, result.stderr
    assert (out / "stack.json").is_file() and (out / "policy-report.json").is_file()
    assert (out / "manifests").is_dir()
    assert "Resources per component:" in result.stdout
    assert "BackupBucket neo4j-backups" in result.stdout
    assert "0 mandatory" in result.stdout


def test_the_program_imports_neither_boto3_nor_botocore(prod_run):
    """Issue 24 item 11: synth must cost at most 1.2x its floor, the SDKs' imports plus the same
    resources registered, so the program's own imports are its cost, and boto3 is not an SDK the
    floor imports (benchmarks/__main__.py ``FLOOR_PACKAGES``). The program takes names, IAM actions
    and documents from ops/ (the runbooks' modules), never an AWS client: a module-level
    ``import boto3`` (or botocore) in any module it imports fails here."""
    result, _, imported = prod_run
    assert result.returncode == 0, result.stderr
    assert {"synth.engine", "pulumi_aws", "ops._common", "ops.oncall"} <= set(imported)  # the run's own list
    assert [name for name in imported if name.split(".")[0] in ("boto3", "botocore")] == []


def test_each_manifest_file_is_exactly_its_object_dumped_alone(prod_out):
    """synth writes every manifest from one YAML emitter, cut where each document ends
    (synth/export.py _manifest_texts): each file must be what dumping its object alone writes, and
    hold exactly its object for strings that look like document markers or end a document open
    (a lone dump then adds the "..." end marker: PyYAML emitter.py open_ended; not needed at the
    end of a file) or end in a line separator, after which libyaml writes the next "---" on the
    same line."""
    from synth import export

    _, out = prod_out
    files = sorted((out / "manifests").rglob("*.yaml"))
    objects = [yaml.safe_load(path.read_text()) for path in files]
    tricky = [{"kind": "ConfigMap", "metadata": {"name": "x"},
               "data": {"a": "---", "b": "one\n---\ntwo\n", "c": "--- x", "d": "\n---", "e": "kept\n\n"}},
              {"kind": "ConfigMap", "metadata": {"name": "y"}, "data": {"f": "line\u2028", "g": "p\u2029"}},
              {"kind": "ConfigMap", "metadata": {"name": "z"}}]
    texts = export._manifest_texts([*objects, *tricky])
    alone = [yaml.dump(obj, Dumper=export._ManifestDumper, sort_keys=False, allow_unicode=True)
             for obj in [*objects, *tricky]]
    assert len(files) > 200 and texts[:len(files)] == alone[:len(files)]
    assert [path.read_text() for path in files] == alone[:len(files)]
    for obj, text, lone in zip(tricky, texts[len(files):], alone[len(files):], strict=True):
        assert yaml.safe_load(text) == obj and text in (lone, lone.removesuffix("...\n"))


def test_two_objects_that_would_share_a_manifest_file_are_refused_before_anything_is_written(tmp_path):
    # the file name leaves out apiVersion: a second object of the same kind and name would replace the first
    from synth import engine, export

    synthesis = engine.synthesize("stage")
    config_map = next(r for r in synthesis.resources if r.type == "kubernetes:core/v1:ConfigMap")
    twin = engine.Resource(urn=config_map.urn + "-twin", type="kubernetes:core/v1:ConfigMap", name="twin",
                           custom=True, provider=config_map.provider, inputs={**config_map.inputs, "apiVersion": "v2"},
                           outputs=config_map.outputs)
    synthesis.resources.append(twin)
    with pytest.raises(ValueError, match="would both be written to"):
        export.write(synthesis, tmp_path, export.to_export(synthesis))
    assert not list(tmp_path.iterdir())  # neither manifests nor stack.json


def test_a_second_synth_into_the_same_directory_leaves_no_manifest_of_the_first(tmp_path):
    """Manifests are the stack's objects now: one the stack no longer has must not linger from an
    earlier synth into the same directory (in either cluster's folder), and the rest are rewritten."""
    from synth import engine, export

    synthesis = engine.synthesize("stage")
    document = export.to_export(synthesis)
    for folder in (tmp_path / "manifests", tmp_path / "manifests" / "dr"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gone_ConfigMap_removed-since.yaml").write_text("kind: ConfigMap\n")
    first = export.write(synthesis, tmp_path, document)
    first[0].write_text("edited by hand\n")
    written = export.write(synthesis, tmp_path, document)
    assert sorted(tmp_path.joinpath("manifests").rglob("*.yaml")) == sorted(written) == sorted(first)
    assert first[0].read_text() != "edited by hand\n"


def test_stack_json_is_a_v3_stack_export(prod_out):
    _, out = prod_out
    export = json.loads((out / "stack.json").read_text())
    assert export["version"] == 3
    resources = export["deployment"]["resources"]
    assert resources[0]["type"] == "pulumi:pulumi:Stack"
    seen = set()
    for r in resources:
        assert {"urn", "type", "custom", "inputs", "outputs"} <= r.keys()
        assert r["urn"].startswith("urn:pulumi:prod::intelgraph-platform::")
        # a checkpoint lists parents and providers before the resources that use them
        for needed in [r.get("parent"), (r.get("provider") or "").rsplit("::", 1)[0]]:
            assert not needed or needed in seen, f"{r['urn']} before {needed}"
        seen.add(r["urn"])
        if r["custom"]:
            assert r["id"]
    # inputs as the engine sees them: camelCase
    versioning = next(r for r in resources if r["type"].endswith(":BucketVersioning"))
    assert "versioningConfiguration" in versioning["inputs"]


def test_policy_report_lists_every_rule(prod_out):
    from policy.guardrails import POLICIES

    _, out = prod_out
    report = json.loads((out / "policy-report.json").read_text())
    assert {p["policy"] for p in report["policies"]} == {p.name for p in POLICIES}
    assert report["summary"]["mandatoryViolations"] == 0
    assert all(p["level"] in ("mandatory", "advisory") for p in report["policies"])


def test_check_accepts_our_own_export(prod_out):
    _, out = prod_out
    result = synth("check", str(out / "stack.json"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_a_weakened_export_and_names_resource_and_fix(prod_out, tmp_path):
    _, out = prod_out
    export = json.loads((out / "stack.json").read_text())
    block = next(r for r in export["deployment"]["resources"]
                 if r["urn"].endswith("::logs-backups-public-access"))
    block["inputs"]["restrictPublicBuckets"] = False
    weakened = tmp_path / "weakened.json"
    weakened.write_text(json.dumps(export))
    result = synth("check", str(weakened))
    assert result.returncode == 1
    assert "logs-backups-public-access" in result.stdout
    assert "Set restrictPublicBuckets to true" in result.stdout


def test_check_rejects_a_file_that_is_not_an_export(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    result = synth("check", str(tmp_path / "x.json"))
    assert result.returncode == 2 and "pulumi stack export" in result.stderr


@pytest.mark.parametrize("key,value,words", [
    ("redis", {"replicas": "three"}, "intelgraph-platform:redis.replicas"),  # wrong type
    ("redis", {"maxmemoryPolcy": "allkeys-lru"}, "intelgraph-platform:redis.maxmemoryPolcy: unknown key"),
    ("neo4j", {"primaries": 42}, "intelgraph-platform:neo4j.primaries"),  # out of range
])
def test_bad_stack_file_exits_2_naming_the_key(tmp_path, key, value, words):
    document = yaml.safe_load((ROOT / "Pulumi.stage.yaml").read_text())
    document["config"][f"intelgraph-platform:{key}"].update(value)
    stack_file = tmp_path / "Pulumi.stage.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    result = synth("--stack", "stage", "--stack-file", str(stack_file), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert words in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written for a stack that cannot exist


def test_unknown_stack_exits_2():
    result = synth("--stack", "qa")
    assert result.returncode == 2 and "known stacks: prod, stage" in result.stderr


def test_two_resources_with_one_urn_are_refused_as_the_engine_would():
    import pulumi_random as random

    from synth import engine

    def program():
        random.RandomId("same", byte_length=4)
        random.RandomId("same", byte_length=4)

    with pytest.raises(Exception, match="duplicate resource URN"):
        engine.synthesize("prod", program=program)


def test_aws_resources_without_an_explicit_provider_are_refused():
    import pulumi_aws as aws

    from synth import engine

    with pytest.raises(Exception, match="has no explicit provider"):
        engine.synthesize("prod", program=lambda: aws.sns.Topic("orphan"))


@pytest.mark.parametrize("content,words", [
    ("[1, 2]", "no deployment.resources list"),
    ('{"deployment": {"resources": [{"type": "aws:s3/bucket:Bucket"}]}}', "resources[0] has no urn and type"),
    ("{not json", "Expecting property name"),
])
def test_check_rejects_damaged_exports_with_a_clear_error(tmp_path, content, words):
    (tmp_path / "x.json").write_text(content)
    result = synth("check", str(tmp_path / "x.json"))
    assert result.returncode == 2 and words in result.stderr


def test_check_with_a_stack_that_has_no_policy_config_exits_2(prod_out):
    _, out = prod_out
    result = synth("check", str(out / "stack.json"), "--stack", "qa")
    assert result.returncode == 2 and "no policy config policy/config/qa.json" in result.stderr
