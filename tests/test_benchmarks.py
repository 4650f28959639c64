"""The benchmark's fleet is the real components at scale: resources grow by exactly one tenant's
worth per tenant, and a fleet passes the policy pack. (Timings are measured by
`python -m benchmarks`, never asserted here.)"""

from __future__ import annotations

from benchmarks.fleet import RESOURCES_PER_TENANT, program
from benchmarks.floor import plain_program, plain_resources
from synth import engine, export, policy_runner


def test_fleet_grows_linearly_and_stays_within_policy():
    one, three = (engine.synthesize("prod", program=program(n)) for n in (1, 3))
    assert len(three.resources) - len(one.resources) == 2 * RESOURCES_PER_TENANT
    report = policy_runner.evaluate(export.to_export(three), "prod")
    assert report.mandatory_violations == []


def test_the_floor_registers_the_same_resources_as_plain_values():
    """Issue 24 item 11's floor: "the same resources registered as plain values with the same
    imports" - every resource the program registers, of the same type, with the same inputs and
    provider, under the same engine and mocks; nothing computed, no Output, no parent."""
    measured = export.to_export(engine.synthesize("prod"))
    floor = export.to_export(engine.synthesize("prod", program=plain_program(plain_resources(measured))))

    def counted(document: dict) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for r in document["deployment"]["resources"]:
            kinds[r["type"]] = kinds.get(r["type"], 0) + 1
        return kinds

    assert counted(floor) == counted(measured)
    by_name = {r["urn"].rsplit("::", 1)[-1].split("-", 1)[1]: r for r in floor["deployment"]["resources"]
               if r["type"] == "aws:rds/instance:Instance"}
    [writer] = [r for r in measured["deployment"]["resources"] if r["urn"].endswith("Instance::intelgraph-pg-primary")]
    plain = by_name["intelgraph-pg-primary"]
    assert plain["inputs"]["identifier"] == writer["inputs"]["identifier"]
    assert plain["inputs"]["passwordWo"] == "[secret]"  # a checkpoint secret becomes a plain string
    assert plain["provider"].split("::")[-2].split("-", 1)[1] == writer["provider"].split("::")[-2] == "aws-primary"


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
