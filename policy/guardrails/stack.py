"""Stack rules: what no single resource can show - cross-region DR, backup replication, closed
namespaces, Neo4j quorum, the DR budget, and the exceptions file itself."""

from __future__ import annotations

import re

from pulumi_policy import EnforcementLevel

from . import config_keys, exceptions
from ._rules import cluster_of, depends_on, dig, each, is_unknown, number, peek, present, region_of, setting, stack_rule
from .edge import ASSOCIATION, LOAD_BALANCER, protected_in_its_region
from .kubernetes import WORKLOADS
from .rds import INSTANCE, is_replica, promoted_from
from .rds import source_db as _source_db
from .s3 import BUCKET, bucket_of, label

REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
RELEASE = "kubernetes:helm.sh/v3:Release"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
STACK = "pulumi:pulumi:Stack"
RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
SWITCH_PLAN = "aws:arcregionswitch/plan:Plan"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
# ELB DNS names end in <region>.elb.amazonaws.com (ALB: name-id.region..., optionally dualstack.)
_ELB_REGION = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-[0-9])\.elb\.amazonaws\.com\.?$")
PRIMARIES = {"minimum": {"type": "integer", "minimum": 1, "default": 3}}


def _is_backup_bucket(bucket) -> bool:
    return str(dig(bucket.props, "tags", "purpose", default="")).endswith("backups")


@stack_rule("dr-replica-cross-region", "Every RDS primary has a read replica in another region.", judges=(INSTANCE,))
def replica_cross_region(resources, args):
    instances = [r for r in resources if r.resource_type == INSTANCE]
    # A failed-over pair: a replica promoted in place (tagged with the instance it replicated) and
    # that former source, in another region, still in the stack. Neither can have a replica until
    # the former source's region is back and it is retired (docs/decisions/018-active-region-is-state.md).
    pairs = [(promoted, former) for promoted in instances for former in instances
             if promoted_from(promoted.props) == former.name and region_of(former) != region_of(promoted)]
    failed_over = {r.urn for pair in pairs for r in pair}
    for primary in (r for r in instances if not is_replica(r.props) and r.urn not in failed_over):
        replicas = [r for r in instances if is_replica(r.props) and _source_db(r, instances) is primary]
        elsewhere = [r for r in replicas if region_of(r) and region_of(r) != region_of(primary)]
        if not elsewhere:
            yield (f"RDS primary {primary.name} ({region_of(primary)}) has no read replica in another region; "
                   "add one with replicate_source_db = the primary's ARN and a DR-region provider.", primary.urn)


@stack_rule("s3-backup-replicated", "Backup buckets replicate to a bucket in another region.", judges=(BUCKET,))
def backup_replicated(resources, args):
    buckets = [b for b in resources if b.resource_type == BUCKET]
    replicated, twins = set(), set()  # URNs of sources replicating elsewhere; of their DR twins
    for config in (r for r in resources if r.resource_type == REPLICATION):
        source = bucket_of(config, buckets)
        # a destination is the bucket its ARN names, or (unknown at preview) the one it comes from
        referenced = [b for b in depends_on(config, "rules", BUCKET) if b is not source]
        for rule in each(config.props, "rules"):
            arn = peek(rule, "destination", "bucket")
            named = [b for b in buckets if not is_unknown(arn) and peek(b.props, "arn") == arn]
            target = (named or (referenced if is_unknown(arn) else []) or [None])[0]
            if target is not None:
                twins.add(target.urn)
            if source and target and dig(rule, "status") == "Enabled" and region_of(target) != region_of(source):
                replicated.add(source.urn)
    for bucket in buckets:
        if _is_backup_bucket(bucket) and bucket.urn not in replicated and bucket.urn not in twins:
            yield (f"Backup bucket {label(bucket)} does not replicate to another region; add a BucketReplicationConfig "
                   "to a versioned twin bucket created with the DR-region provider.", bucket.urn)


@stack_rule("s3-backup-object-lock", "Backup buckets lock their objects against deletion (prod).",
            judges=(BUCKET,))
def backup_object_lock(resources, args):
    buckets = [r for r in resources if r.resource_type == BUCKET]
    locked = {getattr(bucket_of(r, buckets), "urn", None) for r in resources if r.resource_type == OBJECT_LOCK}
    for bucket in (b for b in buckets if _is_backup_bucket(b)):
        if dig(bucket.props, "objectLockEnabled") is not True or bucket.urn not in locked:
            yield (f"Backup bucket {label(bucket)} has no Object Lock; create it with object_lock_enabled and add a "
                   "BucketObjectLockConfiguration (ransomware cannot delete locked backups).", bucket.urn)


def _namespace_of(resource) -> str | None:
    if resource.resource_type == RELEASE:
        return dig(resource.props, "namespace")
    return dig(resource.props, "metadata", "namespace")


