"""Neo4j volume snapshots: an EBS CSI VolumeSnapshotClass that retains, a CronJob that snapshots
every server's data volume and expires old ones - every object validated strictly against the
external-snapshotter CRDs the cluster serves (../shared/crds). (No per-server restore path: a
snapshot under one member of the running cluster loses acknowledged writes, see
tests/test_neo4j_restore_docs.py.)

Facts: the chart names each server's data claim from its StatefulSet (the release, one replica)
and the claim template `data` (templates/_volumeTemplate.tpl); a VolumeSnapshot's class decides
what happens to the EBS snapshot when the snapshot object goes (external-snapshotter:
deletionPolicy Retain keeps VolumeSnapshotContent and the physical snapshot; a content's
deletionPolicy may be changed later, Delete then removes both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

import settings
from components.neo4j_snapshots import SCRIPT, data_claim
from synth import engine, helm
from synth.export import kubernetes_objects
from tests.conftest import synthesized
from tests.test_neo4j_backup_alerts import RULE, expected, promtool_test

CRDS = Path(__file__).resolve().parent.parent.parent / "shared" / "crds" / "external-snapshotter"


def strict(schema: dict) -> dict:
    """The served schema as `kubectl --validate=strict` applies it: unknown fields are errors
    wherever the schema lists properties and does not preserve unknown fields."""
    schema = dict(schema)
    if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema["additionalProperties"] = False
    for key in ("properties",):
        if key in schema:
            schema[key] = {k: strict(v) for k, v in schema[key].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = strict(schema["items"])
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            schema[key] = [strict(s) for s in schema[key]]
    return schema


def validate_custom(obj: dict) -> None:
    group, version = obj["apiVersion"].split("/")
    plural = {"VolumeSnapshotClass": "volumesnapshotclasses", "VolumeSnapshot": "volumesnapshots"}[obj["kind"]]
    crd = yaml.safe_load((CRDS / f"{group}_{plural}.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == obj["kind"]
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    if not served:
        raise ValueError(f"{obj['apiVersion']} {obj['kind']} is not served by the CRD")
    served = served[0]
    jsonschema.validate(obj, strict(served["schema"]["openAPIV3Schema"]))


def objects(stack: str) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in kubernetes_objects(synthesized(stack))}


def test_the_strict_crd_validation_rejects_what_the_api_server_would():
    good = {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": "x"}, "driver": "ebs.csi.aws.com", "deletionPolicy": "Retain"}
    validate_custom(good)
    for broken in ({**good, "deletionPolicy": "Keep"}, {**good, "parameter": {}},
                   {k: v for k, v in good.items() if k != "driver"}):
        with pytest.raises(jsonschema.ValidationError):
            validate_custom(broken)
    snapshot = {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "s"},
                "spec": {"source": {"persistentVolumeClaimName": "data-x-0", "pvcName": "typo"}}}
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(snapshot)
    with pytest.raises(ValueError):  # v1beta1 is no longer served by these CRDs
        validate_custom({**good, "apiVersion": "snapshot.storage.k8s.io/v1beta1"})


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_snapshot_class_is_the_ebs_csi_driver_and_retains(stack):
    cls = objects(stack)[("VolumeSnapshotClass", "graph-ebs-retain")]
    validate_custom(cls)
    assert cls["driver"] == "ebs.csi.aws.com" and cls["deletionPolicy"] == "Retain"


def test_every_servers_data_volume_is_snapshotted_by_the_claim_name_the_chart_creates():
    """Chain: the claims in the CronJob are the claims the real chart renders, for every server."""
    synthesis = synthesized("prod")
    job = objects("prod")[("CronJob", "graph-volume-snapshots")]
    env = {e["name"]: e.get("value") for e in job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    rendered = set()
    for release in synthesis.of_type("kubernetes:helm.sh/v3:Release"):
        inputs = release.inputs
        [statefulset] = [d for d in helm.render(inputs["name"], inputs["namespace"], "neo4j", inputs["values"])
                         if d and d["kind"] == "StatefulSet"]
        assert statefulset["spec"]["replicas"] == 1
        [template] = statefulset["spec"]["volumeClaimTemplates"]
        rendered.add(f"{template['metadata']['name']}-{statefulset['metadata']['name']}-0")
    assert len(rendered) == 5 and set(env["CLAIMS"].split()) == rendered
    assert env["SNAPSHOT_CLASS"] == "graph-ebs-retain" and env["RETAIN"] == "14"
    # every claim's snapshot is waited for at once, within one wait sized from EBS (a first snapshot is a
    # full copy taking hours): as long as the 6-hourly schedule allows, ending before the next run is due
    wait = int(env["READY_TIMEOUT"].removesuffix("s"))
    deadline = job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid" and job["spec"]["schedule"] == "30 */6 * * *"
    assert 5 * 3600 < wait < deadline < 6 * 3600, (wait, deadline)
    assert env["ERROR_GRACE"] == "300"


FAKE_KUBECTL = r"""
# kubectl as the snapshot job uses it, over a world of claims ($WORLD/pvc/NAME, holding the phase),
# StatefulSets ($WORLD/sts/NAME) and VolumeSnapshots ($WORLD/snapshots/NAME.json). $WORLD/forbidden
# makes every call fail as an API server refusing the service account would. A snapshot's status
# answers as the snapshot controller fills it (external-snapshotter VolumeSnapshotStatus): it is cut
# (creationTime) after $WORLD/cut-after polls and readyToUse after $WORLD/ready-after polls, unless
# $WORLD/never-ready; a
# snapshot of a claim listed in $WORLD/error-claims carries status.error (cleared after
# $WORLD/error-polls polls when that file exists: the controller's retry succeeded). Anything else
# it is asked is an error.
import json, os, sys
from pathlib import Path
import yaml

