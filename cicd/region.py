"""Where a stack's CI job talks to AWS, read from its stack file, as GitHub step outputs.

The failed-over state (``dr.activeRegion: dr``) must deploy while the primary region's APIs are
down (issue 21, docs/decisions/019). So a job that runs Pulumi takes from the stack file, never
from a literal in the workflow:

* ``region``: the active region (``aws.primaryRegion``, or ``aws.drRegion`` once failed over). The
  OIDC exchange (configure-aws-credentials' ``aws-region``), the deploy runner's identity check
  (``aws sts get-caller-identity --region``) and the KMS secrets key (the stacks' secrets provider
  names no region, so ``AWS_REGION`` picks the copy: docs/decisions/024) all use it;
* ``backend``: the state bucket copy to log in to, ``s3://intelgraph-pulumi-state-<account>-<region>``
  in the region ``--state-region`` names (``primary`` unless the operator set the repository
  variable ``PULUMI_STATE_REGION`` to ``dr``: the DR copy is not replicated back, so the switch is
  an operator's, not the stack file's; ``ops.bootstrap_backend`` creates both copies);
* ``runs-on``: a self-hosted deploy runner's labels plus ``intelgraph-region-<region>``, so a
  failed-over deploy runs on the deploy runner in the DR region, never on one in the lost region;
* ``targeted`` and ``targets`` (``--targets``): while the primary region is down (``--primary-down
  true``, the repository variable ``PRIMARY_REGION_DOWN``) and the stack is failed over, the
  ``--target`` URNs ``python -m synth targets --state failed-over`` derives, one a line
  (pulumi/actions' ``target`` input: one URN a line, and it also splits a line at commas, so a URN
  with a comma is refused). Not from ``activeRegion`` alone: once the primary region is back the
  stack stays failed over (and is then rebuilt there), and those deploys must be whole
  (docs/runbooks.md, "Deploy the failed-over state"). The primary region down with the stack not
  failed over is refused: nothing could deploy it.

    python -m cicd.region --stack prod [--stack-file FILE] [--runs-on JSON] [--state-region primary|dr]
                          [--primary-down true|false] [--targets] [--github-output FILE]

Exit codes: 0 written, 1 ``synth targets`` refused the failover (it changes something outside
the DR region), 2 a bad stack file or argument (the message names the key and what is allowed).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml

from cicd.kubeconfig import PROJECT, REGION_KEYS, StackFileError, _require, stack_config

DR_KEY, AWS_KEY = f"{PROJECT}:dr", f"{PROJECT}:aws"
ACTIVE_REGION_KEY = f"{DR_KEY}.activeRegion"
RUNNER_REGION_LABEL = "intelgraph-region-{region}"


def roles() -> tuple[str, ...]:
    """The values ``dr.activeRegion`` allows, from settings' own type (one definition)."""
    from settings import Role

    return get_args(Role)


def active_role(config: dict[str, Any]) -> str:
    """``dr.activeRegion`` of a stack file's config mapping (absent: ``primary``, settings' default)."""
    section = config.get(DR_KEY)
    value = section.get("activeRegion", "primary") if isinstance(section, dict) else "primary"
    if value not in roles():
        raise StackFileError(f"{ACTIVE_REGION_KEY} must be one of {', '.join(roles())} (got {value!r})")
    return value


def region_of(config: dict[str, Any], role: str) -> str:
    return _require(config.get(AWS_KEY), REGION_KEYS[role], AWS_KEY)


def runner_labels(runs_on: Any, region: str) -> Any:
    """A self-hosted runner's labels gain the region's label; a hosted runner's are kept as they are."""
    if isinstance(runs_on, list) and runs_on[:1] == ["self-hosted"]:
        return [*runs_on, RUNNER_REGION_LABEL.format(region=region)]
    return runs_on


