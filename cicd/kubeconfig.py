"""The EKS clusters a stack's Kubernetes providers name, read from its stack file, and the
kubeconfig a CI job writes for them before its first Pulumi command.

The Kubernetes provider connects through the kubeconfig context the stack file names
(``intelgraph-platform:kubernetes`` -> ``context``). A runner has no kubeconfig, and pulumi-kubernetes
treats a cluster it cannot reach as unreachable (previews show no Kubernetes diff, `up` fails on
every object). ``aws eks update-kubeconfig --name N --region R --alias CONTEXT`` writes a context of
exactly that name whose user runs ``aws eks get-token`` with the job's AWS credentials (AWS CLI
reference, ``eks update-kubeconfig``: ``--alias`` names the context).

One cluster per region (``primary`` / ``dr``, each with ``context`` and ``clusterName``; regions
``aws.primaryRegion`` / ``aws.drRegion``), as settings require.

    python -m cicd.kubeconfig --stack prod [--dry-run]
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = "intelgraph-platform"
ROOT = Path(__file__).resolve().parent.parent
# which aws.* key holds each cluster's region
REGION_KEYS = {"primary": "primaryRegion", "dr": "drRegion"}


@dataclass(frozen=True)
class Cluster:
    role: str  # primary | dr
    name: str
    region: str
    context: str

    def command(self) -> list[str]:
        return ["aws", "eks", "update-kubeconfig", "--name", self.name, "--region", self.region,
                "--alias", self.context]


class StackFileError(ValueError):
    pass


def _require(mapping: Any, key: str, where: str) -> str:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise StackFileError(f"{where}.{key} must be a non-empty string (got {value!r})")
    return value


def clusters(config: dict[str, Any]) -> list[Cluster]:
    """The clusters of a stack file's ``config`` mapping, primary first."""
    kube_key, aws_key = f"{PROJECT}:kubernetes", f"{PROJECT}:aws"
    kube, aws = config.get(kube_key), config.get(aws_key)
    if not isinstance(kube, dict):
        raise StackFileError(f"{kube_key} is missing: the stack names no cluster")
    result = []
    for role in REGION_KEYS:  # settings require both regions' clusters (kubernetes.primary, kubernetes.dr)
        where = f"{kube_key}.{role}"
        cluster = kube.get(role)
        if not isinstance(cluster, dict):
            raise StackFileError(f"{where} is missing: each region's tier runs in its own cluster "
                                 f"(got keys {sorted(kube)})")
        result.append(Cluster(role, _require(cluster, "clusterName", where),
                              _require(aws, REGION_KEYS[role], aws_key), _require(cluster, "context", where)))
    return result


def stack_clusters(stack: str, root: Path = ROOT) -> list[Cluster]:
    path = root / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    return clusters((document or {}).get("config") or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.kubeconfig", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--stack", required=True, help="stage or prod (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    try:
        found = stack_clusters(args.stack)
    except (OSError, StackFileError) as exc:
        print(f"cicd.kubeconfig: {exc}", file=sys.stderr)
        return 2
    for cluster in found:
        print(shlex.join(cluster.command()), flush=True)
        if not args.dry_run and subprocess.run(cluster.command()).returncode != 0:
            print(f"cicd.kubeconfig: no kubeconfig for {cluster.role} cluster {cluster.name} in {cluster.region}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
