"""Rotated secrets: the PostgreSQL master secret on a schedule from config, the Redis password
through an ACL roll that a real redis-server accepts step by step and the engine keeps in order,
the Neo4j admin password through a Job that runs ALTER USER before the Secret flips, and the
application's Neo4j user through two users that take turns; clients read both from Secrets in
their own namespace."""

from __future__ import annotations

import json
import subprocess

import pulumi_kubernetes as kubernetes
import pytest
from pulumi.runtime import rpc

from components.redis_cache import RedisCache, RedisCacheArgs
from helpers.redis_auth import EPOCHS_ANNOTATION, Rollover, accepted_epochs, client_epoch, step_witnesses
from synth import engine
from tests.conftest import config_with, run_component, synthesized
from tests.test_redis import RedisServer

ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
_rotating = {}


def rotating_stage():
    """Stage with every rotation knob turned at once (one synth for the tests that need it)."""
    if not _rotating:
        _rotating["stage"] = engine.synthesize("stage", config_with("stage", {
            "postgres.masterSecretRotationDays": 30, "neo4j.passwordEpoch": 1,
            "redis.passwordRotation": {"epoch": 2, "rollover": "servers"}}))
    return _rotating["stage"]


# --- RDS ---------------------------------------------------------------------------------------

def test_the_master_secret_rotates_with_awss_postgres_function_under_our_key(any_stack):
    """Not RDS-managed rotation: RDS refuses a read replica of an instance whose master password it
    manages (RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager",
    Limitations), so the secret is ours and a rotation function (the provider's
    rotation_lambda_arn: "Must be supplied if the secret is not managed by AWS") rotates it, from
    the first deploy (docs/decisions/014-master-secret-not-rds-managed.md)."""
    primary = any_stack.named("intelgraph-pg-primary", "aws:rds/instance:Instance")
    [rotation] = any_stack.of_type(ROTATION)
    secret = any_stack.named("intelgraph-pg-master", "aws:secretsmanager/secret:Secret")
    assert not primary.outputs.get("masterUserSecrets")  # no RDS-managed secret exists
    assert rotation.inputs["secretId"] == secret.outputs["arn"] and secret.outputs["arn"].startswith(
        "arn:aws:secretsmanager:us-east-1:")
    assert rotation.inputs["rotationRules"] == {"automaticallyAfterDays": 7}
    assert rotation.inputs["rotationLambdaArn"].startswith("arn:aws:lambda:us-east-1:")
    assert rotation.inputs["rotateImmediately"] is True
    # encrypted with a customer key of the primary's region, not aws/secretsmanager
    key = any_stack.named("intelgraph-pg-primary-secret-key", "aws:kms/key:Key").outputs["arn"]
    assert secret.inputs["kmsKeyId"] == key
    assert rotation.parent == any_stack.named("intelgraph-pg", "intelgraph:database:PostgresDr").urn


def test_the_rotation_schedule_comes_from_config_and_is_bounded():
    synthesis = rotating_stage()
    assert synthesis.of_type(ROTATION)[0].inputs["rotationRules"] == {"automaticallyAfterDays": 30}
    import settings

    with pytest.raises(settings.SettingsError, match=r"postgres\.masterSecretRotationDays"):
        settings.validate(config_with("stage", {"postgres.masterSecretRotationDays": 0}))


# --- Redis -------------------------------------------------------------------------------------

