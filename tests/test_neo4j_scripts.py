"""The Neo4j job scripts, run by bash with stand-ins for aws, neo4j-admin, neo4j and cypher-shell
that record their arguments and answer as the real tools do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


# A stand-in for aws-cli v2's `s3api list-objects-v2` over a bucket of many objects. S3 returns at
# most 1,000 keys per ListObjectsV2 response, with NextContinuationToken while IsTruncated (S3 API
# reference, ListObjectsV2). Like the real CLI: --no-paginate makes exactly one call and applies
# --query to that response; without it the CLI pages by itself and, with --output text, applies
# --query to each page (AWS CLI user guide, "Filtering output"; aws/aws-cli#4847). Anything else it
# is given is refused, as is a continuation token it never handed out.
FAKE_AWS = r"""
import json, sys
import jmespath

objects = json.load(open(sys.argv[1]))
args = sys.argv[2:]
if args[:2] != ["s3api", "list-objects-v2"]:
    sys.exit(f"unexpected aws call {args}")
opts, flags, rest = {}, set(), args[2:]
while rest:
    if rest[0] == "--no-paginate":
        flags.add(rest.pop(0))
    elif rest[0] in ("--bucket", "--prefix", "--continuation-token", "--query", "--output"):
        opts[rest[0]] = rest[1]
        rest = rest[2:]
    else:
        print(f"aws: error: unknown option {rest[0]}", file=sys.stderr)
        sys.exit(252)
if opts.get("--bucket") != "intelgraph-prod-neo4j-backups-ae6dc970":
    print("An error occurred (NoSuchBucket)", file=sys.stderr)
    sys.exit(254)
keys = [o for o in objects if o["Key"].startswith(opts.get("--prefix", ""))]

def page(start):
    body = keys[start:start + 1000]
    response = {"IsTruncated": start + 1000 < len(keys), "KeyCount": len(body)}
    if body:
        response["Contents"] = body
    if response["IsTruncated"]:
        response["NextContinuationToken"] = f"token-{start + 1000}"
    return response

def text(value):
    if isinstance(value, list):
        return "\t".join("None" if v is None else str(v) for v in value)
    return "None" if value is None else str(value)

query = opts.get("--query")
token = opts.get("--continuation-token")
if token is not None and (not token.startswith("token-") or int(token[6:]) % 1000 or int(token[6:]) >= len(keys)):
    print("An error occurred (InvalidArgument): The continuation token provided is incorrect", file=sys.stderr)
    sys.exit(254)
start = int(token[6:]) if token else 0
if "--no-paginate" in flags:
    pages = [page(start)]
else:
    pages = [page(i) for i in range(start, max(len(keys), 1), 1000)]
if opts.get("--output") == "text":
    for p in pages:
        print(text(jmespath.search(query, p) if query else p))
else:
    merged = {"Contents": [o for p in pages for o in p.get("Contents", [])]}
    print(json.dumps(jmespath.search(query, merged) if query else merged))
