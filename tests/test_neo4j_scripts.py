"""The Neo4j job scripts, run by bash with stand-ins for aws, neo4j-admin, neo4j and cypher-shell
that record their arguments and answer as the real tools do."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "components" / "scripts"


def run(script: str, tmp_path: Path, stubs: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\necho \"$0 $*\" >> {tmp_path}/calls.log\n{body}\n")
        path.chmod(0o755)
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SCRATCH": str(tmp_path / "scratch"), **env}
    return subprocess.run(["bash", str(SCRIPTS / script)], env=full_env, capture_output=True, text=True, timeout=30)


def calls(tmp_path: Path) -> str:
    return (tmp_path / "calls.log").read_text()


BUCKET = {"BACKUP_BUCKET": "intelgraph-prod-neo4j-backups-ae6dc970", "BACKUP_PREFIX": "neo4j/"}


def aws_answering(newest: str) -> dict[str, str]:
    return {"aws": f'echo "{newest}"'}


def iso(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) - delta).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def test_freshness_passes_a_recent_backup(tmp_path):
    result = run("neo4j_backup_freshness.sh", tmp_path, aws_answering(iso(timedelta(minutes=20))),
                 {**BUCKET, "MAX_AGE_SECONDS": "5400"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: newest backup" in result.stdout
    assert "s3api list-objects-v2 --bucket intelgraph-prod-neo4j-backups-ae6dc970 --prefix neo4j/" in calls(tmp_path)


def test_freshness_fails_a_stale_backup_by_age_not_existence(tmp_path):
    result = run("neo4j_backup_freshness.sh", tmp_path, aws_answering(iso(timedelta(hours=3))),
                 {**BUCKET, "MAX_AGE_SECONDS": "5400"})
    assert result.returncode == 1 and "FAILED: newest backup" in result.stdout and "limit 5400s" in result.stdout


def test_freshness_fails_when_there_is_no_backup(tmp_path):
    result = run("neo4j_backup_freshness.sh", tmp_path, aws_answering("None"), {**BUCKET, "MAX_AGE_SECONDS": "5400"})
    assert result.returncode == 1 and "no backup at all" in result.stdout


def test_freshness_refuses_to_run_without_its_settings(tmp_path):
    result = run("neo4j_backup_freshness.sh", tmp_path, aws_answering("None"), {"BACKUP_BUCKET": "b"})
    assert result.returncode != 0 and "BACKUP_PREFIX" in result.stderr


def test_backup_calls_the_5x_command_with_the_fallback_servers(tmp_path):
    servers = "graph-server-4-admin.graph.svc.cluster.local:6362,graph-server-1-admin.graph.svc.cluster.local:6362"
    result = run("neo4j_backup.sh", tmp_path, {"neo4j-admin": "exit 0"}, {**BUCKET, "BACKUP_FROM": servers})
    assert result.returncode == 0, result.stderr
    call = calls(tmp_path)
    assert f"database backup --from={servers} --to-path=s3://intelgraph-prod-neo4j-backups-ae6dc970/neo4j/" in call
    assert "--type=AUTO" in call and call.rstrip().endswith("*")


def test_backup_failure_fails_the_job(tmp_path):
    result = run("neo4j_backup.sh", tmp_path, {"neo4j-admin": "echo 'connection refused' >&2; exit 1"},
                 {**BUCKET, "BACKUP_FROM": "graph-server-1-admin.graph.svc.cluster.local:6362"})
    assert result.returncode == 1


def cypher_counting(nodes: str) -> dict[str, str]:
    return {
        "neo4j-admin": "exit 0",
        "neo4j": "exit 0",
        "cypher-shell": f'case "$*" in *"count(n)"*) printf "nodes\\n{nodes}\\n";; *) echo 1;; esac',
    }


@pytest.mark.parametrize("nodes,code,words", [("42", 0, "ok: restored neo4j with 42 nodes"),
                                              ("0", 1, "has '0' nodes"),
                                              ("", 1, "has '' nodes")])
def test_restore_rehearsal_fails_unless_the_restored_graph_has_nodes(tmp_path, nodes, code, words):
    result = run("neo4j_restore_rehearsal.sh", tmp_path, cypher_counting(nodes), {**BUCKET, "DATABASE": "neo4j"})
    assert result.returncode == code, result.stdout + result.stderr
    assert words in result.stdout
    log = calls(tmp_path)
    assert "database restore --from-path=s3://intelgraph-prod-neo4j-backups-ae6dc970/neo4j/" in log
    assert "neo4j stop" in log  # the throwaway instance is always stopped
    conf = (tmp_path / "scratch" / "conf" / "neo4j.conf").read_text()
    assert "server.default_listen_address=127.0.0.1" in conf