def _redis(epoch: int, rollover: Rollover):
    """The real RedisCache at one step of a roll; returns its config, the cache's Secret, the
    application's Secret (namespace "app"), the pod annotation and the passwords."""

    def build() -> dict:
        provider = kubernetes.Provider("k8s", context="test")
        from pulumi import ResourceOptions

        RedisCache("redis", RedisCacheArgs(
            namespace="cache", image="redis:7.4.2-bookworm", exporter_image="oliver006/redis_exporter:v1.67.0",
            replicas=1, cpu_request="100m", cpu_limit="200m", memory="1Gi", memory_bytes=2**30,
            persistence=False, maxmemory_policy="allkeys-lru", timeout_seconds=0, tcp_keepalive_seconds=300,
            slowlog_slower_than_micros=10000, slowlog_max_len=128, prometheus_release_label="kps",
            password_epoch=epoch, password_rollover=rollover, client_namespace="app"),
            opts=ResourceOptions(provider=provider))
        return {}

    synthesis = run_component(build)
    config = synthesis.named("redis-config", "kubernetes:core/v1:ConfigMap").inputs["data"]["redis.conf"]
    secret = rpc.unwrap_rpc_secret(synthesis.named("redis-auth", "kubernetes:core/v1:Secret").inputs["stringData"])
    app = synthesis.named("redis-client", "kubernetes:core/v1:Secret").inputs
    assert app["metadata"]["namespace"] == "app" and app["metadata"]["name"] == "redis-client"
    assert rpc.is_rpc_secret(app["stringData"])  # a secret: encrypted in the state, masked in a diff
    client = rpc.unwrap_rpc_secret(app["stringData"])
    assert client["REDIS_ADDRESS"] == "redis.cache.svc.cluster.local:6379"
    template = synthesis.named("redis", "kubernetes:apps/v1:StatefulSet").inputs["spec"]["template"]
    passwords = {r.name: r.outputs["result"] for r in synthesis.of_type("random:index/randomPassword:RandomPassword")}
    return config, secret, client, template["metadata"]["annotations"][EPOCHS_ANNOTATION], passwords


def _answers(tmp_path, config: str, auth_conf: str, passwords: dict[str, str]) -> dict[str, str]:
    """Boot the real redis-server with the generated files; what a client authenticating with each
    password gets: PING as the probes and clients send it (REDISCLI_AUTH), and the AUTH reply."""
    tmp_path.mkdir()
    server = RedisServer(tmp_path, config, auth_conf)
    try:
        server.wait_ready(passwords["new"])
        return {label: server.cli("ping", password=p).stdout.strip() + " / " + server.cli("auth", p).stdout.strip()
                for label, p in passwords.items()}
    finally:
        server.stop()


def test_a_redis_password_rolls_without_a_moment_where_a_client_is_refused(tmp_path):
    """Redis ACL (redis.io, "ACL"): a user may hold several passwords, `#<sha256>` adds one by its
    digest and every one authenticates. Each step is one deploy; a real redis-server judges each,
    with the password the application reads from its own namespace's Secret."""
    config, before, app, epochs, pw = _redis(0, "none")
    old = pw["redis-password"]
    assert before["password"] == old == app["REDIS_PASSWORD"] and epochs == "0"

    # 1. servers accept both, clients keep the old one
    config, servers, app, epochs, pw = _redis(1, "servers")
    new = pw["redis-password-1"]
    assert pw["redis-password"] == old and new != old  # the old password survives the new epoch
    assert servers["password"] == app["REDIS_PASSWORD"] == old and epochs == "0,1"  # a new annotation restarts the pods
    assert old not in servers["auth.conf"] and new not in servers["auth.conf"]  # digests only
    assert _answers(tmp_path / "1", config, servers["auth.conf"], {"old": old, "new": new}) == {
        "old": "PONG / OK", "new": "PONG / OK"}

    # 2. clients switch to the new one; the servers (unchanged, not restarted) still take both
    config, clients, app, epochs, _ = _redis(1, "clients")
    assert clients["password"] == app["REDIS_PASSWORD"] == new
    assert clients["auth.conf"] == servers["auth.conf"] and epochs == "0,1"
    assert _answers(tmp_path / "2", config, clients["auth.conf"], {"old": old, "new": app["REDIS_PASSWORD"]}) == {
        "old": "PONG / OK", "new": "PONG / OK"}  # a client not yet restarted still gets in

    # 3. only the new one
    config, after, app, epochs, pw = _redis(1, "none")
    assert after["password"] == app["REDIS_PASSWORD"] == new and epochs == "1" and "redis-password" not in pw
    answers = _answers(tmp_path / "3", config, after["auth.conf"], {"old": old, "new": new})
    assert answers == {"new": "PONG / OK",
                       "old": "NOAUTH Authentication required. / WRONGPASS invalid username-password pair or user is disabled."}


ROLLOVERS: tuple[Rollover, ...] = ("none", "servers", "clients")
STATES = [(e, r) for e in range(5) for r in ROLLOVERS if e or r == "none"]


def _registers(state) -> dict[tuple[int, str], bool]:
    return {(e, step): keep for e, step, keep in step_witnesses(*state)}


