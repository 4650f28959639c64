"""What the runbooks share: reading stack outputs, and printing a pass/fail table."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# A job sets this to requirements.txt's botocore pin; the runbook refuses any other (decision 016).
PINNED_BOTOCORE_ENV = "INTELGRAPH_BOTOCORE_VERSION"
_RDS_ARN = re.compile(r"^arn:aws[a-z-]*:rds:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):db:(?P<id>[A-Za-z0-9-]+)$")


class InputError(Exception):
    """Missing or malformed runbook input; the message says which and how to fix it."""


@dataclass(frozen=True)
class DbRef:
    arn: str
    region: str
    identifier: str

    @classmethod
    def parse(cls, arn: Any, what: str) -> "DbRef":
        match = _RDS_ARN.match(arn) if isinstance(arn, str) else None
        if not match:
            raise InputError(f"{what} must be an RDS instance ARN like "
                             f"arn:aws:rds:us-west-2:123456789012:db:name (given: {arn!r})")
        return cls(arn, match["region"], match["id"])


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def stack_outputs(stack: Optional[str], outputs_file: Optional[Path]) -> dict:
    """Outputs from a `pulumi stack output --json` file, or from the Pulumi CLI for ``stack``."""
    if outputs_file is not None:
        try:
            document = json.loads(outputs_file.read_text())
        except OSError as exc:
            raise InputError(f"cannot read {outputs_file}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{outputs_file} is not JSON ({exc}); create it with "
                             "`pulumi stack output --json --show-secrets=false > FILE`") from None
    elif stack:
        if shutil.which("pulumi") is None:
            raise InputError("the Pulumi CLI is not installed here; pass --outputs FILE "
                             "(from `pulumi stack output --json` on a machine that has it)")
        run = subprocess.run(["pulumi", "stack", "output", "--json", "--stack", stack],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise InputError(f"`pulumi stack output --stack {stack}` failed: {run.stderr.strip()}")
        document = json.loads(run.stdout)
    else:
        raise InputError("say which stack: --stack NAME or --outputs FILE")
    if not isinstance(document, dict):
        raise InputError("stack outputs must be a JSON object")
    return document


def stack_output(outputs: dict, *path: str) -> Any:
    """outputs[path...], or an InputError naming the missing output."""
    value: Any = outputs
    for i, key in enumerate(path):
        if not isinstance(value, dict) or key not in value:
            raise InputError(f"stack output {'.'.join(path[: i + 1])} is missing; is this the "
                             "output of this project's stack, and is the stack up to date?")
        value = value[key]
    return value


def print_table(title: str, checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    print(title)
    for check in checks:
        print(f"  {'PASS' if check.ok else 'FAIL'}  {check.name:<{width}}  {check.detail}")
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} of {len(checks)} checks pass")
