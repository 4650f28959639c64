"""The edge: health-checked DNS failover, the Ingress with its rate limit, and reviewed egress
exceptions."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from settings.values import Arn, K8sName, Model, Port, PrivateCidr


class LoadBalancer(Model):
    dns_name: Annotated[str, Field(pattern=r"^[a-z0-9-]+\.[a-z]{2}-[a-z]+-[0-9]\.elb\.amazonaws\.com$")] = Field(
        description="The load balancer's DNS name (<name>.<region>.elb.amazonaws.com).")
    zone_id: Annotated[str, Field(pattern=r"^Z[A-Z0-9]{8,32}$")] = Field(
        description="The load balancer's canonical hosted zone id (for alias records).")


class HealthCheckSettings(Model):
    fqdn: str = Field(description="A name only the primary serves, checked by Route 53 (not the failover record name).")
    request_interval_seconds: Literal[10, 30] = Field(description="Route 53 health-check request interval: 10 or 30 seconds.")
    failure_threshold: Annotated[int, Field(ge=1, le=10)] = Field(
        description="Consecutive failed checks (1-10) before the primary counts as unhealthy.")
    regions: Annotated[
        list[Literal["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-southeast-1",
                     "ap-southeast-2", "ap-northeast-1", "sa-east-1"]],
        Field(min_length=3),
    ] = Field(description="Route 53 checker regions (at least 3).")


class DnsSettings(Model):
    hosted_zone_id: Annotated[str, Field(pattern=r"^Z[A-Z0-9]{8,32}$")] = Field(
        description="The Route 53 hosted zone of recordName.")
    record_name: str = Field(description="The failover record clients use.")
    health_check: HealthCheckSettings = Field(description="The health check of the primary.")
    # ingress.mode alb: none - DNS aliases the ALB the program creates. Only the
    # nginx compatibility mode names the primary load balancer (the ingress-nginx controller's).
    primary_load_balancer: Optional[LoadBalancer] = Field(None,
        description="nginx mode only: the ingress-nginx controller's load balancer (alb mode aliases the program's ALB).")
    dr_load_balancer: Optional[LoadBalancer] = Field(None,
        description="nginx mode only: the DR cluster's ingress-nginx load balancer (alb mode aliases the program's DR ALB).")

    @model_validator(mode="after")
    def _checked_name_is_not_the_failover_name(self) -> "DnsSettings":
        if self.health_check.fqdn.rstrip(".") == self.record_name.rstrip("."):
            raise ValueError(
                f"healthCheck.fqdn {self.health_check.fqdn!r} is the failover recordName: the check would "
                "follow the failover to the DR region; use a name that only the primary serves, e.g. "
                f"'primary.{self.record_name}'")
        return self


class RateLimitSettings(Model):
    requests_per_second: Annotated[int, Field(ge=1, le=100000)] = Field(
        description="Sustained requests per second allowed per client IP.")
    burst_multiplier: Annotated[int, Field(ge=1, le=10)] = Field(
        description="Burst allowance as a multiple of requestsPerSecond.")


class IngressSettings(Model):
    mode: Literal["alb", "nginx"] = Field(description="alb (ALB Ingress with AWS WAF) or nginx (compatibility mode).")
    namespace: K8sName = Field(description="The application's namespace of serviceName (it must exist: the edge's "
                               "TargetGroupBinding, or nginx mode's Ingress, is created there).")
    host: str = Field(description="The public host name served.")
    service_name: K8sName = Field(description="The application's Service the edge sends to (in namespace); it need "
                                  "not exist at deploy time (alb mode binds it with a TargetGroupBinding).")
    service_port: Port = Field(description="The backend Service's port.")
    # alb mode: the ALB sends to the pods' own addresses (target type ip), on the port the Service's
    # targetPort names; the security group rule and the NetworkPolicy flow need it as a number.
    pod_port: Optional[Port] = Field(None,
        description="alb mode: the port the Service's pods listen on (its targetPort for servicePort); default "
                    "servicePort. The ALB sends there directly; ops.preflight compares it with the live Service.")
    certificate_arn: Arn = Field(
        description="ACM certificate of the host (TLS 1.3 policy), in aws.accountId and aws.primaryRegion.")
    # ACM certificates are regional: an ALB takes only a certificate of its own region.
    dr_certificate_arn: Optional[Arn] = Field(None,
        description="alb mode: ACM certificate of the host for the DR region's ALB, in aws.accountId and aws.drRegion.")
    rate_limit: RateLimitSettings = Field(description="Per-IP rate limit.")
    allowlist_cidrs: list[PrivateCidr] = Field(description="Client CIDRs exempt from the rate limit.")
    max_body_size_mb: Annotated[int, Field(ge=1, le=64)] = Field(description="Largest request body in MB.")
    tls_secret_name: Optional[K8sName] = Field(None,
        description="nginx mode only: the Secret holding the TLS certificate.")  # nginx mode only: TLS terminates in the cluster

    @model_validator(mode="after")
    def _nginx_needs_tls_secret(self) -> "IngressSettings":
        if self.mode == "nginx" and not self.tls_secret_name:
            raise ValueError("mode nginx needs tlsSecretName: TLS is always on")
        return self


class EgressAllow(Model):
    namespace: K8sName = Field(description="The namespace allowed out: one the stack manages (neo4j.namespace, "
                               "neo4j.restoreNamespace, redis.namespace, pgRestoreRehearsal.namespace, "
                               "logs.shipper.namespace).")
    cidr: PrivateCidr = Field(description="The destination CIDR (never the whole internet).")
    ports: Annotated[list[Port], Field(min_length=1)] = Field(description="The destination TCP ports.")
    reason: Annotated[str, Field(min_length=10)] = Field(description="Why this exception exists (reviewed).")


class EgressSettings(Model):
    allowlist: list[EgressAllow] = Field([], description="Reviewed egress exceptions beyond the components' own flows.")
