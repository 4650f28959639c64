"""python -m synth targets --stack <stack> [--state failed-over] [--stack-file FILE]

The `pulumi up --target` list that deploys the failed-over state (`dr.activeRegion: dr`) while the
primary region (its AWS APIs and its EKS cluster) is down, one URN a line; docs/runbooks.md
"Deploy the failed-over state" runs it. Why a targeted update (docs/decisions/019): the engine
still configures every provider (providers are implicitly targeted) and still runs the whole
program, so every invoke runs, but an untargeted resource gets no provider Check and no Diff: its
old state is kept as it is (pulumi/pulumi pkg/resource/deploy/step_generator.go). The primary
cluster's objects therefore never reach pulumi-kubernetes' Diff (whose `replaceUnready` reads the
live Job) nor its Update (which refuses an unreachable cluster, provider/pkg/provider/provider.go).

The list is derived from the synthesized exports of the two states, both from the same stack file:
every resource managed through a provider of the DR region (its AWS provider, its cluster's
Kubernetes provider) or through a provider with no region (random), the components above them,
and every resource the failover creates, changes or deletes. A change outside the DR region cannot
be deployed while the primary is down: the command refuses it (exit 1) and names each one.

Exit codes: 0 the list, 1 the failover would change something outside the DR region, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

PROJECT = "intelgraph-platform"
DR_KEY = f"{PROJECT}:dr"
STATES = {"failed-over": "dr"}  # state -> the dr.activeRegion it deploys
PROVIDER_PREFIX = "pulumi:providers:"
STACK_TYPE = "pulumi:pulumi:Stack"
EXIT_OK, EXIT_OUTSIDE_DR, EXIT_INVALID = 0, 1, 2


def with_active_region(config: dict[str, str], role: str) -> dict[str, str]:
    """The stack's config (as the engine hands it over: values as text) with dr.activeRegion set."""
    section = json.loads(config.get(DR_KEY) or "{}")
    return {**config, DR_KEY: json.dumps({**section, "activeRegion": role})}


@dataclass(frozen=True)
class DrRegion:
    """What identifies the DR region's providers: its AWS region and its cluster's kubeconfig."""

    region: str
    context: Optional[str]
    kubeconfig: Optional[str]

    def serves(self, provider: dict) -> bool:
        """A provider whose resources a deploy reaches without the primary region: the DR region's
        AWS provider, the DR cluster's Kubernetes provider, or a package with no region at all."""
        package = provider["type"][len(PROVIDER_PREFIX):]
        inputs = provider.get("inputs") or {}
        if package == "aws":
            return inputs.get("region") == self.region
        if package == "kubernetes":
            return (inputs.get("context"), inputs.get("kubeconfig")) == (self.context, self.kubeconfig)
        return package == "random"  # local: no API, no region


def dr_region_of(config: dict[str, str], stack: str) -> DrRegion:
    import settings

    cfg = settings.validate(config, stack)
    cluster = cfg.kubernetes.dr
    return DrRegion(cfg.aws.dr_region, cluster.context, cluster.kubeconfig_path)


def provider_urn(reference: Optional[str]) -> str:
    """`<urn>::<id>` -> the provider's URN (the engine's provider reference, sdk/go/common/resource/providers)."""
    return reference.rsplit("::", 1)[0] if reference else ""


class OutsideDrRegion(ValueError):
    """The failover changes resources a deploy cannot reach while the primary region is down."""

    def __init__(self, urns: list[str]):
        self.urns = urns
        super().__init__("the failed-over state changes what is managed outside the DR region, which a deploy "
                         "cannot reach while the primary region is down:\n" + "\n".join(f"  {u}" for u in urns))


def targets(normal: dict, failed_over: dict, dr: DrRegion) -> list[str]:
    """The URNs to pass to `pulumi up --target`, in the failed-over export's order; OutsideDrRegion
    when the failover creates, changes or deletes anything outside the DR region."""
    from synth import diff

    before = {r["urn"]: r for r in normal["deployment"]["resources"]}
    after = {r["urn"]: r for r in failed_over["deployment"]["resources"]}
    providers = {urn: r for urn, r in {**before, **after}.items() if r["type"].startswith(PROVIDER_PREFIX)}

    def reachable(resource: dict) -> bool:
        provider = providers.get(provider_urn(resource.get("provider")))
        if provider is None:  # a default provider the export does not list (synth's random resources)
            provider = {"type": PROVIDER_PREFIX + resource["type"].split(":")[0]}
        return dr.serves(provider)

    changed = [c.urn for c in diff.compare(normal, failed_over)]
    outside = [urn for urn in changed
               if (r := after.get(urn) or before.get(urn)) and r.get("custom") and not reachable(r)]
    if outside:
        raise OutsideDrRegion(outside)
    chosen = {urn for urn, r in after.items()
              if r.get("custom") and not r["type"].startswith(PROVIDER_PREFIX) and reachable(r)}
    chosen |= {urn for urn in changed if urn in before and urn not in after}  # deletes: only when targeted
    # A targeted resource under a component the failover creates needs that component targeted
    # too (the engine refuses a targeted child of a skipped create): name every ancestor, which
    # costs nothing (a component has no provider).
    for urn in list(chosen):
        parent = (after.get(urn) or before.get(urn) or {}).get("parent")
        while parent and parent in after and after[parent]["type"] != STACK_TYPE:
            chosen.add(parent)
            parent = after[parent].get("parent")
    order = [r["urn"] for r in failed_over["deployment"]["resources"]] + list(before)
    return sorted(chosen, key=order.index)


def derive(stack: str, config: dict[str, str], state: str = "failed-over") -> list[str]:
    """Synthesize both states from ``config`` and return the target list (see ``targets``)."""
    from synth import engine
    from synth import export as exporter

    normal, changed = (exporter.to_export(engine.synthesize(stack, with_active_region(config, role)))
                       for role in ("primary", STATES[state]))
    return targets(normal, changed, dr_region_of(config, stack))


def main(argv: Iterable[str]) -> int:
    import yaml

    import settings
    from synth import engine

    parser = argparse.ArgumentParser(prog="python -m synth targets", description=(__doc__ or "").splitlines()[2])
    parser.add_argument("--stack", required=True, help=f"one of: {', '.join(engine.known_stacks())}")
    parser.add_argument("--state", choices=sorted(STATES), default="failed-over",
                        help="the state to deploy (default failed-over: dr.activeRegion dr)")
    parser.add_argument("--stack-file", type=Path, help="stack config instead of Pulumi.<stack>.yaml")
    args = parser.parse_args(list(argv))
    try:
        config = engine.stack_config(args.stack, args.stack_file)
        urns = derive(args.stack, config, args.state)
    except OutsideDrRegion as exc:
        print(f"synth targets: {exc}", file=sys.stderr)
        return EXIT_OUTSIDE_DR
    except settings.SettingsError as exc:
        print(f"synth targets: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"synth targets: cannot read the stack file: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print("\n".join(urns))
    return EXIT_OK
