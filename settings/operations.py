"""Running the stack: Prometheus and Grafana, alert routing, the PostgreSQL restore rehearsal, and log
retention and shipping."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from settings.values import Cron, Image, K8sName, Model, PrivateCidr, TimeZone


class ObservabilitySettings(Model):
    prometheus_release_label: K8sName = Field(
        description="The `release` label kube-prometheus-stack selects ServiceMonitors and rules by.")
    prometheus_namespace: K8sName = Field(description="Namespace of Prometheus (allowed in to scrape).")
    grafana_dashboard_label: str = Field(description="The label the Grafana sidecar loads dashboard ConfigMaps by.")


_EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class AlertSubscriber(Model):
    protocol: Literal["email", "https"] = Field(description="email or https.")
    endpoint: str = Field(description="An e-mail address, or an https:// URL without credentials.")

    @model_validator(mode="after")
    def _endpoint_fits_protocol(self) -> "AlertSubscriber":
        from urllib.parse import urlsplit

        if self.protocol == "email" and not _EMAIL.match(self.endpoint):
            raise ValueError(f"endpoint {self.endpoint!r} is not an e-mail address")
        if self.protocol == "https":
            url = urlsplit(self.endpoint)
            if url.scheme != "https" or not url.hostname:
                raise ValueError(f"endpoint {self.endpoint!r} is not an https:// URL")
            if url.username or url.password or url.query:
                # config is plain text in git: a key in the URL would be a secret in config
                raise ValueError("endpoint must carry no credentials (user:password@ or ?query); "
                                 "point it at a relay that holds the paging service's key")
        return self


def _subscribers(value: list) -> list:
    if not value:
        raise ValueError("the stack's CloudWatch alarms in this region would notify nobody; "
                         "add at least one {protocol: email|https, endpoint: ...}")
    return value


Subscribers = Annotated[list[AlertSubscriber], AfterValidator(_subscribers)]


class AlertSubscribers(Model):
    # one list per region: each region's alarms publish to topics in that region
    primary: Subscribers = Field(description="Subscribers of the primary region's alarm topics.")
    dr: Subscribers = Field(description="Subscribers of the DR region's alarm topics.")


class SecretKeyRef(Model):
    """A key of a Kubernetes Secret that exists in each namespace with alerts (created by the
    secrets pipeline, never by this program: its value must not pass through config or state)."""

    name: K8sName = Field(description="The Secret's name (created by the secrets pipeline, not this program).")
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")] = Field(description="The key inside the Secret.")


class AlertmanagerSettings(Model):
    # PagerDuty Events v2 routing key: severity=critical pages
    pager_secret: SecretKeyRef = Field(
        description="PagerDuty Events v2 routing key: severity=critical pages.")
    # Slack incoming-webhook URL: severity=warning (and anything else)
    chat_secret: SecretKeyRef = Field(
        description="Slack incoming-webhook URL: severity=warning and unlabelled alerts.")
    chat_channel: Annotated[str, Field(pattern=r"^#[a-z0-9_-]{1,79}$")] = Field(description="The Slack channel ('#name').")


class AlertingSettings(Model):
    subscribers: AlertSubscribers = Field(description="Who CloudWatch alarm topics notify, per region.")
    alertmanager: AlertmanagerSettings = Field(description="Where Prometheus alerts are routed.")


class PgRestoreRehearsalSettings(Model):
    """The weekly PostgreSQL point-in-time restore rehearsal (ops/pg_restore_rehearsal)."""

    schedule: Cron = Field(description="Cron schedule of the weekly PostgreSQL point-in-time restore rehearsal.")
    time_zone: TimeZone = Field("Etc/UTC", description="IANA time zone of the schedule.")
    # Python 3 with boto3 (AWS Lambda's base image ships both); the runbook is mounted from a ConfigMap.
    image: Image = Field(description="Pinned Python 3 image with boto3 that runs the rehearsal.")
    namespace: K8sName = Field(description="Namespace of the rehearsal CronJob.")
    # The addresses through which the cluster reaches the RDS API of the DR region (an interface
    # endpoint reached over the peering); default-deny allows nothing else.
    dr_rds_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="Addresses of the DR region's RDS API interface endpoint (inside network.dr.vpcCidr).")
    # That interface endpoint's own DNS name, which the runbook calls (AWS_ENDPOINT_URL_RDS): its
    # private DNS answers only inside the DR VPC, so from the primary VPC boto3 would resolve
    # rds.<dr region>.amazonaws.com to public addresses that default-deny refuses.
    dr_rds_endpoint_url: Annotated[str, Field(pattern=(
        r"^https://vpce-[0-9a-f]{8,17}-[0-9a-z]{8}(-[a-z]{2}-[a-z]+-\d[a-z])?"
        r"\.rds\.[a-z]{2}(-gov)?-[a-z]+-\d\.vpce\.amazonaws\.com$"))] = Field(
        description="DNS name of the DR region's RDS interface endpoint (https://vpce-...rds.<drRegion>.vpce.amazonaws.com).")
    timeout_minutes: Annotated[int, Field(ge=15, le=720)] = Field(description="The rehearsal's own timeout in minutes.")


class LogShipperSettings(Model):
    namespace: K8sName = Field(description="Namespace of the Fluent Bit DaemonSet (not a workload namespace).")
    image: Image = Field(description="Pinned Fluent Bit image.")  # Fluent Bit


class LogSettings(Model):
    # Every CloudWatch log group the stack creates or causes (RDS exports, WAF) keeps this long.
    retention_days: int = Field(
        description="Retention of every CloudWatch log group of the stack (a value CloudWatch Logs accepts).")
    shipper: LogShipperSettings = Field(description="The container log shipper.")

    @field_validator("retention_days")
    @classmethod
    def _cloudwatch_retention(cls, value: int) -> int:
        from helpers.log_groups import RETENTION_DAYS

        if value not in RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {', '.join(map(str, RETENTION_DAYS))}")
        return value
