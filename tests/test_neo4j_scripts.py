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

from components.neo4j_backup import script as job_script


def run(script: str, tmp_path: Path, stubs: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\necho \"$0 $*\" >> {tmp_path}/calls.log\n{body}\n")
        path.chmod(0o755)
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SCRATCH": str(tmp_path / "scratch"), **env}
    # exactly what the job's container runs: bash -c with the shared helpers and the script
    return subprocess.run(["bash", "-c", job_script(script)], env=full_env, capture_output=True, text=True,
                          timeout=30)


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
if args[:2] == ["s3", "rm"] and args[3:] == ["--recursive", "--only-show-errors"]:
    bucket, _, prefix = args[2].removeprefix("s3://").partition("/")
    if bucket != "intelgraph-prod-neo4j-backups-ae6dc970" or not prefix.endswith("/"):
        sys.exit(f"refusing to delete {args[2]}")
    json.dump([o for o in objects if not o["Key"].startswith(prefix)], open(sys.argv[1], "w"))
    sys.exit(0)
if args[:2] != ["s3api", "list-objects-v2"]:
    sys.exit(f"unexpected aws call {args}")
opts, flags, rest = {}, set(), args[2:]
while rest:
    if rest[0] == "--no-paginate":
        flags.add(rest.pop(0))
    elif rest[0] in ("--bucket", "--prefix", "--continuation-token", "--query", "--output", "--delimiter"):
        opts[rest[0]] = rest[1]
        rest = rest[2:]
    else:
        print(f"aws: error: unknown option {rest[0]}", file=sys.stderr)
        sys.exit(252)
if opts.get("--bucket") != "intelgraph-prod-neo4j-backups-ae6dc970":
    print("An error occurred (NoSuchBucket)", file=sys.stderr)
    sys.exit(254)
prefix = opts.get("--prefix", "")
keys = [o for o in objects if o["Key"].startswith(prefix)]
if "--delimiter" in opts:  # keys below the next delimiter roll up into one CommonPrefix each
    rolled = sorted({prefix + o["Key"][len(prefix):].split("/")[0] + "/" for o in keys if "/" in o["Key"][len(prefix):]})
    keys = [o for o in keys if "/" not in o["Key"][len(prefix):]] + [{"Prefix": p} for p in rolled]

def page(start):
    body = keys[start:start + 1000]
    response = {"IsTruncated": start + 1000 < len(keys), "KeyCount": len(body)}
    if [o for o in body if "Key" in o]:
        response["Contents"] = [o for o in body if "Key" in o]
    if [o for o in body if "Prefix" in o]:
        response["CommonPrefixes"] = [o for o in body if "Prefix" in o]
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


def aws_listing(tmp_path: Path, ages: list[timedelta], newest_at: int | None = None,
                keys: list[str] | None = None) -> dict[str, str]:
    """A bucket with one backup object per age (or per key); ``newest_at`` puts the youngest at
    that index."""
    stamps = [iso(age) for age in ages] if keys is None else [iso(timedelta(days=1))] * len(keys)
    if newest_at is not None:
        youngest = min(range(len(ages)), key=lambda i: ages[i])
        stamps[youngest], stamps[newest_at] = stamps[newest_at], stamps[youngest]
    keys = keys or [f"neo4j/chains/2026-11-30/neo4j-{i:06d}.backup" for i in range(len(stamps))]
    objects = [{"Key": key, "LastModified": stamp, "Size": 1} for key, stamp in zip(keys, stamps, strict=True)]
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
    assert "ok: newest backup" in result.stdout
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


SERVERS = "graph-server-4-admin.graph.svc.cluster.local:6362,graph-server-1-admin.graph.svc.cluster.local:6362"


def epoch(text: str) -> str:
    return str(int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()))


def backup(tmp_path: Path, now: str, chain_days: int = 7, admin: str = "exit 0") -> subprocess.CompletedProcess:
    return run("neo4j_backup.sh", tmp_path, {"neo4j-admin": admin},
               {**BUCKET, "BACKUP_FROM": SERVERS, "CHAIN_DAYS": str(chain_days), "INTERVAL_SECONDS": "3600",
                "NOW": epoch(now)})


def admin_calls(tmp_path: Path) -> list[str]:
    return [line.split(" ", 1)[1] for line in calls(tmp_path).splitlines() if "neo4j-admin" in line]


