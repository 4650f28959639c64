"""The S3 path (network.<region>.s3): what pods resolve s3.<region>.amazonaws.com to is what egress allows.

The AWS CLI, Fluent Bit and neo4j-admin dial s3.<region>.amazonaws.com. Inside the VPC that name
resolves to an S3 interface endpoint's ENI addresses only while the endpoint has private DNS on for
in-VPC resolvers; PrivateDnsOnlyForInboundResolverEndpoint "routes traffic that originates from the
VPC to the gateway endpoint" (EC2 API Reference, DnsOptionsSpecification), i.e. to S3's public
addresses, the ranges of the AWS-managed prefix list com.amazonaws.<region>.s3 (AWS PrivateLink
Guide, "Gateway endpoints"; `aws ec2 get-managed-prefix-list-entries`).
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

import settings
from ops.s3_path import check_s3_path, prefix_list_name, s3_path_checks
from synth import engine
from synth.export import kubernetes_objects
from tests.conftest import config_with, stack_settings, synthesized

K = f"{settings.PROJECT}:"
# S3's us-east-1 ranges as the com.amazonaws.us-east-1.s3 prefix list lists them (a subset; moto's
# managed prefix list carries the same three)
S3_US_EAST_1 = ["52.216.0.0/15", "3.5.0.0/19", "54.231.0.0/16"]


def _problems(changes: dict) -> list[str]:
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config_with("prod", changes))
    return raised.value.problems


def _s3_rules(objects: list[dict]) -> dict[str, list[dict]]:
    """Every NetworkPolicy egress rule that names an S3 address, by namespace/name."""
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o["spec"]["egress"]
            for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-s3")}


# What dials S3 in each region's cluster: the primary's backups and log shipper; in the DR cluster the
# restore rehearsal, the DR servers seeding from the replicated chain, their seed Jobs and the shipper.
S3_CLIENTS = {
    "primary": {"graph/graph-backup-s3", "logging/logging-shipper-s3"},
    "dr": {"dr-verify/dr-verify-backup-s3", "graph/graph-neo4j-seed-s3", "graph/graph-seed-jobs-s3",
           "logging/logging-shipper-s3"},
}


def _assert_s3_allowed_exactly(objects: list[dict], cidrs: list[str], clients: set[str]) -> None:
    rules = _s3_rules(objects)
    assert set(rules) == clients
    for name, egress in rules.items():
        assert egress == [{"ports": [{"port": 443, "protocol": "TCP"}],
                           "to": [{"ipBlock": {"cidr": c}} for c in cidrs]}], name
    # and no other policy opens those addresses
    for o in objects:
        if o["kind"] == "NetworkPolicy" and not o["metadata"]["name"].endswith("-s3"):
            blocks = {p.get("ipBlock", {}).get("cidr") for r in o["spec"].get("egress", []) for p in r.get("to", [])}
            assert not blocks & set(cidrs), o["metadata"]["name"]


@pytest.mark.parametrize("role", ["primary", "dr"])
def test_interface_mode_allows_exactly_the_endpoint_addresses_on_443(role):
    """Each cluster admits its own region's S3 path: the DR cluster's pods resolve us-west-2's."""
    s3 = stack_settings("prod").network.of(role).s3
    assert s3.mode == "interface"
    _assert_s3_allowed_exactly(kubernetes_objects(synthesized("prod"), role), list(s3.cidrs), S3_CLIENTS[role])


def test_gateway_mode_allows_exactly_the_prefix_list_ranges_on_443():
    config = config_with("prod", {"network.primary.s3": {"mode": "gateway", "cidrs": S3_US_EAST_1}})
    synthesis = engine.synthesize("prod", config)
    _assert_s3_allowed_exactly(kubernetes_objects(synthesis, "primary"), S3_US_EAST_1, S3_CLIENTS["primary"])
    # the DR region's path is its own setting, untouched
    dr = stack_settings("prod").network.dr.s3
    _assert_s3_allowed_exactly(kubernetes_objects(synthesis, "dr"), list(dr.cidrs), S3_CLIENTS["dr"])


@pytest.mark.parametrize("s3,key,words", [
    # a gateway endpoint routes S3's public addresses: a private range there is the interface's
    ({"mode": "gateway", "cidrs": ["10.40.1.36/32"]}, "network.primary.s3.cidrs.0", "not a public range"),
    # an interface endpoint's ENIs take addresses from the VPC's subnets (VPC User Guide)
    ({"mode": "interface", "cidrs": ["52.216.0.0/15"]}, "network.primary.s3.cidrs.0", "outside network.primary.vpcCidr"),
    ({"mode": "gateway", "cidrs": ["0.0.0.0/0"]}, "network.primary.s3.cidrs.0", "whole internet"),
    ({"mode": "nat", "cidrs": ["10.40.1.36/32"]}, "network.primary.s3.mode", "'interface' or 'gateway'"),
    ({"mode": "interface", "cidrs": []}, "network.primary.s3.cidrs", "at least 1 item"),
    ({"cidrs": ["10.40.1.36/32"]}, "network.primary.s3.mode", "required key is missing"),
])
def test_a_bad_s3_path_is_refused_naming_the_key(s3, key, words):
    [problem] = [p for p in _problems({"network.primary.s3": s3}) if p.startswith(f"{K}{key}:")]
    assert words in problem, problem