"""


def aws_listing(tmp_path: Path, ages: list[timedelta], newest_at: int | None = None) -> dict[str, str]:
    """A bucket with one backup object per age; ``newest_at`` puts the youngest at that index."""
    stamps = [iso(age) for age in ages]
    if newest_at is not None:
        youngest = min(range(len(ages)), key=lambda i: ages[i])
        stamps[youngest], stamps[newest_at] = stamps[newest_at], stamps[youngest]
    objects = [{"Key": f"neo4j/chains/2026-11-30/neo4j-{i:06d}.backup", "LastModified": stamp, "Size": 1}
               for i, stamp in enumerate(stamps)]
    (tmp_path / "objects.json").write_text(json.dumps(objects))
    (tmp_path / "fake_aws.py").write_text(FAKE_AWS)
    return {"aws": f'exec {sys.executable} {tmp_path}/fake_aws.py {tmp_path}/objects.json "$@"'}


def iso(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) - delta).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def freshness(tmp_path: Path, stubs: dict[str, str], **env: str) -> subprocess.CompletedProcess:
    return run("neo4j_backup_freshness.sh", tmp_path, stubs, {**BUCKET, "MAX_AGE_SECONDS": "5400", **env})


def many_old_backups(n: int) -> list[timedelta]:
    return [timedelta(days=30, minutes=i) for i in range(n)]


def test_freshness_finds_the_newest_of_many_pages(tmp_path):
    """2,500 objects are three ListObjectsV2 pages; the newest sits on the middle one."""
    ages = many_old_backups(2499) + [timedelta(minutes=20)]
    result = freshness(tmp_path, aws_listing(tmp_path, ages, newest_at=1500))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: newest backup" in result.stdout and "(3 pages listed)" in result.stdout
    listed = [line for line in calls(tmp_path).splitlines() if "list-objects-v2" in line]
    assert len(listed) == 3
    assert "--bucket intelgraph-prod-neo4j-backups-ae6dc970 --prefix neo4j/ --no-paginate" in listed[0]
    assert "--continuation-token" not in listed[0]
    assert "--continuation-token token-1000" in listed[1] and "--continuation-token token-2000" in listed[2]


def test_the_stand_in_answers_a_whole_listing_query_once_per_page(tmp_path):
    """The CLI behaviour the old check tripped on, reproduced by the stand-in the check is tested
    with: `max_by` with --output text and the CLI's own pagination answers once per page."""
    aws = aws_listing(tmp_path, many_old_backups(2500))["aws"]
    answer = subprocess.run(["bash", "-c", aws.replace('"$@"', "") + " s3api list-objects-v2 --bucket"
                             " intelgraph-prod-neo4j-backups-ae6dc970 --prefix neo4j/ --query"
                             " 'max_by(Contents, &LastModified).LastModified' --output text"],
                            capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0, answer.stderr
    assert len(answer.stdout.split()) == 3


def test_freshness_fails_a_stale_backup_by_age_not_existence(tmp_path):
    result = freshness(tmp_path, aws_listing(tmp_path, many_old_backups(1200) + [timedelta(hours=3)]))
    assert result.returncode == 1 and "FAILED: newest backup" in result.stdout and "limit 5400s" in result.stdout


def test_freshness_fails_when_there_is_no_backup(tmp_path):
    result = freshness(tmp_path, aws_listing(tmp_path, []))
    assert result.returncode == 1 and "no backup at all" in result.stdout


def test_a_failing_listing_fails_the_freshness_job(tmp_path):
    stubs = aws_listing(tmp_path, many_old_backups(10))
    result = run("neo4j_backup_freshness.sh", tmp_path, stubs,
                 {**BUCKET, "BACKUP_BUCKET": "someone-elses-bucket", "MAX_AGE_SECONDS": "5400"})
    assert result.returncode != 0 and "ok:" not in result.stdout


def test_freshness_refuses_to_run_without_its_settings(tmp_path):
    result = run("neo4j_backup_freshness.sh", tmp_path, aws_listing(tmp_path, []), {"BACKUP_BUCKET": "b"})
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


# What the neo4j:5.26 image ships in $NEO4J_HOME/conf (NEO4J_HOME=/var/lib/neo4j, docker-neo4j
# docker-image-src/5/coredb/Dockerfile-debian): the tarball's neo4j.conf, whose JVM section is the
# only source of the JVM's options (Neo4j operations manual, "The neo4j.conf file": settings are
# strictly validated and may not repeat, except server.jvm.additional, each of which adds one JVM
# argument), and the log4j files it names relative to the conf directory. An excerpt of the keys
# that matter here; an uncommented listen address as an entrypoint would leave it.
IMAGE_CONF = """\
server.directories.import=import
#dbms.security.auth_enabled=false
#server.memory.heap.initial_size=512m
server.default_listen_address=0.0.0.0
server.bolt.enabled=true
server.http.enabled=true
db.tx_log.rotation.retention_policy=2 days 2G
server.jvm.additional=-XX:+UseG1GC
server.jvm.additional=-XX:-OmitStackTraceInFastThrow
server.jvm.additional=--add-opens=java.base/java.nio=ALL-UNNAMED
server.jvm.additional=--add-opens=java.base/java.io=ALL-UNNAMED
server.jvm.additional=--add-opens=java.base/sun.nio.ch=ALL-UNNAMED
server.jvm.additional=--enable-native-access=ALL-UNNAMED
server.windows_service_name=neo4j
"""
JDK17_OPENS = [line for line in IMAGE_CONF.splitlines() if "--add-opens" in line]

# Both neo4j-admin and neo4j read $NEO4J_CONF/neo4j.conf; a stand-in refuses what the real
# server refuses or cannot survive: a repeated key, lost JVM options, missing log configs, CSV
# metrics on the read-only root, a run directory off the scratch volume, a data directory other
# than the mounted volume the restore must land on.
CHECK_CONF = r"""
conf="${NEO4J_CONF:?NEO4J_CONF not set}/neo4j.conf"
[ -f "$conf" ] || { echo "no $conf" >&2; exit 70; }
dups=$(grep -Ev '^[[:space:]]*(#|$)' "$conf" | cut -d= -f1 | grep -vx 'server.jvm.additional' | sort | uniq -d)
[ -z "$dups" ] || { echo "duplicate settings: $dups" >&2; exit 71; }
for want in %(opens)s; do grep -qxF -- "$want" "$conf" || { echo "lost JVM option $want" >&2; exit 72; }; done
for f in server-logs.xml user-logs.xml; do [ -f "$NEO4J_CONF/$f" ] || { echo "no $f" >&2; exit 73; }; done
grep -qx 'server.metrics.csv.enabled=false' "$conf" || { echo "CSV metrics would write under NEO4J_HOME" >&2; exit 74; }
grep -qx "server.directories.run=$SCRATCH/run" "$conf" || { echo "run dir not on scratch" >&2; exit 75; }
grep -qx 'server.directories.data=/data' "$conf" || { echo "data dir is not the restore volume" >&2; exit 76; }
grep -qx 'server.default_listen_address=127.0.0.1' "$conf" || { echo "rehearsal must listen on localhost only" >&2; exit 77; }
""" % {"opens": " ".join(f"'{line}'" for line in JDK17_OPENS)}


def rehearsal_tools(tmp_path: Path, nodes: str = "42", admin_exit: int = 0, start_exit: int = 0,
                    answers_after: int = 0) -> dict[str, str]:
    marker = tmp_path / "restored"
    return {
        "neo4j-admin": CHECK_CONF + f"""
case "$*" in "database restore "*) ;; *) echo "unexpected neo4j-admin $*" >&2; exit 64;; esac
[ {admin_exit} -eq 0 ] || exit {admin_exit}
touch {marker}""",
        "neo4j": CHECK_CONF + f"""
case "$1" in
  start) [ -f {marker} ] || {{ echo "started before the restore finished" >&2; exit 65; }}; exit {start_exit};;
  stop) exit 0;;
  *) exit 64;;
esac""",
        # answers only after `answers_after` failed attempts, like a server still starting
        "cypher-shell": f"""
n=$(cat {tmp_path}/attempts 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/attempts
[ "$n" -ge {answers_after} ] || exit 1
case "$*" in *"count(n)"*) printf "nodes\\n{nodes}\\n";; *) echo 1;; esac""",
    }


def image_home(tmp_path: Path) -> dict[str, str]:
    conf = tmp_path / "image" / "conf"
    conf.mkdir(parents=True)
    (conf / "neo4j.conf").write_text(IMAGE_CONF)
    for name in ("server-logs.xml", "user-logs.xml"):
        (conf / name).write_text("<Configuration/>\n")
    return {"NEO4J_HOME": str(tmp_path / "image"), "START_POLL_SECONDS": "0"}


def rehearse(tmp_path: Path, **tools) -> subprocess.CompletedProcess:
    return run("neo4j_restore_rehearsal.sh", tmp_path, rehearsal_tools(tmp_path, **tools),
               {**BUCKET, "DATABASE": "neo4j", **image_home(tmp_path)})


@pytest.mark.parametrize("nodes,code,words", [("42", 0, "ok: restored neo4j with 42 nodes"),
                                              ("0", 1, "has '0' nodes"),
                                              ("", 1, "has '' nodes")])
def test_restore_rehearsal_fails_unless_the_restored_graph_has_nodes(tmp_path, nodes, code, words):
    result = rehearse(tmp_path, nodes=nodes, answers_after=2)
    assert result.returncode == code, result.stdout + result.stderr
    assert words in result.stdout
    log = calls(tmp_path)
    assert "database restore --from-path=s3://intelgraph-prod-neo4j-backups-ae6dc970/neo4j/" in log
    assert log.index("neo4j-admin database restore") < log.index("neo4j start")
    assert "neo4j stop" in log  # the throwaway instance is always stopped


def test_rehearsal_config_is_the_images_own_with_overrides(tmp_path):
    """The 8-line neo4j.conf it used to write dropped every server.jvm.additional line: on JDK 17
    Neo4j 5 then dies without its --add-opens (the stand-ins exit 72 on that)."""
    result = rehearse(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    conf = (tmp_path / "scratch" / "conf" / "neo4j.conf").read_text()
    assert conf.count("server.jvm.additional=") == IMAGE_CONF.count("server.jvm.additional=")
    assert "server.default_listen_address=0.0.0.0" not in conf  # overridden, not duplicated
    assert "server.directories.import=import" in conf  # everything else stays the image's


@pytest.mark.parametrize("tools,words", [
    ({"admin_exit": 1}, None),  # a failed restore: the server is never started on an empty store
    ({"start_exit": 1}, None),
    ({"answers_after": 99}, "never answered"),
])
def test_a_failing_step_fails_the_rehearsal(tmp_path, tools, words):
    result = run("neo4j_restore_rehearsal.sh", tmp_path, rehearsal_tools(tmp_path, **tools),
                 {**BUCKET, "DATABASE": "neo4j", **image_home(tmp_path), "START_ATTEMPTS": "3"})
    assert result.returncode != 0, result.stdout
    if words:
        assert words in result.stdout
    if tools.get("admin_exit"):
        assert "neo4j start" not in calls(tmp_path)
