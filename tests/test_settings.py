"""Stack settings: the real stack files load; a wrong value stops the program before any
resource is registered, with a message that names the key, the value and what is allowed."""

from __future__ import annotations

import pytest

import settings
from synth import engine
from tests.conftest import STACKS, config_with

K = "intelgraph-platform:"


@pytest.mark.parametrize("stack", STACKS)
def test_real_stack_files_load(stack):
    cfg = settings.validate(engine.stack_config(stack))
    assert cfg.environment == stack
    assert cfg.aws.primary_region == "us-east-1" and cfg.aws.dr_region == "us-west-2"


def test_prod_and_stage_have_the_same_shape_but_prod_is_bigger():
    stage, prod = (settings.validate(engine.stack_config(s)) for s in ("stage", "prod"))
    assert stage.model_fields_set == prod.model_fields_set
    assert stage.neo4j.primaries == prod.neo4j.primaries == 3  # HA in both
    assert settings.quantity_value(prod.neo4j.resources.memory) > settings.quantity_value(
        stage.neo4j.resources.memory)
    assert prod.backups.neo4j.object_lock is not None and stage.backups.neo4j.object_lock is None


BAD_CONFIGS = [
    # (description, changes, removed keys, expected key path, expected words in message)
    ("unknown stage", {"environment": "dev"}, (), "environment", "'stage' or 'prod'"),
    ("DR in primary region", {"aws.drRegion": "us-east-1"}, (), "aws.drRegion", "must differ"),
    ("region that does not exist", {"aws.primaryRegion": "us-east-9"}, (), "aws.primaryRegion",
     "unknown AWS region"),
    ("short account id", {"aws.accountId": "12345"}, (), "aws.accountId", "pattern"),
    ("latest tag", {"redis.image": "redis:latest"}, (), "redis.image", "':latest' is not a pin"),
    ("untagged image", {"redis.exporterImage": "oliver006/redis_exporter"}, (),
     "redis.exporterImage", "not pinned"),
    ("memory in words", {"redis.resources.memory": "4 GB"}, (), "redis.resources.memory",
     "not a Kubernetes quantity"),
    ("replicas out of range", {"redis.replicas": 0}, (), "redis.replicas", "greater than or equal to 1"),
    ("replicas of the wrong type", {"redis.replicas": "three"}, (), "redis.replicas", "valid integer"),
    ("cron in prose", {"neo4j.backupSchedule": "every hour"}, (), "neo4j.backupSchedule",
     "cron schedule"),
    ("chart version range", {"neo4j.chartVersion": "5.x"}, (), "neo4j.chartVersion", "exact chart version"),
    ("bad CIDR", {"network.primary.s3EndpointCidrs": ["10.0.0.300/32"]}, (),
     "network.primary.s3EndpointCidrs.0", "not a valid CIDR"),
    ("typo in a section", {"redis.maxmemoryPolcy": "allkeys-lru"}, (), "redis.maxmemoryPolcy",
     "unknown key; allowed keys here: exporterImage"),
    ("typo at top level", {"redsi": "{}"}, (), "redsi", "unknown key; allowed keys here: alerting, aws"),
    ("missing section", {}, ("dns",), "dns", "required key is missing"),
    ("expiry before transition", {"backups.neo4j.expirationDays": 10}, (),
     "backups.neo4j.expirationDays", "greater than transitionDays"),
    ("egress to the internet",
     {"egress.allowlist": [{"namespace": "graph", "cidr": "0.0.0.0/0", "ports": [443],
                            "reason": "talk to anything"}]}, (),
     "egress.allowlist.0.cidr", "whole internet"),
    ("cpu limit below request", {"neo4j.resources.cpuLimit": "100m"}, (), "neo4j.resources.cpuLimit",
     "at least cpuRequest"),
    # lifecycle expiry counts objects, not chains: it must stay behind whole-chain retention
    ("expiry inside a kept chain", {"backups.neo4j.expirationDays": 36, "backups.neo4j.retentionDays": 30,
                                    "backups.neo4j.transitionDays": 20, "backups.neo4j.chainDays": 7,
                                    "backups.neo4j.objectLock": None},
     (), "backups.neo4j", "greater than chainDays + retentionDays + 1 = 38"),
    # the `kubernetes` Service takes the first address of the service CIDR
    ("api service ip not the first", {"kubernetes.apiServiceIp": "172.20.0.10"}, (), "kubernetes.apiServiceIp",
     "first (.1) address"),
    ("api service ip in words", {"kubernetes.apiServiceIp": "kubernetes.default"}, (), "kubernetes.apiServiceIp",
     "not an IPv4 address"),
    ("chain longer than a week", {"backups.neo4j.chainDays": 8}, (), "backups.neo4j.chainDays",
     "less than or equal to 7"),
    # the public RDS name resolves to public addresses from the primary VPC (an interface endpoint's
    # private DNS answers only inside its own VPC): the rehearsal must name the endpoint itself
    ("rehearsal through the public RDS name",
     {"pgRestoreRehearsal.drRdsEndpointUrl": "https://rds.us-west-2.amazonaws.com"}, (),
     "pgRestoreRehearsal.drRdsEndpointUrl", "should match pattern"),
    ("rehearsal endpoint in the primary region",
     {"pgRestoreRehearsal.drRdsEndpointUrl": "https://vpce-0d4c7e2a91b3f5a60-k3x9q2zt.rds.us-east-1.vpce.amazonaws.com"},
     (), "<stack>", "pgRestoreRehearsal.drRdsEndpointUrl 'https://vpce-0d4c7e2a91b3f5a60-k3x9q2zt.rds.us-east-1"
     ".vpce.amazonaws.com' is not an RDS interface endpoint of aws.drRegion us-west-2"),
]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_value_names_its_key_and_registers_nothing(case, stack):
    _, changes, removed, key, words = case
    config = config_with(stack, changes, removed)
    monitor = engine.new_monitor(config)
    with pytest.raises(settings.SettingsError) as raised:
        engine.synthesize(stack, config, monitor=monitor)
    lines = [p for p in raised.value.problems if p.startswith(f"{K}{key}:")]
    assert lines, f"no problem reported for {K}{key}: {raised.value.problems}"
    assert words in lines[0]
    # The stack itself is the only registration: not one resource or provider.
    assert [r.type for r in monitor.records] == ["pulumi:pulumi:Stack"]


