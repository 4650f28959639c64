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

In the failed-over state (``dr.activeRegion: dr``) the primary region may be down, and with it
``eks:DescribeCluster`` there: a primary cluster without a kubeconfig is then a warning, not the end
of the job. The deploy targets nothing in that cluster (``python -m synth targets``), and
pulumi-kubernetes treats a context it cannot load as an unreachable cluster instead of failing
(provider/pkg/provider/provider.go Configure; docs/decisions/019).

    python -m cicd.kubeconfig --stack prod [--stack-file FILE] [--dry-run]
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


def stack_config(stack: str, root: Path = ROOT, path: Path | None = None) -> dict[str, Any]:
    document = yaml.safe_load((path or root / f"Pulumi.{stack}.yaml").read_text())
    return (document or {}).get("config") or {}


def stack_clusters(stack: str, root: Path = ROOT) -> list[Cluster]:
    return clusters(stack_config(stack, root))


def failed_over(config: dict[str, Any]) -> bool:
    """Whether the stack file states the failed-over state (``dr.activeRegion: dr``); StackFileError
    for a value settings would refuse."""
    from cicd.region import active_role  # region reads the stack file through this module

    return active_role(config) == "dr"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.kubeconfig", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--stack", required=True, help="stage or prod (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--stack-file", type=Path, help="stack config instead of Pulumi.<stack>.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    try:
        config = stack_config(args.stack, path=args.stack_file)
        found = clusters(config)
        primary_optional = failed_over(config)
    # ValueError: run as __main__, this module's StackFileError is not the one cicd.region raises
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f"cicd.kubeconfig: {exc}", file=sys.stderr)
        return 2
    for cluster in found:
        print(shlex.join(cluster.command()), flush=True)
        if args.dry_run or subprocess.run(cluster.command()).returncode == 0:
            continue
        missing = f"no kubeconfig for {cluster.role} cluster {cluster.name} in {cluster.region}"
        if cluster.role == "primary" and primary_optional:
            print(f"cicd.kubeconfig: warning: {missing}; the failed-over state deploys without it "
                  "(docs/runbooks.md, Deploy the failed-over state)", file=sys.stderr)
            continue
        print(f"cicd.kubeconfig: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