def test_backups_within_a_chain_go_onto_its_full_backup(tmp_path):
    """Wednesday 2026-12-02 is in the weekly chain that started on Monday 2026-11-30."""
    result = backup(tmp_path, "2026-12-02T14:00:05")
    assert result.returncode == 0, result.stdout + result.stderr
    [call] = admin_calls(tmp_path)  # the first server (a secondary) answered: no other is asked
    assert call.startswith(f"database backup --from={SERVERS.split(',')[0]} "
                           "--to-path=s3://intelgraph-prod-neo4j-backups-ae6dc970/neo4j/chains/2026-11-30/ ")
    assert "--type=AUTO" in call and "--temp-path=" in call and call.rstrip().endswith(" neo4j system")


def test_a_new_chain_closes_the_old_one_then_starts_with_a_full_backup(tmp_path):
    """Monday 00:00 starts the chain of 2026-12-07: a differential into the old chain first, then
    --type=FULL into a new dated prefix (the chain used to be one folder, AUTO forever)."""
    result = backup(tmp_path, "2026-12-07T00:00:04")
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = admin_calls(tmp_path)
    assert "--to-path=s3://intelgraph-prod-neo4j-backups-ae6dc970/neo4j/chains/2026-11-30/ " in first
    assert "--type=DIFF" in first
    assert "--to-path=s3://intelgraph-prod-neo4j-backups-ae6dc970/neo4j/chains/2026-12-07/ " in second
    assert "--type=FULL" in second


@pytest.mark.parametrize("now,chain", [("2026-12-01T23:00:00", "2026-12-01"), ("2026-12-02T00:00:00", "2026-12-02")])
def test_daily_chains_start_every_midnight_utc(tmp_path, now, chain):
    assert backup(tmp_path, now, chain_days=1).returncode == 0
    assert f"/neo4j/chains/{chain}/ " in admin_calls(tmp_path)[-1]


@pytest.mark.parametrize("now", ["2026-12-02T14:00:05", "2026-12-07T00:00:04"])
def test_backup_failure_fails_the_job(tmp_path, now):
    result = backup(tmp_path, now, admin="echo 'connection refused' >&2; exit 1")
    assert result.returncode == 1
    if now.startswith("2026-12-07"):  # the full backup is still tried after the closing diff failed
        assert [("--type=DIFF" in c, "--type=FULL" in c) for c in admin_calls(tmp_path)] == [
            (True, False), (True, False), (False, True), (False, True)]  # each from both servers


# A stand-in for neo4j-admin 5's online backup that answers as the real one does when a server is
# down (DOWN lists those): given several --from addresses or a database pattern, every listed
# server is asked and one that does not answer makes the command exit non-zero (operations manual,
# "Back up an online database": targeting multiple servers, exit codes; neo4j/docs-operations
# modules/ROOT/pages/backup-restore/online-backup.adoc). It refuses a call without database names.
FAKE_ADMIN = r"""
[ "$1 $2" = "database backup" ] || { echo "unexpected neo4j-admin $*" >&2; exit 64; }
from=""; databases=()
for arg in "${@:3}"; do case "${arg}" in --from=*) from=${arg#--from=};; --*) ;; *) databases+=("${arg}");; esac; done
[ "${#databases[@]}" -gt 0 ] || { echo "Missing required parameter: '<database>'" >&2; exit 2; }
IFS=, read -r -a servers <<< "${from}"
for server in "${servers[@]}"; do
  case " ${DOWN} " in *" ${server} "*) echo "Unable to connect to ${server}" >&2; exit 1;; esac
done
"""


def backup_with_down(tmp_path: Path, down: str, now: str = "2026-12-02T14:00:05") -> subprocess.CompletedProcess:
    return run("neo4j_backup.sh", tmp_path, {"neo4j-admin": FAKE_ADMIN},
               {**BUCKET, "BACKUP_FROM": SERVERS, "CHAIN_DAYS": "7", "INTERVAL_SECONDS": "3600",
                "NOW": epoch(now), "DOWN": down})