world, args = Path(os.environ["WORLD"]), sys.argv[1:]
with (world / "calls.log").open("a") as log:
    log.write(" ".join(args) + "\n")
if (world / "forbidden").exists():
    sys.exit('Error from server (Forbidden): User "system:serviceaccount:graph:x" cannot get resource')
assert args[:2] == ["-n", "graph"] or args[0] == "patch", args
verb, rest = (args[2], args[3:]) if args[0] == "-n" else (args[0], args[1:])
where = {"persistentvolumeclaim": "pvc", "statefulset": "sts", "volumesnapshot": "snapshots"}
LISTING = ('jsonpath={range .items[*]}{.metadata.creationTimestamp}{"|"}{.metadata.name}{"|"}'
           '{.status.readyToUse}{"|"}{.status.boundVolumeSnapshotContentName}{"\\n"}{end}')


def path(kind, name):
    return world / where[kind] / (f"{name}.json" if kind == "volumesnapshot" else name)


def number(flag, default):
    return int((world / flag).read_text()) if (world / flag).exists() else default


def status(name):
    # one poll of a snapshot: how far the controller has got
    snap = json.loads(path("volumesnapshot", name).read_text())
    snap["polls"] = polls = snap.get("polls", 0) + 1
    error = snap.get("error", "")
    if error and polls > number("error-polls", 10**9):
        error = ""
    cut = snap.get("ready") or not (world / "never-ready").exists() and not error and polls > number("cut-after", 0)
    snap["ready"] = ready = snap.get("ready") or cut and polls > number("ready-after", 0)
    path("volumesnapshot", name).write_text(json.dumps(snap))
    return ("2026-12-01T18:00:00Z" if cut else ""), ("true" if ready else "false" if cut else ""), error


if verb == "get" and rest[0] in where and rest[1] != "-l":
    kind, name, output = rest[0], rest[1], rest[2:]
    exists = path(kind, name).exists()
    if output == ["--ignore-not-found", "-o", "name"]:
        if exists:
            print(f"{kind}/{name}")
    elif not exists:
        sys.exit(f'Error from server (NotFound): {kind}s "{name}" not found')
    elif output == ["-o", "name"]:
        print(f"{kind}/{name}")
    elif kind == "persistentvolumeclaim" and output == ["-o", "jsonpath={.status.phase}"]:
        print(path(kind, name).read_text() or "Bound", end="")
    elif kind == "volumesnapshot" and output == ["-o", 'jsonpath={.status.readyToUse}{"|"}{.status.error.message}']:
        _, ready, error = status(name)
        print(f"{ready}|{error}", end="")
    elif kind == "volumesnapshot" and output == ["-o", 'jsonpath={.status.creationTime}{"|"}{.status.error.message}']:
        created, _, error = status(name)
        print(f"{created}|{error}", end="")
    elif kind == "volumesnapshot" and output == ["-o", "jsonpath={.status.error.message}"]:
        print(json.loads(path(kind, name).read_text()).get("error", ""), end="")
    else:
        sys.exit(f"unexpected get: {args}")