def _admitted(before, after) -> bool:
    """The engine's verdict on a deploy from ``before`` to ``after``: a witness registered keep-only
    (length 0, ignore_changes [length]) must be in the state, which holds exactly the witnesses the
    previous deploy registered; otherwise the provider's Check refuses its length
    (pulumi/pulumi step_generator.go: ignoreChanges applies only with an old resource;
    terraform-provider-random resource_string.go: length AtLeast(1))."""
    held = _registers(before)
    return all(witness in held for witness, keep in _registers(after).items() if keep)


def _safe(before, after) -> bool:
    """No client is refused during or after the deploy: clients not yet restarted hold before's
    password, those that picked up the new Secret hold after's, and while the servers roll some
    run before's ACL and some after's - so both passwords must be in both ACLs."""
    held = {client_epoch(*before), client_epoch(*after)}
    return held <= set(accepted_epochs(*before)) & set(accepted_epochs(*after))


def test_the_engine_refuses_every_redis_step_that_would_lock_a_client_out():
    """Settings see one deploy, so every state is valid alone; the order lives in the state (the
    step witnesses). Checked over every pair of states: each deploy the witnesses admit is safe for
    every client, unless it lowers the epoch (documented: never lower an epoch) - to 0, whose
    witness a new stack must be able to create, or from a clients step to the settled epoch before
    it, which shares its witness with the undo of that clients step."""
    unsafe = {(a, b) for a in STATES for b in STATES if a != b and _admitted(a, b) and not _safe(a, b)}
    assert unsafe and all(b[0] < a[0] for a, b in unsafe)
    assert {(a, b) for a, b in unsafe if b != (0, "none")} == {((e, "clients"), (e - 1, "none")) for e in range(2, 5)}
    # the procedure itself goes through, and so does undoing its clients step
    for epoch in range(1, 5):
        path = [(epoch - 1, "none"), (epoch, "servers"), (epoch, "clients"), (epoch, "none")]
        assert all(_admitted(a, b) and _safe(a, b) for a, b in zip(path, path[1:], strict=False))
        assert _admitted((epoch, "clients"), (epoch, "servers"))
    # the skips the issue names: epoch only, rollover straight to clients, and clients left out
    assert not _admitted((0, "none"), (1, "none"))
    assert not _admitted((0, "none"), (1, "clients"))
    assert not _admitted((1, "servers"), (1, "none"))
    assert not _admitted((1, "none"), (3, "servers"))
    # a new stack starts at epoch 0 and nowhere else
    assert [s for s in STATES if all(not keep for keep in _registers(s).values())] == [(0, "none")]


def test_the_witnesses_reach_the_engine_keep_only_where_the_state_machine_says():
    """What the component registers is what the model above judged: a keep-only witness has
    length 0 and ignores changes to length, a created one a valid length."""

    def witnesses(epoch: int, rollover: Rollover) -> dict[str, tuple[int, list[str]]]:
        def build() -> dict:
            from helpers.redis_auth import redis_auth
            redis_auth("redis", epoch, rollover, pulumi.ResourceOptions())
            return {}
        synthesis = run_component(build)
        return {r.name: (r.inputs["length"], r.ignore_changes)
                for r in synthesis.of_type("random:index/randomString:RandomString")}

    import pulumi

    assert witnesses(0, "none") == {"redis-rotation-0-clients": (8, ["length"])}
    assert witnesses(2, "servers") == {"redis-rotation-2-servers": (8, ["length"]),
                                       "redis-rotation-1-clients": (0, ["length"])}
    assert witnesses(2, "clients") == {"redis-rotation-2-servers": (0, ["length"]),
                                       "redis-rotation-2-clients": (8, ["length"]),
                                       "redis-rotation-1-clients": (0, ["length"])}
    assert witnesses(2, "none") == {"redis-rotation-2-clients": (0, ["length"])}


def test_the_stack_config_drives_the_redis_roll_and_refuses_a_roll_from_nothing():
    import settings

    synthesis = rotating_stage()
    names = {r.name for r in synthesis.of_type("random:index/randomPassword:RandomPassword")}
    assert {"redis-password-1", "redis-password-2"} <= names
    template = synthesis.named("redis", "kubernetes:apps/v1:StatefulSet").inputs["spec"]["template"]
    assert template["metadata"]["annotations"][EPOCHS_ANNOTATION] == "1,2"
    with pytest.raises(settings.SettingsError, match=r"redis\.passwordRotation\.rollover: a rollover needs"):
        settings.validate(config_with("stage", {"redis.passwordRotation": {"rollover": "servers"}}))