def test_one_server_down_does_not_fail_the_backup(tmp_path):
    """The secondary listed first is down: the job backs up from the next server, one --from each,
    the databases named, and stops at the first that succeeds."""
    secondary, primary = SERVERS.split(",")
    result = backup_with_down(tmp_path, secondary)
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = admin_calls(tmp_path)
    assert f"--from={secondary} " in first and f"--from={primary} " in second
    assert all(c.rstrip().endswith(" neo4j system") and c.count("--from=") == 1 for c in (first, second))
    assert "FAILED after" in result.stdout and f"from {primary} took" in result.stdout


def test_every_server_down_fails_the_backup_after_trying_each(tmp_path):
    result = backup_with_down(tmp_path, " ".join(SERVERS.split(",")))
    assert result.returncode == 1
    assert [c.split()[2] for c in admin_calls(tmp_path)] == [f"--from={s}" for s in SERVERS.split(",")]


def chain_keys(*chains: str) -> list[str]:
    return [f"neo4j/chains/{c}/{db}-{c}T{h:02d}-00-00.backup" for c in chains for db in ("neo4j", "system")
            for h in range(24)]


def prune(tmp_path: Path, keys: list[str], now: str, retention: int = 35, chain_days: int = 1):
    stubs = aws_listing(tmp_path, [], keys=keys)
    result = run("neo4j_backup_prune.sh", tmp_path, stubs, {**BUCKET, "CHAIN_DAYS": str(chain_days),
                                                            "RETENTION_DAYS": str(retention), "NOW": epoch(now)})
    left = {o["Key"] for o in json.loads((tmp_path / "objects.json").read_text())}
    return result, left


def test_retention_deletes_whole_chains_only(tmp_path):
    """Daily chains, 35 days kept after a chain ends: on 2027-01-06 the chain of 2026-12-01
    (ended 2026-12-02) is 35 days past its end and goes, all of it; 2026-12-02 stays, all of it."""
    keys = chain_keys("2026-11-30", "2026-12-01", "2026-12-02", "2027-01-05") + ["neo4j/notes/readme.txt"]
    result, left = prune(tmp_path, keys, "2027-01-06T04:30:00")
    assert result.returncode == 0, result.stdout + result.stderr
    assert left == set(chain_keys("2026-12-02", "2027-01-05")) | {"neo4j/notes/readme.txt"}
    assert "ok: 2 chains kept, 2 deleted" in result.stdout


def test_retention_never_deletes_the_newest_chain(tmp_path):
    """Backups have failed for 40 days: every chain is past retention, but the newest holds the
    last full backup (neo4j-admin restores a differential only onto its chain's full backup,
    operations manual, "Back up an online database"), so it stays; the older one goes."""
    keys = chain_keys("2026-11-20", "2026-11-21")
    result, left = prune(tmp_path, keys, "2027-01-01T04:30:00")
    assert result.returncode == 0, result.stdout + result.stderr
    assert left == set(chain_keys("2026-11-21"))
    assert "keeping chain 2026-11-21 past retention" in result.stdout and "ok: 1 chains kept, 1 deleted" in result.stdout


def test_retention_pages_through_many_chains(tmp_path):
    """1,200 daily chains are two pages of CommonPrefixes; those that ended 35+ days ago go."""
    start = datetime(2026, 10, 1)
    chains = [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(1200)]
    result, left = prune(tmp_path, [f"neo4j/chains/{c}/neo4j-x.backup" for c in chains], "2026-12-01T04:30:00")
    assert result.returncode == 0, result.stdout + result.stderr
    # the chain of 2026-10-26 ended 2026-10-27, 35 days before 2026-12-01
    assert left == {f"neo4j/chains/{c}/neo4j-x.backup" for c in chains if c > "2026-10-26"}
    listed = [line for line in calls(tmp_path).splitlines() if "list-objects-v2" in line]
    assert len(listed) == 2 and "--delimiter /" in listed[0] and "--continuation-token token-1000" in listed[1]


def test_retention_leaves_what_it_did_not_write_and_fails_when_it_cannot_list(tmp_path):
    result, left = prune(tmp_path, ["neo4j/chains/manual-copy/neo4j-x.backup"], "2027-06-01T00:00:00")
    assert result.returncode == 0 and left == {"neo4j/chains/manual-copy/neo4j-x.backup"}
    stubs = aws_listing(tmp_path, [], keys=chain_keys("2020-01-01"))
    failed = run("neo4j_backup_prune.sh", tmp_path, stubs, {**BUCKET, "BACKUP_BUCKET": "someone-elses-bucket",
                                                            "CHAIN_DAYS": "1", "RETENTION_DAYS": "35"})
    assert failed.returncode != 0 and "ok:" not in failed.stdout