elif verb == "create" and rest == ["-f", "-"]:
    text = sys.stdin.read()
    obj = yaml.safe_load(text)
    name = obj["metadata"]["name"]
    if path("volumesnapshot", name).exists():
        sys.exit(f'Error from server (AlreadyExists): volumesnapshots "{name}" already exists')
    (world / f"created-{name}.yaml").write_text(text)
    claim = obj["spec"]["source"]["persistentVolumeClaimName"]
    erring = (world / "error-claims").exists() and claim in (world / "error-claims").read_text().split()
    path("volumesnapshot", name).write_text(json.dumps({
        "t": "2026-12-01T18:00:00Z", "name": name, "claim": claim, "ready": False,
        "kind": obj["metadata"]["labels"]["intelgraph.io/kind"], "content": f"snapcontent-{name}",
        **({"error": "Failed to check and update snapshot content: InvalidSnapshot"} if erring else {})}))
elif verb == "get" and rest[:2] == ["volumesnapshot", "-l"]:
    claim, kind = (part.split("=", 1)[1] for part in rest[2].split(","))
    assert rest[2] == f"intelgraph.io/snapshot-of={claim},intelgraph.io/kind={kind}", rest[2]
    assert rest[3:] == ["-o", LISTING], rest[3:]
    for snapshot_path in (world / "snapshots").glob("*.json"):
        snap = json.loads(snapshot_path.read_text())
        if snap["claim"] == claim and snap["kind"] == kind:
            print(f"{snap['t']}|{snap['name']}|{'true' if snap.get('ready') else 'false'}|{snap['content']}")
elif verb == "patch" and rest[0] == "volumesnapshotcontent":
    assert rest[2:5] == ["--type", "merge", "-p"], rest
    with (world / "patched.log").open("a") as out:
        out.write(f"{rest[1]} {rest[5]}\n")
elif verb == "delete" and rest[0] == "volumesnapshot":
    assert rest[2:] == ["--wait=false"], rest
    path("volumesnapshot", rest[1]).unlink()
    with (world / "deleted.log").open("a") as out:
        out.write(rest[1] + "\n")
else:
    sys.exit(f"unexpected kubectl call: {args}")