def test_today_the_stacks_use_epoch_zero_so_nothing_rotates_by_accident():
    for stack in ("stage", "prod"):
        names = {r.name for r in synthesized(stack).of_type("random:index/randomPassword:RandomPassword")}
        assert "redis-password" in names and not any(n.startswith("redis-password-") for n in names)


# --- Neo4j -------------------------------------------------------------------------------------

FAKE_CYPHER_SHELL = r"""#!/bin/bash
# cypher-shell as the rotation needs it: checks its flags, authenticates NEO4J_PASSWORD against the
# password the "database" holds, and applies ALTER CURRENT USER SET PASSWORD FROM ... TO ...
state={state}
echo "argv: $*" >> {log}
expected="-a neo4j://graph-lb-neo4j.graph.svc.cluster.local:7687 -d system --non-interactive --format plain"
[ "$*" = "$expected" ] || {{ echo "unexpected flags: $*" >&2; exit 64; }}
[ "$NEO4J_USERNAME" = neo4j ] || {{ echo "no NEO4J_USERNAME" >&2; exit 64; }}
query=$(cat)
echo "stdin: $query" >> {log}
if [ "$NEO4J_PASSWORD" != "$(cat "$state")" ]; then
  echo "The client is unauthorized due to authentication failure." >&2; exit 1
fi
re="^ALTER CURRENT USER SET PASSWORD FROM '([^']*)' TO '([^']*)';$"
if [[ $query =~ $re ]]; then
  [ "${{BASH_REMATCH[1]}}" = "$(cat "$state")" ] || {{ echo "Invalid principal or credentials" >&2; exit 1; }}
  printf '%s' "${{BASH_REMATCH[2]}}" > "$state"
fi
echo "user"; echo "neo4j"
"""


def rotate(tmp_path, current: str, old: str, new: str):
    from helpers.neo4j_password import SCRIPT, routing_address

    (tmp_path / "bin").mkdir(exist_ok=True)
    state, log = tmp_path / "password", tmp_path / "calls.log"
    state.write_text(current)
    fake = tmp_path / "bin" / "cypher-shell"
    fake.write_text(FAKE_CYPHER_SHELL.format(state=state, log=log))
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "NEO4J_ADDRESS": routing_address("graph", "graph"),
           "NEO4J_USERNAME": "neo4j", "OLD_PASSWORD": old, "NEW_PASSWORD": new}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    return result, state.read_text(), log.read_text() if log.exists() else ""


def test_the_job_changes_the_password_with_alter_user_from_the_old_one(tmp_path):
    result, now, log = rotate(tmp_path, current="oldpw123", old="oldpw123", new="newpw456")
    assert result.returncode == 0, result.stderr
    assert now == "newpw456"
    assert "stdin: ALTER CURRENT USER SET PASSWORD FROM 'oldpw123' TO 'newpw456';" in log
    argv = [line for line in log.splitlines() if line.startswith("argv:")]
    assert len(argv) == 3  # new (refused), old + ALTER, new (verified)
    assert not any("oldpw123" in a or "newpw456" in a for a in argv)  # never on a command line


def test_a_rerun_after_success_changes_nothing(tmp_path):
    result, now, log = rotate(tmp_path, current="newpw456", old="oldpw123", new="newpw456")
    assert result.returncode == 0 and now == "newpw456" and "ALTER" not in log
    assert "nothing to change" in result.stdout


def test_when_neither_password_works_the_job_fails_and_changes_nothing(tmp_path):
    result, now, log = rotate(tmp_path, current="someone-else", old="oldpw123", new="newpw456")
    assert result.returncode != 0 and now == "someone-else"


def test_a_password_a_cypher_literal_cannot_carry_is_refused_before_connecting(tmp_path):
    result, now, log = rotate(tmp_path, current="old", old="old", new="it's")
    assert result.returncode == 2 and now == "old" and log == ""