def pick(tmp_path: Path, keys: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
    artifact = tmp_path / "artifact"
    result = run("neo4j_pick_backup.sh", tmp_path, aws_listing(tmp_path, [], keys=keys),
                 {**BUCKET, "DATABASE": "neo4j", "ARTIFACT_FILE": str(artifact)})
    return result, artifact


def test_the_rehearsal_restores_the_newest_artifact_of_the_newest_chain(tmp_path):
    """neo4j-admin restores one named database only from one artifact; the newest neo4j artifact
    (not system's) of the newest chain, found across pages."""
    keys = chain_keys(*[f"2026-{m:02d}-{d:02d}" for m in (10, 11) for d in range(1, 29)])
    result, artifact = pick(tmp_path, keys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert artifact.read_text().strip() == "neo4j/chains/2026-11-28/neo4j-2026-11-28T23-00-00.backup"
    assert len([c for c in calls(tmp_path).splitlines() if "list-objects-v2" in c]) == 3  # 2,688 keys


def test_the_rehearsal_fails_without_an_artifact_to_restore(tmp_path):
    result, artifact = pick(tmp_path, ["neo4j/chains/2026-11-28/system-2026-11-28T00-00-00.backup"])
    assert result.returncode == 1 and "no neo4j backup artifact" in result.stdout and not artifact.exists()


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


ARTIFACT = "neo4j/chains/2026-11-30/neo4j-2026-12-06T23-00-12.backup"


def rehearsal_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "artifact").write_text(ARTIFACT + "\n")
    return {**BUCKET, "DATABASE": "neo4j", "ARTIFACT_FILE": str(tmp_path / "artifact"), **image_home(tmp_path)}


def rehearse(tmp_path: Path, **tools) -> subprocess.CompletedProcess:
    return run("neo4j_restore_rehearsal.sh", tmp_path, rehearsal_tools(tmp_path, **tools), rehearsal_env(tmp_path))


@pytest.mark.parametrize("nodes,code,words", [("42", 0, "with 42 nodes"),
                                              ("0", 1, "has '0' nodes"),
                                              ("", 1, "has '' nodes")])
def test_restore_rehearsal_fails_unless_the_restored_graph_has_nodes(tmp_path, nodes, code, words):
    result = rehearse(tmp_path, nodes=nodes, answers_after=2)
    assert result.returncode == code, result.stdout + result.stderr
    assert words in result.stdout
    log = calls(tmp_path)
    # one artifact and the database name: neo4j-admin allows the name only with a single artifact
    assert f"database restore --from-path=s3://intelgraph-prod-neo4j-backups-ae6dc970/{ARTIFACT} " in log
    assert log.rstrip().splitlines()[0].endswith(" neo4j")
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
                 {**rehearsal_env(tmp_path), "START_ATTEMPTS": "3"})
    assert result.returncode != 0, result.stdout
    if words:
        assert words in result.stdout
    if tools.get("admin_exit"):
        assert "neo4j start" not in calls(tmp_path)


# SHOW SERVERS / SHOW DATABASES as cypher-shell --format plain prints them: a header, then rows of
# quoted strings (Neo4j Operations Manual, "Managing servers in a cluster", "Managing databases in
# a cluster": health Available/Degraded/Unavailable; currentStatus starting/online/...).
ADDRESS = "graph-server-5.graph.svc.cluster.local:7687"


def gate_tools(tmp_path: Path, answers: list[tuple[str, list[str]]]) -> dict[str, str]:
    """cypher-shell answering the i-th SHOW SERVERS with answers[i][0] and the i-th SHOW DATABASES
    with answers[i][1] (the last answer repeats); it checks the statements name the server."""
    health = "\n".join(f"{i}) printf 'health\\n\"{h}\"\\n';;" for i, (h, _) in enumerate(answers))
    rows = "\n".join(f"{i}) printf 'name, requestedStatus, currentStatus\\n{''.join(r + chr(92) + 'n' for r in dbs)}';;"
                     for i, (_, dbs) in enumerate(answers))
    last = len(answers) - 1
    return {"cypher-shell": f"""
[ -n "$NEO4J_PASSWORD" ] && [ "$NEO4J_USERNAME" = neo4j ] || {{ echo "no credentials" >&2; exit 3; }}
case "$*" in *secret*) echo "password in argv" >&2; exit 4;; esac
statement=$(cat)
case "$statement" in *"'{ADDRESS}'"*) ;; *) echo "not about the restarted server" >&2; exit 5;; esac
kind=databases; case "$statement" in "SHOW SERVERS"*) kind=servers;; esac
n=$(cat {tmp_path}/$kind 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/$kind
[ "$n" -le {last} ] || n={last}
if [ $kind = servers ]; then case $n in {health} esac; else case $n in {rows} esac; fi""",
        "sleep": "exit 0"}