"""


def run_job(tmp_path: Path, claims: list[str], existing: dict[str, list[str]], retain: int = 1, ready: bool = True,
            claims_present: bool = True, statefulsets: tuple[str, ...] = (), kind: str = "scheduled",
            env: dict[str, str] | None = None, phase: str = "Bound", flags: tuple[str, ...] = (),
            copying: tuple[str, ...] = (), world_files: dict[str, str] | None = None):
    """The script in a world of ``claims`` (present or not), ``statefulsets`` and ``existing``
    snapshots (claim -> creation times, of ``kind``; ready unless named in ``copying``); ``env`` adds
    to or overrides the job's; ``world_files`` sets the fake's knobs (ready-after, error-claims...)."""
    world = tmp_path / "world"
    for directory in ("snapshots", "pvc", "sts"):
        (world / directory).mkdir(parents=True)
    for claim in claims if claims_present else ():
        (world / "pvc" / claim).write_text(phase)
    for flag in flags:  # forbidden, snapshot-error
        (world / flag).touch()
    if "snapshot-error" in flags:
        (world / "error-claims").write_text(" ".join(claims))
    for file, text in (world_files or {}).items():
        (world / file).write_text(text)
    for statefulset in statefulsets:
        (world / "sts" / statefulset).touch()
    for claim, stamps in existing.items():
        for stamp in stamps:
            name = f"{claim}-{stamp}"
            (world / "snapshots" / f"{name}.json").write_text(json.dumps(
                {"t": stamp, "name": name, "claim": claim, "kind": kind, "content": f"snapcontent-{name}",
                 "ready": name not in copying}))
    if not ready:
        (world / "never-ready").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kubectl").write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
    (bin_dir / "kubectl").chmod(0o755)
    job_env = {"NAMESPACE": "graph", "CLAIMS": " ".join(claims), "SNAPSHOT_CLASS": "graph-ebs-retain",
               "RETAIN": str(retain), "POLL_SECONDS": "0", "ERROR_GRACE": "0",
               # long enough for a loaded machine; the tests of a timeout set a short one
               "READY_TIMEOUT": "10m", **(env or {})}
    result = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                                        "WORLD": str(world), **job_env},
                            capture_output=True, text=True, timeout=60)
    read = lambda name: (world / name).read_text().split("\n")[:-1] if (world / name).exists() else []  # noqa: E731
    return result, world, read("deleted.log"), read("patched.log")


def test_the_job_snapshots_each_volume_and_expires_the_oldest_beyond_retention(tmp_path):
    claims = [data_claim("graph-server-1"), data_claim("graph-server-2")]
    old = ["2026-11-30T00:30:00Z", "2026-11-30T06:30:00Z", "2026-11-30T12:30:00Z"]
    result, world, deleted, patched = run_job(tmp_path, claims, {claims[0]: old, claims[1]: old[:1]}, retain=2)
    assert result.returncode == 0, result.stderr
    created = sorted(world.glob("created-*.yaml"))
    assert len(created) == 2
    for path in created:
        snapshot = yaml.safe_load(path.read_text())
        validate_custom(snapshot)  # what the job sends is what the CRD accepts
        assert snapshot["spec"]["volumeSnapshotClassName"] == "graph-ebs-retain"
        assert snapshot["metadata"]["labels"]["intelgraph.io/kind"] == "scheduled"
    # server 1 had 3 + 1 new, keeps 2: the two oldest go; server 2 had 1 + 1 new: nothing goes
    assert deleted == [f"{claims[0]}-{old[0]}", f"{claims[0]}-{old[1]}"]
    # each expired content is switched to Delete first, or the Retain class would keep the EBS snapshot
    assert patched == [f"snapcontent-{claims[0]}-{old[0]} {{\"spec\":{{\"deletionPolicy\":\"Delete\"}}}}",
                       f"snapcontent-{claims[0]}-{old[1]} {{\"spec\":{{\"deletionPolicy\":\"Delete\"}}}}"]
    calls = (world / "calls.log").read_text()
    assert calls.index(f"patch volumesnapshotcontent snapcontent-{claims[0]}-{old[0]}") < calls.index(
        f"delete volumesnapshot {claims[0]}-{old[0]}")


def test_a_snapshot_that_never_becomes_ready_expires_nothing_and_fails_the_job(tmp_path):
    claim = data_claim("graph-server-1")
    result, _, deleted, patched = run_job(tmp_path, [claim], {claim: ["2026-11-29T00:00:00Z"] * 1}, retain=1,
                                          ready=False, env={"READY_TIMEOUT": "2s", "POLL_SECONDS": "1"})
    assert result.returncode != 0 and deleted == [] and patched == []


def test_a_missing_volume_or_no_volumes_fail_the_job_before_it_creates_anything(tmp_path):
    claim = data_claim("graph-server-9")
    result, world, _, _ = run_job(tmp_path / "a", [claim], {}, retain=1)
    assert result.returncode == 0  # the claim exists in this world
    (world / "pvc" / claim).unlink()
    result, world, _, _ = run_job(tmp_path / "b", [], {}, retain=1)
    assert result.returncode != 0 and not list(world.glob("created-*"))  # CLAIMS empty: refuses
    world_b = tmp_path / "c"
    result, world, _, _ = run_job(world_b, [claim], {}, retain=1, claims_present=False)
    assert result.returncode != 0 and "NotFound" in result.stderr and not list(world.glob("created-*"))


def test_expiry_keeps_the_newest_of_each_kind_apart(tmp_path):
    """Pre-change snapshots are kept to `retain` too, counted on their own: a burst of releases
    never pushes out the scheduled ones, nor the reverse."""
    claim = data_claim("graph-server-1")
    old = ["2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z"]
    result, world, deleted, _ = run_job(tmp_path, [claim], {claim: old}, retain=2, kind="pre-change")
    assert result.returncode == 0, result.stderr
    assert deleted == [f"{claim}-{old[0]}"]  # 3 pre-change, keep 2; 1 new scheduled, keep it
    assert [json.loads(p.read_text())["kind"] for p in (world / "snapshots").glob("*.json")].count("scheduled") == 1


JOB_UID = "5f0c2a9e-1b7d-4c3e-9a55-0d6e2f4b8c71"
PRE_CHANGE = {"MODE": "pre-change", "RELEASE": "graph-server-2", "CHANGE": "e4b138b6", "JOB_UID": JOB_UID}
SERVER_2 = data_claim("graph-server-2")


def pre_change(tmp_path, **world):
    world = {"statefulsets": ("graph-server-2",), **world}
    return run_job(tmp_path, [SERVER_2], world.pop("existing", {}), env={**PRE_CHANGE, **world.pop("env", {})}, **world)


CUT_POLL = 'jsonpath={.status.creationTime}{"|"}{.status.error.message}'
READY_POLL = 'jsonpath={.status.readyToUse}{"|"}{.status.error.message}'


def test_before_a_change_the_server_is_snapshotted_and_the_job_waits_until_it_is_cut(tmp_path):
    result, world, deleted, _ = pre_change(tmp_path, world_files={"cut-after": "2"})
    assert result.returncode == 0, result.stderr
    [created] = world.glob("created-*.yaml")
    snapshot = yaml.safe_load(created.read_text())
    validate_custom(snapshot)
    name = f"{SERVER_2}-pre-e4b138b6-5f0c2a9e"
    assert snapshot["metadata"]["name"] == name
    assert snapshot["metadata"]["labels"] == {"intelgraph.io/snapshot-of": SERVER_2, "intelgraph.io/kind": "pre-change",
                                              "intelgraph.io/change": "e4b138b6"}
    calls = (world / "calls.log").read_text()
    # polled until cut (the third poll), not until EBS has copied it: readyToUse is never asked
    assert calls.count(f"get volumesnapshot {name} -o {CUT_POLL}") == 3 and "readyToUse" not in calls
    assert deleted == []  # a deploy never expires anything


def test_an_all_digit_change_is_still_a_string_label(tmp_path):
    """YAML reads an unquoted 20261201 as an integer, which a label value cannot be: about one change
    id in 43 is all digits (8 hex characters)."""
    result, world, _, _ = pre_change(tmp_path, env={"CHANGE": "20261201"})
    assert result.returncode == 0, result.stderr
    [created] = world.glob("created-*.yaml")
    snapshot = yaml.safe_load(created.read_text())
    validate_custom(snapshot)
    assert snapshot["metadata"]["labels"]["intelgraph.io/change"] == "20261201"


def test_a_retried_pod_of_the_same_job_reuses_its_snapshot(tmp_path):
    result, world, _, _ = pre_change(tmp_path, existing={SERVER_2: ["pre-e4b138b6-5f0c2a9e"]}, kind="pre-change")
    assert result.returncode == 0, result.stderr
    assert not list(world.glob("created-*")) and CUT_POLL in (world / "calls.log").read_text()


def test_a_change_back_to_earlier_values_is_a_new_job_and_a_new_snapshot(tmp_path):
    """A -> B -> A: the Job named after A comes back with a new uid; the snapshot taken before the
    first A does not hold the volume as B left it."""
    result, world, _, _ = pre_change(tmp_path, existing={SERVER_2: ["pre-e4b138b6-0a1b2c3d"]}, kind="pre-change")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in world.glob("created-*")] == [f"created-{SERVER_2}-pre-e4b138b6-5f0c2a9e.yaml"]


def test_a_server_not_created_yet_has_nothing_to_snapshot(tmp_path):
    result, world, _, _ = pre_change(tmp_path, claims_present=False, statefulsets=())
    assert result.returncode == 0, result.stderr
    assert "nothing to snapshot" in result.stdout and not list(world.glob("created-*"))


@pytest.mark.parametrize("world,words", [
    ({"claims_present": False}, "exists but its data claim"),
    ({"phase": "Pending"}, "is Pending, not Bound"),
    ({"flags": ("snapshot-error",)}, "failed: Failed to check and update snapshot content: InvalidSnapshot"),
    ({"ready": False, "env": {"READY_TIMEOUT": "2s", "POLL_SECONDS": "1"}}, "timed out"),
    # a refused call is not "not found": it must not pass for a server that does not exist yet
    ({"flags": ("forbidden",), "statefulsets": ()}, "Forbidden"),
], ids=["statefulset-without-claim", "claim-not-bound", "snapshot-error", "never-cut", "api-refuses"])
def test_what_stops_the_deploy_before_the_release_changes(tmp_path, world, words):
    result, _, _, _ = pre_change(tmp_path, **world)
    assert result.returncode != 0 and words in result.stderr, (result.stdout, result.stderr)
    assert "nothing to snapshot" not in result.stdout and "snapshotted" not in result.stdout


def test_the_snapshot_job_may_reach_only_the_kubernetes_api():
    policy = objects("prod")[("NetworkPolicy", "graph-neo4j-snapshots-api")]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"intelgraph.io/job": "graph-volume-snapshots"}
    [rule] = policy["spec"]["egress"]
    assert [p["port"] for p in rule["ports"]] == [443]
    kubernetes = settings.validate(engine.stack_config("prod")).kubernetes.primary
    assert {b["ipBlock"]["cidr"] for b in rule["to"]} == {f"{kubernetes.api_service_ip}/32", *kubernetes.api_server_cidrs}


def test_network_config_analyzer_lets_the_snapshot_job_reach_the_api_and_nothing_of_the_servers(tmp_path):
    """Judged by the real analyzer over the stack's policies and the CronJob's own pod labels."""
    from tests.test_neo4j_flows import JOB, nca, to_servers

    kubernetes = settings.validate(engine.stack_config("prod")).kubernetes.primary
    source = {JOB: "graph-volume-snapshots"}
    api = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"snapshots-api-{i}", "namespace": "graph"},
            "spec": {"podSelector": {"matchLabels": source}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"protocol": "TCP", "port": 443}]}]}}
           for i, cidr in enumerate([f"{kubernetes.api_service_ip}/32", *kubernetes.api_server_cidrs])]
    for sub in ("permits", "forbids", "internet"):
        (tmp_path / sub).mkdir()
    permitted = nca(tmp_path / "permits", "permits", api)
    assert permitted.returncode == 0, permitted.stdout + permitted.stderr
    # and not the internet: the same question for another address is refused
    internet = [{**api[0], "spec": {**api[0]["spec"], "egress": [
        {"to": [{"ipBlock": {"cidr": "8.8.8.8/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}]}}]
    assert nca(tmp_path / "internet", "permits", internet).returncode != 0
    forbidden = nca(tmp_path / "forbids", "forbids", [to_servers("snapshots-never-reach-servers", source,
                                                                 (6362, 7687, 5000, 6000, 7000, 7688))])
    assert forbidden.returncode == 0, forbidden.stdout + forbidden.stderr


# --- scheduled runs: every volume at once, failures noticed at once, each volume pruned on its own ---


def test_every_snapshot_is_taken_before_any_is_waited_for(tmp_path):
    """All snapshots are created first and polled together: one slow volume (a first, full EBS copy)
    does not delay the others' snapshots by its wait, as a wait per volume in turn would."""
    claims = [data_claim(f"graph-server-{i}") for i in (1, 2, 3)]
    result, world, _, _ = run_job(tmp_path, claims, {}, world_files={"ready-after": "2"})
    assert result.returncode == 0, result.stderr
    calls = (world / "calls.log").read_text().splitlines()
    creates = [i for i, c in enumerate(calls) if " create -f -" in c]
    polls = [i for i, c in enumerate(calls) if c.endswith(READY_POLL)]
    assert len(creates) == 3 and max(creates) < min(polls)
    # polled until ready (the third answer), then never again
    for claim in claims:
        assert sum(1 for c in calls if c.startswith(f"-n graph get volumesnapshot {claim}-") and c.endswith(READY_POLL)) == 3


