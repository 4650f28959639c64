"""Restoring Neo4j data without losing acknowledged writes (issue 24 item 8).

Facts: each Neo4j database is a Raft group over its primaries (Neo4j Operations Manual 5.26,
Clustering -> Routing), and a Raft member persists term, vote and log before it answers (Ongaro &
Ousterhout, Figure 2): put back under one member of a running cluster, an older snapshot of its
volume (which holds the cluster state with the stores: Configuration -> File locations) forgets
entries the cluster counted as committed. The safe procedures are the manual's: replace a lost
server (Clustering -> Managing servers: cordon, a new server, DEALLOCATE, DROP SERVER), restore
the whole database from a backup through a designated seeder (Clustering -> Managing databases;
Kubernetes -> Back up and restore: the chart cannot restore from cloud storage, the chain is
copied into the pod). `neo4j-admin database restore --overwrite-destination` is "not safe on a
cluster" (Backup and restore -> Restore a database backup).

The documents must no longer offer the per-server snapshot restore, and every command of the
runbook must name what this program creates (namespace, StatefulSets, pods, containers, claims,
the Secret, the backup prefix and artifacts, the stack output) with options the 5.26 tools have.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

import components.neo4j_snapshots as neo4j_snapshots
import settings
from components.neo4j_backup import Neo4jBackupArgs
from components.neo4j_snapshots import data_claim
from synth import engine
from tests.conftest import ROOT, STACKS, rendered, synthesized

RUNBOOKS = ROOT / "docs" / "runbooks.md"
SECTION = "## Neo4j: restoring data safely"
SCRIPTS = ROOT / "components" / "scripts"

# `neo4j-admin database restore` options in 5.26 (Operations Manual, "Restore a database backup",
# Syntax); --overwrite-destination exists but is refused here: not safe on a cluster.
RESTORE_OPTIONS = {"--from-path", "--restore-until", "--temp-path", "--additional-config", "--expand-commands",
                   "--verbose", "--to-path-data", "--to-path-txn"}
ID = r"'<[a-z ]+serverId>'"
# Every Cypher statement the runbook may use, as the 5.26 manual spells it (Clustering -> Managing
# servers; Managing databases, "designated seeder"; procedures dbms.cluster.cordonServer/statusCheck;
# Create databases: existingDataSeedServer from 5.25; Delete databases: DUMP DATA).
CYPHER = [
    r"SHOW SERVERS YIELD serverId, name, address, state, health, hosting",
    rf"CALL dbms\.cluster\.cordonServer\({ID}\)",
    rf"(DRYRUN )?DEALLOCATE DATABASES FROM SERVER {ID}",
    rf"DROP SERVER {ID}",
    r"DROP DATABASE (?P<dropped>\w+) DUMP DATA",
    r"CREATE DATABASE (?P<created>\w+) TOPOLOGY (?P<primaries>\d+) PRIMARIES (?P<secondaries>\d+) SECONDARIES "
    rf"OPTIONS {{existingData: 'use', existingDataSeedServer: {ID}}}",
    r"SHOW DATABASE (?P<shown>\w+)",
]


def section() -> str:
    text = RUNBOOKS.read_text()
    assert SECTION in text
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    found = re.findall(rf"^( *)```{language}\n(.*?)^\1```", text, flags=re.M | re.S)
    return ["\n".join(line[len(indent):] for line in body.splitlines()) for indent, body in found]


def shell_commands() -> list[list[str]]:
    return [shlex.split(line) for block in blocks(section(), "shell") for line in block.splitlines() if line.strip()]


def kubectl_commands() -> list[list[str]]:
    return [argv for argv in shell_commands() if argv[0] == "kubectl"]


def statefulsets(stack: str) -> dict[str, dict]:
    return {d["inputs"]["metadata"]["name"]: d["inputs"] for d in rendered(stack)
            if d["inputs"].get("kind") == "StatefulSet"}


# --- the unsafe procedure is gone ------------------------------------------------------------------

def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_restores_a_server_from_a_snapshot(path):
    text = path.read_text()
    for block in blocks(text, "yaml"):
        for document in yaml.safe_load_all(block):
            source = ((document or {}).get("spec") or {}).get("dataSource") or {} if isinstance(document, dict) else {}
            assert source.get("kind") != "VolumeSnapshot", f"{path.name} restores a claim from a snapshot"
    assert "Restore one server" not in text
    assert not re.search(r"(kubectl .*apply|create).*(restored-from|dataSource)", text)


def test_the_operators_guide_sends_restores_to_the_runbook_and_says_why():
    guide = (ROOT / "docs" / "operator.md").read_text()
    snapshots = guide.split("## Neo4j volume snapshots", 1)[1].split("\n## ", 1)[0]
    assert "not a restore path for a cluster member" in snapshots and "Raft" in snapshots
    assert "(runbooks.md#neo4j-restoring-data-safely)" in snapshots
    assert not hasattr(neo4j_snapshots, "restore_claim")  # it only built the removed procedure


def test_the_runbook_forbids_a_per_server_restore_and_names_raft():
    text = section()
    assert "### Never restore one server of a running cluster from a snapshot" in text
    assert "Raft" in text and "acknowledged" in text
    assert "--overwrite-destination" not in " ".join(" ".join(c) for c in shell_commands())
    # the only claim it deletes is the failed server's, and no claim is created from anything
    assert [c for c in kubectl_commands() if c[3:4] in (["apply"], ["create"])] == []


# --- the commands name what the program creates -------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_kubectl_names_the_namespace_statefulsets_pods_containers_and_claims(stack):
    config = settings.validate(engine.stack_config(stack)).neo4j
    sets = statefulsets(stack)
    pods = {f"{name}-0": spec["spec"]["template"]["spec"] for name, spec in sets.items()}
    commands = kubectl_commands()
    assert {c[1:3] == ["-n", config.namespace] for c in commands} == {True}
    for argv in commands:
        verb, rest = argv[3], argv[4:]
        if verb == "exec":
            pod = next(a for a in rest if not a.startswith("-"))
            container = rest[rest.index("-c") + 1]
            assert pod in pods and container in [c["name"] for c in pods[pod]["containers"]], argv
        elif verb == "cp":
            pod, _, path = rest[1].partition(":")
            mounts = {m["mountPath"]: m for m in pods[pod]["containers"][0]["volumeMounts"]}
            # /backups is a folder of the server's data volume (the chart's shared mount)
            assert path.startswith("/backups/") and mounts["/backups"]["name"] == "data", argv
        elif verb == "scale":
            assert rest[0] == "statefulset" and rest[1] in sets and rest[2] in ("--replicas=0", "--replicas=1")
        elif verb == "delete":
            assert rest[0] == "pvc"
            [template] = sets["graph-server-2"]["spec"]["volumeClaimTemplates"]
            assert rest[1] == data_claim("graph-server-2") == f"{template['metadata']['name']}-graph-server-2-0"
        else:
            pytest.fail(f"unexpected kubectl {verb}: {argv}")
    # the example servers are primaries in this stack: the seeder and the replaced one
    for server in ("graph-server-1", "graph-server-2"):
        assert sets[server]["metadata"]["labels"]["intelgraph.io/neo4j-mode"] == "primary"


def test_the_admin_session_reads_the_password_the_program_stores():
    """`cut -d/ -f2- "$NEO4J_AUTH_PATH"`: the chart points NEO4J_AUTH_PATH at its mount of the
    passwordFromSecret Secret, whose NEO4J_AUTH is 'neo4j/<password>' (helpers/neo4j_password.py)."""
    text = section()
    assert 'cut -d/ -f2- "$NEO4J_AUTH_PATH"' in text and "`graph-auth` Secret" in text
    env = next(d["inputs"]["data"] for d in rendered("prod") if d["inputs"].get("kind") == "ConfigMap"
               and d["inputs"]["metadata"]["name"] == "graph-server-1-env")
    pod = statefulsets("prod")["graph-server-1"]["spec"]["template"]["spec"]
    directory, _, key = env["NEO4J_AUTH_PATH"].rpartition("/")
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == directory]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "graph-auth" and key == "NEO4J_AUTH"
    [secret] = [r.inputs for r in synthesized("prod").of_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == "graph-auth"]
    value = secret["stringData"]["value"]  # a Pulumi secret: the whole stringData
    assert secret["metadata"]["namespace"] == "graph" and value["NEO4J_AUTH"].startswith("neo4j/")


def test_the_backup_chain_is_fetched_where_the_backup_job_writes_it():
    """Keys are <prefix>chains/<start date>/<database>-<timestamp>.backup (neo4j_backup.sh,
    neo4j_pick_backup.sh); the bucket comes from the stack output backupBuckets.neo4j.bucket."""
    prefix = Neo4jBackupArgs.__dataclass_fields__["prefix"].default
    assert "${BACKUP_PREFIX}chains/" in (SCRIPTS / "neo4j_pick_backup.sh").read_text()
    commands = shell_commands()
    assert ["BUCKET=$(pulumi", "stack", "output", "backupBuckets", "--stack", "prod", "--json", "|", "jq", "-r",
            ".neo4j.bucket)"] in commands
    assert synthesized("prod").outputs["backupBuckets"]["neo4j"]["bucket"]
    s3 = [a for c in commands if c[:2] == ["aws", "s3"] for a in c if a.startswith("s3://")]
    assert s3 and all(a.startswith(f"s3://$BUCKET/{prefix}chains/") for a in s3)
    copy = next(c for c in commands if c[:3] == ["aws", "s3", "cp"])
    assert copy[copy.index("--include") + 1] == "neo4j-*.backup"  # the neo4j database's artifacts only


def test_neo4j_admin_restores_one_backed_up_database_with_526_options_only():
    restores = [c[c.index("--") + 1:] for c in kubectl_commands() if "neo4j-admin" in c]
    assert [r[:3] for r in restores] == [["neo4j-admin", "database", "restore"]]
    [argv] = restores
    options = {a.split("=", 1)[0] for a in argv[3:] if a.startswith("--")}
    assert options <= RESTORE_OPTIONS and "--from-path" in options
    [database] = [a for a in argv[3:] if not a.startswith("--")]
    assert database == Neo4jBackupArgs.__dataclass_fields__["database"].default == "neo4j"
    from_path = next(a for a in argv if a.startswith("--from-path="))
    assert re.fullmatch(r"--from-path=/backups/restore/neo4j-<timestamp>\.backup", from_path)
    assert "neo4j system" in (SCRIPTS / "neo4j_backup.sh").read_text()  # what the backups hold


def test_every_cypher_statement_is_a_526_form_with_the_stacks_topology():
    config = settings.validate(engine.stack_config("prod")).neo4j
    statements = [s.strip() for block in blocks(section(), "cypher") for s in block.split(";") if s.strip()]
    assert statements
    seen: dict[str, str] = {}
    for statement in statements:
        match = next((m for p in CYPHER if (m := re.fullmatch(p, statement))), None)
        assert match, f"not a documented 5.26 form: {statement}"
        seen |= {k: v for k, v in match.groupdict().items() if v}
    assert seen["dropped"] == seen["created"] == seen["shown"] == "neo4j"
    assert (int(seen["primaries"]), int(seen["secondaries"])) == (config.primaries, config.secondaries)
    stage = settings.validate(engine.stack_config("stage")).neo4j
    assert f"stage `TOPOLOGY {stage.primaries} PRIMARIES {stage.secondaries} SECONDARIES`" in section()
    # inline, in the prose: the other commands the procedure names
    for inline in ("ENABLE SERVER '<new serverId>';", "CALL dbms.cluster.statusCheck([]);",
                   "CALL dbms.cluster.setAutomaticallyEnableFreeServers(true)"):
        assert inline in section() or inline in (ROOT / "docs" / "operator.md").read_text()