def auth_file(tmp_path: Path) -> str:
    (tmp_path / "NEO4J_AUTH").write_text("neo4j/secret")  # the chart's Secret, mounted as a file
    return str(tmp_path / "NEO4J_AUTH")


def gate(tmp_path: Path, answers, **env) -> subprocess.CompletedProcess:
    return run("neo4j_wait_online.sh", tmp_path, gate_tools(tmp_path, answers),
               {"NEO4J_ADDRESS": "neo4j://graph-lb-neo4j.graph.svc.cluster.local:7687", "SERVER_ADDRESS": ADDRESS,
                "NEO4J_AUTH_FILE": auth_file(tmp_path), "POLL_SECONDS": "0", **env})


def test_the_roll_gate_waits_until_every_allocation_requested_online_is_online(tmp_path):
    result = gate(tmp_path, [
        ("Unavailable", ['"system", "online", "starting"']),  # Bolt answers, the server is not back
        ("Available", ['"system", "online", "online"', '"neo4j", "online", "starting"']),  # catching up
        ("Available", ['"system", "online", "online"', '"neo4j", "online", "online"', '"old", "offline", "offline"']),
    ])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "not online yet: system (starting)" in lines[0] and "not online yet: neo4j (starting)" in lines[1]
    assert lines[-1] == f"{ADDRESS}: Available, 3 allocation(s), every one requested online is online"
    assert (tmp_path / "servers").read_text().strip() == "3"  # it polled until then, not longer


def test_the_roll_gate_never_passes_a_server_hosting_nothing_and_keeps_waiting(tmp_path):
    # no allocation on the server (its address not yet in the cluster's view): still waiting when
    # the Job's deadline would end it (here: the stand-in's timeout of the test run)
    tools = gate_tools(tmp_path, [("Available", [])])
    tools["sleep"] = f"n=$(cat {tmp_path}/sleeps 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/sleeps; " \
                     "[ $n -lt 3 ] || exit 9"
    result = run("neo4j_wait_online.sh", tmp_path, tools,
                 {"NEO4J_ADDRESS": "neo4j://x:7687", "SERVER_ADDRESS": ADDRESS, "NEO4J_AUTH_FILE": auth_file(tmp_path)})
    assert result.returncode == 9 and "0 allocation(s)" in result.stdout


def test_the_roll_gate_lets_a_first_install_form_the_cluster(tmp_path):
    result = gate(tmp_path, [("Unavailable", [])], FIRST_INSTALL="true")
    assert result.returncode == 0 and "first install" in result.stdout
    assert not (tmp_path / "calls.log").exists()  # it asked nobody


# --- the DR cluster's graph from the replicated chain: refresh (warm) and switch ------------------

