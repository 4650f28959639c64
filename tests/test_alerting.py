"""Alerts reach a person: every alarm topic has subscribers in its own region, every alert carries
a severity and a runbook link that resolves to a real heading of docs/runbooks.md, and the
Alertmanager route is checked by the real amtool (Debian prometheus-alertmanager)."""

from __future__ import annotations

import re
import subprocess

import jsonschema
import pytest
import yaml

import settings
from components.alertmanager import AlertRoutingArgs, SecretRef, native_config
from helpers import alerting
from synth import engine
from synth.export import kubernetes_objects
from tests import crds
from tests.conftest import ROOT, STACKS, config_with, region_of, stack_settings, synthesized
from tests.tools import require_tool

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub renders them: lower-case, punctuation other than '-' and '_'
    dropped, spaces to '-', repeats suffixed -1, -2 (github/cmark-gfm's anchor rules)."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


ANCHORS = github_anchors((ROOT / alerting.RUNBOOKS_FILE).read_text())


def resolves(url: str) -> bool:
    base, _, anchor = url.partition("#")
    return base == alerting.RUNBOOKS_URL and anchor in ANCHORS


def test_anchor_rules_match_github():
    assert github_anchors("## Postgres CPU high\n## API: primary unhealthy\n## Postgres CPU high") == {
        "postgres-cpu-high", "api-primary-unhealthy", "postgres-cpu-high-1"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_cloudwatch_alarm_has_a_severity_and_a_runbook_that_resolves(stack):
    alarms = synthesized(stack).of_type(ALARM)
    assert len(alarms) >= 6
    for alarm in alarms:
        tags, description = alarm.inputs["tags"], alarm.inputs["alarmDescription"]
        assert tags["severity"] in ("critical", "warning"), alarm.name
        url = f"{alerting.RUNBOOKS_URL}#{tags['runbook']}"
        assert resolves(url), f"{alarm.name}: {tags['runbook']} is not a heading of {alerting.RUNBOOKS_FILE}"
        # the SNS notification carries the description: the responder sees severity and link
        assert description.startswith(f"[{tags['severity']}] ") and description.endswith(url)
        # AWS tag values allow only letters, digits, spaces and _.:/=+-@ (Tagging AWS resources,
        # "Tag naming limits and requirements"): the '#' of a URL would be refused at deploy
        assert re.fullmatch(r"[\w .:/=+\-@]*", tags["runbook"])


def prometheus_alerts(stack: str) -> list[dict]:
    return [rule for obj in kubernetes_objects(synthesized(stack)) if obj["kind"] == "PrometheusRule"
            for group in obj["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.mark.parametrize("stack", STACKS)
def test_every_prometheus_alert_has_a_severity_and_a_runbook_that_resolves(stack):
    alerts = prometheus_alerts(stack)
    assert len(alerts) >= 8
    for rule in alerts:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert resolves(rule["annotations"]["runbook_url"]), (
            f"{rule['alert']}: {rule['annotations']['runbook_url']} is not a heading of {alerting.RUNBOOKS_FILE}")


def test_every_table_entry_resolves():
    for key, info in alerting.ALERTS.items():
        assert resolves(info.runbook_url), f"ALERTS[{key!r}] -> #{info.anchor} is not a heading"


def test_an_alert_missing_from_the_table_stops_the_program_with_the_name_to_add():
    with pytest.raises(ValueError, match="'Neo4jSomethingNew' has no severity or runbook: add 'Neo4jSomethingNew'"):
        alerting.with_runbooks([{"name": "g", "rules": [{"alert": "Neo4jSomethingNew", "expr": "1"}]}])
    with pytest.raises(ValueError, match="'AWS/RDS:ReadLatency' has no severity"):
        alerting.alert_info("AWS/RDS:ReadLatency")
    with pytest.raises(ValueError, match="says severity 'warning', ALERTS says 'critical'"):
        alerting.with_runbooks([{"name": "g", "rules": [
            {"alert": "RedisDown", "expr": "1", "labels": {"severity": "warning"}}]}])



@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_topic_has_the_configured_subscribers_in_its_own_region(stack):
    synthesis = synthesized(stack)
    cfg = settings.validate(engine.stack_config(stack)).alerting.subscribers
    topics = {t.outputs["arn"]: t for t in synthesis.of_type(TOPIC)}
    # every topic an alarm publishes to
    alarm_topics = {arn for a in synthesis.of_type(ALARM) for arn in a.inputs["alarmActions"]}
    assert alarm_topics and alarm_topics <= set(topics)
    for arn in alarm_topics:
        topic = topics[arn]
        subs = [s for s in synthesis.of_type(SUBSCRIPTION) if s.inputs["topic"] == arn]
        # a subscription must be created in the topic's region (SNS Subscribe is regional)
        assert subs and all(region_of(synthesis, s) == region_of(synthesis, topic) for s in subs)
        role = "dr" if region_of(synthesis, topic) == stack_settings(synthesis.stack).aws.dr_region else "primary"
        expected = [(s.protocol, s.endpoint) for s in getattr(cfg, role)]
        assert sorted(s.inputs["protocol"] for s in subs) == sorted(p for p, _ in expected), topic.name
        for sub in subs:
            if sub.inputs["protocol"] == "https":
                assert sub.inputs["endpoint"]["4dabf18193072939515e22adb298388d"]  # a secret: encrypted in state
    assert set(synthesis.outputs["alerting"]["topics"].values()) == alarm_topics


@pytest.mark.parametrize("change, message", [
    ({"alerting.subscribers.dr": []},
     "alerting.subscribers.dr: the stack's CloudWatch alarms in this region would notify nobody"),
    ({"alerting.subscribers.primary": [{"protocol": "https", "endpoint": "https://events.example.com/x?key=abc"}]},
     "alerting.subscribers.primary.0: endpoint must carry no credentials"),
    ({"alerting.subscribers.primary": [{"protocol": "email", "endpoint": "oncall"}]},
     "alerting.subscribers.primary.0: endpoint 'oncall' is not an e-mail address"),
])
def test_settings_refuse_alarms_that_reach_nobody_or_leak_a_key(change, message):
    with pytest.raises(settings.SettingsError) as error:
        settings.validate(config_with("prod", change))
    assert any(message in p for p in error.value.problems), error.value.problems


# --- Alertmanager ----------------------------------------------------------------------------------

def amc_objects(stack: str) -> list[dict]:
    return [o for o in kubernetes_objects(synthesized(stack)) if o["kind"] == "AlertmanagerConfig"]


@pytest.mark.parametrize("stack", STACKS)
def test_alertmanager_configs_match_the_upstream_crd_strictly(stack):
    objects = amc_objects(stack)
    # one per namespace whose series our rules fire on (OnNamespace matcher strategy)
    rule_namespaces = {o["metadata"]["namespace"] for o in kubernetes_objects(synthesized(stack))
                       if o["kind"] == "PrometheusRule"}
    assert rule_namespaces <= {o["metadata"]["namespace"] for o in objects}
    route_schema = crds.crd_schema("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig")[
        "properties"]["spec"]["properties"]["route"]
    for obj in objects:
        crds.validate(obj)
        # child routes are x-kubernetes-preserve-unknown-fields in the CRD; the operator parses
        # them as Routes, so hold them to the route schema too
        for child in obj["spec"]["route"]["routes"]:
            crds.check(child, route_schema)
        text = yaml.safe_dump(obj)
        assert "routingKey" in text and "apiURL" in text and "events.pagerduty" not in text


def test_the_strict_validator_rejects_an_unknown_field():
    obj = amc_objects("prod")[0]
    bad = {**obj, "spec": {**obj["spec"], "route": {**obj["spec"]["route"], "reciever": "x"}}}
    with pytest.raises(jsonschema.ValidationError, match="reciever"):
        crds.validate(bad)
    bad = {**obj, "spec": {**obj["spec"], "receivers": [{"name": "x", "pagerdutyConfigs": [{"routingKey": "inline"}]}]}}
    with pytest.raises(jsonschema.ValidationError):
        crds.validate(bad)  # a routing key must be a Secret reference, never inline


ARGS = AlertRoutingArgs(namespaces=("graph", "cache", "dr-verify"), pager_secret=SecretRef("pd", "routingKey"),
                        chat_secret=SecretRef("slack", "webhookUrl"), chat_channel="#alerts",
                        prometheus_release_label="kube-prometheus-stack")


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    path = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    path.write_text(yaml.safe_dump(native_config(ARGS)))
    return path


def test_amtool_accepts_the_generated_configuration(native):
    run = subprocess.run([require_tool("amtool"), "check-config", str(native)], capture_output=True, text=True)
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def test_amtool_rejects_a_route_to_an_undefined_receiver(native, tmp_path):
    broken = yaml.safe_load(native.read_text())
    broken["receivers"] = [r for r in broken["receivers"] if not r["name"].endswith("/pager")]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    run = subprocess.run([require_tool("amtool"), "check-config", str(path)], capture_output=True, text=True)
    assert run.returncode != 0 and "undefined receiver" in run.stdout + run.stderr


def route(native, *labels: str) -> str:
    run = subprocess.run([require_tool("amtool"), "config", "routes", "test", f"--config.file={native}", *labels],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


@pytest.mark.parametrize("labels, receiver", [
    (("namespace=graph", "severity=critical", "alertname=Neo4jBackupStale"), "graph/intelgraph-alerts/pager"),
    (("namespace=cache", "severity=warning", "alertname=RedisEvictionsHigh"), "cache/intelgraph-alerts/chat"),
    (("namespace=dr-verify", "severity=critical"), "dr-verify/intelgraph-alerts/pager"),
    # no severity label: still reaches the team, never the null receiver
    (("namespace=cache", "alertname=Unlabelled"), "cache/intelgraph-alerts/chat"),
    # the operator's namespace matcher: an alert from a namespace without our config is not ours
    (("namespace=monitoring", "severity=critical"), "null"),
])
def test_amtool_routes_each_severity_to_its_receiver(native, labels, receiver):
    assert route(native, *labels) == receiver


@pytest.mark.parametrize("stack", STACKS)
def test_every_prometheus_alert_of_the_stack_reaches_a_person(stack, tmp_path):
    """The chain: the namespace label an alert carries (its series' namespace: kube-state-metrics
    keeps the object's, scraped targets get their own) must have an AlertmanagerConfig, or the
    operator's namespace matcher routes it to kube-prometheus-stack's null receiver."""
    objects = kubernetes_objects(synthesized(stack))
    configs = amc_objects(stack)
    receivers = {r["name"]: r for r in configs[0]["spec"]["receivers"]}
    pager = receivers["pager"]["pagerdutyConfigs"][0]["routingKey"]
    chat = receivers["chat"]["slackConfigs"][0]
    args = AlertRoutingArgs(namespaces=tuple(c["metadata"]["namespace"] for c in configs),
                            pager_secret=SecretRef(pager["name"], pager["key"]),
                            chat_secret=SecretRef(chat["apiURL"]["name"], chat["apiURL"]["key"]),
                            chat_channel=chat["channel"], prometheus_release_label="unused")
    native = tmp_path / "alertmanager.yml"
    native.write_text(yaml.safe_dump(native_config(args)))
    checked = 0
    for rule_obj in (o for o in objects if o["kind"] == "PrometheusRule"):
        for group in rule_obj["spec"]["groups"]:
            for rule in (r for r in group["rules"] if "alert" in r):
                namespaces = ({rule["labels"]["namespace"]} if "namespace" in rule["labels"] else
                              set(re.findall(r'namespace="([^"]+)"', rule["expr"])) or {rule_obj["metadata"]["namespace"]})
                for namespace in namespaces:
                    severity = rule["labels"]["severity"]
                    got = route(native, f"namespace={namespace}", f"severity={severity}", f"alertname={rule['alert']}")
                    want = "pager" if severity == "critical" else "chat"
                    assert got == f"{namespace}/{args.name}/{want}", (rule["alert"], namespace, got)
                    checked += 1
    assert checked >= 10


def rejected_rule(stack: str) -> tuple[list[dict], list[dict]]:
    [rules] = [o for o in kubernetes_objects(synthesized(stack))
               if o["kind"] == "PrometheusRule" and o["metadata"]["name"].endswith("alert-routing-rejected")]
    groups = rules["spec"]["groups"]
    return groups, [r for g in groups for r in g["rules"] if r.get("alert") == "AlertmanagerConfigRejected"]


def test_a_rejected_alertmanager_config_pages_through_a_route_it_cannot_silence(tmp_path):
    """prometheus-operator (pkg/alertmanager/operator.go, selectAlertmanagerConfigs) skips an
    AlertmanagerConfig whose receivers reference a missing Secret (checkAlertmanagerConfigResource
    -> checkReceivers) and exports the count as prometheus_operator_managed_resources{controller=
    "alertmanager", resource="AlertmanagerConfig", state="rejected"} (pkg/operator/operator.go,
    the registerer wrapped with controller="alertmanager"). promtool: quiet at 0 and for the first
    5 minutes, then one page per carrying namespace; the routes: each copy pages via its namespace,
    so with either namespace's config rejected the other still pages."""
    from tests.test_neo4j_backup_alerts import promtool_test

    groups, copies = rejected_rule("prod")
    namespaces = [r["labels"]["namespace"] for r in copies]
    assert len(namespaces) == 2 and len(set(namespaces)) == 2 and all(r["labels"]["severity"] == "critical" for r in copies)
    metric = ('prometheus_operator_managed_resources{controller="alertmanager", resource="AlertmanagerConfig", '
              'state="%s", namespace="monitoring", job="kube-prometheus-stack-operator"}')
    series = [{"series": metric % "rejected", "values": "0x10 1x30"},  # a Secret deleted at minute 10
              {"series": metric % "selected", "values": "6x10 5x30"}]
    firing = [{"exp_labels": {"namespace": ns, "severity": "critical"},
               "exp_annotations": {**copies[0]["annotations"],
                                   "summary": copies[0]["annotations"]["summary"].replace("{{ $value }}", "1")}}
              for ns in namespaces]
    promtool_test(groups, tmp_path, "1m", series, [
        {"eval_time": "9m", "alertname": "AlertmanagerConfigRejected", "exp_alerts": []},
        {"eval_time": "14m", "alertname": "AlertmanagerConfigRejected", "exp_alerts": []},  # pending
        {"eval_time": "16m", "alertname": "AlertmanagerConfigRejected", "exp_alerts": firing},
    ])
    args = AlertRoutingArgs(namespaces=tuple(c["metadata"]["namespace"] for c in amc_objects("prod")),
                            pager_secret=SecretRef("pd", "routingKey"), chat_secret=SecretRef("slack", "webhookUrl"),
                            chat_channel="#alerts", prometheus_release_label="unused")
    native = tmp_path / "alertmanager.yml"
    native.write_text(yaml.safe_dump(native_config(args)))
    for namespace in namespaces:
        assert route(native, f"namespace={namespace}", "severity=critical",
                     "alertname=AlertmanagerConfigRejected") == f"{namespace}/{args.name}/pager"
