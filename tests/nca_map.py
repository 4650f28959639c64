"""Connectivity as network-config-analyzer (np-guard, .tools/nca) computes it from the stack's own
Namespaces, NetworkPolicies and workloads, plus the pods around them a test names."""

from __future__ import annotations

import csv
import io
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import ROOT

NCA = ROOT / ".tools" / "nca" / "bin" / "nca"
KINDS = ("Namespace", "NetworkPolicy", "Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job")


@dataclass(frozen=True)
class Row:
    src_ns: tuple[str, ...]
    src_pods: tuple[str, ...]
    dst_ns: tuple[str, ...]
    dst: tuple[str, ...]  # workload names, "*", or IP blocks
    connection: str

    def ports(self, protocol: str = "TCP") -> set[int] | None:
        """None means every port ("All connections")."""
        if self.connection == "All connections":
            return None
        protocols, _, ports = self.connection.strip("{}").partition(",dst_ports:")
        if protocol not in protocols.removeprefix("protocols:").replace(" ", "").split(","):
            return set()
        if not ports:
            return None
        found: set[int] = set()
        for part in ports.split(","):
            low, _, high = part.partition("-")
            found |= set(range(int(low), int(high or low) + 1))
        return found


def _list(cell: str) -> tuple[str, ...]:
    return tuple(x for x in cell.strip("[]").split(",") if x)


def connectivity(objects: list[dict], tmp_path: Path, extra: list[dict] = ()) -> list[Row]:
    world = tmp_path / "nca-world"
    world.mkdir(exist_ok=True)
    for i, obj in enumerate([o for o in objects if o["kind"] in KINDS] + list(extra)):
        (world / f"{i:03d}-{obj['kind']}.yaml").write_text(yaml.safe_dump(obj))
    assert NCA.exists(), f"{NCA} is missing; run ./dev test, which installs the analyzers' environments"
    run = subprocess.run([str(NCA), "--connectivity", str(world), "--resource_list", str(world),
                          "--output_format", "csv"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith('"')]
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    assert rows and rows[0][:6] == ["query", "src_ns", "src_pods", "dst_ns", "dst_pods", "connection"], run.stdout
    return [Row(_list(r[1]), _list(r[2]), _list(r[3]), _list(r[4]), r[5]) for r in rows[1:] if r[5]]


def _ip_in(ip: str, block: str) -> bool:
    if "-" in block:
        low, high = block.split("-")
        return ipaddress.ip_address(low) <= ipaddress.ip_address(ip) <= ipaddress.ip_address(high)
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False


def reaches(rows: list[Row], src_ns: str, src_pod: str, port: int, *, ip: str | None = None,
            dst_ns: str | None = None, dst_pod: str | None = None) -> bool:
    for row in rows:
        if src_ns not in row.src_ns or not ({src_pod, "*"} & set(row.src_pods)):
            continue
        if ip is not None and not (not row.dst_ns and any(_ip_in(ip, b) for b in row.dst)):
            continue
        if dst_ns is not None and not (dst_ns in row.dst_ns and {dst_pod, "*"} & set(row.dst)):
            continue
        ports = row.ports()
        if ports is None or port in ports:
            return True
    return False


def deployment(namespace: str, name: str, labels: dict[str, str]) -> list[dict]:
    """A namespace and a pod that are not the stack's (e.g. Prometheus) to test flows with."""
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
         "spec": {"selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": f"{name}:1"}]}}}},
    ]