# A stand-in for cypher-shell against a Neo4j 5.26 cluster holding one user database, its state in
# a JSON file. It answers what the manual says the server does: SHOW DATABASE yields one row per
# allocation ("Managing databases in a cluster"); dbms.cluster.recreateDatabase (5.24+) needs an
# existing database, works online or offline, keeps its access, and replaces the store on every
# allocation asynchronously - the allocations restart, then report online with a new start time,
# or offline with a status message when its seed cannot be started; CREATE DATABASE refuses an
# existing name; a query on a database that is not online fails. It refuses credentials in argv,
# a login that is not the admin's, statements on the wrong database and a seed other than the
# expected one, and logs every statement.
FAKE_CYPHER = r"""
import json, os, re, sys
state_file, log = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
state = json.load(open(state_file))
if os.environ.get("NEO4J_USERNAME") != "neo4j" or not os.environ.get("NEO4J_PASSWORD"):
    sys.exit("no credentials")
if any("secret" in a for a in args):
    sys.exit("password in argv")
opts = dict(zip(args[::2], args[1::2])) if "--non-interactive" not in args else {}
i = 0
while i < len(args):
    if args[i] in ("-a", "-d", "--format"):
        opts[args[i]] = args[i + 1]; i += 2
    elif args[i] == "--non-interactive":
        i += 1
    else:
        sys.exit(f"unexpected cypher-shell argument {args[i]}")
if opts.get("-a") != "neo4j://graph-lb-neo4j.graph.svc.cluster.local:7687" or opts.get("--format") != "plain":
    sys.exit(f"unexpected cypher-shell call {args}")
statement = sys.stdin.read().strip()
open(log, "a").write(f"{opts['-d']}: {statement}\n")
db = state["name"]

def save():
    json.dump(state, open(state_file, "w"))

def settle():
    # an asynchronous (re)seed in progress: allocations restart, then come up with the seeded store
    pending = state.get("pending")
    if not pending:
        return
    if pending.get("unseen", 0):  # the call returned before any allocation began to restart
        pending["unseen"] -= 1
        return
    if pending["polls"] > 0:
        pending["polls"] -= 1
        for a in state["allocations"]:
            a["current"] = "starting"
        return
    state["pending"] = None
    state["starts"] = state.get("starts", 0) + 1
    for a in state["allocations"]:
        a["start"] = f"2026-12-07T0{state['starts']}:00:00Z"
        a["current"], a["message"] = ("offline", "Unable to start database") if pending["fail"] else ("online", "")
    state["nodes"] = pending["nodes"]

def reseed(seed):
    if seed != state["expected_seed"]:
        sys.exit(f"seeded from {seed}, not {state['expected_seed']}")
    state["pending"] = {"unseen": 1, "polls": 2, "nodes": state["seed_nodes"], "fail": state.get("seed_fails", False)}

if opts["-d"] == "system":
    m = re.fullmatch(r"SHOW DATABASE (\w+) YIELD access, requestedStatus, currentStatus, lastStartTime, statusMessage "
                     r"RETURN access, requestedStatus, currentStatus, lastStartTime, statusMessage;", statement)
    if m:
        if state.get("pending") and state.get("unanswered", 0):  # the system database electing a leader
            state["unanswered"] -= 1; save()
            print("Unable to route to the system database: no leader", file=sys.stderr); sys.exit(1)
        settle(); save()
        print("access, requestedStatus, currentStatus, lastStartTime, statusMessage")
        if state["exists"] and m.group(1) == db:
            for a in state["allocations"]:
                print(f'"{state["access"]}", "online", "{a["current"]}", {a["start"]}, "{a["message"]}"')
        sys.exit(0)
    m = re.fullmatch(r"CALL dbms\.cluster\.recreateDatabase\('(\w+)', \{seedURI: '([^']+)'\}\);", statement)
    if m:
        if not state["exists"] or m.group(1) != db:
            print(f"Database does not exist: {m.group(1)}", file=sys.stderr); sys.exit(1)
        reseed(m.group(2)); save(); sys.exit(0)
    m = re.fullmatch(r"CREATE DATABASE (\w+) TOPOLOGY (\d+) PRIMARIES (\d+) SECONDARIES "
                     r"OPTIONS \{existingData: 'use', seedURI: '([^']+)'\};", statement)
    if m:
        if state["exists"]:
            print(f"Failed to create the specified database '{m.group(1)}': Database already exists.", file=sys.stderr)
            sys.exit(1)
        if (int(m.group(2)), int(m.group(3))) != tuple(state["topology"]):
            sys.exit(f"topology {m.group(2)}/{m.group(3)} is not the cluster's {state['topology']}")
        state.update(exists=True, name=m.group(1), access="read-write",
                     allocations=[{"current": "starting", "start": "NULL", "message": ""}
                                  for _ in range(sum(state["topology"]))])
        reseed(m.group(4)); save(); sys.exit(0)
    m = re.fullmatch(r"ALTER DATABASE (\w+) SET ACCESS (READ ONLY|READ WRITE);", statement)
    if m and state["exists"] and m.group(1) == db:
        state["access"] = m.group(2).lower().replace(" ", "-"); save(); sys.exit(0)
    sys.exit(f"unexpected statement on system: {statement}")
if opts["-d"] == db and statement == "MATCH (n) RETURN count(n) AS nodes;":
    settle(); save()
    if not state["exists"] or any(a["current"] != "online" for a in state["allocations"]):
        print(f"Database '{db}' is unavailable.", file=sys.stderr); sys.exit(1)
    print(f"nodes\n{state['nodes']}")
    sys.exit(0)
sys.exit(f"unexpected statement on {opts['-d']}: {statement}")
"""

