"""EgressPolicies: one workload namespace, closed by default, opened flow by flow.

Every namespace the stack deploys into gets: the Namespace with Pod Security Admission labels,
a default-deny policy for both directions, DNS to kube-dns on UDP *and* TCP 53 (responses over
512 bytes fall back to TCP), and then one NetworkPolicy per declared ``Flow``. Components declare
their flows (Neo4j: peers inside the namespace and the Kubernetes API; backup jobs: S3 and STS
through the VPC endpoints' addresses; Redis: nothing outside), config adds reviewed exceptions,
and nothing else gets through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import pulumi
import pulumi_kubernetes as k8s

from helpers.flows import DNS_PEER, Flow
from helpers.kube import labels_for


@dataclass(frozen=True)
class WorkloadNamespaceArgs:
    namespace: str
    flows: tuple[Flow, ...]
    # "restricted" wherever the workload allows (every workload of this stack does, including the
    # Neo4j servers the chart renders: see tests/test_egress.py); the log shipper "privileged" only
    # because no lower level admits its read-only hostPath.
    pod_security: Literal["restricted", "baseline", "privileged"] = "restricted"


class WorkloadNamespace(pulumi.ComponentResource):
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: WorkloadNamespaceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("intelgraph:network:WorkloadNamespace", name, None, opts)
        names = [f.name for f in args.flows]
        if len(names) != len(set(names)):
            raise ValueError(f"WorkloadNamespaceArgs: flow names must be unique in {args.namespace}: {names}")

        ns = k8s.core.v1.Namespace(
            name,
            metadata={"name": args.namespace, "labels": {
                **labels_for(args.namespace, "namespace"),
                "pod-security.kubernetes.io/enforce": args.pod_security,
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            }},
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])

        def policy(suffix: str, pods: dict, types: list[str], rules: dict, reason: str = "") -> None:
            # the object is named after the namespace (the same in every region's cluster); the
            # resource after the component, so one stack can build a namespace in two clusters
            self._policy(f"{name}-{suffix}", f"{args.namespace}-{suffix}", args.namespace, pods, types, rules,
                         in_ns, reason=reason)

        policy("default-deny", {}, ["Ingress", "Egress"], {})
        policy("allow-dns", {}, ["Egress"], {"egress": [{
            "to": DNS_PEER.to_policy(),
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }]})
        for flow in args.flows:
            flow_policy(f"{name}-{flow.name}", args.namespace, flow, in_ns)
        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})

    @staticmethod
    def _policy(name: str, object_name: str, namespace: str, pods: dict, types: list[str], rules: dict,
                opts: pulumi.ResourceOptions, reason: str = "") -> k8s.networking.v1.NetworkPolicy:
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"name": object_name, "namespace": namespace}
        if reason:
            metadata["annotations"] = {"intelgraph.io/reason": reason}
        return k8s.networking.v1.NetworkPolicy(
            name,
            metadata=metadata,
            spec={"podSelector": {"matchLabels": pods}, "policyTypes": types, **rules},  # pyright: ignore[reportArgumentType]  # camelCase API keys: tests/test_types.py
            opts=opts,
        )


def flow_policy(name: str, namespace: str, flow: Flow, opts: pulumi.ResourceOptions) -> k8s.networking.v1.NetworkPolicy:
    """One declared flow as a NetworkPolicy object named '<namespace>-<flow>': in a WorkloadNamespace,
    or alone in a namespace the stack does not own (where it selects only the pods the flow names:
    a policy isolates every pod it selects, so selecting all of them would close what the owner left open)."""
    rule = {"to" if flow.direction == "egress" else "from": flow.peer.to_policy(),
            "ports": [{"protocol": flow.protocol, "port": p} for p in flow.ports]}
    return WorkloadNamespace._policy(name, f"{namespace}-{flow.name}", namespace, flow.pods,
                                     [flow.direction.capitalize()], {flow.direction: [rule]}, opts, reason=flow.reason)
