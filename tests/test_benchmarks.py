"""The benchmark's fleet is the real components at scale: resources grow by exactly one tenant's
worth per tenant, and a fleet passes the policy pack. (Timings are measured by
`python -m benchmarks`, never asserted here.)"""

from __future__ import annotations

import re

import pytest

from benchmarks.fleet import RESOURCES_PER_TENANT, program
from benchmarks.floor import plain_program, plain_resources
from synth import engine, export, policy_runner


def test_fleet_grows_linearly_and_stays_within_policy():
    one, three = (engine.synthesize("prod", program=program(n)) for n in (1, 3))
    assert len(three.resources) - len(one.resources) == 2 * RESOURCES_PER_TENANT
    report = policy_runner.evaluate(export.to_export(three), "prod")
    assert report.mandatory_violations == []


def _classes_registered(monkeypatch) -> dict[tuple[str, str], type]:
    """Every custom resource registered from here on: (type, name) -> the Python class of the
    object constructed. Each SDK class reaches the engine through pulumi.CustomResource.__init__
    (ProviderResource's too), so wrapping it sees them all."""
    import pulumi

    seen: dict[tuple[str, str], type] = {}
    register = pulumi.CustomResource.__init__

    def recording(self, t, name, *args, **kwargs):
        seen[(t, name)] = type(self)
        register(self, t, name, *args, **kwargs)

    monkeypatch.setattr(pulumi.CustomResource, "__init__", recording)
    return seen


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_the_floor_registers_the_same_resources_as_plain_values(stack, monkeypatch):
    """Issue 24 item 11's floor: "the same resources registered as plain values with the same
    imports" - every resource the program registers, of the same type, with the same inputs and
    provider, under the same engine and mocks; nothing computed, no Output, no parent.

    Each through its own SDK class, as the program registers it: the class does per-class work the
    generic pulumi.CustomResource(type, name, props) skips - _internal_init building its ...Args,
    input-type name translation (pulumi/_types.py input_type_py_to_pulumi_names, unwrap_type;
    pulumi/runtime/rpc.py serialize_property) and typed outputs (pulumi/_types.py
    _types_from_py_properties, _raw_return_hints; rpc.py translate_output_properties). That work is
    the SDK's cost: a floor skipping it charges it to the program."""
    import pulumi

    from benchmarks.floor import plain_value

    classes = _classes_registered(monkeypatch)
    measured = export.to_export(engine.synthesize(stack))
    program_classes = dict(classes)
    classes.clear()
    floor = export.to_export(engine.synthesize(stack, program=plain_program(plain_resources(measured))))

    def by_key(document: dict, numbered: bool) -> dict[tuple[str, str], dict]:
        # the floor numbers its names (no parent to tell two children of one name apart)
        def name(urn: str) -> str:
            return urn.rsplit("::", 1)[-1].split("-", 1)[1] if numbered else urn.rsplit("::", 1)[-1]

        return {(r["type"], name(r["urn"])): {"custom": bool(r.get("custom")), "inputs": plain_value(r.get("inputs") or {}),
                                             "provider": name(r["provider"].rsplit("::", 1)[0]) if r.get("provider") else None}
                for r in document["deployment"]["resources"] if r["type"] != "pulumi:pulumi:Stack"}

    program, plain = by_key(measured, numbered=False), by_key(floor, numbered=True)
    # the same resources (type and name, hence count), each with all its inputs and its provider;
    # a checkpoint secret is a plain string on both sides
    assert len(plain) == len(program) and plain == program
    assert plain[("aws:rds/instance:Instance", "intelgraph-pg-primary")]["inputs"]["passwordWo"] == "[secret]"
    assert plain[("aws:rds/instance:Instance", "intelgraph-pg-primary")]["provider"] == "aws-primary"

    # each custom resource an instance of the class the program used: its SDK class
    floor_classes = {(t, name.split("-", 1)[1]): cls for (t, name), cls in classes.items()}
    assert floor_classes == program_classes
    assert len(floor_classes) == sum(r["custom"] for r in program.values())
    bare = {t for (t, _), cls in floor_classes.items() if cls in (pulumi.CustomResource, pulumi.ProviderResource)}
    # the one kind the program itself registers by its type token (components/neo4j_snapshots.py:
    # apiextensions.CustomResource carries no top-level field but spec)
    assert bare == {"kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass"}
    assert floor_classes[("aws:kms/key:Key", "neo4j-backups-key")].__module__ == "pulumi_aws.kms.key"
    assert floor_classes[("kubernetes:core/v1:Service", "redis")].__module__ == "pulumi_kubernetes.core.v1.Service"
    assert {cls.__qualname__ for (t, _), cls in floor_classes.items() if t.startswith("pulumi:providers:")} == {"Provider"}


