"""AlertRouting: the Alertmanager route for this platform's Prometheus alerts, by severity.

kube-prometheus-stack's Alertmanager selects every AlertmanagerConfig in every namespace (its
chart renders ``alertmanagerConfigSelector: {}`` and ``alertmanagerConfigNamespaceSelector: {}``
by default) and the operator's default matcher strategy ``OnNamespace`` adds
``namespace="<the AlertmanagerConfig's namespace>"`` to its top-level route. An alert is routed by
the ``namespace`` label of the series it fires on (kube-state-metrics keeps the object's namespace),
so one AlertmanagerConfig in ``monitoring`` would route none of ours: there is one per namespace
whose series our rules read. Receivers reference Secrets (same namespace as the config, as the
operator requires); their values never pass through config or state.

``critical`` pages (PagerDuty Events v2), ``warning`` and anything unlabelled go to the team's
Slack channel: nothing falls through to kube-prometheus-stack's ``null`` receiver.

An AlertmanagerConfig the operator rejects (a receiver's Secret missing: ``checkReceivers`` reads
every referenced Secret) is skipped, so its namespace's alerts reach nobody; the operator counts it
in ``prometheus_operator_managed_resources{controller="alertmanager", resource="AlertmanagerConfig",
state="rejected"}`` (prometheus-operator pkg/alertmanager/operator.go, ``selectAlertmanagerConfigs``;
pkg/operator/operator.go). ``AlertmanagerConfigRejected`` pages on it, carried by two namespaces'
routes so that the rejected one cannot swallow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from helpers.kube import labels_for, prometheus_rule
from helpers.validation import require

API_VERSION = "monitoring.coreos.com/v1alpha1"
GROUP_BY = ("alertname", "namespace")
# (receiver, severity, repeat interval): a page repeats hourly until acknowledged or resolved.
ROUTES = (("pager", "critical", "1h"), ("chat", "warning", "4h"))
DEFAULT_RECEIVER = "chat"
# Where the operator mounts Secrets for Alertmanager (alertmanagerSpec.secrets) - used only to
# render the native configuration amtool checks; the deployed object references the Secret.
SECRETS_DIR = "/etc/alertmanager/secrets"


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True)
class AlertRoutingArgs:
    namespaces: tuple[str, ...]  # every namespace whose series our alerts fire on
    pager_secret: SecretRef  # PagerDuty Events v2 routing key
    chat_secret: SecretRef  # Slack incoming-webhook URL
    chat_channel: str
    prometheus_release_label: str  # the label kube-prometheus-stack's Prometheus selects rules by
    name: str = "intelgraph-alerts"

    def __post_init__(self) -> None:
        require("AlertRoutingArgs", [
            "" if self.namespaces else "namespaces must name at least one namespace",
            "" if len(set(self.namespaces)) == len(self.namespaces) else "namespaces must be unique",
            "" if self.chat_channel.startswith("#") else "chat_channel must be a '#channel'",
        ])


def route_spec() -> dict:
    """The route tree in the AlertmanagerConfig CRD's (camelCase) form."""
    return {
        "receiver": DEFAULT_RECEIVER,
        "groupBy": list(GROUP_BY),
        "groupWait": "30s",
        "groupInterval": "5m",
        "repeatInterval": "4h",
        "routes": [{"receiver": receiver, "repeatInterval": repeat,
                    "matchers": [{"name": "severity", "matchType": "=", "value": severity}]}
                   for receiver, severity, repeat in ROUTES],
    }


def receivers_spec(args: AlertRoutingArgs) -> list[dict]:
    return [
        {"name": "pager", "pagerdutyConfigs": [{
            "routingKey": {"name": args.pager_secret.name, "key": args.pager_secret.key},
            "sendResolved": True,
            "description": '{{ .CommonAnnotations.summary }}',
            "pagerDutyLinkConfigs": [{"href": '{{ .CommonAnnotations.runbook_url }}', "alt": "runbook"}],
        }]},
        {"name": "chat", "slackConfigs": [{
            "apiURL": {"name": args.chat_secret.name, "key": args.chat_secret.key},
            "channel": args.chat_channel,
            "sendResolved": True,
            "title": '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.namespace }})',
            "text": '{{ .CommonAnnotations.summary }} Runbook: {{ .CommonAnnotations.runbook_url }}',
        }]},
    ]


