"""The flow vocabulary: who may talk to whom, on which ports, and why.

Components declare the ``Flow``s their pods need (components/egress_policy.py turns each into a
NetworkPolicy of a default-deny namespace). Kept apart from that component so a component can
declare its flows without depending on the one that enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass(frozen=True)
class Peer:
    """The other end of a flow: pods (in this or another namespace) or CIDR blocks."""

    namespace: Optional[str] = None  # None: the same namespace
    pods: Optional[dict[str, str]] = None  # None: every pod there
    cidrs: tuple[str, ...] = ()

    def to_policy(self) -> list[dict]:
        if self.cidrs:
            return [{"ipBlock": {"cidr": cidr}} for cidr in self.cidrs]
        entry: dict = {"podSelector": {"matchLabels": self.pods or {}}}
        if self.namespace is not None:
            # namespaceSelector and podSelector in ONE element: pods matching both, not either.
            entry["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}}
        return [entry]


@dataclass(frozen=True)
class Flow:
    """One allowed connection: ``pods`` of this namespace to/from ``peer`` on ``ports``."""

    name: str
    direction: Literal["egress", "ingress"]
    peer: Peer
    ports: tuple[int, ...]
    pods: dict[str, str] = field(default_factory=dict)  # {}: every pod in the namespace
    protocol: Literal["TCP", "UDP"] = "TCP"
    reason: str = ""

    def __post_init__(self) -> None:
        if "0.0.0.0/0" in self.peer.cidrs or "::/0" in self.peer.cidrs:
            raise ValueError(f"flow {self.name}: an allow to the whole internet defeats default-deny")
        if not self.ports:
            raise ValueError(f"flow {self.name}: name the ports; an allow on every port is not least privilege")


DNS_PEER = Peer(namespace="kube-system", pods={"k8s-app": "kube-dns"})


@dataclass(frozen=True)
class Neighbours:
    """What lies outside the workload namespaces that their flows name, once for every component:
    the Kubernetes API (the ``kubernetes`` Service's ClusterIP and the control plane's addresses),
    the VPC endpoints of S3 and STS, the application's namespace and Prometheus's."""

    api_server_cidrs: tuple[str, ...]
    api_service_ip: str
    s3_cidrs: tuple[str, ...]
    sts_cidrs: tuple[str, ...]
    client_namespace: str
    monitoring_namespace: str

    @property
    def kubernetes_api(self) -> Peer:
        """Both addresses of the API: whether an ipBlock rule sees the Service IP or the endpoint
        it is rewritten to is undefined (Kubernetes docs, "Network Policies"), so allow both."""
        return Peer(cidrs=(f"{self.api_service_ip}/32", *self.api_server_cidrs))
