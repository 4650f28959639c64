"""The edge: TLS 1.2 or newer wherever the public connects, and a regional WebACL in front of every
internet-facing ALB (an ALB the program creates, or one an alb-class Ingress asks the controller for)."""

from __future__ import annotations

from ._rules import dig, each, is_unknown, peek, present, region_of, resource_rule, stack_rule
from .kubernetes import INGRESS

LISTENER = "aws:lb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
# ELB User Guide, "Security policies for your Application Load Balancer": these families negotiate
# TLS 1.2 and 1.3, or 1.3 only; the default (ELBSecurityPolicy-2016-08) still offers TLS 1.0.
TLS12_POLICIES = ("ELBSecurityPolicy-TLS13-1-2-", "ELBSecurityPolicy-TLS13-1-3-", "ELBSecurityPolicy-TLS-1-2-",
                  "ELBSecurityPolicy-FS-1-2-")


@resource_rule("edge-tls", "The edge serves TLS 1.2+: Ingresses have spec.tls; ALB listeners are HTTPS with a "
               "TLS 1.2+ policy, or only redirect to HTTPS.", (INGRESS, LISTENER))
def edge_tls(props, args):
    if args.resource_type == INGRESS:
        if not list(each(props, "spec", "tls")):
            yield "Add spec.tls for every host; the edge never serves plain HTTP."
        return
    protocol = dig(props, "protocol")
    if protocol == "HTTPS":
        policy = dig(props, "sslPolicy") or "ELBSecurityPolicy-2016-08 (the default)"
        if not str(policy).startswith(TLS12_POLICIES):
            yield (f"sslPolicy {policy} allows TLS older than 1.2; set a TLS 1.2+ policy such as "
                   "ELBSecurityPolicy-TLS13-1-2-2021-06.")
    elif protocol == "HTTP":
        actions = list(each(props, "defaultActions"))
        if not actions or any(dig(a, "type") != "redirect" or dig(a, "redirect", "protocol") != "HTTPS"
                              for a in actions):
            yield "An HTTP listener may only redirect to HTTPS (defaultActions: redirect, protocol HTTPS), or remove it."


def associated_acls(balancer, associations) -> list:
    """The WebACLs associated with ``balancer``: by ARN once known, else by property dependency."""
    return [d for a in associations if _refers_to(a, "resourceArn", balancer)
            for d in _depends_on(a, "webAclArn", WEB_ACL)]


def protected_in_its_region(balancer, associations) -> bool:
    region = region_of(balancer)
    return any(dig(a.props, "scope") == "REGIONAL" and region_of(a) == region
               for a in associated_acls(balancer, associations))


def _depends_on(resource, key: str, resource_type: str) -> list:
    return [d for d in (getattr(resource, "property_dependencies", {}) or {}).get(key, [])
            if d.resource_type == resource_type]


def _refers_to(resource, key: str, target) -> bool:
    value = peek(resource.props, key)
    if value is not None and not is_unknown(value) and value == peek(target.props, "arn"):
        return True
    return target.urn in {d.urn for d in _depends_on(resource, key, target.resource_type)}


@stack_rule("edge-waf", "Every internet-facing ALB, and every ALB Ingress, is protected by a REGIONAL WAF WebACL "
            "of its region.", judges=(LOAD_BALANCER, INGRESS))
def edge_waf(resources, args):
    associations = [r for r in resources if r.resource_type == ASSOCIATION]
    for balancer in (r for r in resources if r.resource_type == LOAD_BALANCER):
        public = dig(balancer.props, "loadBalancerType", default="application") == "application" and \
            dig(balancer.props, "internal") is not True
        if public and not protected_in_its_region(balancer, associations):
            yield (f"Internet-facing ALB {balancer.name} ({region_of(balancer) or 'unknown region'}) is associated with "
                   "no REGIONAL WAFv2 WebACL of its region; add an aws.wafv2.WebAclAssociation.", balancer.urn)
    for ingress in (r for r in resources if r.resource_type == INGRESS):
        acl = ("metadata", "annotations", "alb.ingress.kubernetes.io/wafv2-acl-arn")  # unknown at preview
        if dig(ingress.props, "spec", "ingressClassName") == "alb" and not present(ingress.props, *acl):
            yield ("Attach the WebACL: set annotation alb.ingress.kubernetes.io/wafv2-acl-arn.", ingress.urn)


POLICIES = [edge_tls, edge_waf]