def test_a_new_neo4j_epoch_runs_the_job_before_the_secret_flips():
    import kubernetes_validate

    from synth import export, policy_runner

    synthesis = rotating_stage()
    passwords = {r.name: r.outputs["result"] for r in synthesis.of_type("random:index/randomPassword:RandomPassword")}
    old, new = passwords["neo4j-admin-password"], passwords["neo4j-admin-password-1"]
    job = synthesis.named("neo4j-password-rotation-1", "kubernetes:batch/v1:Job")
    handover = rpc.unwrap_rpc_secret(synthesis.named(
        "neo4j-password-rotation-1", "kubernetes:core/v1:Secret").inputs["stringData"])
    assert handover == {"OLD_PASSWORD": old, "NEW_PASSWORD": new}
    auth = synthesis.named("neo4j-auth", "kubernetes:core/v1:Secret")
    assert rpc.unwrap_rpc_secret(auth.inputs["stringData"])["NEO4J_AUTH"] == f"neo4j/{new}"
    assert job.urn in auth.dependencies  # the flip waits for the Job (Pulumi awaits a Job's success)
    assert "pulumi.com/skipAwait" not in job.inputs["metadata"].get("annotations", {})
    # the releases still read the same Secret name, so nothing restarts
    for release in synthesis.of_type("kubernetes:helm.sh/v3:Release"):
        assert release.inputs["values"]["neo4j"]["passwordFromSecret"] == "graph-auth"
    objects = {(o["kind"], o["metadata"]["name"]): o for o in export.kubernetes_objects(synthesis)}
    kubernetes_validate.validate(objects[("Job", "graph-password-rotation-1")], "1.33", strict=True)
    # default-deny egress lets the Job reach Bolt, and the pack passes the new objects
    policies = [o for o in objects.values() if o["kind"] == "NetworkPolicy" and "rotation" in o["metadata"]["name"]]
    assert policies and all(p["metadata"]["namespace"] == "graph" for p in policies)
    report = policy_runner.evaluate(export.to_export(synthesis), "stage")
    assert not report.mandatory_violations, report.mandatory_violations


def test_a_negative_neo4j_epoch_is_a_settings_error_naming_the_key():
    import settings

    with pytest.raises(settings.SettingsError, match=r"neo4j\.passwordEpoch: Input should be greater than or equal to 0"):
        settings.validate(config_with("stage", {"neo4j.passwordEpoch": -1}))


def test_a_first_install_with_a_rotated_neo4j_epoch_is_refused_before_anything_registers():
    """With passwordEpoch >= 1 on a first install the rotation Job (ALTER USER from the previous
    password) needs the running cluster, the releases need the Secret, and the Secret waits for the
    Job: a cycle that no retry breaks. A first install starts at epoch 0 (exit 2, naming the key)."""
    import settings
    from components.neo4j_cluster import Neo4jClusterArgs

    with pytest.raises(settings.SettingsError, match=r"neo4j\.bootstrap: a first install starts at neo4j\.passwordEpoch 0"):
        settings.validate(config_with("stage", {"neo4j.passwordEpoch": 1, "neo4j.bootstrap": True}))
    settings.validate(config_with("stage", {"neo4j.passwordEpoch": 0, "neo4j.bootstrap": True}))
    settings.validate(config_with("stage", {"neo4j.passwordEpoch": 1, "neo4j.bootstrap": False}))
    cfg = settings.validate(config_with("stage"))
    with pytest.raises(ValueError, match="bootstrap needs password_epoch 0"):
        Neo4jClusterArgs(namespace="graph", cluster_name="graph", chart_version="5.26.0",
                         image="neo4j:5.26.0-enterprise", accept_license_agreement="yes", primaries=3,
                         secondaries=0, cpu_request="1", cpu_limit="2", memory="8Gi",
                         memory_plan=cfg.neo4j.memory_plan, storage_class="gp3", storage_size="100Gi",
                         prometheus_release_label="kps", zones=("a", "b", "c"), password_epoch=1, bootstrap=True)


def _depends_on(synthesis, resource) -> set[str]:
    """Every URN ``resource`` waits for, directly or through what it waits for."""
    by_urn = {r.urn: r for r in synthesis.resources}
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo += by_urn[urn].dependencies + ([by_urn[urn].parent] if by_urn[urn].parent in by_urn else [])
    return seen