def test_the_floor_refuses_a_type_it_cannot_register_through_its_sdk_class():
    # no silent generic fallback: the floor could otherwise quietly register the cheaper form
    import pulumi_aws  # noqa: F401 - its registry is what the floor reads

    from benchmarks.floor import UnmappedType

    def document(type_: str, inputs: dict) -> dict:
        return {"deployment": {"resources": [
            {"type": type_, "urn": f"urn:pulumi:prod::p::{type_}::x", "custom": True, "inputs": inputs}]}}

    for type_, inputs, message in [
        ("acme:index/widget:Widget", {}, "acme:index/widget:Widget: no SDK class registers this type"),
        ("aws:kms/nosuch:Thing", {}, "aws:kms/nosuch:Thing: no SDK class"),
        ("aws:kms/key:Key", {"description": "d", "noSuchInput": 1},
         "aws:kms/key:Key: inputs ['noSuchInput'] are not arguments of pulumi_aws.kms.Key"),
        ("kubernetes:example.com/v1:Widget", {"apiVersion": "example.com/v2", "kind": "Widget"},
         "kubernetes:example.com/v1:Widget: its inputs name apiVersion 'example.com/v2'"),
    ]:
        with pytest.raises(UnmappedType, match=re.escape(message)):
            plain_resources(document(type_, inputs))
    # a CRD's kind (no SDK class) is registered as the program does: apiextensions.CustomResource
    [crd] = plain_resources(document("kubernetes:example.com/v1:Widget",
                                     {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"a": 1}}))
    assert (crd["module"], crd["class"], crd["kwargs"]) == (
        "pulumi_kubernetes.apiextensions", "CustomResource", {"api_version": "example.com/v1", "kind": "Widget",
                                                              "spec": {"a": 1}})


def test_the_scrubber_benchmark_runs_the_shipped_filter_under_luajit():
    # the figure itself (MB/s, goal >= 20, issue 24 item 11) is reported by `python -m benchmarks`;
    # here only that it measures the real filter on the real interpreter
    from benchmarks.scrubber import FILTER, scrubber_throughput
    from tests.tools import require_tool

    require_tool("luajit")
    assert FILTER.name == "scrub.lua" and FILTER.parent.name == "scripts"
    figure = scrubber_throughput(records=400, rounds=1)
    assert figure["records"] == 400 and figure["payload_mb"] > 0.1 and figure["goal_mb_per_s"] == 20.0


def test_each_goal_of_issue_24_item_11_is_judged_against_its_figure():
    # ratios are ceilings (synth <= 1.2x its floor per stack, the 50-tenant fleet <= 1.5x), the
    # scrubber's MB/s a minimum (>= 20); a figure exactly at its goal meets it
    from benchmarks.__main__ import FLEET_GOAL, SYNTH_GOAL, verdicts

    assert (SYNTH_GOAL, FLEET_GOAL) == (1.2, 1.5)
    judged = verdicts([{"stack": "stage", "ratio": 1.2}, {"stack": "prod", "ratio": 1.21}],
                      {"tenants": 50, "ratio": 1.49}, {"mb_per_s": 19.9, "goal_mb_per_s": 20.0})
    assert {name: v["met"] for name, v in judged.items()} == {
        "synth stage / floor": True, "synth prod / floor": False, "fleet 50x / floor": True,
        "scrubber MB/s under LuaJIT": False}
    assert judged["synth prod / floor"]["goal"] == "<= 1.2" and judged["scrubber MB/s under LuaJIT"]["goal"] == ">= 20.0"
    fast = verdicts([], {"tenants": 50, "ratio": 1.51}, {"mb_per_s": 20.0, "goal_mb_per_s": 20.0})
    assert [v["met"] for v in fast.values()] == [False, True]


