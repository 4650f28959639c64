"""A small NetworkPolicy evaluator for tests: does any policy selecting a pod allow a connection?

It follows the Kubernetes semantics the platform relies on: policies are additive allows for the
pods they select; a pod selected by a policy of a given type is isolated in that direction;
a peer element with namespaceSelector and podSelector matches pods satisfying both.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Endpoint:
    namespace: Optional[str] = None
    labels: tuple[tuple[str, str], ...] = ()
    ip: Optional[str] = None

    @classmethod
    def pod(cls, namespace: str, labels: dict[str, str]) -> "Endpoint":
        return cls(namespace, tuple(sorted(labels.items())))


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer: dict, policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return other.ip is not None and ipaddress.ip_address(other.ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
    if other.namespace is None:
        return False
    labels = dict(other.labels)
    if "namespaceSelector" in peer:
        ns_ok = _matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": other.namespace})
    else:
        ns_ok = other.namespace == policy_namespace
    return ns_ok and _matches(peer.get("podSelector", {}), labels)


def allowed(policies: list[dict], source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Egress from ``source`` and ingress to ``destination`` must both allow (when isolated)."""
    def side(pod: Endpoint, other: Endpoint, direction: str) -> bool:
        if pod.namespace is None:  # not a pod: no policy applies to it
            return True
        selecting = [p for p in policies if p["metadata"]["namespace"] == pod.namespace
                     and _matches(p["spec"]["podSelector"], dict(pod.labels))
                     and direction.capitalize() in p["spec"]["policyTypes"]]
        if not selecting:
            return True
        key = "to" if direction == "egress" else "from"
        return any(
            any(_peer_matches(peer, p["metadata"]["namespace"], other) for peer in rule.get(key, []))
            and any(port_rule["port"] == port and port_rule.get("protocol", "TCP") == protocol
                    for port_rule in rule.get("ports", []))
            for p in selecting for rule in p["spec"].get(direction, [])
        )
    return side(source, destination, "egress") and side(destination, source, "ingress")
