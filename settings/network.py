"""The account and its two regions: each region's network (the VPC, its subnets, the endpoints pods dial
for S3, STS and Secrets Manager) and its EKS cluster."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from settings.values import (
    AccountId,
    Arn,
    Cidr,
    K8sName,
    Model,
    PrivateCidr,
    Region,
    Role,
    Version,
    _camel,
    _private_cidr,
    _raise_any,
    _service_ip,
)


class AwsSettings(Model):
    account_id: AccountId = Field(
        description="The 12-digit AWS account the stack deploys into; every provider refuses any other account.")
    primary_region: Region = Field(description="The AWS region that serves traffic (databases, buckets, the cluster).")
    dr_region: Region = Field(
        description="The AWS region of the disaster-recovery copies (read replica, "
                    "bucket twins, WAF); must differ from primaryRegion.")

    @field_validator("primary_region", "dr_region")
    @classmethod
    def _bucket_namespace_offered(cls, value: str) -> str:
        from components.backup_bucket import NAMESPACE_UNAVAILABLE_REGIONS

        if value in NAMESPACE_UNAVAILABLE_REGIONS:
            raise ValueError("S3 offers no account regional namespace there, and the backup buckets "
                             f"live in one; not {', '.join(sorted(NAMESPACE_UNAVAILABLE_REGIONS))}")
        return value

    @field_validator("dr_region")
    @classmethod
    def _distinct_regions(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("primary_region"):
            raise ValueError(
                "must differ from primaryRegion: a DR copy in the same region shares its failures"
            )
        return value

    def region(self, role: Role) -> str:
        return self.primary_region if role == "primary" else self.dr_region


def _public_cidr(value: str) -> str:
    network = ipaddress.ip_network(_private_cidr(value))
    if not network.is_global:
        raise ValueError("not a public range: a gateway endpoint routes to S3's public addresses "
                         "(the com.amazonaws.<region>.s3 prefix list)")
    return str(network)


class S3Path(Model):
    """Which S3 addresses pods dial. The AWS CLI, Fluent Bit and neo4j-admin resolve
    s3.<region>.amazonaws.com, so egress must allow what that name resolves to *inside the VPC*:
    the interface endpoint's ENI addresses only when private DNS is on for in-VPC resolvers
    (PrivateDnsEnabled, and not PrivateDnsOnlyForInboundResolverEndpoint, which "routes traffic that
    originates from the VPC to the gateway endpoint": EC2 API Reference, DnsOptionsSpecification);
    otherwise S3's public addresses, which a gateway endpoint routes (the managed prefix list
    com.amazonaws.<region>.s3). ops.s3_path checks a live VPC against this."""

    mode: Literal["interface", "gateway"] = Field(
        description="interface: an S3 interface endpoint with private DNS on for in-VPC resolvers; "
                    "gateway: an S3 gateway endpoint (and no such interface endpoint).")
    cidrs: Annotated[list[Cidr], Field(min_length=1)] = Field(
        description="interface: the endpoint's ENI addresses (inside vpcCidr); gateway: every CIDR of the "
                    "com.amazonaws.<region>.s3 managed prefix list, from `aws ec2 get-managed-prefix-list-entries "
                    "--prefix-list-id <pl-id>` (`aws ec2 describe-managed-prefix-lists --filters "
                    "Name=prefix-list-name,Values=com.amazonaws.<region>.s3` names the id).")

    @model_validator(mode="after")
    def _cidrs_fit_the_mode(self) -> "S3Path":
        problems = []
        for i, cidr in enumerate(self.cidrs):
            try:
                (_private_cidr if self.mode == "interface" else _public_cidr)(cidr)
            except ValueError as exc:
                problems.append((f"cidrs.{i}", f"mode {self.mode}: {exc}", cidr))
        _raise_any(problems)
        return self


class RegionNetwork(Model):
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")] = Field(
        description="The region's VPC (vpc-...), where the database subnets and security groups live.")
    # the VPC's primary CIDR block: what "this region's network" means
    vpc_cidr: PrivateCidr = Field(
        description="The VPC's primary CIDR block: every endpoint, API server and "
                    "client address of the region must lie inside it.")
    private_subnet_ids: Annotated[
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]], Field(min_length=2)
    ] = Field(description="Private subnets in at least two availability zones, for the DB subnet group.")
    # ingress.mode alb: the program's internet-facing ALB (components/waf_ingress.py) lives in these
    # subnets; an ALB needs subnets in at least two Availability Zones (ELB User Guide, "Subnets for
    # your load balancer"), and its nodes take their addresses from them, which is where the pods
    # see its requests come from (target type ip): the NetworkPolicy flow names these CIDRs.
    public_subnet_ids: Optional[Annotated[
        list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]], Field(min_length=2)
    ]] = Field(None, description="ingress.mode alb: public subnets (a route to an internet gateway) in at least two "
                                 "availability zones, for the region's internet-facing ALB.")
    public_subnet_cidrs: Optional[Annotated[list[PrivateCidr], Field(min_length=2)]] = Field(None,
        description="ingress.mode alb: the CIDR blocks of publicSubnetIds (inside vpcCidr, in the same order): the "
                    "ALB's nodes take their addresses there, so the pods behind it admit these.")
    # S3 is reached through whichever endpoint s3.<region>.amazonaws.com resolves to inside the VPC
    # (S3Path); IRSA reaches STS only through its interface endpoint's addresses.
    s3: S3Path = Field(description="How pods reach S3 in this region: the endpoint the VPC resolves "
                                   "s3.<region>.amazonaws.com to, and the addresses that egress allows.")
    sts_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="Addresses of the region's STS interface endpoint: the only way IRSA pods get credentials.")
    secretsmanager_endpoint_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="Addresses of the region's Secrets Manager interface endpoint (private DNS on): the only "
                    "way the PostgreSQL master secret's rotation function reaches Secrets Manager.")


class NetworkSettings(Model):
    primary: RegionNetwork = Field(description="The primary region's network.")
    dr: RegionNetwork = Field(description="The DR region's network.")

    def of(self, role: Role) -> RegionNetwork:
        return self.primary if role == "primary" else self.dr


class ClusterSettings(Model):
    """One region's EKS cluster: how the program reaches it, and what its pods must be allowed to dial."""

    context: Optional[str] = Field(None,
        description="The kubeconfig context of the EKS cluster (set exactly one of context and kubeconfigPath); "
                    "a cluster ARN must name aws.accountId, the cluster's region and clusterName.")
    kubeconfig_path: Optional[str] = Field(None,
        description="A kubeconfig file for the cluster (set exactly one of context and kubeconfigPath).")
    cluster_name: K8sName = Field(description="The EKS cluster's name.")
    oidc_provider_arn: Arn = Field(
        description="The ARN of the cluster's IAM OIDC provider, which IRSA roles trust: in aws.accountId, for oidcIssuer.")
    oidc_issuer: Annotated[str, Field(pattern=r"^oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/[A-F0-9]+$")] = Field(
        description="The cluster's OIDC issuer without https:// (oidc.eks.<region>.amazonaws.com/id/<ID>).")
    # The EKS control plane's ENIs in the VPC: Neo4j discovers its peers through the API.
    api_server_cidrs: Annotated[list[PrivateCidr], Field(min_length=1)] = Field(
        description="The EKS control plane's ENI addresses in the region's VPC: Neo4j "
                    "discovery and snapshot jobs reach the API there.")
    # ...which pods dial at the `kubernetes` Service's ClusterIP: egress allows both.
    api_service_ip: Annotated[str, AfterValidator(_service_ip)] = Field(
        description="The ClusterIP of the `kubernetes` Service (the first address of "
                    "the service CIDR), which pods dial for the API.")

    @model_validator(mode="after")
    def _one_source(self) -> "ClusterSettings":
        if bool(self.context) == bool(self.kubeconfig_path):
            raise ValueError("set exactly one of 'context' or 'kubeconfigPath'")
        return self