def test_without_the_50_tenant_scale_the_fleet_goal_is_not_judged():
    from benchmarks.__main__ import verdicts

    assert list(verdicts([], None, {"mb_per_s": 30.0, "goal_mb_per_s": 20.0})) == ["scrubber MB/s under LuaJIT"]


def test_the_fleet_process_and_its_floor_pay_the_same_imports():
    # the ratio compares registration work, so both fresh processes import the same module list first
    from benchmarks.__main__ import FLEET_SNIPPET, FLOOR_SNIPPET, IMPORTS

    assert FLEET_SNIPPET.startswith(IMPORTS) and FLOOR_SNIPPET.startswith(IMPORTS)
    assert "program(" in FLEET_SNIPPET and "plain_program(" in FLOOR_SNIPPET


def test_the_floor_imports_leave_pulumi_kubernetes_lazy_classes_callable():
    # pulumi_kubernetes binds apiextensions.CustomResource (a class) lazily from a module of the same
    # name; importing that module by name binds the module instead and the fleet's ServiceMonitor
    # fails with "'module' object is not callable" - the imports must reach it as the program does
    import subprocess
    import sys

    from benchmarks.__main__ import IMPORTS, ROOT

    snippet = IMPORTS.format(root=str(ROOT), modules=["pulumi_kubernetes.apiextensions.CustomResource"]) + (
        "\nimport inspect, pulumi_kubernetes as k\nprint(inspect.isclass(k.apiextensions.CustomResource))")
    out = subprocess.run([sys.executable, "-c", snippet], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["True"]


def test_the_mutation_score_of_each_area_is_judged_against_90_percent():
    # issue 24 item 12: >= 90 % on components/, settings and policy/, each; exactly 90 meets it
    from benchmarks.__main__ import verdicts
    from benchmarks.mutation import score

    results = ([{"area": "components/", "outcome": "killed"}] * 9 + [{"area": "components/", "outcome": "survived"}]
               + [{"area": "settings/", "outcome": "killed"}] * 8 + [{"area": "settings/", "outcome": "survived"}]
               + [{"area": "policy/", "outcome": "killed"}] * 3)
    report = {"score": score(results), "goal_percent": 90.0}
    assert report["score"]["all"] == {"killed": 20, "survived": 2, "mutants": 22, "score": 90.9}
    judged = verdicts([], None, {"mb_per_s": 30.0, "goal_mb_per_s": 20.0}, report)
    assert {name: (v["figure"], v["met"]) for name, v in judged.items() if name.startswith("mutation")} == {
        "mutation score components/ %": (90.0, True), "mutation score settings/ %": (88.9, False),
        "mutation score policy/ %": (100.0, True)}
    assert judged["mutation score policy/ %"]["goal"] == ">= 90.0"


def test_a_figure_and_its_floor_run_in_turn(tmp_path):
    # each ratio's two medians come from runs taken in turn (figure, floor, figure, ...), so load
    # from other work on a shared machine weighs on both alike
    import sys

    from benchmarks.__main__ import paired_medians

    log = tmp_path / "order"
    step = "import sys; open(sys.argv[1], 'a').write(sys.argv[2])"
    medians = paired_medians([sys.executable, "-c", step, str(log), "s"],
                             [sys.executable, "-c", step, str(log), "f"], 3)
    assert log.read_text() == "sfsfsf" and all(m > 0 for m in medians)


def test_the_floor_process_imports_none_of_our_own_modules(tmp_path):
    """DESIGN: the floor is "the SDK imports plus registering the same resources"; importing
    components/ or settings/ is the program's cost, so the floor must not pay it and hide it."""
    import subprocess
    import sys

    from benchmarks.__main__ import FLOOR_PACKAGES, FLOOR_SNIPPET, ROOT

    assert not {"components", "settings", "helpers"} & set(FLOOR_PACKAGES)
    plain = tmp_path / "plain.json"
    plain.write_text("[]")
    probe = FLOOR_SNIPPET.format(root=str(ROOT), modules=["pulumi"], stack="prod", path=str(plain)) + (
        "\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('components', 'settings', 'helpers')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