def _default_deny(policy) -> bool:
    spec = dig(policy.props, "spec", default={})
    return (dig(spec, "podSelector", "matchLabels", default={}) in ({}, None) and "Egress" in list(
        dig(spec, "policyTypes", default=[])) and not list(each(spec, "egress")))


def _allows_dns(policy) -> bool:
    protocols = {(dig(p, "protocol", default="TCP"), dig(p, "port"))
                 for rule in each(policy.props, "spec", "egress") for p in each(rule, "ports")}
    return {("UDP", 53), ("TCP", 53)} <= protocols


@stack_rule("k8s-namespace-default-deny", "Every namespace with workloads denies egress by default and allows DNS.",
            judges=(*WORKLOADS, RELEASE))
def namespaces_closed(resources, args):
    # a namespace per cluster: the DR region's cluster has namespaces of the same names
    workloads = {}
    for r in resources:
        if r.resource_type in WORKLOADS or r.resource_type == RELEASE:
            workloads.setdefault((cluster_of(r), _namespace_of(r)), r)
    policies: dict[tuple[str, str | None], list] = {}
    for r in resources:
        if r.resource_type == NETWORK_POLICY:
            policies.setdefault((cluster_of(r), _namespace_of(r)), []).append(r)
    for (cluster, namespace), example in sorted(workloads.items(), key=lambda kv: str(kv[0])):
        mine = policies.get((cluster, namespace), [])
        if not any(_default_deny(p) for p in mine):
            yield (f"Namespace {namespace} runs workloads ({example.name}) without a default-deny egress "
                   "NetworkPolicy; deploy it through WorkloadNamespace.", example.urn)
        if not any(_allows_dns(p) for p in mine):
            yield (f"Namespace {namespace} has no DNS allow on UDP and TCP 53; pods there cannot resolve names.",
                   example.urn)


@stack_rule("neo4j-min-primaries", "A Neo4j cluster has enough primaries to keep quorum.", config=PRIMARIES,
            judges=(RELEASE,))
def neo4j_primaries(resources, args):
    minimum = setting(args, "minimum", PRIMARIES)
    # a Neo4j cluster is its neo4j.name within one Kubernetes cluster (each region runs its own)
    clusters: dict[tuple[str, str], list] = {}
    for release in (r for r in resources if r.resource_type == RELEASE and dig(r.props, "chart") == "neo4j"):
        values = dig(release.props, "values", default={})
        key = (cluster_of(release), dig(values, "neo4j", "name"))
        if dig(values, "config", "initial.server.mode_constraint") != "SECONDARY":
            clusters.setdefault(key, []).append(release)
        else:
            clusters.setdefault(key, [])
    for (_, name), primaries in clusters.items():
        if len(primaries) < minimum:
            yield (f"Neo4j cluster {name} has {len(primaries)} primaries; run at least {number(minimum)} "
                   "(one Helm release per primary) so a failure keeps write quorum."
                   + config_keys.where(config_keys.NEO4J_PRIMARIES), None)


@stack_rule("dr-budget-within-targets", "Computed RTO/RPO bounds are within the stack's targets.", judges=(STACK,))
def dr_budget(resources, args):
    for stack in (r for r in resources if r.resource_type == STACK):
        for row in each(stack.props, "drBudget"):
            bound, target = dig(row, "boundSeconds"), dig(row, "targetSeconds")
            if bound is not None and target is not None and bound > target:
                # sorted: an object's keys reach the pack in no particular order (a protobuf Struct)
                terms = ", ".join(f"{k} {number(v)}s" for k, v in sorted((dig(row, "terms") or {}).items()))
                yield (f"{dig(row, 'datastore')} {dig(row, 'objective')} bound {number(bound)}s exceeds its target "
                       f"{number(target)}s ({terms}); shorten those terms or renegotiate the target."
                       + config_keys.where(config_keys.DR_TARGETS.get((dig(row, "datastore"), dig(row, "objective")))),
                       stack.urn)


@stack_rule("waf-every-failover-region", "Every region DNS fails over to has a regional WAF WebACL.",
            judges=(RECORD,))
def waf_every_failover_region(resources, args):
    # A REGIONAL WebACL can only be associated with resources in its own region (AWS WAF
    # Developer Guide): after failover the DR load balancer is unprotected unless its region has one.
    protected = {region_of(acl) for acl in resources
                 if acl.resource_type == WEB_ACL and dig(acl.props, "scope") == "REGIONAL"}
    associations = [r for r in resources if r.resource_type == ASSOCIATION]
    # Only SECONDARY records are failover targets. Their alias is the ALB the program creates in the
    # DR region: the rule follows the alias's property dependencies to that ALB (its DNS name is
    # unknown at a first preview) and on to the WebAclAssociation that attaches a WebACL to it.
    targets = (r for r in resources if r.resource_type == RECORD
               and any(dig(p, "type") == "SECONDARY" for p in each(r.props, "failoverRoutingPolicies")))
    for record in targets:
        balancers = depends_on(record, "aliases", LOAD_BALANCER)
        if balancers:
            yield from _balancers_protected(record, balancers, associations)
            continue
        # a load balancer named in config (nginx mode): its DNS name says its region
        for i, _ in enumerate(each(record.props, "aliases")):
            match = _ELB_REGION.search(str(dig(record.props, "aliases", i, "name") or ""))  # unknown: undecided
            if match and match[1] not in protected:
                yield (f"Route 53 failover record {record.name} sends traffic to a load balancer in {match[1]}, "
                       f"where the stack has no REGIONAL WAFv2 WebACL; create the WebACL with that region's "
                       "provider and attach it to the load balancer there.", record.urn)


