"""Does the VPC send pods to the S3 addresses egress allows? (network.<region>.s3; for ops.preflight)

The AWS CLI, Fluent Bit and neo4j-admin dial ``s3.<region>.amazonaws.com``; the NetworkPolicies allow
only ``network.<region>.s3.cidrs``. What that name resolves to inside the VPC depends on the
endpoints (AWS PrivateLink Guide, "Private DNS for interface endpoints"; EC2 API Reference,
DnsOptionsSpecification):

* an S3 interface endpoint with PrivateDnsEnabled answers with its ENIs' private addresses, unless
  ``DnsOptions.PrivateDnsOnlyForInboundResolverEndpoint`` is on, which "routes traffic that
  originates from the VPC to the gateway endpoint" (so in-VPC pods get S3's public addresses);
* otherwise the name resolves to S3's public addresses, which a gateway endpoint routes: the ranges of
  the AWS-managed prefix list ``com.amazonaws.<region>.s3``.

``s3_path_checks`` judges describe output (pure, so preflight can feed it any source);
``check_s3_path`` gathers that output with an EC2 client.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable

from ops._common import Check


def _s3_service(region: str) -> str:
    return f"com.amazonaws.{region}.s3"


def prefix_list_name(region: str) -> str:
    """The AWS-managed prefix list of S3's public ranges in ``region``."""
    return _s3_service(region)


def _in_vpc_private_dns(endpoint: dict) -> bool:
    """Whether an interface endpoint answers s3.<region>.amazonaws.com for resolvers in the VPC."""
    inbound_only = (endpoint.get("DnsOptions") or {}).get("PrivateDnsOnlyForInboundResolverEndpoint", False)
    return bool(endpoint.get("PrivateDnsEnabled")) and not inbound_only


def _networks(cidrs: Iterable[str]) -> set[str]:
    return {str(ipaddress.ip_network(c, strict=False)) for c in cidrs}


def s3_path_checks(*, region: str, vpc_id: str, mode: str, cidrs: list[str], endpoints: list[dict],
                   interface_addresses: dict[str, list[str]], prefix_list_cidrs: list[str]) -> list[Check]:
    """The configured S3 path (``mode``, ``cidrs``) against the VPC's endpoints.

    ``endpoints``: ``describe_vpc_endpoints()["VpcEndpoints"]``; ``interface_addresses``: each
    endpoint ENI's private addresses (``describe_network_interfaces``); ``prefix_list_cidrs``: the
    entries of the com.amazonaws.<region>.s3 prefix list (``get_managed_prefix_list_entries``).
    """
    key = "network.<region>.s3"
    mine = [e for e in endpoints if e.get("VpcId") == vpc_id and e.get("ServiceName") == _s3_service(region)
            and e.get("State", "").lower() == "available"]
    interfaces = [e for e in mine if e.get("VpcEndpointType") == "Interface"]
    gateways = [e for e in mine if e.get("VpcEndpointType") == "Gateway"]
    answering = [e for e in interfaces if _in_vpc_private_dns(e)]
    configured = _networks(cidrs)
    checks: list[Check] = []
    if mode == "interface":
        checks.append(Check("S3 interface endpoint", bool(interfaces),
                            f"{len(interfaces)} available in {vpc_id}" if interfaces else
                            f"none available in {vpc_id} for {_s3_service(region)}: set {key}.mode gateway or create one"))
        inbound_only = [e["VpcEndpointId"] for e in interfaces if not _in_vpc_private_dns(e)]
        checks.append(Check("private DNS for in-VPC resolvers", bool(answering),
                            "on" if answering else
                            f"off on {', '.join(inbound_only) or 'every endpoint'} (PrivateDnsEnabled false, or "
                            "PrivateDnsOnlyForInboundResolverEndpoint true): pods resolve S3's public addresses, "
                            f"which egress drops; enable it or set {key}.mode gateway"))
        found = _networks(f"{a}/32" for e in answering for eni in e.get("NetworkInterfaceIds", [])
                          for a in interface_addresses.get(eni, []))
        checks.append(Check("egress allows the endpoint's addresses", bool(found) and found == configured,
                            _difference(found, configured, key)))
    else:
        tables = sorted({r for e in gateways for r in e.get("RouteTableIds", [])})
        checks.append(Check("S3 gateway endpoint", bool(gateways) and all(e.get("RouteTableIds") for e in gateways),
                            f"{len(gateways)} available in {vpc_id}, routed from {tables}"
                            if gateways else f"none available in {vpc_id}: create one or set {key}.mode interface"))
        checks.append(Check("no interface endpoint answers S3's name", not answering,
                            "none" if not answering else
                            f"{', '.join(e['VpcEndpointId'] for e in answering)} has private DNS for in-VPC resolvers: "
                            f"pods resolve its private addresses, which egress drops; set {key}.mode interface"))
        checks.append(Check(f"egress allows the {prefix_list_name(region)} prefix list",
                            bool(prefix_list_cidrs) and _networks(prefix_list_cidrs) == configured,
                            _difference(_networks(prefix_list_cidrs), configured, key)))
    return checks


def _difference(found: set[str], configured: set[str], key: str) -> str:
    if found == configured:
        return f"{len(found)} CIDRs match"
    missing, extra = sorted(found - configured), sorted(configured - found)
    return (f"{key}.cidrs misses {missing or 'nothing'} and allows {extra or 'nothing'} that AWS does not serve; "
            f"set it to {sorted(found)}")


def check_s3_path(ec2: Any, *, region: str, vpc_id: str, mode: str, cidrs: list[str]) -> list[Check]:
    """``s3_path_checks`` on what ``ec2`` (a boto3 EC2 client of ``region``) describes."""
    endpoints = [e for page in ec2.get_paginator("describe_vpc_endpoints").paginate(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "service-name", "Values": [_s3_service(region)]}])
        for e in page["VpcEndpoints"]]
    enis = [eni for e in endpoints if e.get("VpcEndpointType") == "Interface" for eni in e.get("NetworkInterfaceIds", [])]
    addresses: dict[str, list[str]] = {}
    if enis:
        for eni in ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]:
            addresses[eni["NetworkInterfaceId"]] = [a["PrivateIpAddress"] for a in eni.get("PrivateIpAddresses", [])] \
                or [eni["PrivateIpAddress"]]
    prefix_cidrs: list[str] = []
    if mode == "gateway":
        lists = ec2.describe_managed_prefix_lists(
            Filters=[{"Name": "prefix-list-name", "Values": [prefix_list_name(region)]}])["PrefixLists"]
        for pl in lists:
            prefix_cidrs += [entry["Cidr"] for page in ec2.get_paginator("get_managed_prefix_list_entries").paginate(
                PrefixListId=pl["PrefixListId"]) for entry in page["Entries"]]
    return s3_path_checks(region=region, vpc_id=vpc_id, mode=mode, cidrs=cidrs, endpoints=endpoints,
                          interface_addresses=addresses, prefix_list_cidrs=prefix_cidrs)
