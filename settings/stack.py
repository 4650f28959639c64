"""``StackSettings``: the whole ``intelgraph-platform:*`` namespace of one stack, one field per section,
and the rules that relate sections, all reported at once."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal, Optional

from pydantic import Field, ValidationInfo, model_validator

from settings.backups import BackupSettings
from settings.cache import RedisSettings
from settings.database import PostgresSettings
from settings.dr import DrSettings, RetiredUrn
from settings.edge import DnsSettings, EgressSettings, IngressSettings
from settings.graph import Neo4jSettings
from settings.network import AwsSettings, KubernetesSettings, NetworkSettings
from settings.operations import AlertingSettings, LogSettings, ObservabilitySettings, PgRestoreRehearsalSettings
from settings.values import _REGION_KEYS, ROLES, Model, _raise_any, _within


class StackSettings(Model):
    """The whole ``intelgraph-platform:*`` namespace of one stack."""

    environment: Literal["stage", "prod"] = Field(
        description="stage or prod (prod protects stateful resources and enables prod-only rules).")
    aws: AwsSettings = Field(description="Account and regions.")
    network: NetworkSettings = Field(description="The VPCs of both regions.")
    kubernetes: KubernetesSettings = Field(description="The EKS cluster.")
    backups: BackupSettings = Field(description="Backup and log buckets.")
    neo4j: Neo4jSettings = Field(description="The Neo4j cluster, its backups and rehearsals.")
    redis: RedisSettings = Field(description="The Redis cache.")
    postgres: PostgresSettings = Field(description="PostgreSQL primary and cross-region replica.")
    dns: DnsSettings = Field(description="Health-checked DNS failover.")
    ingress: IngressSettings = Field(description="The API edge.")
    egress: EgressSettings = Field(
        default_factory=lambda: EgressSettings.model_validate({}), description="Reviewed egress exceptions.")
    observability: ObservabilitySettings = Field(description="Prometheus and Grafana integration.")
    dr: DrSettings = Field(description="Disaster-recovery targets and measured estimates.")
    alerting: AlertingSettings = Field(description="On-call routing.")
    pg_restore_rehearsal: PgRestoreRehearsalSettings = Field(description="The PostgreSQL restore rehearsal.")
    logs: LogSettings = Field(description="Log retention and shipping.")
    # The approved way to remove a protected resource (docs/cicd.md, "Retiring a protected resource"):
    # the engine refuses, in preview too, to delete a resource its state records as protected, so a
    # reviewed deploy first releases it (listed here), and a later one removes it from the code.
    retire: list[RetiredUrn] = Field(
        [], description="URNs of protected resources being retired: the program stops protecting them "
                        "(deploy 1); remove the resource and its entry together in a later change (deploy 2).")

    @model_validator(mode="after")
    def _across_sections(self, info: ValidationInfo) -> "StackSettings":
        # every rule that relates sections, all reported at once
        stack = (info.context or {}).get("stack")
        _raise_any(self._addresses_in_their_regions_network() + self._shipper_apart_from_its_sources()
                   + self._workloads_in_namespaces_of_their_own() + self._load_balancers_match_the_ingress_mode()
                   + self._rehearsal_endpoint_in_the_dr_region() + self._retired_in_this_stack(stack)
                   + self._clusters_in_the_stacks_account_and_regions() + self._allowlist_in_managed_namespaces()
                   + self._zones_in_their_regions() + self._dr_mode_measured()
                   + (self._bucket_names_fit(stack) if stack else []))
        return self

    def _retired_in_this_stack(self, stack: Optional[str]) -> list[tuple[str, str, Any]]:
        # Whether each entry names a resource the program registers is known only after it ran:
        # synth checks that (exit 2, synth/stateful.py stale_retirements).
        problems, seen = [], set()
        for i, urn in enumerate(self.retire):
            if not self.is_prod:
                problems.append((f"retire.{i}", "only prod protects resources (environment stage protects "
                                 "nothing): a stage resource is removed by removing it from the code", urn))
            elif stack is not None and not urn.startswith(f"urn:pulumi:{stack}::"):
                problems.append((f"retire.{i}", f"is not a URN of this stack ({stack}): it would release nothing "
                                 "here", urn))
            elif urn in seen:
                problems.append((f"retire.{i}", "is listed twice", urn))
            seen.add(urn)
        return problems

    def _bucket_names_fit(self, stack: str) -> list[tuple[str, str, Any]]:
        # A backup bucket's name holds the stack, the account and its region (components/backup_bucket.py);
        # S3 refuses what does not fit only at `pulumi up`. __main__ names each bucket '<section>-backups'.
        from components.backup_bucket import bucket_name_problem

        problems = []
        for key, region in (("aws.primaryRegion", self.aws.primary_region), ("aws.drRegion", self.aws.dr_region)):
            found = {bucket_name_problem(stack, f"{section}-backups", self.aws.account_id, region)
                     for section in BackupSettings.model_fields} - {None}
            problems += [(key, f"{problem}: use a shorter stack name or another region", region)
                         for problem in sorted(p for p in found if p)]  # the stack name's letters: validate()
        return problems

    def _addresses_in_their_regions_network(self) -> list[tuple[str, str, Any]]:
        # A security group or NetworkPolicy allowing another region's addresses allows nobody there:
        # database clients, the interface endpoints and the EKS control plane's ENIs all live in
        # their region's VPC (VPC User Guide: an ENI takes its address from a subnet of its VPC).
        lists = [(f"postgres.allowedCidrs.{label}", label, getattr(self.postgres.allowed_cidrs, label))
                 for label in ("primary", "dr")]
        lists += [(f"network.{label}.{alias}", label, getattr(getattr(self.network, label), field))
                  for label in ("primary", "dr")
                  for alias, field in (("stsEndpointCidrs", "sts_endpoint_cidrs"),
                                       ("secretsmanagerEndpointCidrs", "secretsmanager_endpoint_cidrs"))]
        # an interface endpoint's ENIs are in the VPC (a gateway's public ranges: S3Path)
        lists += [(f"network.{label}.s3.cidrs", label, getattr(self.network, label).s3.cidrs)
                  for label in ("primary", "dr") if getattr(self.network, label).s3.mode == "interface"]
        lists += [(f"kubernetes.{role}.apiServerCidrs", role, self.kubernetes.of(role).api_server_cidrs)
                  for role in ROLES]
        lists += [("pgRestoreRehearsal.drRdsEndpointCidrs", "dr", self.pg_restore_rehearsal.dr_rds_endpoint_cidrs)]
        lists += [(f"network.{label}.publicSubnetCidrs", label, getattr(self.network, label).public_subnet_cidrs or [])
                  for label in ("primary", "dr")]
        problems = []
        for key, label, cidrs in lists:
            vpc = ipaddress.ip_network(getattr(self.network, label).vpc_cidr)
            problems += [(f"{key}.{i}", f"outside network.{label}.vpcCidr {vpc}: nothing of the {label} "
                          f"region is reachable there", cidr)
                         for i, cidr in enumerate(cidrs) if not _within(cidr, str(vpc))]
        return problems

    def _shipper_apart_from_its_sources(self) -> list[tuple[str, str, Any]]:
        # The shipper ships every workload namespace's logs; in one of them it would ship its own (a loop).
        workloads = {"neo4j.namespace": self.neo4j.namespace, "neo4j.restoreNamespace": self.neo4j.restore_namespace,
                     "redis.namespace": self.redis.namespace, "pgRestoreRehearsal.namespace": self.pg_restore_rehearsal.namespace,
                     "kubernetes.appNamespace": self.kubernetes.app_namespace}
        clash = [key for key, ns in workloads.items() if ns == self.logs.shipper.namespace]
        return [("logs.shipper.namespace", f"must differ from {', '.join(clash)}: the shipper would ship its own logs",
                 self.logs.shipper.namespace)] if clash else []

    def _workloads_in_namespaces_of_their_own(self) -> list[tuple[str, str, Any]]:
        # Each namespace gets the default-deny NetworkPolicies plus its workload's flows: Neo4j, its
        # restore rehearsal and Redis sharing one would leave only one workload's flows allowed.
        owners: dict[str, str] = {}
        problems = []
        for key, namespace in (("neo4j.namespace", self.neo4j.namespace),
                               ("neo4j.restoreNamespace", self.neo4j.restore_namespace),
                               ("redis.namespace", self.redis.namespace)):
            if namespace in owners:
                problems.append((key, f"must differ from {owners[namespace]}: each of Neo4j, its restore rehearsal "
                                 "and Redis runs in a default-deny namespace of its own", namespace))
            owners.setdefault(namespace, key)
        return problems

    def _load_balancers_match_the_ingress_mode(self) -> list[tuple[str, str, Any]]:
        # alb mode: DNS aliases the ALBs the program creates (one per region, in its public subnets),
        # and each ALB needs a certificate of its own region. nginx mode: the controllers' load
        # balancers, from config.
        problems: list[tuple[str, str, Any]] = []
        alb = self.ingress.mode == "alb"
        for role in ROLES:
            key = f"dns.{role}LoadBalancer"
            lb = getattr(self.dns, f"{role}_load_balancer")
            if alb and lb is not None:
                problems.append((key, "must not be set with ingress.mode alb: DNS aliases the WAF-protected ALB the "
                                 "program creates; a name from config could be an unprotected ALB",
                                 lb.dns_name))
            if not alb and lb is None:
                problems.append((key, f"is required with ingress.mode nginx: name the {role} cluster's "
                                 "ingress-nginx load balancer", None))
        if self.dns.primary_load_balancer is not None and self.dns.primary_load_balancer == self.dns.dr_load_balancer:
            problems.append(("dns.primaryLoadBalancer.dnsName", "must differ from dns.drLoadBalancer: failover "
                             "to the same load balancer fails over to nothing", self.dns.primary_load_balancer.dns_name))
        for role in ROLES:
            net = self.network.of(role)
            ids, cidrs = net.public_subnet_ids, net.public_subnet_cidrs
            if alb and (ids is None or cidrs is None):
                problems.append((f"network.{role}.publicSubnet{'Ids' if ids is None else 'Cidrs'}",
                                 "is required with ingress.mode alb: the program's internet-facing ALB lives in the "
                                 "region's public subnets (at least two availability zones)", None))
            elif ids is not None and cidrs is not None and len(ids) != len(cidrs):
                problems.append((f"network.{role}.publicSubnetCidrs", f"names {len(cidrs)} CIDRs for {len(ids)} "
                                 "publicSubnetIds: one CIDR per subnet, in the same order", cidrs))
            elif cidrs is not None and len(set(cidrs)) != len(cidrs):
                problems.append((f"network.{role}.publicSubnetCidrs", "lists a CIDR twice: each subnet has its own",
                                 cidrs))
        if alb and self.ingress.dr_certificate_arn is None:
            problems.append(("ingress.drCertificateArn", "is required with ingress.mode alb: the DR region's ALB "
                             "needs an ACM certificate issued in aws.drRegion", None))
        if self.dns.health_check.fqdn == self.ingress.host:
            problems.append(("dns.healthCheck.fqdn", f"must differ from ingress.host ({self.ingress.host})",
                             self.dns.health_check.fqdn))
        return problems

    def _dr_mode_measured(self) -> list[tuple[str, str, Any]]:
        # the DR budget of a pilot-light graph counts the servers' start; a warm one's are running
        estimate, mode = self.dr.neo4j_cluster_start_estimate_seconds, self.neo4j.dr.mode
        if mode == "pilot-light" and estimate is None:
            return [("dr.neo4jClusterStartEstimateSeconds", "is required with neo4j.dr.mode pilot-light: the "
                     "switch starts the DR servers before it can restore (measure it in a DR drill)", None)]
        if mode == "warm" and estimate is not None:
            return [("dr.neo4jClusterStartEstimateSeconds", "applies only to neo4j.dr.mode pilot-light: a warm "
                     "DR cluster is already running; remove it", estimate)]
        refresh = self.neo4j.dr.refresh_schedule
        if mode == "warm" and refresh is None:
            return [("neo4j.dr.refreshSchedule", "is required with neo4j.dr.mode warm: the DR databases are "
                     "reseeded from the replicated chain on this schedule", None)]
        if mode == "pilot-light" and refresh is not None:
            return [("neo4j.dr.refreshSchedule", "applies only to neo4j.dr.mode warm: a pilot-light region runs "
                     "no servers to refresh; remove it", refresh)]
        if refresh is not None:
            from helpers.dr_budget import cron_gaps_seconds, seed_seconds

            seed = seed_seconds(self.neo4j.backup_schedule, self.backups.neo4j.chain_days,
                                self.dr.neo4j_restore_estimate_seconds, self.dr.neo4j_differential_estimate_seconds)
            if min(cron_gaps_seconds(refresh)) <= seed:
                # a refresh still seeding when the next is due: the CronJob skips it (concurrencyPolicy
                # Forbid) and the database is offline most of the time
                return [("neo4j.dr.refreshSchedule", f"runs closer together than one seed takes ({seed}s: "
                         "dr.neo4jRestoreEstimateSeconds plus the chain's differentials); space the runs wider",
                         refresh)]
        return []

    def _zones_in_their_regions(self) -> list[tuple[str, str, Any]]:
        # Each region's servers run in its cluster; 3 or more zones make their spread a DoNotSchedule
        # constraint over 3 zones (components/neo4j_cluster.py pod_placement, minDomains 3): counting a
        # zone of another region, where the cluster has no node, leaves a primary unscheduled. A zone
        # name is its region's name and a letter (EC2 User Guide, "Availability Zones").
        problems = []
        for key, zones, role in zip(("neo4j.zones", "neo4j.dr.zones"), (self.neo4j.zones, self.neo4j.dr.zones), ROLES,
                                    strict=True):
            region, region_key = self.aws.region(role), f"aws.{_REGION_KEYS[role]}"
            problems += [(f"{key}.{i}", f"is not an availability zone of {region_key} {region} ({region}a, "
                          f"{region}b, ...): the cluster has no node there, and with 3 zones the primaries must "
                          "spread over 3 (DoNotSchedule)", zone)
                         for i, zone in enumerate(zones) if not re.fullmatch(rf"{re.escape(region)}[a-z]", zone)]
        return problems

    def _rehearsal_endpoint_in_the_dr_region(self) -> list[tuple[str, str, Any]]:
        url = self.pg_restore_rehearsal.dr_rds_endpoint_url
        if f".rds.{self.aws.dr_region}.vpce." in url:
            return []
        return [("pgRestoreRehearsal.drRdsEndpointUrl", f"is not an RDS interface endpoint of aws.drRegion "
                 f"{self.aws.dr_region}: the rehearsal restores in the DR region", url)]

    def _clusters_in_the_stacks_account_and_regions(self) -> list[tuple[str, str, Any]]:
        # Every AWS provider refuses any account but aws.accountId (allowed_account_ids), and each
        # region's tier runs in that region's cluster; an ARN of another account or region is a deploy
        # that fails half-way (or an IRSA trust, an ALB listener, that never works). ARN formats: IAM
        # User Guide, "IAM ARNs" (oidc-provider/<issuer>), EKS (cluster/<name>), ACM (certificate/<id>);
        # an ALB takes only an ACM certificate of its own region (ACM User Guide, "Integrated services").
        account = self.aws.account_id
        problems: list[tuple[str, str, Any]] = []

        def expect(key: str, arn: str, service: str, arn_region: Optional[str], region_key: str, resource: str,
                   shown: str) -> None:
            parts = arn.split(":", 5)
            wanted = f"arn:aws:{service}:{arn_region or ''}:{account}:{shown}"
            if parts[2] != service:
                problems.append((key, f"is not an {service} ARN; expected {wanted}", arn))
            elif (parts[3] or None) != arn_region:
                problems.append((key, f"is in region {parts[3] or '(none)'}, not {region_key} {arn_region}" if arn_region
                                 else f"names region {parts[3]}, but {service} is global (no region); expected {wanted}",
                                 arn))
            elif parts[4] != account:
                problems.append((key, f"is in account {parts[4]}, not aws.accountId {account}: every provider "
                                 "refuses any other account", arn))
            elif not re.fullmatch(resource, parts[5]):
                problems.append((key, f"names {parts[5]}, expected {shown}", arn))

        for role in ROLES:
            kube, region, region_key = self.kubernetes.of(role), self.aws.region(role), f"aws.{_REGION_KEYS[role]}"
            at = f"kubernetes.{role}"
            issuer = f"oidc-provider/{kube.oidc_issuer}"  # the provider IRSA roles trust is the issuer's
            expect(f"{at}.oidcProviderArn", kube.oidc_provider_arn, "iam", None, region_key, re.escape(issuer), issuer)
            issuer_region = kube.oidc_issuer.split(".")[2]
            if issuer_region != region:
                problems.append((f"{at}.oidcIssuer", f"is the issuer of a cluster in {issuer_region}, not "
                                 f"{region_key} {region}: the {role} tier runs in its own region's cluster",
                                 kube.oidc_issuer))
            if kube.context and kube.context.startswith("arn:"):
                # `aws eks update-kubeconfig` names the context after the cluster's ARN (unless --alias):
                # such a context says which cluster it reaches, and CI writes it from clusterName (cicd/kubeconfig.py)
                if re.fullmatch(r"arn:aws:eks:[a-z0-9-]+:[0-9]{12}:cluster/.+", kube.context):
                    expect(f"{at}.context", kube.context, "eks", region, region_key, r"cluster/.+",
                           f"cluster/{kube.cluster_name}")
                    reached = kube.context.rpartition(":cluster/")[2]
                    if reached != kube.cluster_name:
                        problems.append((f"{at}.clusterName", f"disagrees with {at}.context, which reaches "
                                         f"the cluster {reached!r}: CI writes that context for clusterName (aws eks "
                                         "update-kubeconfig --name clusterName --alias context), so CI and a local "
                                         "run would deploy to different clusters", kube.cluster_name))
                else:
                    problems.append((f"{at}.context", "is an ARN but not an EKS cluster's "
                                     f"(arn:aws:eks:{region}:{account}:cluster/{kube.cluster_name})", kube.context))
        for key, arn, role in zip(("ingress.certificateArn", "ingress.drCertificateArn"),
                                  (self.ingress.certificate_arn, self.ingress.dr_certificate_arn), ROLES, strict=True):
            if arn is not None:
                expect(key, arn, "acm", self.aws.region(role), f"aws.{_REGION_KEYS[role]}", r"certificate/[0-9a-f-]+",
                       "certificate/<id>")
        return problems

    def _allowlist_in_managed_namespaces(self) -> list[tuple[str, str, Any]]:
        # The namespaces the program creates with default-deny egress (components/regional_tier.py);
        # an entry for any other would create that namespace: a typo becomes an empty namespace, and
        # one that exists already (the application's, the Ingress's) fails the deploy.
        managed = sorted({self.neo4j.namespace, self.neo4j.restore_namespace, self.redis.namespace,
                          self.pg_restore_rehearsal.namespace, self.logs.shipper.namespace})
        return [(f"egress.allowlist.{i}.namespace", f"is not a namespace this stack manages; allowed: "
                 f"{', '.join(managed)} (egress elsewhere is its owner's to allow)", entry.namespace)
                for i, entry in enumerate(self.egress.allowlist) if entry.namespace not in managed]

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def replica_lag_threshold_seconds(self) -> int:
        """The replica-lag alarm's threshold (from the replication heartbeat, helpers/dr_budget.py)."""
        from helpers.dr_budget import lag_alarm_threshold_seconds

        return lag_alarm_threshold_seconds()