def test_a_snapshot_that_failed_at_once_fails_the_run_without_the_full_wait_and_the_others_are_pruned(tmp_path):
    """status.error is polled with readyToUse: a refused snapshot is noticed at the next poll, not after
    READY_TIMEOUT (an hour here); the healthy volume is still snapshotted and pruned, the failed one
    keeps every snapshot it had."""
    claims = [data_claim("graph-server-1"), data_claim("graph-server-2")]
    old = ["2026-11-30T00:30:00Z", "2026-11-30T06:30:00Z"]
    started = time.monotonic()
    result, world, deleted, _ = run_job(tmp_path, claims, {claims[0]: old, claims[1]: old}, retain=1,
                                        env={"READY_TIMEOUT": "1h", "POLL_SECONDS": "1"},
                                        world_files={"error-claims": claims[0], "ready-after": "3"})
    assert time.monotonic() - started < 300  # minutes at most on a loaded machine, never the hour
    assert result.returncode == 1
    assert f"{claims[0]}-" in result.stderr and "InvalidSnapshot" in result.stderr
    assert f"no new ready snapshot of: {claims[0]}\n" in result.stderr
    assert deleted == [f"{claims[1]}-{old[0]}", f"{claims[1]}-{old[1]}"]  # keeps only its new one


def test_an_error_the_controller_retries_away_is_not_a_failure(tmp_path):
    """The snapshot controller keeps retrying and clears status.error on success (VolumeSnapshotStatus):
    an error that clears within ERROR_GRACE is waited through."""
    claim = data_claim("graph-server-1")
    result, _, _, _ = run_job(tmp_path, [claim], {}, env={"ERROR_GRACE": "60"},
                              world_files={"error-claims": claim, "error-polls": "2"})
    assert result.returncode == 0, result.stderr


