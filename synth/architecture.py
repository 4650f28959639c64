"""docs/architecture.md: a mermaid diagram of a synthesized stack, derived from its resource tree.

    python -m synth.architecture > docs/architecture.md                # the prod stack, synthesized
    python -m synth.architecture --export build/prod/stack.json        # any `pulumi stack export`

Nothing here names a component: everything comes from the export (deployment v3), so a component
or a region's tier added to the program shows up without a change here.

* **regions**: each custom resource is in the region of its provider: an AWS provider's ``region``
  input, a Kubernetes provider's EKS context ARN (``arn:aws:eks:<region>:…``);
* **components**: every ComponentResource (``custom: false``) but the stack, placed by all the
  resources under it: in one namespace when they are all Kubernetes objects of one namespace, in a
  cluster when they are all Kubernetes objects of one cluster, else in the region; a component
  with resources in two regions appears once in each, joined by the references between them;
* **flows**: the NetworkPolicies, which is how the components' declared ``Flow``s
  (helpers/flows.py) reach the cluster: a namespace to another namespace, or to addresses, which
  the stack file names (``network.primary.s3EndpointCidrs``) and places in the region whose
  ``network.<region>.vpcCidr`` holds them; flows inside one namespace are left out;
* **cross-region references**: a resource whose inputs reference a resource of another region
  (a replica's source database, a replication rule's destination bucket).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

STACK_TYPE = "pulumi:pulumi:Stack"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
COMMAND = "python -m synth.architecture > docs/architecture.md"


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[1]


def _type(resource: dict) -> str:
    return resource["type"]


def _short_type(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


def _provider_urn(ref: Optional[str]) -> Optional[str]:
    # a provider reference is "<urn>::<id>"
    return ref.rsplit("::", 1)[0] if ref else None


@dataclass(frozen=True, order=True)
class Place:
    """Where resources run: a region; in it, optionally a cluster (its Kubernetes provider's name),
    and in that, optionally a namespace."""

    region: str
    cluster: str = ""
    namespace: str = ""


@dataclass
class Component:
    urn: str
    type: str
    name: str
    parent: Optional[str]
    places: set[Place] = field(default_factory=set)  # every resource under it
    count: int = 0


@dataclass(frozen=True, order=True)
class Flow:
    source: str  # node ids
    target: str
    ports: str
    name: str
    reason: str


class Architecture:
    """The diagram's model: regions, clusters, namespaces, components, flows and references."""

    def __init__(self, document: dict, cidr_names: Optional[dict[str, str]] = None,
                 vpcs: Optional[dict[str, str]] = None):
        self.resources: list[dict] = document["deployment"]["resources"]
        self.by_urn = {r["urn"]: r for r in self.resources}
        self.cidr_names = cidr_names or {}  # a CIDR -> the stack config key that names it
        self.vpcs = vpcs or {}  # a VPC CIDR -> its region
        self.regions: dict[str, str] = {}  # provider urn -> region
        self.clusters: dict[str, str] = {}  # Kubernetes provider urn -> its name
        for r in self.resources:
            if _type(r) == "pulumi:providers:aws" and r.get("inputs", {}).get("region"):
                self.regions[r["urn"]] = r["inputs"]["region"]
            elif _type(r) == "pulumi:providers:kubernetes":
                context = str(r.get("inputs", {}).get("context") or "")
                eks = re.match(r"arn:aws:eks:([a-z0-9-]+):\d+:cluster/(.+)$", context)
                self.clusters[r["urn"]] = eks.group(2) if eks else _name(r["urn"])
                self.regions[r["urn"]] = eks.group(1) if eks else f"cluster {_name(r['urn'])}"
        self.components = {r["urn"]: Component(r["urn"], _type(r), _name(r["urn"]), r.get("parent"))
                           for r in self.resources if not r.get("custom") and _type(r) != STACK_TYPE}
        self._place_components()
        self.namespaces: dict[tuple[str, str], set[str]] = defaultdict(set)  # (region, cluster) -> namespaces
        for component in self.components.values():
            for place in component.places:
                if place.namespace:
                    self.namespaces[(place.region, place.cluster)].add(place.namespace)
        self.addresses: dict[str, tuple[str, str]] = {}  # node id -> (region or "", label)
        self.flows = self._flows()
        self.references = self._references()

    # --- placement ------------------------------------------------------------------------------
    def place_of(self, resource: dict) -> Optional[Place]:
        provider = _provider_urn(resource.get("provider"))
        if provider not in self.regions:
            return None  # no region: random values, the stack's own outputs
        region = self.regions[provider]
        if provider not in self.clusters:
            return Place(region)
        inputs = resource.get("inputs", {})
        metadata = inputs.get("metadata") or {}
        if _type(resource) == "kubernetes:core/v1:Namespace":
            namespace = metadata.get("name", "")
        else:  # a Helm release names its namespace at the top level; cluster-scoped kinds have none
            namespace = metadata.get("namespace") or inputs.get("namespace") or ""
        return Place(region, self.clusters[provider], str(namespace))

    def component_of(self, resource: dict) -> Optional[Component]:
        parent = resource.get("parent")
        while parent and parent not in self.components:
            parent = self.by_urn.get(parent, {}).get("parent")
        return self.components.get(parent) if parent else None

    def _place_components(self) -> None:
        for r in self.resources:
            if not r.get("custom") or _type(r).startswith("pulumi:providers:"):
                continue
            place = self.place_of(r)
            component = self.component_of(r)
            while component is not None:  # counts for every ancestor component
                component.count += 1
                if place is not None:
                    component.places.add(place)
                component = self.components.get(component.parent or "")

    def parts(self, component: Component) -> dict[str, Place]:
        """Where the component's node goes in each region it has resources in: the namespace or the
        cluster all its resources there share, else the region."""
        out = {}
        for region in sorted({p.region for p in component.places}):
            here = {p for p in component.places if p.region == region}
            clusters = {p.cluster for p in here}
            if len(clusters) == 1 and "" not in clusters:
                namespaces = {p.namespace for p in here}
                namespace = namespaces.pop() if len(namespaces) == 1 else ""
                out[region] = Place(region, clusters.pop(), namespace)
            else:
                out[region] = Place(region)
        return out

    def node(self, component: Component, region: str) -> str:
        return _id("c", component.name, component.type, region)

    # --- flows: the NetworkPolicies ---------------------------------------------------------------
    def _flows(self) -> list[Flow]:
        flows = set()
        for r in self.resources:
            if _type(r) != NETWORK_POLICY:
                continue
            place = self.place_of(r)
            if place is None or not place.namespace:
                continue
            metadata, spec = r["inputs"]["metadata"], r["inputs"].get("spec", {})
            name = str(metadata["name"]).removeprefix(f"{place.namespace}-")
            reason = (metadata.get("annotations") or {}).get("intelgraph.io/reason", "")
            here = self.namespace_node(place.region, place.cluster, place.namespace)
            for direction, peers_key in (("egress", "to"), ("ingress", "from")):
                for rule in spec.get(direction, []) or []:
                    ports = "/".join(sorted({f"{p.get('port')}" for p in rule.get("ports", [])}, key=_port_key))
                    for peer in self._peers(place, rule.get(peers_key, []) or []):
                        if peer == here:
                            continue  # inside one namespace
                        source, target = (here, peer) if direction == "egress" else (peer, here)
                        flows.add(Flow(source, target, ports, name, reason))
        return sorted(flows)

    def _peers(self, place: Place, peers: list[dict]) -> list[str]:
        out = []
        cidrs = [p["ipBlock"]["cidr"] for p in peers if "ipBlock" in p]
        if cidrs:
            out.append(self.address_node(cidrs))
        for peer in peers:
            if "ipBlock" in peer:
                continue
            selector = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            namespace = selector.get(NAMESPACE_LABEL, place.namespace)
            self.namespaces[(place.region, place.cluster)].add(namespace)
            out.append(self.namespace_node(place.region, place.cluster, namespace))
        return out

    @staticmethod
    def namespace_node(region: str, cluster: str, namespace: str) -> str:
        return _id("ns", region, cluster, namespace)

    def address_node(self, cidrs: Iterable[str]) -> str:
        cidrs = sorted(set(cidrs))
        names = sorted({self.cidr_names[c] for c in cidrs if c in self.cidr_names})
        unnamed = [c for c in cidrs if c not in self.cidr_names]
        label = " + ".join([*names, *unnamed])
        regions = {region for c in cidrs for vpc, region in self.vpcs.items() if _inside(c, vpc)}
        region = regions.pop() if len(regions) == 1 else ""
        node = _id("addr", region, label)
        self.addresses[node] = (region, label)
        return node

    # --- references between regions -------------------------------------------------------------
    def _references(self) -> dict[tuple[str, str], set[str]]:
        links: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in self.resources:
            place, component = self.place_of(r), self.component_of(r)
            if place is None or component is None:
                continue
            for key, urns in (r.get("propertyDependencies") or {}).items():
                for urn in urns:
                    other = self.by_urn.get(urn)
                    if other is None:
                        continue
                    there, owner = self.place_of(other), self.component_of(other)
                    if there is None or owner is None or there.region == place.region:
                        continue
                    a, b = self.node(owner, there.region), self.node(component, place.region)
                    links[(a, b)].add(f"{_short_type(_type(r))}.{key}")
        return dict(sorted(links.items()))

    # --- output ---------------------------------------------------------------------------------
    def mermaid(self) -> str:
        lines = ["flowchart LR"]
        placed: dict[Place, list[tuple[str, str]]] = defaultdict(list)
        for component in sorted(self.components.values(), key=lambda c: (c.type, c.name)):
            for region, place in self.parts(component).items():
                placed[place].append((self.node(component, region), f"{_short_type(component.type)}<br/>{component.name}"))
        regions = sorted({p.region for p in placed} | {r for r, _ in self.namespaces}
                         | {r for r, _ in self.addresses.values() if r})
        for region in regions:
            providers = ", ".join(sorted(_name(p) for p, r in self.regions.items() if r == region and p not in self.clusters))
            title = f"{region} ({providers})" if providers else region
            lines.append(f'  subgraph {_id("r", region)}["{_label(title)}"]')
            lines += [f'    {node}["{_label(text)}"]' for node, text in placed.get(Place(region), [])]
            for address, (where, label) in sorted(self.addresses.items()):
                if where == region:
                    lines.append(f'    {address}[/"{_label(label)}"/]')
            for (r, cluster), namespaces in sorted(self.namespaces.items()):
                if r != region:
                    continue
                lines.append(f'    subgraph {_id("k", region, cluster)}["EKS cluster {_label(cluster)}"]')
                lines += [f'      {node}["{_label(text)}"]' for node, text in placed.get(Place(region, cluster), [])]
                for namespace in sorted(namespaces):
                    nodes = placed.get(Place(region, cluster, namespace), [])
                    ns = self.namespace_node(region, cluster, namespace)
                    if nodes:
                        lines.append(f'      subgraph {ns}["namespace {_label(namespace)}"]')
                        lines += [f'        {node}["{_label(text)}"]' for node, text in nodes]
                        lines.append("      end")
                    else:  # a namespace the stack only talks to
                        lines.append(f'      {ns}(["namespace {_label(namespace)}"])')
                lines.append("    end")
            lines.append("  end")
        for component in sorted(self.components.values(), key=lambda c: (c.type, c.name)):
            if not component.places:  # nothing regional under it (random values only)
                text = f"{_short_type(component.type)}<br/>{component.name}"
                lines.append(f'  {self.node(component, "")}["{_label(text)}"]')
        for address, (where, label) in sorted(self.addresses.items()):
            if not where:
                lines.append(f'  {address}[/"{_label(label)}"/]')
        edges: dict[tuple[str, str], list[str]] = defaultdict(list)
        for flow in self.flows:
            edges[(flow.source, flow.target)].append(f"{flow.ports} {flow.name}")
        for (source, target), labels in sorted(edges.items()):
            lines.append(f'  {source} -->|"{_label(", ".join(sorted(set(labels))))}"| {target}')
        for (a, b), keys in self.references.items():
            lines.append(f'  {a} -.-|"{_label(_few(keys))}"| {b}')
        return "\n".join(lines) + "\n"

    def where(self, component: Component) -> str:
        out = []
        for region, place in self.parts(component).items():
            if place.namespace:
                out.append(f"{region}, cluster {place.cluster}, namespace {place.namespace}")
            elif place.cluster:
                spans = sorted({p.namespace for p in component.places if p.region == region and p.namespace})
                out.append(f"{region}, cluster {place.cluster}" + (f" (namespaces {', '.join(spans)})" if spans else ""))
            else:
                out.append(region)
        return "; ".join(out) or "no region"

    def describe(self, node: str) -> str:
        if node in self.addresses:
            region, label = self.addresses[node]
            return f"{label}" + (f" ({region})" if region else "")
        for (region, cluster), namespaces in self.namespaces.items():
            for namespace in namespaces:
                if self.namespace_node(region, cluster, namespace) == node:
                    return f"{namespace} ({cluster})"
        for component in self.components.values():
            for region in self.parts(component):
                if self.node(component, region) == node:
                    return f"{_short_type(component.type)} {component.name} ({region})"
        return node


def _port_key(port: str) -> tuple[int, str]:
    return (int(port), "") if port.isdigit() else (1 << 16, port)


def _id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_") for p in parts if p)


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def _few(items: Iterable[str], most: int = 3) -> str:
    items = sorted(items)
    return ", ".join(items[:most]) + (f" +{len(items) - most}" if len(items) > most else "")


def _inside(cidr: str, vpc: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).subnet_of(ipaddress.ip_network(vpc))  # pyright: ignore[reportArgumentType]
    except (ValueError, TypeError):
        return False


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_names(config: dict[str, str], project: str) -> tuple[dict[str, str], dict[str, str]]:
    """From a stack's config (``engine.stack_config``): every CIDR or address the stack file names,
    keyed to the first key naming it, and each ``network.<region>.vpcCidr`` keyed to the region
    ``aws.<region>Region`` gives it."""
    sections = {}
    for key, raw in config.items():
        if key.startswith(f"{project}:"):
            try:
                sections[key.split(":", 1)[1]] = json.loads(raw)
            except ValueError:
                sections[key.split(":", 1)[1]] = raw
    names: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for v in value:
                walk(v, path)
        elif isinstance(value, str) and _is_address(value):
            names.setdefault(value if "/" in value else f"{value}/32", path)

    for section in sorted(sections):
        walk(sections[section], section)
    aws, network = sections.get("aws") or {}, sections.get("network") or {}
    vpcs = {}
    if isinstance(network, dict) and isinstance(aws, dict):
        for key, value in network.items():
            if isinstance(value, dict) and value.get("vpcCidr") and aws.get(f"{key}Region"):
                vpcs[value["vpcCidr"]] = aws[f"{key}Region"]
    return names, vpcs


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
        return True
    except ValueError:
        return False


def document(arch: Architecture, source: str) -> str:
    out = [
        "# Architecture",
        "",
        f"Generated from {source} by `{COMMAND}`",
        "(synth/architecture.py); a test fails when this file no longer matches the program.",
        "Boxes are the AWS regions (with their providers), the EKS clusters in them and their",
        "namespaces; a component sits where all its resources are (a component with resources in two",
        "regions appears in both). Solid arrows are the flows the NetworkPolicies allow between",
        "namespaces and to addresses, labelled with ports and flow names (flows inside a namespace are",
        "left out); dotted lines are references between regions (a replica's source, a replication",
        "destination). Slanted boxes are addresses, named by the stack file's keys.",
        "",
        "```mermaid",
        arch.mermaid().rstrip("\n"),
        "```",
        "",
        "## Components",
        "",
        "| component | type | inside | where | resources |",
        "|-----------|------|--------|-------|-----------|",
    ]
    for c in sorted(arch.components.values(), key=lambda c: (c.parent or "", c.type, c.name)):
        parent = arch.components.get(c.parent or "")
        inside = f"{_short_type(parent.type)} {parent.name}" if parent else "the stack"
        out.append(f"| {c.name} | `{c.type}` | {inside} | {_cell(arch.where(c))} | {c.count} |")
    out += ["", "## Flows between namespaces and to addresses", "",
            "| from | to | ports | flow | why |", "|------|----|-------|------|-----|"]
    out += [f"| {_cell(arch.describe(f.source))} | {_cell(arch.describe(f.target))} | {f.ports} | {f.name} | "
            f"{_cell(f.reason)} |" for f in arch.flows]
    out += ["", "## References between regions", "", "| from | to | by |", "|------|----|----|"]
    out += [f"| {_cell(arch.describe(a))} | {_cell(arch.describe(b))} | {_cell(', '.join(sorted(keys)))} |"
            for (a, b), keys in arch.references.items()]
    return "\n".join(out) + "\n"


def generate(stack: str = "prod", export: Optional[Path] = None) -> str:
    from synth import engine
    from synth import export as exporter

    config = engine.stack_config(stack)
    if export is not None:
        doc, source = json.loads(export.read_text()), f"`{export}`"
    else:
        doc, source = exporter.to_export(engine.synthesize(stack, config)), f"the synthesized `{stack}` stack"
    names, vpcs = config_names(config, engine.PROJECT)
    return document(Architecture(doc, names, vpcs), source)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.architecture", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--stack", default="prod", help="the stack whose file names addresses (default prod)")
    parser.add_argument("--export", type=Path, help="a `pulumi stack export` document instead of synthesizing")
    args = parser.parse_args(argv)
    text = generate(args.stack, args.export)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
