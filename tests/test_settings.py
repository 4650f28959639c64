"""Stack settings: the real stack files load; a wrong value stops the program before any
resource is registered, with a message that names the key, the value and what is allowed."""

from __future__ import annotations

import json
from typing import Annotated, get_args, get_origin

import pytest
from pydantic import BaseModel

import settings
from settings.values import _cron, _time_zone
from synth import engine
from tests.conftest import STACKS, config_with

K = "intelgraph-platform:"


@pytest.mark.parametrize("stack", STACKS)
def test_real_stack_files_load(stack):
    cfg = settings.validate(engine.stack_config(stack))
    assert cfg.environment == stack
    # both stacks' clusters run in the region their API server's ARN names
    assert cfg.kubernetes.primary.context.split(":")[3] == cfg.aws.primary_region != cfg.aws.dr_region
    assert cfg.kubernetes.primary.context.split(":")[4] == cfg.aws.account_id


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
    ("region without account regional buckets", {"aws.drRegion": "me-south-1"}, (), "aws.drRegion",
     "no account regional namespace"),
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
    ("bad CIDR", {"network.primary.s3.cidrs": ["10.0.0.300/32"]}, (),
     "network.primary.s3.cidrs.0", "not a valid CIDR"),
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
                                    "backups.neo4j.transitionDays": 30, "backups.neo4j.chainDays": 7,
                                    "backups.neo4j.objectLock": None},
     (), "backups.neo4j.expirationDays", "greater than chainDays + retentionDays + 1 = 38"),
    # --- the DR region's tier: its own cluster, zones, certificate and load balancer ---
    ("DR cluster in the primary region",
     {"kubernetes.dr.context": "arn:aws:eks:us-east-1:481236059412:cluster/intelgraph-x-dr"}, (),
     "kubernetes.dr.context", "not aws.drRegion us-west-2"),
    ("DR cluster is the primary's", {"kubernetes.dr.oidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/AB12"}, (),
     "kubernetes.dr.oidcIssuer", "not aws.drRegion"),
    ("DR zones of the primary region", {"neo4j.dr.zones": ["us-east-1a", "us-west-2b"]}, (), "neo4j.dr.zones.0",
     "is not an availability zone of aws.drRegion us-west-2"),
    ("DR certificate of the primary region",
     {"ingress.drCertificateArn": "arn:aws:acm:us-east-1:481236059412:certificate/1"}, (),
     "ingress.drCertificateArn", "is in region us-east-1, not aws.drRegion us-west-2"),
    ("alb mode without a DR certificate", {}, ("ingress.drCertificateArn",), "ingress.drCertificateArn",
     "needs an ACM certificate issued in aws.drRegion"),
    ("a typed DR load balancer in alb mode",
     {"dns.drLoadBalancer": {"dnsName": "k8s-edge-a-1.us-west-2.elb.amazonaws.com", "zoneId": "Z1H1FL5HABSF5"}}, (),
     "dns.drLoadBalancer", "must not be set with ingress.mode alb"),
    # the program's ALB lives in the public subnets (ELB User Guide: subnets in at least two AZs)
    ("alb mode without the DR public subnets", {}, ("network.dr.publicSubnetIds",), "network.dr.publicSubnetIds",
     "is required with ingress.mode alb"),
    ("one public subnet", {"network.primary.publicSubnetIds": ["subnet-0d7a1c4e9b2f53a61"]}, (),
     "network.primary.publicSubnetIds", "at least 2 items"),
    ("a CIDR per subnet", {"network.primary.publicSubnetCidrs": ["10.40.101.0/24", "10.40.102.0/24"]}, (),
     "network.primary.publicSubnetCidrs", "names 2 CIDRs for 3 publicSubnetIds"),
    ("public subnet of the other region", {"network.dr.publicSubnetCidrs": ["10.40.101.0/24", "10.41.102.0/24",
                                                                             "10.41.103.0/24"]}, (),
     "network.dr.publicSubnetCidrs.0", "outside network.dr.vpcCidr"),
    ("pod port out of range", {"ingress.podPort": 70000}, (), "ingress.podPort", "less than or equal to 65535"),
    ("pilot-light without its start estimate", {"neo4j.dr.mode": "pilot-light"},
     ("dr.neo4jClusterStartEstimateSeconds",), "dr.neo4jClusterStartEstimateSeconds", "required with neo4j.dr.mode"),
    ("warm with a start estimate", {"neo4j.dr.mode": "warm", "dr.neo4jClusterStartEstimateSeconds": 900}, (),
     "dr.neo4jClusterStartEstimateSeconds", "applies only to neo4j.dr.mode pilot-light"),
    # warm: the DR databases are reseeded on a schedule; pilot-light runs no servers to reseed
    ("warm without its refresh", {"neo4j.dr": {"mode": "warm", "zones": ["us-west-2a", "us-west-2b", "us-west-2c"]}},
     ("dr.neo4jClusterStartEstimateSeconds",), "neo4j.dr.refreshSchedule", "required with neo4j.dr.mode warm"),
    ("pilot-light with a refresh", {"neo4j.dr": {"mode": "pilot-light", "zones": ["us-west-2a", "us-west-2b", "us-west-2c"],
                                                 "refreshSchedule": "0 */4 * * *"},
                                    "dr.neo4jClusterStartEstimateSeconds": 900}, (),
     "neo4j.dr.refreshSchedule", "applies only to neo4j.dr.mode warm"),
    # one seed: dr.neo4jRestoreEstimateSeconds 2700 + 23 hourly differentials x 20 s (daily chains)
    ("refreshes closer than a seed", {"neo4j.dr": {"mode": "warm", "zones": ["us-west-2a", "us-west-2b", "us-west-2c"],
                                                   "refreshSchedule": "20,50 * * * *"},
                                      "backups.neo4j.chainDays": 1},
     ("dr.neo4jClusterStartEstimateSeconds",), "neo4j.dr.refreshSchedule", "closer together than one seed takes (3160s"),
    # the `kubernetes` Service takes the first address of the service CIDR
    ("api service ip not the first", {"kubernetes.primary.apiServiceIp": "172.20.0.10"}, (), "kubernetes.primary.apiServiceIp",
     "first (.1) address"),
    ("api service ip in words", {"kubernetes.primary.apiServiceIp": "kubernetes.default"}, (), "kubernetes.primary.apiServiceIp",
     "not an IPv4 address"),
    ("chain longer than a week", {"backups.neo4j.chainDays": 8}, (), "backups.neo4j.chainDays",
     "less than or equal to 7"),
    # the bounds of the rules relating keys, not only a value far beyond them
    ("expiry on the transition day", {"backups.logs.transitionDays": 30, "backups.logs.expirationDays": 30}, (),
     "backups.logs.expirationDays", "greater than transitionDays"),
    ("object lock a day beyond expiry", {"backups.logs.objectLock": {"mode": "GOVERNANCE", "days": 401},
                                         "backups.logs.expirationDays": 400}, (),
     "backups.logs.objectLock", "objectLock.days cannot exceed expirationDays"),
    # --- what components' Args used to be the first to refuse (a traceback and exit 1) ---
    # the chart clusters only from minimumClusterSize 3 (templates/_helpers.tpl "neo4j.isClusterEnabled")
    ("two primaries", {"neo4j.primaries": 2}, (), "neo4j.primaries", "must be 1 (standalone) or at least 3"),
    ("secondaries without a cluster", {"neo4j.primaries": 1, "neo4j.secondaries": 2}, (), "neo4j.secondaries",
     "need a cluster of at least 3 primaries"),
    ("a zone twice", {"neo4j.zones": ["us-east-1a", "us-east-1a"]}, (), "neo4j.zones", "each zone once"),
    # clustering is Enterprise-only (Neo4j Operations Manual, "Clustering")
    ("community edition", {"neo4j.image": "neo4j:5.26.16"}, (), "neo4j.image", "Enterprise image"),
    # the chart's minimum of 2Gi (templates/_helpers.tpl "neo4j.resources.evaluateMemory")
    ("neo4j below the chart's minimum", {"neo4j.resources.memory": "1Gi"}, (), "neo4j.resources.memory",
     "too small for Neo4j"),
    ("rehearsal in production's namespace", {"neo4j.restoreNamespace": "graph"}, (), "neo4j.restoreNamespace",
     "must differ from neo4j.namespace"),
    # Helm refuses release names over 53 characters; each server is '<clusterName>-server-<n>'
    ("cluster name too long for a release", {"neo4j.clusterName": "g" * 44}, (), "neo4j.clusterName",
     "exceed Helm's 53"),
    ("redis with no room for data", {"redis.resources.memory": "8Mi"}, (), "redis.resources.memory",
     "give Redis at least 64 MiB"),
    ("redis persistence without a volume", {"redis.persistence": True}, (), "redis.persistence",
     "persistence needs storageClass and storageSize"),
    ("rollover without a previous password", {"redis.passwordRotation": {"epoch": 0, "rollover": "servers"}}, (),
     "redis.passwordRotation.rollover", "needs a previous password"),
    ("the same load balancer twice",
     {"ingress.mode": "nginx", "ingress.tlsSecretName": "api-tls",
      "dns.primaryLoadBalancer": {"dnsName": "k8s-edge-a-1.us-west-2.elb.amazonaws.com", "zoneId": "Z1H1FL5HABSF5"},
      "dns.drLoadBalancer": {"dnsName": "k8s-edge-a-1.us-west-2.elb.amazonaws.com", "zoneId": "Z1H1FL5HABSF5"}},
     (), "dns.primaryLoadBalancer.dnsName", "must differ from dns.drLoadBalancer"),
    # each workload's flows are its namespace's: in a shared one, Neo4j lost its peers, backups and API
    ("redis in the graph's namespace", {"redis.namespace": "graph"}, (), "redis.namespace",
     "must differ from neo4j.namespace"),
    ("shipper in a workload namespace", {"logs.shipper.namespace": "cache"}, (), "logs.shipper.namespace",
     "ship its own logs"),
    # --- what AWS refuses, or bills for ---
    # S3 API Reference, "Transition": Days for STANDARD_IA or ONEZONE_IA must be at least 30
    ("Standard-IA before day 30", {"backups.logs.transitionDays": 10}, (), "backups.logs.transitionDays",
     "S3 refuses a transition to STANDARD_IA before day 30"),
    ("One Zone-IA before day 30", {"backups.logs.transitionDays": 29, "backups.logs.transitionStorageClass": "ONEZONE_IA"},
     (), "backups.logs.transitionDays", "S3 refuses a transition to ONEZONE_IA before day 30"),
    # S3 User Guide, "Comparing the Amazon S3 storage classes": minimum storage durations 90 / 180 days
    ("Glacier IR for chains pruned sooner", {"backups.neo4j.transitionStorageClass": "GLACIER_IR"}, (),
     "backups.neo4j.transitionStorageClass", "S3 bills GLACIER_IR for at least 90"),
    ("Deep Archive for logs that expire sooner",
     {"backups.logs.transitionStorageClass": "DEEP_ARCHIVE", "backups.logs.expirationDays": 150}, (),
     "backups.logs.transitionStorageClass", "S3 bills DEEP_ARCHIVE for at least 180"),
    # RDS: BackupRetentionPeriod 0-35, and a replica needs backups (so at least 1)
    ("RDS retention past 35 days", {"postgres.backupRetentionDays": 36}, (), "postgres.backupRetentionDays",
     "less than or equal to 35"),
    # RDS User Guide, storage autoscaling: the maximum threshold at least 10% above allocated storage
    ("RDS autoscaling without headroom", {"postgres.allocatedStorageGb": 100, "postgres.maxAllocatedStorageGb": 105},
     (), "postgres.maxAllocatedStorageGb", "at least 10% above allocatedStorageGb (100): at least 110"),
    ("RDS enhanced monitoring interval", {"postgres.monitoringIntervalSeconds": 45}, (),
     "postgres.monitoringIntervalSeconds", "1, 5, 10, 15, 30 or 60"),
    # the DR round trip (docs/decisions/018-active-region-is-state.md): a region holds the writer or not
    ("active region by name", {"dr.activeRegion": "us-west-2"}, (), "dr.activeRegion", "'primary' or 'dr'"),
    # instances are born primary 1, DR 1, primary 2, ...: a pair that skips one has no source in the stack
    ("a generation skipped", {"postgres.generations": {"primary": 3, "dr": 1}}, (), "postgres.generations",
     "primary must equal dr (normal, failed over) or be dr + 1"),
    ("a DR generation ahead", {"postgres.generations": {"primary": 1, "dr": 2}}, (), "postgres.generations",
     "primary must equal dr"),
    ("generation zero", {"postgres.generations": {"primary": 0, "dr": 1}}, (), "postgres.generations.primary",
     "greater than or equal to 1"),
    ("pinned minor with auto minor upgrades", {"postgres.engineVersion": "16.4"}, (), "postgres",
     "pins a minor version while autoMinorVersionUpgrade is on"),
    # Route 53 API Reference, HealthCheckConfig: RequestInterval 10 or 30, FailureThreshold 1-10, >= 3 regions
    ("Route 53 request interval", {"dns.healthCheck.requestIntervalSeconds": 20}, (),
     "dns.healthCheck.requestIntervalSeconds", "10 or 30"),
    ("Route 53 failure threshold", {"dns.healthCheck.failureThreshold": 11}, (), "dns.healthCheck.failureThreshold",
     "less than or equal to 10"),
    ("Route 53 checker regions", {"dns.healthCheck.regions": ["us-east-1", "us-west-2"]}, (), "dns.healthCheck.regions",
     "at least 3 items"),
    ("CloudWatch Logs retention", {"logs.retentionDays": 100}, (), "logs.retentionDays", "CloudWatch Logs accepts only"),
    # cron field ranges: hour 0-23
    ("cron hour out of range", {"neo4j.restoreRehearsalSchedule": "30 24 * * 1"}, (), "neo4j.restoreRehearsalSchedule",
     "cron schedule"),
    # an ENI takes its address from its VPC (VPC User Guide): another range reaches nothing there
    ("S3 endpoint outside the VPC", {"network.primary.s3.cidrs": ["10.99.1.36/32"]}, (),
     "network.primary.s3.cidrs.0", "outside network.primary.vpcCidr"),
    ("API server outside the VPC", {"kubernetes.primary.apiServerCidrs": ["10.99.0.0/28"]}, (),
     "kubernetes.primary.apiServerCidrs.0",
     "outside network.primary.vpcCidr"),
    ("DR RDS endpoint in the primary VPC", {"pgRestoreRehearsal.drRdsEndpointCidrs": ["10.99.1.90/32"]}, (),
     "pgRestoreRehearsal.drRdsEndpointCidrs.0", "outside network.dr.vpcCidr"),
    ("alarms that notify nobody", {"alerting.subscribers.dr": []}, (), "alerting.subscribers.dr", "notify nobody"),
    # the public RDS name resolves to public addresses from the primary VPC (an interface endpoint's
    # private DNS answers only inside its own VPC): the rehearsal must name the endpoint itself
    ("rehearsal through the public RDS name",
     {"pgRestoreRehearsal.drRdsEndpointUrl": "https://rds.us-west-2.amazonaws.com"}, (),
     "pgRestoreRehearsal.drRdsEndpointUrl", "should match pattern"),
    # --- what is accepted today and fails later, or is ignored (issue 25) ---
    # Kubernetes parses CronJob schedules with robfig/cron v3 (ParseStandard): the weekday ends at 6,
    # and croniter's L / # extensions are no syntax there (robfig/cron parser.go getRange)
    ("cron weekday 7", {"neo4j.backupSchedule": "0 * * * 7"}, (), "neo4j.backupSchedule", "7 is outside 0-6"),
    ("cron last day of the month", {"neo4j.volumeSnapshots.schedule": "0 3 L * *"}, (),
     "neo4j.volumeSnapshots.schedule", "not cron syntax Kubernetes accepts"),
    ("cron range backwards", {"pgRestoreRehearsal.schedule": "0 5 * * fri-mon"}, (), "pgRestoreRehearsal.schedule",
     "the range runs backwards"),
    # no date matches: croniter raises CroniterBadDateError, robfig/cron's Next returns zero (never runs)
    *[(f"cron that never fires: {key}", {key: "0 4 30 2 *"}, (), key, "never fires")
      for key in ("neo4j.backupSchedule", "neo4j.restoreRehearsalSchedule", "neo4j.volumeSnapshots.schedule",
                  "pgRestoreRehearsal.schedule", "neo4j.dr.refreshSchedule")],
    # RDS API Reference, CreateDBInstance: PreferredMaintenanceWindow "must not conflict with the preferred
    # backup window", each window "must be at least 30 minutes"; RDS User Guide, "Backup window"
    ("RDS maintenance inside the backup window", {"postgres.maintenanceWindow": "sun:03:30-sun:04:30",
                                                  "postgres.backupWindow": "03:00-04:00"}, (),
     "postgres.maintenanceWindow", "overlaps backupWindow 03:00-04:00 on sun"),
    ("RDS maintenance across midnight into the backup window", {"postgres.maintenanceWindow": "sat:23:30-sun:00:30",
                                                                "postgres.backupWindow": "00:00-00:45"}, (),
     "postgres.maintenanceWindow", "overlaps backupWindow"),
    ("RDS backup window under 30 minutes", {"postgres.backupWindow": "03:00-03:20"}, (), "postgres.backupWindow",
     "at least 30 minutes"),
    ("RDS window at hour 25", {"postgres.maintenanceWindow": "sun:25:00-sun:26:00"}, (), "postgres.maintenanceWindow",
     "no time of day"),
    # every AWS provider refuses any account but aws.accountId (allowed_account_ids); ARN formats: IAM
    # User Guide "IAM ARNs", EKS and ACM; an ALB takes an ACM certificate of its own region only
    ("cluster context in another account", {"kubernetes.primary.context": "arn:aws:eks:us-east-1:111122223333:cluster/x"}, (),
     "kubernetes.primary.context", "not aws.accountId"),
    ("cluster context in the DR region", {"aws.primaryRegion": "us-east-1", "kubernetes.primary.context":
                                          "arn:aws:eks:us-west-2:481236059412:cluster/intelgraph-prod"}, (),
     "kubernetes.primary.context", "not aws.primaryRegion us-east-1"),
    ("cluster name that disagrees with the context", {"kubernetes.primary.clusterName": "intelgraph-other"}, (),
     "kubernetes.primary.clusterName", "disagrees with kubernetes.primary.context"),
    ("OIDC provider in another account",
     {"kubernetes.primary.oidcProviderArn": "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/AB12"},
     (), "kubernetes.primary.oidcProviderArn", "not aws.accountId"),
    ("OIDC provider of another issuer", {"kubernetes.primary.oidcIssuer": "oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF"},
     (), "kubernetes.primary.oidcProviderArn", "expected oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF"),
    ("certificate in another account",
     {"ingress.certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/3f9d2c1e-7a4b-4e8f-9c2d-1b6a5e7f8d90"},
     (), "ingress.certificateArn", "not aws.accountId"),
    ("certificate in the DR region", {"ingress.certificateArn": "arn:aws:acm:us-west-2:481236059412:certificate/3f9d2c1e"},
     (), "ingress.certificateArn", "not aws.primaryRegion us-east-1"),
    # with 3 zones the primaries spread as DoNotSchedule over 3 (components/neo4j_cluster.py pod_placement)
    ("zones of another region", {"neo4j.zones": ["us-east-1a", "us-west-2b", "us-east-1c"]}, (), "neo4j.zones.1",
     "not an availability zone of aws.primaryRegion us-east-1"),
    # the program creates (default-deny) only its own namespaces; an entry elsewhere created one more
    ("egress allowlist for a namespace the stack does not manage",
     {"egress.allowlist": [{"namespace": "intelgraph-app", "cidr": "10.40.9.0/24", "ports": [443],
                            "reason": "calls the billing service"}]}, (),
     "egress.allowlist.0.namespace", "not a namespace this stack manages; allowed: cache, dr-verify, graph, logging"),
    # only the project's namespace, the engine's and the providers' are read: a misspelt prefix was ignored
    ("misspelt project namespace", {"intelgraph-platfrom:egress": {"allowlist": []}}, (), "intelgraph-platfrom:egress",
     "unknown config namespace 'intelgraph-platfrom', so nothing reads it; allowed: intelgraph-platform (this "
     "project), pulumi (the engine), aws, kubernetes, random (providers); did you mean intelgraph-platform:egress?"),
    # a YAML number where a version is text: 1.30 reads as 1.3 (Kubernetes 1.30), 16.10 as 16.1 (PostgreSQL 16.10)
    ("Kubernetes version as a YAML number", {"kubernetes.version": 1.3}, (), "kubernetes.version",
     "YAML read this as the number 1.3, and a number cannot keep what the text said"),
    ("PostgreSQL minor as a YAML number", {"postgres.engineVersion": 16.1, "postgres.autoMinorVersionUpgrade": False},
     (), "postgres.engineVersion", "16.10 as 16.1"),
    ("account id that lost its leading zero", {"aws.accountId": 81236059412}, (), "aws.accountId",
     "an account id with a leading zero loses it"),
    # a CronJob's timeZone must be an IANA name (Kubernetes docs, "CronJob": Time zones)
    ("schedule time zone misspelt", {"neo4j.timeZone": "Europe/Berln"}, (), "neo4j.timeZone", "not an IANA time zone name"),
    ("schedule time zone as an offset", {"pgRestoreRehearsal.timeZone": "UTC+2"}, (), "pgRestoreRehearsal.timeZone",
     "not an IANA time zone name"),
    ("rehearsal endpoint in the primary region",
     {"pgRestoreRehearsal.drRdsEndpointUrl": "https://vpce-0d4c7e2a91b3f5a60-k3x9q2zt.rds.us-east-1.vpce.amazonaws.com"},
     (), "pgRestoreRehearsal.drRdsEndpointUrl", "is not an RDS interface endpoint of aws.drRegion us-west-2"),
]


