"""Neo4j upgrades roll one server at a time, secondaries first, each waiting for the previous one to
be ready again, and the first install still forms the cluster.

The facts the design rests on, and where they come from:
* Pulumi docs, "dependsOn": the option orders creation, update and deletion; an update of a
  resource starts only when its dependencies' steps are done.
* pulumi-kubernetes helm.v3.Release ``skip_await``: false (the default) waits until every
  resource of the release is ready, as ``helm --wait``; Helm's StatefulSet check
  (pkg/kube/ready.go) wants the new generation observed and every replica updated and ready.
* The chart sets ``dbms.cluster.minimum_initial_system_primaries_count`` to minimumClusterSize
  (templates/neo4j-config.yaml): no server of a new cluster is ready before that many primaries
  run, so a waited chain deadlocks on first install.
* pulumi-kubernetes provider/pkg/provider/helm_release.go: ``client.Wait = !newRelease.SkipAwait``
  on install and upgrade alike; with skip_await every release of one ``up`` returns at once and
  depends_on serialises only the registrations, so every server restarts together.
* Pulumi docs, "ignoreChanges": an ignored property keeps its value from the state; the program's
  value is used only when there is none (creation). The marker uses it to refuse a
  ``bootstrap: true`` left on after the cluster exists; it cannot say alone that a run is a first
  install (on a stack deployed before the marker existed, the marker is new too).

The proof is over what the program registers (the dependencies the engine orders by): for the
stack files as they are (clusters that exist, the marker new or old), for a bootstrap deploy, and
for a bootstrap left on over an existing cluster (the marker's state from an earlier run, as the
engine would hand it back)."""

from __future__ import annotations

import pytest

from synth import engine, helm
from synth.engine import Resource
from synth.mocks import PlatformMocks
from tests.conftest import config_with, in_tier, primary_tier

RELEASE = "kubernetes:helm.sh/v3:Release"
MARKER = "neo4j-first-install"


class _ExistingCluster(PlatformMocks):
    """The engine's answer for a stack deployed before: the marker's keepers come from the state,
    i.e. the token of the run that created it, not this run's."""

    def new_resource(self, args):
        resource_id, outputs = super().new_resource(args)
        if args.name == MARKER:
            outputs = {**outputs, "keepers": {"createdInRun": "token-of-an-earlier-run"}}
        return resource_id, outputs


class _Monitor(engine.RecordingMonitor):
    """Also keeps each registration's ignoreChanges, which the records leave out."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.ignore_changes: dict[str, list[str]] = {}

    def RegisterResource(self, request):
        self.ignore_changes[request.name] = list(request.ignoreChanges)
        return super().RegisterResource(request)


@pytest.fixture(scope="module")
def upgrade():
    """prod as a later `pulumi up` sees it: the cluster and the marker exist, and bootstrap was
    left on (the worst case: the guard must still make every release wait)."""
    config = config_with("prod", {"neo4j.bootstrap": True})
    aws = engine._decode_section(config["intelgraph-platform:aws"])
    monitor = _Monitor(_ExistingCluster(account_id=aws["accountId"], default_region=aws["primaryRegion"]))
    return in_tier(engine.synthesize("prod", config, monitor=monitor), "primary"), monitor


def _releases(synthesis) -> dict[str, Resource]:
    return {r.urn: r for r in synthesis.of_type(RELEASE)}


def _total_order(steps: dict[str, Resource]) -> list[Resource]:
    """``steps`` (by URN) in the only order the engine can run them, from their dependencies; fails
    unless the dependencies make one total order (then no two steps are ever in flight)."""
    before = {urn: {d for d in r.dependencies if d in steps} for urn, r in steps.items()}
    order: list[str] = []
    while before:
        ready = [urn for urn, deps in before.items() if not deps - set(order)]
        assert len(ready) == 1, f"these could run at the same time: {[steps[u].name for u in ready]}"
        order.append(ready[0])
        del before[ready[0]]
    return [steps[urn] for urn in order]


def _order(synthesis) -> list[str]:
    """The releases in the engine's order: one server in flight at a time."""
    return [r.inputs["name"] for r in _total_order(_releases(synthesis))]


def _secondaries(synthesis) -> set[str]:
    return {r.inputs["name"] for r in synthesis.of_type(RELEASE)
            if r.inputs["values"]["config"].get("initial.server.mode_constraint") == "SECONDARY"}


@pytest.mark.parametrize("stack,expected", [
    ("prod", ["graph-server-5", "graph-server-4", "graph-server-3", "graph-server-2", "graph-server-1"]),
    ("stage", ["graph-server-3", "graph-server-2", "graph-server-1"]),
])
def test_releases_form_one_chain_secondaries_first(stack, expected):
    synthesis = primary_tier(stack)
    order = _order(synthesis)
    assert order == expected
    secondaries = _secondaries(synthesis)
    assert order[:len(secondaries)] == sorted(secondaries, reverse=True)  # every secondary before any primary


