"""The offline renderer runs the real helm over the real Neo4j chart source with a release's values.

Helm renders a helm.v3.Release inside the Kubernetes provider at deploy time; what it would create
is only visible by rendering the chart the same way. These tests pin the renderer itself: it uses
the release's own values (an edited value changes the rendered object), marks every object with
its release, and reports a chart that refuses its values instead of returning nothing.
"""

from __future__ import annotations

import pytest

from synth import helm

RELEASE = "kubernetes:helm.sh/v3:Release"


def _release(synthesis):
    return synthesis.of_type(RELEASE)[0]


def test_every_rendered_object_names_its_release(prod):
    release = _release(prod)
    objects = helm.render(release.inputs["name"], release.inputs["namespace"], "neo4j",
                          release.inputs["values"])
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Service", "ConfigMap"} <= kinds
    marker = f"{release.inputs['namespace']}/{release.inputs['name']}"
    assert all(o["metadata"]["annotations"][helm.RENDERED_BY] == marker for o in objects)


def test_the_release_values_reach_the_rendered_pods(prod):
    release = _release(prod)
    values = {**release.inputs["values"], "image": {"customImage": "neo4j:5.26.99-enterprise"}}
    objects = helm.render(release.inputs["name"], release.inputs["namespace"], "neo4j", values)
    statefulset = next(o for o in objects if o["kind"] == "StatefulSet")
    images = {c["image"] for c in statefulset["spec"]["template"]["spec"]["containers"]}
    assert images == {"neo4j:5.26.99-enterprise"}


def test_a_chart_that_refuses_its_values_is_an_error(prod):
    release = _release(prod)
    values = {**release.inputs["values"], "neo4j": {**release.inputs["values"]["neo4j"], "acceptLicenseAgreement": "no"}}
    with pytest.raises(helm.HelmError, match="failed"):
        helm.render(release.inputs["name"], release.inputs["namespace"], "neo4j", values)


def test_a_missing_chart_source_says_to_run_dev_charts(prod, tmp_path):
    """Without the chart source synth cannot render the releases: exit 2 (bad input, as for any
    chart error), and the message names the directory synth looked in and the command that fills
    it (`./dev charts DIR` pulls the pinned chart into DIR/neo4j)."""
    import json
    import os
    import subprocess
    import sys

    from synth import export as exporter
    from tests.conftest import ROOT

    (tmp_path / "stack.json").write_text(json.dumps(exporter.to_export(prod)))
    empty = tmp_path / "charts"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-m", "synth", "check", str(tmp_path / "stack.json"), "--stack", "prod"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "INTELGRAPH_CHARTS_DIR": str(empty)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no source for chart 'neo4j' at {empty / 'neo4j'}: run `./dev charts {empty}`" in result.stderr


def test_a_render_is_reused_only_for_the_same_helm_chart_files_and_values(prod, tmp_path, monkeypatch):
    """helm template is a pure function of the binary, the chart's files, the release, the namespace
    and the values; synth keeps its output under their content hash (issue 24 item 11). Anything
    of them changed runs helm again; a helm that refuses the values is never kept."""
    import shutil

    release = _release(prod)
    calls = tmp_path / "calls"
    wrapper = tmp_path / "helm"  # the real helm, counting its runs
    wrapper.write_text(f"#!/bin/sh\necho run >> {calls}\nexec {helm.helm_binary()} \"$@\"\n")
    wrapper.chmod(0o755)
    charts = tmp_path / "charts"
    shutil.copytree(helm.chart_path("neo4j"), charts / "neo4j")
    monkeypatch.setenv("HELM", str(wrapper))
    monkeypatch.setenv("INTELGRAPH_CHARTS_DIR", str(charts))
    monkeypatch.setenv("INTELGRAPH_HELM_CACHE", str(tmp_path / "cache"))

    def render(values=release.inputs["values"], name=release.inputs["name"]):
        return helm.render(name, release.inputs["namespace"], "neo4j", values)

    def runs() -> int:
        return len(calls.read_text().split()) if calls.exists() else 0

    first = render()
    assert runs() == 1 and render() == first and runs() == 1  # the same job: served, the same objects
    render(values={**release.inputs["values"], "image": {"customImage": "neo4j:5.26.99-enterprise"}})
    assert runs() == 2
    render(name="another")
    assert runs() == 3
    template = charts / "neo4j" / "templates" / "neo4j-statefulset.yaml"
    template.write_text(template.read_text() + "\n")
    render()
    assert runs() == 4
    refused = {**release.inputs["values"], "neo4j": {**release.inputs["values"]["neo4j"], "acceptLicenseAgreement": "no"}}
    for expected in (5, 6):
        with pytest.raises(helm.HelmError, match="failed"):
            render(values=refused)
        assert runs() == expected
    monkeypatch.setenv("INTELGRAPH_HELM_CACHE", "off")
    assert render() == first and runs() == 7