def test_a_volume_whose_snapshot_is_still_copying_waits_on_it_instead_of_a_second_full_copy(tmp_path):
    claim = data_claim("graph-server-1")
    old = ["2026-11-30T00:30:00Z", "2026-11-30T06:30:00Z"]
    copying = f"{claim}-{old[1]}"
    result, world, deleted, _ = run_job(tmp_path, [claim], {claim: old}, retain=1, copying=(copying,))
    assert result.returncode == 0, result.stderr
    assert not list(world.glob("created-*")) and "still copying" in result.stdout
    assert deleted == [f"{claim}-{old[0]}"]  # once it is ready it is the one kept


def test_a_snapshot_still_copying_at_the_deadline_fails_the_run_and_prunes_nothing_of_its_volume(tmp_path):
    claim = data_claim("graph-server-1")
    result, world, deleted, _ = run_job(tmp_path, [claim], {claim: ["2026-11-30T00:30:00Z"]}, retain=1,
                                        env={"READY_TIMEOUT": "2s", "POLL_SECONDS": "1"},
                                        world_files={"ready-after": "1000"})
    assert result.returncode == 1 and "timed out after 2s" in result.stderr and deleted == []
    # a snapshot still copying is not counted as one to keep, nor pruned, by expiry
    assert len(list((world / "snapshots").glob("*.json"))) == 2