def test_an_upgrade_waits_for_every_server_before_the_next(upgrade):
    synthesis, _ = upgrade
    assert _order(synthesis) == _order(primary_tier("prod"))  # the same chain as on install
    for release in synthesis.of_type(RELEASE):
        assert release.inputs["skipAwait"] is False, release.name  # Helm waits: the next starts after
        assert release.inputs["timeout"] >= 600


@pytest.mark.parametrize("stack", ["prod", "stage"])
def test_a_running_cluster_never_counts_as_a_first_install(stack):
    # The stack files as they are: clusters that run, deployed before the marker existed, so the
    # marker is created in this run (the mock engine creates every resource). A marker-only guess
    # made this a first install and skipped every wait (helm_release.go: client.Wait =
    # !SkipAwait): every server restarted at once. Without neo4j.bootstrap every release waits.
    synthesis = primary_tier(stack)
    assert synthesis.named(MARKER, "random:index/randomId:RandomId")  # created in this run
    for release in synthesis.of_type(RELEASE):
        assert release.inputs["skipAwait"] is False, release.name


def test_bootstrap_must_be_a_boolean():
    import settings

    with pytest.raises(settings.SettingsError, match="bootstrap"):
        settings.validate(config_with("prod", {"neo4j.bootstrap": "yes"}))