def _balancers_protected(record, balancers, associations):
    for balancer in balancers:
        if not protected_in_its_region(balancer, associations):
            yield (f"Route 53 failover record {record.name} sends traffic to load balancer {balancer.name} in "
                   f"{region_of(balancer) or 'an unknown region'}, which no REGIONAL WAFv2 WebACL of that region is "
                   "associated with; add an aws.wafv2.WebAclAssociation of that region's WebACL with the load balancer.",
                   record.urn)


@stack_rule("dns-failover-by-region-switch",
            "Failover records move only with the Region switch plan: its health checks, no target health.",
            judges=(RECORD,))
def failover_by_region_switch(resources, args):
    # ARC Developer Guide, "Amazon Route 53 health check execution block": the plan's health checks,
    # attached to the failover records, move traffic when the plan runs - after its promotion step.
    # An endpoint probe or an alias's target health flips traffic on its own, to a DR region whose
    # database is still a read-only replica (and back to a primary that no longer writes).
    plans = [r for r in resources if r.resource_type == SWITCH_PLAN]
    for record in (r for r in resources if r.resource_type == RECORD
                   and any(dig(p, "type") in ("PRIMARY", "SECONDARY") for p in each(r.props, "failoverRoutingPolicies"))):
        if not present(record.props, "healthCheckId"):
            yield (f"Route 53 failover record {record.name} carries no health check; attach the Region switch "
                   "plan's health check of its region (aws.arcregionswitch.get_route53_health_checks).", record.urn)
        elif depends_on(record, "healthCheckId", HEALTH_CHECK):
            yield (f"Route 53 failover record {record.name} carries an endpoint health check: a failing probe would "
                   "move traffic without the writer; attach the Region switch plan's health check instead.",
                   record.urn)
        if any(dig(alias, "evaluateTargetHealth") is True for alias in each(record.props, "aliases")):
            yield (f"Route 53 failover record {record.name} evaluates its target's health: an unhealthy load "
                   "balancer would move traffic without the writer; set evaluateTargetHealth: false.", record.urn)
        if not any(_switches(plan, record) for plan in plans):
            yield (f"Route 53 failover record {record.name} ({dig(record.props, 'setIdentifier')}) is in no Region "
                   "switch plan's Route53HealthCheck step; list it in the step's recordSets.", record.urn)


def _switches(plan, record) -> bool:
    """Whether one of ``plan``'s Route53HealthCheck steps names the record (zone, name, set identifier)."""
    return any(peek(config, "hostedZoneId") == peek(record.props, "zoneId")
               and str(peek(config, "recordName")).rstrip(".") == str(peek(record.props, "name")).rstrip(".")
               and any(peek(s, "recordSetIdentifier") == peek(record.props, "setIdentifier")
                       for s in each(config, "recordSets"))
               for workflow in each(plan.props, "workflows") for step in each(workflow, "steps")
               for config in each(step, "route53HealthCheckConfigs"))


@stack_rule("policy-exceptions-valid", "Every exception in policy/exceptions.yaml is well-formed and unexpired.",
            level=EnforcementLevel.MANDATORY)
def exceptions_valid(resources, args):
    for problem in exceptions.current().problems:
        yield problem, None


@stack_rule("policy-exceptions-in-use", "Every exception in force is shown where reviewers look: the preview.",
            level=EnforcementLevel.ADVISORY)
def exceptions_in_use(resources, args):
    # A waived violation is otherwise silent under the engine (it only hears "not applicable"),
    # so each waiver in force is an advisory message naming the resource, the reason and the date.
    for e in exceptions.current().valid:
        matched = [r for r in resources if r.name == e.resource]
        for r in matched:
            yield f"{e.policy} on {e.resource}: {exceptions.describe(e)}", r.urn
        if not matched:
            yield (f"The exception for {e.policy} on {e.resource} matches no resource of this stack; "
                   "delete it from policy/exceptions.yaml.", None)


POLICIES = [replica_cross_region, backup_replicated, backup_object_lock, namespaces_closed, neo4j_primaries,
            dr_budget, waf_every_failover_region, failover_by_region_switch, exceptions_valid, exceptions_in_use]