DR_BUCKET = "intelgraph-prod-neo4j-backups-us-west-2-ae6dc970"
DR_ARTIFACT = "neo4j/chains/2026-12-06/neo4j-2026-12-06T23-00-12.backup"
DR_SEED = f"s3://{DR_BUCKET}/{DR_ARTIFACT}"


def dr_cluster(tmp_path: Path, *, exists: bool = True, access: str = "read-only", nodes: int = 1200,
               current: str = "online", message: str = "", pending: dict | None = None, **extra) -> Path:
    """The DR cluster's `neo4j` database as a refresh or a switch finds it (3 primaries, 2 secondaries)."""
    state = {"name": "neo4j", "exists": exists, "access": access, "nodes": nodes, "topology": [3, 2],
             "allocations": [{"current": current, "start": "2026-12-06T01:00:00Z", "message": message}
                             for _ in range(5)] if exists else [],
             "expected_seed": DR_SEED, "seed_nodes": 4321, "pending": pending, **extra}
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(state))
    return path


def seed_job(tmp_path: Path, mode: str, artifact: str = DR_ARTIFACT, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "artifact").write_text(artifact + "\n")
    (tmp_path / "fake_cypher.py").write_text(FAKE_CYPHER)
    tools = {"cypher-shell": f'exec {sys.executable} {tmp_path}/fake_cypher.py {tmp_path}/cluster.json '
                             f'{tmp_path}/statements.log "$@"',
             "sleep": "exit 0"}
    return run("neo4j_dr_seed.sh", tmp_path, tools, {
        "NEO4J_ADDRESS": "neo4j://graph-lb-neo4j.graph.svc.cluster.local:7687",
        "NEO4J_AUTH_FILE": auth_file(tmp_path), "BACKUP_BUCKET": DR_BUCKET,
        "ARTIFACT_FILE": str(tmp_path / "artifact"), "DATABASE": "neo4j", "MODE": mode,
        "PRIMARIES": "3", "SECONDARIES": "2", "WAIT_ATTEMPTS": "8", **env})


def statements(tmp_path: Path) -> list[str]:
    path = tmp_path / "statements.log"
    return path.read_text().splitlines() if path.exists() else []


def changes(tmp_path: Path) -> list[str]:
    """What the job changed: every statement but the reads."""
    return [s for s in statements(tmp_path) if "SHOW DATABASE" not in s and "MATCH (n)" not in s]


def final(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "cluster.json").read_text())