@dataclass(frozen=True)
class Where:
    active: str  # primary | dr
    region: str
    backend: str
    runs_on: Any
    primary_down: bool = False

    @property
    def failed_over(self) -> bool:
        return self.active == "dr"

    @property
    def targeted(self) -> bool:
        """Deploy only the target list: failed over while the primary region is down."""
        return self.failed_over and self.primary_down

    def outputs(self) -> dict[str, str]:
        return {"active": self.active, "region": self.region, "failed-over": str(self.failed_over).lower(),
                "targeted": str(self.targeted).lower(), "backend": self.backend,
                "runs-on": json.dumps(self.runs_on, separators=(",", ":"))}


def _switch(value: str, variable: str, allowed: tuple[str, ...]) -> str:
    if value not in ("", *allowed):
        raise StackFileError(f"the repository variable {variable} must be empty or one of {', '.join(allowed)} "
                             f"(got {value!r})")
    return value or allowed[0]


def where(config: dict[str, Any], runs_on: Any = "ubuntu-24.04", state_region: str = "",
          primary_down: str = "") -> Where:
    active = active_role(config)
    state_role = _switch(state_region, "PULUMI_STATE_REGION", roles())
    down = _switch(primary_down, "PRIMARY_REGION_DOWN", ("false", "true")) == "true"
    if down and active != "dr":
        raise StackFileError(f"the primary region is down (PRIMARY_REGION_DOWN) but {ACTIVE_REGION_KEY} is "
                             f"{active!r}: deploy the failed-over state (docs/runbooks.md, Deploy the failed-over state)")
    # the state bucket copies ops.bootstrap_backend creates and prints the login of (docs/operator.md,
    # "When the primary region is lost"); the URL's region sends every state call to that region
    from ops.bootstrap_backend import Backend

    backend = Backend(_require(config.get(AWS_KEY), "accountId", AWS_KEY), region_of(config, "primary"),
                      region_of(config, "dr"))
    region = region_of(config, active)
    return Where(active, region, backend.url(region_of(config, state_role)), runner_labels(runs_on, region), down)


def target_output(urns: list[str]) -> str:
    """GitHub's multi-line output form (``name<<DELIMITER``), under a delimiter no URN contains."""
    for urn in urns:
        if "," in urn or not urn.startswith("urn:pulumi:"):
            raise ValueError(f"pulumi/actions splits its target input at commas and lines: cannot pass {urn!r}")
    delimiter = f"TARGETS_{secrets.token_hex(8)}"
    return f"targets<<{delimiter}\n" + "".join(f"{urn}\n" for urn in urns) + f"{delimiter}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.region", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--stack", required=True, help="stage or prod (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--stack-file", type=Path, help="stack config instead of Pulumi.<stack>.yaml")
    parser.add_argument("--runs-on", default='"ubuntu-24.04"', help="the job's runner labels, JSON")
    parser.add_argument("--state-region", default="", help="primary (default) or dr: the state copy to use")
    parser.add_argument("--primary-down", default="", help="true while the primary region is down (default false)")
    parser.add_argument("--targets", action="store_true",
                        help="also the --target list when targeted (synthesizes the program: needs the chart)")
    parser.add_argument("--github-output", type=Path, help="append to this file (GITHUB_OUTPUT) instead of stdout")
    args = parser.parse_args(argv)
    try:
        config = stack_config(args.stack, path=args.stack_file)
        found = where(config, json.loads(args.runs_on), args.state_region, args.primary_down)
    except (OSError, yaml.YAMLError, json.JSONDecodeError, StackFileError) as exc:
        print(f"cicd.region: {exc}", file=sys.stderr)
        return 2
    text = "".join(f"{key}={value}\n" for key, value in found.outputs().items())
    if args.targets and found.targeted:
        import settings
        from synth import engine, targets

        try:
            text += target_output(targets.derive(args.stack, engine.stack_config(args.stack, args.stack_file)))
        except targets.OutsideDrRegion as exc:
            print(f"cicd.region: {exc}", file=sys.stderr)
            return 1
        except (settings.SettingsError, ValueError) as exc:
            print(f"cicd.region: {exc}", file=sys.stderr)
            return 2
    print(f"cicd.region: {args.stack} is active in {found.region} ({found.active})"
          + (", primary region down: targeted" if found.targeted else ""), file=sys.stderr)
    if args.github_output:
        with args.github_output.open("a") as output:
            output.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