REJECTED = ('prometheus_operator_managed_resources{controller="alertmanager",resource="AlertmanagerConfig",'
            'state="rejected"}')


def rejected_rule_groups(args: AlertRoutingArgs) -> list[dict]:
    """The alert, once per carrying namespace: one rejected config (one namespace's missing
    Secret) leaves the other route. 5 minutes: a Secret created just after its config is fine."""
    return [{"name": "alertmanager-config", "rules": [{
        "alert": "AlertmanagerConfigRejected",
        "expr": f"max({REJECTED}) > 0",
        "for": "5m",
        "labels": {"namespace": namespace},
        "annotations": {"summary": "The Prometheus operator rejected {{ $value }} AlertmanagerConfig(s): "
                                   "alerts of their namespaces reach nobody"},
    } for namespace in args.namespaces[:2]]}]


def alertmanager_config(args: AlertRoutingArgs, namespace: str) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "AlertmanagerConfig",
        "metadata": {"name": args.name, "namespace": namespace,
                     "labels": labels_for("alertmanager", "routing")},
        "spec": {"route": route_spec(), "receivers": receivers_spec(args)},
    }


def native_config(args: AlertRoutingArgs) -> dict:
    """The Alertmanager configuration the operator generates from our AlertmanagerConfigs merged
    into kube-prometheus-stack's default one (root receiver ``null``): per namespace a top-level
    route matching ``namespace`` with ``continue: true`` (operator behaviour), receivers named
    ``<namespace>/<config>/<receiver>``, secrets read from files. amtool checks this."""
    def receiver(namespace: str, name: str) -> str:
        return f"{namespace}/{args.name}/{name}"

    def secret_file(ref: SecretRef) -> str:
        return f"{SECRETS_DIR}/{ref.name}/{ref.key}"

    receivers: list[dict] = [{"name": "null"}]
    routes = []
    for ns in args.namespaces:
        spec = route_spec()
        routes.append({
            "receiver": receiver(ns, spec["receiver"]),
            "group_by": spec["groupBy"], "group_wait": spec["groupWait"],
            "group_interval": spec["groupInterval"], "repeat_interval": spec["repeatInterval"],
            "matchers": [f'namespace="{ns}"'],
            "continue": True,
            "routes": [{"receiver": receiver(ns, r["receiver"]), "repeat_interval": r["repeatInterval"],
                        "matchers": [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in r["matchers"]]}
                       for r in spec["routes"]],
        })
        for spec_receiver in receivers_spec(args):
            native: dict = {"name": receiver(ns, spec_receiver["name"])}
            for pd in spec_receiver.get("pagerdutyConfigs", []):
                native.setdefault("pagerduty_configs", []).append({
                    "routing_key_file": secret_file(SecretRef(**pd["routingKey"])),
                    "send_resolved": pd["sendResolved"], "description": pd["description"],
                    "links": [{"href": link["href"], "text": link["alt"]} for link in pd["pagerDutyLinkConfigs"]]})
            for slack in spec_receiver.get("slackConfigs", []):
                native.setdefault("slack_configs", []).append({
                    "api_url_file": secret_file(SecretRef(**slack["apiURL"])), "channel": slack["channel"],
                    "send_resolved": slack["sendResolved"], "title": slack["title"], "text": slack["text"]})
            receivers.append(native)
    return {
        "route": {"receiver": "null", "group_by": ["namespace"],
                  "routes": routes + [{"receiver": "null", "matchers": ['alertname="Watchdog"']}]},
        "receivers": receivers,
    }


class AlertRouting(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlertRoutingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:observability:AlertRouting", name, None, opts)
        for namespace in args.namespaces:
            config = alertmanager_config(args, namespace)
            k8s.apiextensions.CustomResource(
                f"{name}-{namespace}", api_version=config["apiVersion"], kind=config["kind"],
                metadata=config["metadata"], spec=config["spec"], opts=pulumi.ResourceOptions(parent=self))
        prometheus_rule(f"{name}-rejected", namespace=args.namespaces[0], release_label=args.prometheus_release_label,
                        groups=rejected_rule_groups(args), opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"namespaces": list(args.namespaces)})