def test_a_refresh_recreates_the_standby_from_the_newest_replicated_artifact(tmp_path):
    """Steady state of warm mode: the database is READ ONLY and holds the last refresh. The refresh
    recreates it on every allocation from the chain's artifact in the DR bucket (a seed the
    servers download themselves), waits until every allocation started anew, and leaves it READ
    ONLY (recreation keeps the access)."""
    dr_cluster(tmp_path)
    result = seed_job(tmp_path, "refresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(tmp_path) == [f"system: CALL dbms.cluster.recreateDatabase('neo4j', {{seedURI: '{DR_SEED}'}});"]
    after = final(tmp_path)
    assert after["access"] == "read-only" and after["nodes"] == 4321
    assert {a["start"] for a in after["allocations"]} == {"2026-12-07T01:00:00Z"}
    assert "with 4321 nodes" in result.stdout and "READ ONLY until a switch" in result.stdout
    # right after the call every allocation still reported online, with its old start time: it
    # waited until each had started anew
    assert result.stdout.count("0 of 5 allocation(s) online") == 3


def test_the_first_refresh_makes_the_empty_standby_read_only_before_seeding(tmp_path):
    """A new DR cluster has an empty, read-write default database. It becomes READ ONLY first, so
    a switch that promotes while seeding runs is not undone when seeding ends."""
    dr_cluster(tmp_path, access="read-write", nodes=0)
    result = seed_job(tmp_path, "refresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(tmp_path) == ["system: ALTER DATABASE neo4j SET ACCESS READ ONLY;",
                                 f"system: CALL dbms.cluster.recreateDatabase('neo4j', {{seedURI: '{DR_SEED}'}});"]
    assert final(tmp_path)["access"] == "read-only"


def test_a_refresh_is_refused_when_a_switch_promoted_the_database(tmp_path):
    """READ WRITE with data: the DR region took writes; a refresh would put an older backup over them."""
    dr_cluster(tmp_path, access="read-write", nodes=99)
    result = seed_job(tmp_path, "refresh")
    assert result.returncode == 1
    assert "refusing to refresh" in result.stdout and "the DR region is active" in result.stdout
    assert changes(tmp_path) == [] and final(tmp_path)["nodes"] == 99


def test_a_refresh_creates_a_missing_database_with_the_clusters_topology_from_the_seed(tmp_path):
    dr_cluster(tmp_path, exists=False)
    result = seed_job(tmp_path, "refresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(tmp_path) == [
        "system: CREATE DATABASE neo4j TOPOLOGY 3 PRIMARIES 2 SECONDARIES "
        f"OPTIONS {{existingData: 'use', seedURI: '{DR_SEED}'}};",
        "system: ALTER DATABASE neo4j SET ACCESS READ ONLY;"]
    assert final(tmp_path)["access"] == "read-only" and final(tmp_path)["nodes"] == 4321


def test_a_switch_promotes_the_refreshed_copy_without_seeding_again(tmp_path):
    dr_cluster(tmp_path)
    result = seed_job(tmp_path, "switch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(tmp_path) == ["system: ALTER DATABASE neo4j SET ACCESS READ WRITE;"]
    assert "promoted neo4j as the last refresh left it (1200 nodes)" in result.stdout


def test_a_switch_waits_for_a_refresh_in_flight_then_promotes_it(tmp_path):
    dr_cluster(tmp_path, pending={"polls": 3, "nodes": 1500, "fail": False})
    result = seed_job(tmp_path, "switch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(tmp_path) == ["system: ALTER DATABASE neo4j SET ACCESS READ WRITE;"]
    assert final(tmp_path)["nodes"] == 1500 and "(1500 nodes)" in result.stdout


@pytest.mark.parametrize("cluster", [
    {"access": "read-write", "nodes": 0},  # pilot-light: the servers the switch created, an empty default database
    {"current": "offline", "message": "Unable to start database"},  # the last refresh failed to start
])
def test_a_switch_seeds_what_holds_no_usable_graph_then_opens_it_for_writes(tmp_path, cluster):
    dr_cluster(tmp_path, **cluster)
    result = seed_job(tmp_path, "switch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changes(tmp_path) == [f"system: CALL dbms.cluster.recreateDatabase('neo4j', {{seedURI: '{DR_SEED}'}});",
                                 "system: ALTER DATABASE neo4j SET ACCESS READ WRITE;"]
    assert final(tmp_path)["access"] == "read-write" and final(tmp_path)["nodes"] == 4321


def test_a_seed_that_never_starts_fails_the_job(tmp_path):
    dr_cluster(tmp_path, seed_fails=True)
    result = seed_job(tmp_path, "refresh")
    assert result.returncode == 1 and "FAILED: the seeded database did not come online" in result.stdout
    assert "Unable to start database" in result.stdout


@pytest.mark.parametrize("artifact,mode", [("neo4j/chains/x/neo4j-1.backup'}) //", "refresh"),
                                           ("neo4j/chains/x/neo4j-1.dump", "refresh"), (DR_ARTIFACT, "restore")])
def test_the_seed_job_refuses_what_it_cannot_put_into_cypher_safely(tmp_path, artifact, mode):
    dr_cluster(tmp_path)
    result = seed_job(tmp_path, mode, artifact=artifact)
    assert result.returncode == 2 and statements(tmp_path) == []


def test_the_seed_job_rides_out_a_cluster_that_does_not_answer_for_a_while(tmp_path):
    """While the allocations restart, the system database may elect a leader: a SHOW that gets no
    answer is asked again, not the end of the refresh."""
    dr_cluster(tmp_path, unanswered=2)
    result = seed_job(tmp_path, "refresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("the cluster does not answer yet") == 2 and final(tmp_path)["nodes"] == 4321