def run_synth(tmp_path, monkeypatch, capsys, stack: str, config: dict[str, str]):
    """``python -m synth --stack S --stack-file F`` in-process, on ``config`` written as a stack file:
    (exit code, stdout, stderr, what the engine registered)."""
    import yaml

    from synth import __main__ as synth_cli

    stack_file = tmp_path / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {
        k: json.loads(v) if v[:1] in "{[" else v for k, v in config.items()}}))
    monitors = []
    new_monitor = engine.new_monitor
    monkeypatch.setattr(engine, "new_monitor", lambda *a, **kw: monitors.append(new_monitor(*a, **kw)) or monitors[-1])
    code = synth_cli.main(["--stack", stack, "--stack-file", str(stack_file), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    return code, out, err, [r.type for m in monitors for r in m.records]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_value_exits_2_naming_its_key_and_registers_nothing(case, stack, tmp_path, monkeypatch, capsys):
    _, changes, removed, key, words = case
    config = config_with(stack, changes, removed)
    # a bad value settings accepted fails here, not in (or hung by) the whole program run in-process
    with pytest.raises(settings.SettingsError):
        settings.validate(config, stack=stack)
    code, out, err, registered = run_synth(tmp_path, monkeypatch, capsys, stack, config)
    assert code == 2, (out, err)
    full = key if ":" in key else K + key  # a key of another namespace is named as it is written
    lines = [line for line in err.splitlines() if line.startswith(f"  - {full}:")]
    assert lines, f"no problem reported for {full}: {err}"
    assert words in lines[0], lines[0]
    assert "Traceback" not in out + err
    # The stack itself is the only registration: not one resource or provider; nothing written.
    assert registered == ["pulumi:pulumi:Stack"]
    assert not (tmp_path / "out").exists()


def test_every_schedule_is_judged_by_the_one_cron_type():
    """Every field named *schedule* is a ``settings.Cron``, and a row above tries 30 February on it;
    every time zone of a schedule is a ``settings.TimeZone``."""
    seen: set = set()
    found, zones = [], []

    def walk(model, path):
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            key = f"{path}{field.alias or name}"
            # an optional setting's checks sit on the Annotated member of its Optional[...]
            inner = [m for a in get_args(field.annotation) if get_origin(a) is Annotated for m in get_args(a)[1:]]
            checks = [getattr(m, "func", None) for m in (*field.metadata, *inner)]
            if "schedule" in name:
                found.append((key, _cron in checks))
            if name == "time_zone":
                zones.append((key, _time_zone in checks))
            for annotation in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    walk(annotation, f"{key}.")

    walk(settings.StackSettings, "")
    never = [c[1] for c in BAD_CONFIGS if c[0].startswith("cron that never fires")]
    assert found and all(is_cron for _, is_cron in found), found
    assert len(zones) == 2 and all(is_zone for _, is_zone in zones), zones
    assert {key for key, _ in found} == {next(iter(k)) for k in never}


def test_the_table_has_one_case_per_rule():
    assert len(BAD_CONFIGS) >= 25 and len({c[0] for c in BAD_CONFIGS}) == len(BAD_CONFIGS)


def test_every_bad_key_of_a_stack_file_is_named_with_its_value(tmp_path):
    """A real process: exit 2, each bad key with its value and what is allowed, no traceback."""
    import subprocess
    import sys

    import yaml

    config = config_with("prod", {"neo4j.primaries": 2, "redis.resources.memory": "8Mi",
                                  "backups.logs.transitionDays": 10, "postgres.backupRetentionDays": 36,
                                  "dns.healthCheck.requestIntervalSeconds": 20})
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {
        k: json.loads(v) if v[:1] in "{[" else v for k, v in config.items()}}))
    run = subprocess.run([sys.executable, "-m", "synth", "--stack", "prod", "--stack-file", str(stack_file),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=engine.ROOT)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    for key, given in [("neo4j.primaries", "2"), ("redis.resources.memory", '"8Mi"'),
                       ("backups.logs.transitionDays", "10"), ("postgres.backupRetentionDays", "36"),
                       ("dns.healthCheck.requestIntervalSeconds", "20")]:
        assert any(line.startswith(f"  - {K}{key}:") and f"(given: {given})" in line
                   for line in run.stderr.splitlines()), (key, run.stderr)
    assert not (tmp_path / "out").exists()


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


def test_the_engines_and_the_providers_namespaces_are_not_ours_to_judge():
    config = config_with("prod", {"aws:region": "us-east-1", "random:anything": "x", "kubernetes:context": "c"})
    assert settings.validate(config).environment == "prod"


def test_the_provider_namespaces_are_the_provider_packages_the_program_pins():
    """A provider reads its package's namespace (Pulumi docs, "Providers": default provider configuration);
    the pinned pulumi-<name> packages of requirements.txt are the providers the program has."""
    import re

    pins = (engine.ROOT / "requirements.txt").read_text()
    assert set(re.findall(r"^pulumi-([a-z0-9-]+)==", pins, re.M)) == set(settings.PROVIDER_NAMESPACES)


def test_a_key_without_a_namespace_is_refused_with_the_right_spelling():
    config = config_with("prod")
    config["environment"] = config.pop(f"{K}environment")
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    assert raised.value.problems[0].startswith("environment: no namespace, so nothing reads it")
    assert "did you mean" not in raised.value.problems[0]
    assert f"{K}environment: required key is missing" in raised.value.problems


def test_unambiguous_yaml_numbers_are_taken_as_the_text_they_say(tmp_path, monkeypatch, capsys):
    """`cpuLimit: 2` unquoted: YAML gives a number where a string is expected. A quantity is a number, a
    12-digit account id and a major version are integers: each means exactly its text, so it is
    accepted (and a real synth runs with it); versions with a fraction are refused above."""
    import yaml

    changes = {"neo4j.resources.cpuLimit": 4, "neo4j.resources.cpuRequest": 2, "redis.resources.cpuRequest": 0.5,
               "neo4j.storageSize": 214748364800, "aws.accountId": 481236059412, "postgres.engineVersion": 16}
    text = yaml.safe_dump({"config": {k: json.loads(v) if v[:1] in "{[" else v
                                      for k, v in config_with("prod", changes).items()}})
    assert "cpuLimit: 4\n" in text and "accountId: 481236059412\n" in text  # unquoted in the stack file
    cfg = settings.validate(engine.stack_config("prod", _written(tmp_path, text)))
    assert (cfg.neo4j.resources.cpu_limit, cfg.neo4j.resources.cpu_request, cfg.redis.resources.cpu_request,
            cfg.neo4j.storage_size, cfg.aws.account_id, cfg.postgres.engine_version) == (
        "4", "2", "0.5", "214748364800", "481236059412", "16")
    code, out, err, _ = run_synth(tmp_path, monkeypatch, capsys, "prod", config_with("prod", changes))
    assert code == 0, err
    # booleans are no numbers here: `cpuLimit: true` stays an error
    with pytest.raises(settings.SettingsError, match="cpuLimit: Input should be a valid string"):
        settings.validate(config_with("prod", {"neo4j.resources.cpuLimit": True}))


def _written(tmp_path, text: str):
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(text)
    return path


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


def test_derived_values_are_computed_by_settings_and_reach_the_stack(prod):
    """Memory bytes, the Neo4j memory plan, the store size and the replica-lag threshold have one home
    (the settings models) and the program passes them down: what it deploys is what they say."""
    cfg = settings.validate(engine.stack_config("prod"))
    plan = cfg.neo4j.memory_plan
    assert plan.limit_bytes == cfg.neo4j.resources.memory_bytes == settings.quantity_value(cfg.neo4j.resources.memory)
    assert (prod.outputs["neo4j"]["heap"], prod.outputs["neo4j"]["pagecache"]) == (plan.heap, plan.pagecache)
    alarm = prod.named("intelgraph-pg-replica-lag", "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarm.inputs["threshold"] == cfg.replica_lag_threshold_seconds == \
        prod.outputs["postgres"]["lagAlarmThresholdSeconds"]
    redis_conf = prod.named("redis-config", "kubernetes:core/v1:ConfigMap").inputs["data"]["redis.conf"]
    from components.redis_cache import maxmemory_bytes

    assert f"maxmemory {maxmemory_bytes(cfg.redis.resources.memory_bytes, cfg.redis.persistence)}\n" in redis_conf


def test_rules_relating_keys_report_every_bad_key_at_once():
    """A validator over several keys collects its problems instead of stopping at the first."""
    config = config_with("prod", {
        "backups.neo4j.transitionStorageClass": "GLACIER_IR", "backups.neo4j.expirationDays": 37,
        "redis.persistence": True, "redis.resources.memory": "40Mi",
        "network.dr.s3.cidrs": ["10.99.0.1/32"], "logs.shipper.namespace": "graph",
        "dns.healthCheck.fqdn": "api.intelgraph.example.com.internal", "ingress.host": "api.intelgraph.example.com.internal"})
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    keys = {p.split(": ")[0].removeprefix(K) for p in raised.value.problems}
    assert {"backups.neo4j.transitionStorageClass", "backups.neo4j.expirationDays", "redis.persistence",
            "redis.resources.memory"} <= keys, raised.value.problems
    # the cross-section rules judge a model whose sections are valid: fix those first, then all of these show
    config = config_with("prod", {
        "network.dr.s3.cidrs": ["10.99.0.1/32"], "logs.shipper.namespace": "graph",
        "dns.healthCheck.fqdn": "primary.example.com", "ingress.host": "primary.example.com"})
    with pytest.raises(settings.SettingsError) as raised:
        settings.validate(config)
    keys = {p.split(": ")[0].removeprefix(K) for p in raised.value.problems}
    assert keys == {"network.dr.s3.cidrs.0", "logs.shipper.namespace", "dns.healthCheck.fqdn"}, keys


def test_the_longest_cluster_name_settings_accept_is_a_release_name_helm_accepts():
    """Helm refuses a release name over 53 characters ("the length must not be longer than 53", helm
    release name check); each server is the release '<clusterName>-server-<n>', n up to 29."""
    import subprocess

    from synth import helm

    longest = 53 - len(f"-server-{settings.MAX_NEO4J_SERVERS}")
    settings.validate(config_with("prod", {"neo4j.clusterName": "g" * longest}))
    with pytest.raises(settings.SettingsError, match="neo4j.clusterName"):
        settings.validate(config_with("prod", {"neo4j.clusterName": "g" * (longest + 1)}))

    def helm_template(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([helm.helm_binary(), "template", name, str(helm.chart_path("neo4j")),
                               "--set", "neo4j.name=g", "--set", "volumes.data.mode=defaultStorageClass"],
                              capture_output=True, text=True, timeout=60)

    assert helm_template(f"{'g' * longest}-server-{settings.MAX_NEO4J_SERVERS}").returncode == 0
    refused = helm_template(f"{'g' * (longest + 1)}-server-{settings.MAX_NEO4J_SERVERS}")
    assert refused.returncode != 0 and "must not be longer than 53" in refused.stderr


def test_arns_of_the_cluster_name_what_is_wrong_with_them():
    """IAM ARNs carry no region (IAM User Guide, "IAM ARNs"); an ALB takes an ACM certificate, not an
    IAM server certificate, here (the Ingress names an ACM ARN)."""
    def problem(changes: dict) -> str:
        with pytest.raises(settings.SettingsError) as raised:
            settings.validate(config_with("prod", changes))
        [found] = raised.value.problems
        return found

    issuer = "oidc.eks.us-east-1.amazonaws.com/id/5C2F8E14B7A93D6E0F1A4C8B2D7E9F03"
    assert "iam is global (no region)" in problem(
        {"kubernetes.primary.oidcProviderArn": f"arn:aws:iam:us-east-1:481236059412:oidc-provider/{issuer}"})
    assert "is not an acm ARN; expected arn:aws:acm:us-east-1:481236059412:certificate/<id>" in problem(
        {"ingress.certificateArn": "arn:aws:iam::481236059412:server-certificate/api"})
    assert "is an ARN but not an EKS cluster's" in problem(
        {"kubernetes.primary.context": "arn:aws:iam::481236059412:role/deployer"})
    # a context that is an alias (aws eks update-kubeconfig --alias) names no account to compare
    aliased = settings.validate(config_with("prod", {"kubernetes.primary.context": "prod-admin"}))
    assert aliased.kubernetes.primary.context == "prod-admin"