def test_the_old_key_is_refused():
    config = config_with("prod", {"network.dr.s3EndpointCidrs": ["10.41.1.44/32"]})
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    assert any(p.startswith(f"{K}network.dr.s3EndpointCidrs: unknown key") for p in raised.value.problems)


# --- the preflight check, against moto's EC2 -------------------------------------------------------

REGION = "us-east-1"


@pytest.fixture
def ec2():
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def _vpc(ec2) -> tuple[str, str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    return vpc, subnet, table


def _interface(ec2, vpc: str, subnet: str, private_dns: bool = True) -> tuple[dict, list[str]]:
    endpoint = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Interface",
                                       SubnetIds=[subnet], PrivateDnsEnabled=private_dns)["VpcEndpoint"]
    enis = ec2.describe_network_interfaces(NetworkInterfaceIds=endpoint["NetworkInterfaceIds"])["NetworkInterfaces"]
    return endpoint, [f"{eni['PrivateIpAddress']}/32" for eni in enis]


def _failed(checks) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


def test_preflight_passes_an_interface_endpoint_with_private_dns_and_its_addresses(ec2):
    vpc, subnet, _ = _vpc(ec2)
    _, addresses = _interface(ec2, vpc, subnet)
    checks = check_s3_path(ec2, region=REGION, vpc_id=vpc, mode="interface", cidrs=addresses)
    assert len(checks) == 3 and not _failed(checks), checks
    # another address configured: named, with what AWS serves
    failed = _failed(check_s3_path(ec2, region=REGION, vpc_id=vpc, mode="interface", cidrs=["10.40.9.9/32"]))
    assert set(failed) == {"egress allows the endpoint's addresses"}
    assert addresses[0] in failed["egress allows the endpoint's addresses"]


def test_preflight_fails_an_interface_endpoint_without_private_dns(ec2):
    vpc, subnet, _ = _vpc(ec2)
    _, addresses = _interface(ec2, vpc, subnet, private_dns=False)
    failed = _failed(check_s3_path(ec2, region=REGION, vpc_id=vpc, mode="interface", cidrs=addresses))
    assert "private DNS for in-VPC resolvers" in failed and "public addresses" in failed["private DNS for in-VPC resolvers"]


def test_preflight_fails_private_dns_only_for_inbound_resolvers(ec2):
    """moto does not keep DnsOptions, so the describe output carries it as AWS returns it."""
    vpc, subnet, _ = _vpc(ec2)
    endpoint, addresses = _interface(ec2, vpc, subnet)
    eni = endpoint["NetworkInterfaceIds"][0]
    described = [{**endpoint, "DnsOptions": {"DnsRecordIpType": "ipv4", "PrivateDnsOnlyForInboundResolverEndpoint": True}}]

    def judge():
        return _failed(s3_path_checks(region=REGION, vpc_id=vpc, mode="interface", cidrs=addresses, endpoints=described,
                                      interface_addresses={eni: [addresses[0].removesuffix("/32")]},
                                      prefix_list_cidrs=[]))

    assert "PrivateDnsOnlyForInboundResolverEndpoint" in judge()["private DNS for in-VPC resolvers"]
    # the same endpoint with it off passes
    described[0]["DnsOptions"]["PrivateDnsOnlyForInboundResolverEndpoint"] = False
    assert not judge()


def test_preflight_passes_a_gateway_endpoint_with_the_prefix_list_ranges(ec2):
    vpc, _, table = _vpc(ec2)
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[table])
    [pl] = ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [prefix_list_name(REGION)]}])["PrefixLists"]
    ranges = [e["Cidr"] for e in ec2.get_managed_prefix_list_entries(PrefixListId=pl["PrefixListId"])["Entries"]]
    assert sorted(ranges) == sorted(S3_US_EAST_1)
    assert not _failed(check_s3_path(ec2, region=REGION, vpc_id=vpc, mode="gateway", cidrs=ranges))
    # a stale list (one range missing) is named
    failed = _failed(check_s3_path(ec2, region=REGION, vpc_id=vpc, mode="gateway", cidrs=ranges[1:]))
    assert set(failed) == {f"egress allows the {prefix_list_name(REGION)} prefix list"}
    assert ranges[0] in failed[f"egress allows the {prefix_list_name(REGION)} prefix list"]


def test_preflight_fails_gateway_mode_when_an_interface_endpoint_answers_the_name(ec2):
    vpc, subnet, table = _vpc(ec2)
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[table])
    _interface(ec2, vpc, subnet, private_dns=True)
    failed = _failed(check_s3_path(ec2, region=REGION, vpc_id=vpc, mode="gateway", cidrs=S3_US_EAST_1))
    assert set(failed) == {"no interface endpoint answers S3's name"}


def test_preflight_fails_a_mode_whose_endpoint_is_missing(ec2):
    vpc, subnet, _ = _vpc(ec2)
    _interface(ec2, vpc, subnet)
    failed = _failed(check_s3_path(ec2, region=REGION, vpc_id=vpc, mode="gateway", cidrs=S3_US_EAST_1))
    assert "S3 gateway endpoint" in failed
    other_vpc, _, _ = _vpc(ec2)  # an endpoint of another VPC serves nobody here
    failed = _failed(check_s3_path(ec2, region=REGION, vpc_id=other_vpc, mode="interface", cidrs=["10.40.1.5/32"]))
    assert "S3 interface endpoint" in failed