# --- the alerts, run by promtool against the series kube-state-metrics emits ---

SNAPSHOT_JOB = "graph-volume-snapshots"


def snapshot_rules() -> list[dict]:
    return synthesized("prod").named("neo4j-snapshots-rules", RULE).inputs["spec"]["groups"]


def test_a_failed_scheduled_run_alerts_until_a_later_run_succeeds(tmp_path):
    """kube_job_status_failed > 0 on a Job of the CronJob created after its last success; the Job
    stays in the failed history, so a later success (newer last_successful_time) must clear it."""
    groups = snapshot_rules()
    job = f"{SNAPSHOT_JOB}-29412345"
    promtool_test(groups, tmp_path, "1m", [
        # an earlier success at t=60s, the failed Job created at t=600s (0 until it fails at 20m)
        {"series": f'kube_cronjob_status_last_successful_time{{namespace="graph", cronjob="{SNAPSHOT_JOB}"}}',
         "values": "60x359 25000x100"},
        {"series": f'kube_job_created{{namespace="graph", job_name="{job}"}}', "values": "600x460"},
        {"series": f'kube_job_status_failed{{namespace="graph", job_name="{job}", reason="BackoffLimitExceeded"}}',
         "values": "0x19 1x440"},
        # a pre-change Job that failed is the deploy's to report, not this alert's
        {"series": 'kube_job_created{namespace="graph", job_name="graph-server-2-e4b138b6"}', "values": "900x460"},
        {"series": 'kube_job_status_failed{namespace="graph", job_name="graph-server-2-e4b138b6"}', "values": "1x460"},
    ], [
        {"eval_time": "15m", "alertname": "Neo4jVolumeSnapshotFailed", "exp_alerts": []},
        {"eval_time": "25m", "alertname": "Neo4jVolumeSnapshotFailed",
         "exp_alerts": [expected(groups, "Neo4jVolumeSnapshotFailed", namespace="graph")]},
        # the next run succeeded (last success now after the failed Job's creation)
        {"eval_time": "370m", "alertname": "Neo4jVolumeSnapshotFailed", "exp_alerts": []},
    ])


