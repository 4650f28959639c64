"""The mutation driver (benchmarks/mutation.py): every curated mutation still applies to today's
code and names tests that exist; a campaign runs on a copy, so the working tree is never touched,
kills a mutant its tests notice and reports one they do not. The campaign itself (tens of minutes)
is run by `python -m benchmarks`, never here: these run the driver on two mutations."""

from __future__ import annotations

import hashlib
import re

from benchmarks.mutation import AREAS, MUTATIONS, ROOT, Mutation, campaign

EDGE = "policy/guardrails/edge.py"
COUNTING_GROUP_BLOCKS = ('        return override == "none"', '        return override in ("none", "count")')


def test_every_mutation_applies_once_and_runs_tests_that_exist():
    assert len({m.id for m in MUTATIONS}) == len(MUTATIONS)
    for mutation in MUTATIONS:
        mutated = mutation.apply((ROOT / mutation.file).read_text())  # raises unless found exactly once
        assert mutated != (ROOT / mutation.file).read_text() and mutation.what
        for selection in mutation.tests:
            path, _, test = selection.partition("::")
            assert (ROOT / path).is_file(), (mutation.id, selection)
            # a renamed test makes pytest exit 4 ("not found"), which stops the whole campaign
            assert not test or re.search(rf"^def {re.escape(test)}\(", (ROOT / path).read_text(), re.M), (
                mutation.id, selection)


def test_every_component_settings_and_every_rule_module_has_mutations():
    files = {m.file for m in MUTATIONS}
    components = {f"components/{p.name}" for p in (ROOT / "components").glob("*.py") if p.name != "__init__.py"}
    rules = {f"policy/guardrails/{p.name}" for p in (ROOT / "policy" / "guardrails").glob("*.py")
             if p.name not in ("__init__.py", "_rules.py", "config_keys.py", "exceptions.py")}
    concerns = {f"settings/{p.name}" for p in (ROOT / "settings").glob("*.py") if p.name != "__init__.py"}
    assert components | concerns | rules <= files
    assert {m.area for m in MUTATIONS} == set(AREAS)


def test_a_campaign_kills_what_its_tests_notice_and_never_touches_the_working_tree():
    before = hashlib.sha256((ROOT / EDGE).read_bytes()).hexdigest()
    noticed = Mutation(EDGE, *COUNTING_GROUP_BLOCKS, "a counting rule group association blocks",
                       ("tests/test_policy_edge.py",))
    # the same mistake under tests about another rule: nothing notices it
    unnoticed = Mutation(EDGE, *COUNTING_GROUP_BLOCKS, "the same, judged by unrelated tests",
                         ("tests/test_policy_s3.py::test_rules_ignore_other_resource_types",))
    lines: list[str] = []
    report = campaign([noticed, unnoticed], log=lines.append)
    assert [r["outcome"] for r in report["results"]] == ["killed", "survived"]
    assert report["score"]["policy/"] == {"killed": 1, "survived": 1, "mutants": 2, "score": 50.0}
    assert any(line.startswith("baseline: the 2 test selections pass unmutated") for line in lines)
    assert hashlib.sha256((ROOT / EDGE).read_bytes()).hexdigest() == before