def test_the_first_install_does_not_wait_so_the_cluster_can_form():
    # A new stack deployed with neo4j.bootstrap: true, the marker created in this run. Waiting
    # would deadlock: the head of the chain is a secondary (or, in stage, one primary) that cannot
    # be ready before 3 primaries run, and those come after it in the chain.
    bootstrap = in_tier(engine.synthesize("prod", config_with("prod", {"neo4j.bootstrap": True})), "primary")
    releases = sorted(bootstrap.of_type(RELEASE), key=lambda r: r.inputs["name"])
    head = next(r for r in bootstrap.of_type(RELEASE) if r.inputs["name"] == _order(bootstrap)[0])
    config = next(o for o in helm.render(head.inputs["name"], "graph", "neo4j", head.inputs["values"])
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-default-config"))["data"]
    assert int(config["dbms.cluster.minimum_initial_system_primaries_count"]) == 3
    assert all(r.inputs["skipAwait"] is True for r in releases)


def test_the_marker_keeps_the_token_of_the_run_that_created_it(upgrade):
    synthesis, monitor = upgrade
    assert monitor.ignore_changes[MARKER] == ["keepers"]
    marker = synthesis.named(MARKER, "random:index/randomId:RandomId")
    releases = _releases(synthesis)
    # every release reads the marker, so none can start before the engine knows which run this is
    assert all(marker.urn in r.dependencies for r in releases.values())


JOB = "kubernetes:batch/v1:Job"


def _roll(synthesis) -> list[str]:
    """The releases and their before-change Jobs in the only order the engine can run them."""
    steps = {r.urn: r for r in (*synthesis.of_type(RELEASE), *synthesis.of_type(JOB))
             if r.type == RELEASE or r.name.endswith("-before-change")}
    return [f"snapshot {_job_env(r)['RELEASE']}" if r.type == JOB else f"upgrade {r.inputs['name']}"
            for r in _total_order(steps)]


def _job_env(job) -> dict[str, str]:
    [container] = job.inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize("stack", ["prod", "stage"])
def test_each_server_is_snapshotted_just_before_its_release_changes(stack):
    """The issue's rule: a snapshot precedes each server's restart. The chain alternates: the
    snapshot of a server waits for the previous server's release (Helm waited for it), and the
    server's release waits for the snapshot (pulumi-kubernetes awaits a Job until Complete)."""
    synthesis = primary_tier(stack)
    servers = _order(synthesis)
    assert _roll(synthesis) == [step for s in servers for step in (f"snapshot {s}", f"upgrade {s}")]


def test_a_before_change_job_is_named_after_the_change_it_precedes():
    """Same chart and values: the same Job (nothing runs on a deploy that changes nothing); other
    values: a new name, so Pulumi replaces the Job and it runs before the release updates."""
    from components.neo4j_cluster import change_id

    def jobs(synthesis) -> dict[str, Resource]:
        return {_job_env(j)["RELEASE"]: j for j in synthesis.of_type(JOB) if j.name.endswith("-before-change")}

    now = jobs(primary_tier("prod"))
    for release in primary_tier("prod").of_type(RELEASE):
        job = now[release.inputs["name"]]
        change = change_id(release.inputs["version"], release.inputs["values"])
        assert _job_env(job)["MODE"] == "pre-change" and _job_env(job)["CHANGE"] == change
        assert job.inputs["metadata"]["name"] == f"{release.inputs['name']}-{change}"
        assert len(job.inputs["metadata"]["name"]) <= 63
    again = jobs(in_tier(engine.synthesize("prod"), "primary"))
    assert {r: j.inputs["metadata"]["name"] for r, j in again.items()} == {
        r: j.inputs["metadata"]["name"] for r, j in now.items()}
    bigger = jobs(in_tier(engine.synthesize("prod", config_with("prod", {"neo4j.resources.memory": "32Gi"})), "primary"))
    assert all(bigger[r].inputs["metadata"]["name"] != j.inputs["metadata"]["name"] for r, j in now.items())


def test_the_before_change_job_can_reach_the_api_and_waits_long_enough():
    """kubectl in a pod authenticates only with the mounted service-account token (client-go
    rest.InClusterConfig); the Job carries the snapshot jobs' label, which their API flow opens. Its
    snapshot is named after the Job's uid, which the Job controller puts on every pod of the Job as
    the label batch.kubernetes.io/controller-uid (Kubernetes docs, "Jobs", 1.27+); a failed Job is
    replaced on the next up rather than awaited again (pulumi-kubernetes pulumi.com/replaceUnready)."""
    from components.neo4j_backup import JOB_LABEL
    from components.neo4j_snapshots import PRE_CHANGE_DEADLINE_SECONDS

    for job in (j for j in primary_tier("prod").of_type(JOB) if j.name.endswith("-before-change")):
        pod = job.inputs["spec"]["template"]
        assert pod["spec"]["automountServiceAccountToken"] is True
        assert pod["spec"]["serviceAccountName"] == "graph-volume-snapshots"
        assert pod["metadata"]["labels"][JOB_LABEL] == "graph-volume-snapshots"
        assert job.inputs["spec"]["activeDeadlineSeconds"] == PRE_CHANGE_DEADLINE_SECONDS
        assert job.inputs["metadata"]["annotations"] == {"pulumi.com/replaceUnready": "true"}
        [container] = pod["spec"]["containers"]
        [uid] = [e for e in container["env"] if e["name"] == "JOB_UID"]
        assert uid["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}}
        home = next(e["value"] for e in container["env"] if e["name"] == "HOME")
        assert {"name": "tmp", "mountPath": home} in container["volumeMounts"]  # the root filesystem is read-only


def _gated_roll(synthesis) -> list[str]:
    steps = {r.urn: r for r in (*synthesis.of_type(RELEASE), *synthesis.of_type(JOB))
             if r.type == RELEASE or r.name.endswith(("-before-change", "-online"))}
    return [(f"snapshot {_job_env(r)['RELEASE']}" if r.name.endswith("-before-change")
             else f"online {_job_env(r)['SERVER_ADDRESS'].split('.')[0]}") if r.type == JOB
            else f"upgrade {r.inputs['name']}" for r in _total_order(steps)]


@pytest.mark.parametrize("stack", ["prod", "stage"])
def test_the_next_server_restarts_only_when_every_allocation_of_the_last_is_online(stack):
    """Helm's wait ends at the chart's readiness probe (Bolt answers), before the server's
    databases are online (Neo4j Operations Manual, "Managing databases in a cluster": an
    allocation's currentStatus goes starting -> online; SHOW SERVERS health Available). The gate
    Job between two releases waits for both; the next snapshot and release wait for the gate."""
    synthesis = primary_tier(stack)
    servers = _order(synthesis)
    assert _gated_roll(synthesis) == [step for s in servers
                                      for step in (f"snapshot {s}", f"upgrade {s}", f"online {s}")]
    from components.neo4j_cluster import change_id

    rendered = {}
    for release in synthesis.of_type(RELEASE):
        [sts] = [o for o in helm.render(release.inputs["name"], "graph", "neo4j", release.inputs["values"])
                 if o["kind"] == "StatefulSet"]
        [server] = sts["spec"]["template"]["spec"]["containers"][:1]
        rendered[release.inputs["name"]] = ({e["name"]: e.get("value") for e in server["env"]}["SERVICE_NEO4J"],
                                            change_id(release.inputs["version"], release.inputs["values"]))
    for gate in (j for j in synthesis.of_type(JOB) if j.name.endswith("-online")):
        env = _job_env(gate)
        release = env["SERVER_ADDRESS"].split(".")[0]
        service, change = rendered[release]
        # the address SHOW SERVERS / SHOW DATABASES report: the chart's server.bolt.advertised_address
        assert env["SERVER_ADDRESS"] == f"{service}:7687"
        assert env["FIRST_INSTALL"] == "false"
        assert gate.inputs["metadata"]["name"] == f"{release}-online-{change}"  # runs again on each change
        assert len(gate.inputs["metadata"]["name"]) <= 63
        assert gate.inputs["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"


def test_on_the_first_install_the_gate_lets_the_cluster_form():
    bootstrap = engine.synthesize("prod", config_with("prod", {"neo4j.bootstrap": True}))
    gates = [j for j in bootstrap.of_type(JOB) if j.name.endswith("-online")]
    assert len(gates) == 5 and all(_job_env(g)["FIRST_INSTALL"] == "true" for g in gates)