def test_the_credential_jobs_are_replaced_when_a_run_failed_and_cannot_deadlock():
    """pulumi-kubernetes provider/pkg/provider/provider.go (Diff): with `pulumi.com/replaceUnready:
    "true"` a Job whose live object is not ready (await/checker/job: Complete, not Failed) is
    replaced on the next update, named objects delete-before-replace; without it the provider keeps
    awaiting the failed Job, failing every later `up` (gen/additionalComments.go). The admin
    rotation waits for no server (it runs against the running cluster before the Secret flips);
    the app-user Job waits for every server and for the admin Secret it logs in with."""
    synthesis = rotating_stage()
    releases = {r.urn for r in synthesis.of_type("kubernetes:helm.sh/v3:Release")}
    rotation = synthesis.named("neo4j-password-rotation-1", "kubernetes:batch/v1:Job")
    app_job = synthesis.named("neo4j-app-user-1", "kubernetes:batch/v1:Job")
    for job in (rotation, app_job):
        assert job.inputs["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"
    assert not _depends_on(synthesis, rotation) & releases
    assert releases <= set(app_job.dependencies)
    assert synthesis.named("neo4j-auth", "kubernetes:core/v1:Secret").urn in app_job.dependencies
    assert rotation.urn in _depends_on(synthesis, app_job)  # epoch N's admin password first
    # the app-user Job outlives the provider's default 10-minute wait while a new cluster forms
    assert app_job.inputs["spec"]["activeDeadlineSeconds"] == 1200
    # and at a first install (epoch 0) there is no rotation Job at all
    assert not [r for r in synthesized("stage").of_type("kubernetes:batch/v1:Job")
                if r.name.startswith("neo4j-password-rotation")]


@pytest.mark.parametrize("epoch,user", [(0, "app_a"), (1, "app_b")])
def test_the_application_gets_its_neo4j_user_in_its_own_namespace(epoch, user):
    """A Pod reads Secrets of its own namespace only (Kubernetes docs, "Secrets"): the application's
    credentials are written into kubernetes.appNamespace, as a secret (encrypted in the state),
    and only after the Job has set that user's password in the database."""
    import kubernetes_validate

    import settings
    from synth import export

    synthesis = rotating_stage() if epoch else synthesized("stage")
    app_namespace = settings.validate(config_with("stage")).kubernetes.app_namespace
    secret = synthesis.named("neo4j-client", "kubernetes:core/v1:Secret")
    assert secret.inputs["metadata"] == {**secret.inputs["metadata"], "name": "graph-client", "namespace": app_namespace}
    assert rpc.is_rpc_secret(secret.inputs["stringData"])
    data = rpc.unwrap_rpc_secret(secret.inputs["stringData"])
    password = synthesis.named(f"neo4j-app-password-{epoch}", "random:index/randomPassword:RandomPassword")
    assert data == {"NEO4J_URI": "neo4j://graph-lb-neo4j.graph.svc.cluster.local:7687",
                    "NEO4J_USERNAME": user, "NEO4J_PASSWORD": password.outputs["result"]}
    job = synthesis.named(f"neo4j-app-user-{epoch}", "kubernetes:batch/v1:Job")
    assert job.urn in secret.dependencies
    env = {e["name"]: e for e in job.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["APP_USER"]["value"] == user and env["APP_ROLE"]["value"] == "publisher"
    assert env["NEO4J_AUTH"]["valueFrom"]["secretKeyRef"] == {"name": "graph-auth", "key": "NEO4J_AUTH"}
    assert env["APP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": f"graph-app-user-{epoch}", "key": "APP_PASSWORD"}
    # nothing in the state or the manifests carries the password in clear
    assert password.outputs["result"] not in json.dumps(export.to_export(synthesis))
    objects = {(o["kind"], o["metadata"]["name"]): o for o in export.kubernetes_objects(synthesis)}
    kubernetes_validate.validate(objects[("Job", f"graph-app-user-{epoch}")], "1.33", strict=True)
    # the Job's pods reach Bolt through the graph namespace's policies, at every epoch
    labels = objects[("Job", f"graph-app-user-{epoch}")]["spec"]["template"]["metadata"]["labels"]
    egress = objects[("NetworkPolicy", "graph-neo4j-rotation-bolt")]
    assert egress["metadata"]["namespace"] == "graph" and ("NetworkPolicy", "graph-neo4j-rotation-bolt-in") in objects
    assert egress["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


FAKE_NEO4J_USERS = r"""#!/bin/bash
# cypher-shell against a "system database" of users in {db}/users/<name> (their password) and
# {db}/roles/<name> (granted roles). Checks its flags, authenticates NEO4J_USERNAME/NEO4J_PASSWORD,
# refuses connections while {db}/down holds a count above 0 (a cluster still forming), and applies
# only the statements the app-user Job may send: CREATE OR REPLACE USER, GRANT ROLE (admin only),
# SHOW CURRENT USER. Anything else fails the call.
db={db}
echo "argv: $*" >> "$db/calls.log"
expected="-a neo4j://graph-lb-neo4j.graph.svc.cluster.local:7687 -d system --non-interactive --format plain"
[ "$*" = "$expected" ] || {{ echo "unexpected flags: $*" >&2; exit 64; }}
query=$(cat)
echo "stdin($NEO4J_USERNAME): $query" >> "$db/calls.log"
if [ -f "$db/down" ] && [ "$(cat "$db/down")" -gt 0 ]; then
  echo $(( $(cat "$db/down") - 1 )) > "$db/down"; echo "Connection refused" >&2; exit 1
fi
if [ ! -f "$db/users/$NEO4J_USERNAME" ] || [ "$NEO4J_PASSWORD" != "$(cat "$db/users/$NEO4J_USERNAME")" ]; then
  echo "The client is unauthorized due to authentication failure." >&2; exit 1
fi
create="^CREATE OR REPLACE USER ([a-z_]+) SET PLAINTEXT PASSWORD '([^']*)' CHANGE NOT REQUIRED;$"
grant="^GRANT ROLE ([a-z]+) TO ([a-z_]+);$"
while IFS= read -r statement; do
  if [[ $statement =~ $create ]]; then
    [ "$NEO4J_USERNAME" = neo4j ] || {{ echo "Permission denied" >&2; exit 1; }}
    printf '%s' "${{BASH_REMATCH[2]}}" > "$db/users/${{BASH_REMATCH[1]}}"; rm -f "$db/roles/${{BASH_REMATCH[1]}}"
  elif [[ $statement =~ $grant ]]; then
    [ "$NEO4J_USERNAME" = neo4j ] && [ -f "$db/users/${{BASH_REMATCH[2]}}" ] || {{ echo "Permission denied" >&2; exit 1; }}
    echo "${{BASH_REMATCH[1]}}" >> "$db/roles/${{BASH_REMATCH[2]}}"
  elif [ "$statement" != "SHOW CURRENT USER YIELD user;" ]; then
    echo "Invalid input: $statement" >&2; exit 1
  fi
done <<< "$query"
echo "user"; echo "$NEO4J_USERNAME"
"""


class Neo4jUsers:
    """The fake's database, and the app-user script run against it as the Job runs it."""

    def __init__(self, tmp_path, admin_password: str):
        self.db = tmp_path
        (tmp_path / "users").mkdir()
        (tmp_path / "roles").mkdir()
        (tmp_path / "bin").mkdir()
        (tmp_path / "users" / "neo4j").write_text(admin_password)
        fake = tmp_path / "bin" / "cypher-shell"
        fake.write_text(FAKE_NEO4J_USERS.format(db=tmp_path))
        fake.chmod(0o755)
        self.admin_password = admin_password

    def env(self, **extra: str) -> dict[str, str]:
        from helpers.neo4j_password import routing_address

        return {"PATH": f"{self.db / 'bin'}:/usr/bin:/bin", "NEO4J_ADDRESS": routing_address("graph", "graph"),
                "NEO4J_AUTH": f"neo4j/{self.admin_password}", "APP_ROLE": "publisher",
                "CONNECT_INTERVAL_SECONDS": "0", **extra}

    def run_job(self, epoch: int, password: str, attempts: int = 5):
        from helpers.neo4j_password import APP_USER_SCRIPT, app_user_name

        env = self.env(APP_USER=app_user_name(epoch), APP_PASSWORD=password, CONNECT_ATTEMPTS=str(attempts))
        return subprocess.run(["bash", str(APP_USER_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)

    def login(self, user: str, password: str) -> bool:
        """A client's login, as the application's driver would try it."""
        env = {**self.env(), "NEO4J_USERNAME": user, "NEO4J_PASSWORD": password}
        shell = [str(self.db / "bin" / "cypher-shell"), "-a", env["NEO4J_ADDRESS"], "-d", "system",
                 "--non-interactive", "--format", "plain"]
        return subprocess.run(shell, env=env, input="SHOW CURRENT USER YIELD user;", capture_output=True,
                              text=True, timeout=10).returncode == 0

    def roles(self, user: str) -> list[str]:
        path = self.db / "roles" / user
        return path.read_text().split() if path.exists() else []

    def log(self) -> str:
        path = self.db / "calls.log"
        return path.read_text() if path.exists() else ""


def test_neo4j_app_users_take_turns_so_the_previous_password_works_until_the_next_rotation(tmp_path):
    """Neo4j Operations Manual, "Manage users": CREATE OR REPLACE USER ... SET PLAINTEXT PASSWORD
    ... CHANGE NOT REQUIRED, GRANT ROLE ... TO ..., run by an admin on the system database; the
    built-in `publisher` role reads and writes data. Epoch N rewrites only APP_USERS[N % 2]."""
    neo4j = Neo4jUsers(tmp_path, admin_password="admin0")
    for epoch, password in enumerate(("pw0", "pw1")):
        result = neo4j.run_job(epoch, password)
        assert result.returncode == 0, result.stderr
    assert neo4j.login("app_a", "pw0") and neo4j.login("app_b", "pw1")  # a client not yet restarted still gets in
    assert neo4j.roles("app_a") == neo4j.roles("app_b") == ["publisher"]
    result = neo4j.run_job(2, "pw2")  # the epoch after next takes app_a over
    assert result.returncode == 0, result.stderr
    assert not neo4j.login("app_a", "pw0") and neo4j.login("app_a", "pw2") and neo4j.login("app_b", "pw1")
    log = neo4j.log()
    assert ("stdin(neo4j): CREATE OR REPLACE USER app_a SET PLAINTEXT PASSWORD 'pw2' CHANGE NOT REQUIRED;\n"
            "GRANT ROLE publisher TO app_a;") in log
    argv = [line for line in log.splitlines() if line.startswith("argv:")]
    assert argv and not any(p in a for a in argv for p in ("pw0", "pw1", "pw2", "admin0"))  # never on a command line
    # safe to run again (a replaced Job runs it once more)
    assert neo4j.run_job(2, "pw2").returncode == 0 and neo4j.login("app_a", "pw2")


def test_the_app_user_job_waits_for_a_forming_cluster_and_gives_up_without_changes(tmp_path):
    neo4j = Neo4jUsers(tmp_path, admin_password="admin0")
    (tmp_path / "down").write_text("3")  # three refused connections, then the cluster answers
    result = neo4j.run_job(0, "pw0", attempts=5)
    assert result.returncode == 0, result.stderr
    assert neo4j.login("app_a", "pw0")
    (tmp_path / "down").write_text("10")
    result = neo4j.run_job(1, "pw1", attempts=4)
    assert result.returncode == 1 and "after 4 attempts" in result.stderr
    assert not (tmp_path / "users" / "app_b").exists()


def test_the_app_user_job_refuses_what_a_cypher_literal_cannot_carry(tmp_path):
    neo4j = Neo4jUsers(tmp_path, admin_password="admin0")
    result = neo4j.run_job(0, "it's")
    assert result.returncode == 2 and neo4j.log() == ""


def test_synth_diff_sees_a_kept_witness_as_the_engine_does_not_as_a_replacement():
    """A keep-only witness changes its length input 8 -> 0 under ignore_changes: the engine diffs
    the old value (step_generator.go processIgnoreChanges), so nothing happens to it. The export
    carries ignoreChanges as the checkpoint does (apitype ResourceV3), and synth diff honours it."""
    from helpers.redis_auth import redis_auth
    from synth import diff, export

    def at(epoch: int, rollover: Rollover) -> dict:
        return export.to_export(run_component(lambda: redis_auth("redis", epoch, rollover, pulumi.ResourceOptions()) and {}))

    import pulumi

    servers, clients = at(1, "servers"), at(1, "clients")
    witness = next(e for e in clients["deployment"]["resources"] if e["urn"].endswith("::redis-rotation-1-servers"))
    assert witness["ignoreChanges"] == ["length"] and witness["inputs"]["length"] == 0
    changes = {c.urn.split("::")[-1]: c.action for c in diff.compare(servers, clients)}
    assert "redis-rotation-1-servers" not in changes  # kept: no update, no replacement
    assert changes["redis-rotation-1-clients"] == "create" and "redis-rotation-0-clients" not in changes