class KubernetesSettings(Model):
    # The cluster's Kubernetes minor version: manifests are validated against its schemas.
    version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$"), Version] = Field(
        description="The clusters' Kubernetes minor version (e.g. '1.33'): manifests are validated against "
                    "its schemas; both regions run the same version, so a switch meets the same API.")
    app_namespace: K8sName = Field(
        description="The namespace of the application that uses Neo4j and Redis, in both clusters "
                    "(allowed in by their NetworkPolicies). It must exist: the program writes the redis-client "
                    "and <neo4j.clusterName>-client Secrets into it.")
    primary: ClusterSettings = Field(description="The primary region's EKS cluster.")
    dr: ClusterSettings = Field(description="The DR region's EKS cluster (a prerequisite, like the primary's).")

    def of(self, role: Role) -> ClusterSettings:
        return self.primary if role == "primary" else self.dr

    @model_validator(mode="after")
    def _two_clusters(self) -> "KubernetesSettings":
        same = [key for key in ("context", "kubeconfig_path", "cluster_name", "oidc_provider_arn")
                if getattr(self.primary, key) is not None and getattr(self.primary, key) == getattr(self.dr, key)]
        if same:
            raise ValueError(f"primary and dr name the same cluster ({', '.join(_camel(k) for k in same)}): "
                             "the DR tier must run in the DR region's own cluster")
        return self