def test_a_run_that_failed_before_any_success_alerts(tmp_path):
    groups = snapshot_rules()
    job = f"{SNAPSHOT_JOB}-29412345"
    promtool_test(groups, tmp_path, "1m", [
        {"series": f'kube_job_created{{namespace="graph", job_name="{job}"}}', "values": "0x60"},
        {"series": f'kube_job_status_failed{{namespace="graph", job_name="{job}"}}', "values": "1x60"},
    ], [{"eval_time": "5m", "alertname": "Neo4jVolumeSnapshotFailed",
         "exp_alerts": [expected(groups, "Neo4jVolumeSnapshotFailed", namespace="graph")]}])


def test_a_run_stopped_by_its_deadline_alerts(tmp_path):
    """activeDeadlineSeconds ends a Job with the Failed condition (reason DeadlineExceeded)."""
    groups = snapshot_rules()
    job = f"{SNAPSHOT_JOB}-29412345"
    promtool_test(groups, tmp_path, "1m", [
        {"series": f'kube_cronjob_status_last_successful_time{{namespace="graph", cronjob="{SNAPSHOT_JOB}"}}',
         "values": "0x60"},
        {"series": f'kube_job_created{{namespace="graph", job_name="{job}"}}', "values": "600x60"},
        {"series": f'kube_job_status_failed{{namespace="graph", job_name="{job}"}}', "values": "0x60"},
        {"series": f'kube_job_failed{{namespace="graph", job_name="{job}", condition="true"}}', "values": "0x19 1x40"},
        {"series": f'kube_job_failed{{namespace="graph", job_name="{job}", condition="false"}}', "values": "1x19 0x40"},
    ], [
        {"eval_time": "15m", "alertname": "Neo4jVolumeSnapshotFailed", "exp_alerts": []},
        {"eval_time": "25m", "alertname": "Neo4jVolumeSnapshotFailed",
         "exp_alerts": [expected(groups, "Neo4jVolumeSnapshotFailed", namespace="graph")]},
    ])


def test_snapshots_that_stopped_succeeding_alert_after_two_periods_and_a_run(tmp_path):
    """6-hourly: two periods (12 h) plus one run's deadline (5 h 55 m), then 10 minutes pending."""
    groups = snapshot_rules()
    promtool_test(groups, tmp_path, "1m", [
        {"series": f'kube_cronjob_created{{namespace="graph", cronjob="{SNAPSHOT_JOB}"}}', "values": "0x1200"},
        {"series": f'kube_cronjob_status_last_successful_time{{namespace="graph", cronjob="{SNAPSHOT_JOB}"}}',
         "values": "0x1200"},  # one success at t=0, never again
    ], [
        {"eval_time": "18h", "alertname": "Neo4jVolumeSnapshotsStale", "exp_alerts": []},
        {"eval_time": "18h20m", "alertname": "Neo4jVolumeSnapshotsStale",
         "exp_alerts": [expected(groups, "Neo4jVolumeSnapshotsStale", namespace="graph", cronjob=SNAPSHOT_JOB)]},
        {"eval_time": "18h20m", "alertname": "Neo4jVolumeSnapshotsMissing", "exp_alerts": []},
    ])


def test_snapshots_that_never_succeeded_alert(tmp_path):
    groups = snapshot_rules()
    promtool_test(groups, tmp_path, "1m", [
        {"series": f'kube_cronjob_created{{namespace="graph", cronjob="{SNAPSHOT_JOB}"}}', "values": "0x1200"},
    ], [
        {"eval_time": "18h", "alertname": "Neo4jVolumeSnapshotsMissing", "exp_alerts": []},
        {"eval_time": "18h20m", "alertname": "Neo4jVolumeSnapshotsMissing",
         "exp_alerts": [expected(groups, "Neo4jVolumeSnapshotsMissing", namespace="graph", cronjob=SNAPSHOT_JOB)]},
    ])