def test_every_problem_is_listed_at_once():
    config = config_with("prod", {"redis.image": "redis", "neo4j.primaries": 0, "environment": "qa"})
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    keys = sorted(p.split(":")[1] for p in raised.value.problems)
    assert keys == ["environment", "neo4j.primaries", "redis.image"]


def test_message_shows_what_was_given():
    config = config_with("prod", {"redis.resources.memory": "4 GB"})
    with pytest.raises(settings.SettingsError, match=r'given: "4 GB"'):
        settings.validate(config)


def test_other_namespaces_are_not_ours_to_judge():
    config = config_with("prod", {"aws:region": "us-east-1"})
    assert settings.validate(config).environment == "prod"


@pytest.mark.parametrize("quantity,value", [("4Gi", 4 * 2**30), ("500m", 0.5), ("2", 2), ("1.5G", 1.5e9)])
def test_quantities_parse_like_kubernetes(quantity, value):
    assert settings.quantity_value(quantity) == value


def test_an_unknown_key_inside_a_list_item_lists_the_item_keys():
    config = config_with("prod", {"egress.allowlist": [
        {"namespace": "graph", "cidr": "10.1.0.0/16", "ports": [443], "reason": "a reviewed reason", "prot": "x"}]})
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    [problem] = raised.value.problems
    assert problem == ("intelgraph-platform:egress.allowlist.0.prot: unknown key; "
                       "allowed keys here: cidr, namespace, ports, reason")
