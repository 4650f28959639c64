"""What the runbooks share: where the stack's outputs come from (the DR region's copy, or a file),
whose credentials run them, the IAM actions each needs, one-line errors, and a pass/fail table.

Nothing here reaches the primary region: the outputs are the copy every deploy writes into the DR
region (an SSM parameter, ``outputs_parameter``), and the account check asks STS in the DR region.
Only the standard library is imported at module level; boto3 and botocore are imported in the
functions that call AWS. The PITR rehearsal's Job mounts this file next to its runbook on an image
with nothing but the standard library and boto3 (components/pg_restore_rehearsal.py), and the Pulumi
program imports it, and the runbooks whose IAM actions it grants, for names and documents only:
boto3's import must not be part of the program's cost (issue 24 item 11; tests/test_synth.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

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

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


# --- the outputs the runbooks read, and where they live ------------------------------------------

# The stack outputs the runbooks read: every deploy writes exactly these into the DR region
# (__main__.py), so they are readable while the primary region, the state backend in it and the
# Pulumi CLI's view of the stack are gone. ``aws`` says whose and where (account, regions).
RUNBOOK_OUTPUTS = ("aws", "postgres", "backupBuckets", "dnsFailover", "pgRestoreRehearsal", "regionSwitch")
# Of these, only the keys the runbooks read, where an output holds more (the parameter's 4 KB).
RUNBOOK_OUTPUT_KEYS = {"regionSwitch": ("planArn", "approvalRoleArn", "regions")}
# A job that may reach STS only through its own region's VPC endpoint names that region here; the
# account check otherwise asks STS in the DR region (never the global endpoint, served in us-east-1).
STS_REGION_ENV = "INTELGRAPH_STS_REGION"


def runbook_document(outputs: dict) -> dict:
    """What the DR region's copy holds of the stack's ``outputs``: RUNBOOK_OUTPUTS, narrowed to
    RUNBOOK_OUTPUT_KEYS."""
    return {name: ({key: outputs[name][key] for key in RUNBOOK_OUTPUT_KEYS[name]} if name in RUNBOOK_OUTPUT_KEYS
                   else outputs[name]) for name in RUNBOOK_OUTPUTS}


PROJECT = "intelgraph-platform"
POSTGRES_TYPE = "intelgraph:database:PostgresDr"  # components/postgres_dr.py: the instances' parent


def instance_urn(stack: Optional[str], identifier: str) -> str:
    """The URN of one of the stack's PostgreSQL instances (named by its identifier): what `pulumi
    refresh --target` takes after a promotion outside Pulumi (the plan, ops.dr_promote)."""
    return f"urn:pulumi:{stack or '<stack>'}::{PROJECT}::{POSTGRES_TYPE}$aws:rds/instance:Instance::{identifier}"


def outputs_parameter(stack: str) -> str:
    """The SSM parameter (in the DR region) holding the stack's RUNBOOK_OUTPUTS as JSON."""
    return f"/intelgraph/{stack}/runbook-outputs"


def parameter_arn(region: str, account: str, name: str) -> str:
    # a name with a leading slash is appended as is (SSM User Guide, "Working with parameter hierarchies")
    return f"arn:aws:ssm:{region}:{account}:parameter{name}"


def read_outputs_file(outputs_file: Path) -> dict:
    try:
        document = json.loads(outputs_file.read_text())
    except OSError as exc:
        raise InputError(f"cannot read {outputs_file}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{outputs_file} is not JSON ({exc}); create it with "
                         "`pulumi stack output --json --show-secrets=false > FILE`") from None
    if not isinstance(document, dict):
        raise InputError("stack outputs must be a JSON object")
    return document


def stack_outputs(stack: Optional[str], outputs_file: Optional[Path]) -> dict:
    """The runbook outputs, from ``outputs_file`` or else from the DR region's copy for ``stack``
    (its account and DR region read from the checkout's Pulumi.<stack>.yaml); either way only
    after the credentials proved to be the stack's account's."""
    if outputs_file is not None:
        document = read_outputs_file(outputs_file)
        account = stack_output(document, "aws", "accountId")
        check_account(account, stack_output(document, "aws", "drRegion"))
        return document
    if not stack:
        raise InputError("say which stack: --stack NAME (reads the outputs from the DR region) or --outputs FILE")
    cfg = load_settings(stack, None)
    account, region = cfg.aws.account_id, cfg.aws.dr_region
    check_account(account, region)
    name = outputs_parameter(stack)
    import boto3
    from botocore.exceptions import ClientError

    try:
        value = boto3.client("ssm", region_name=region).get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
        raise InputError(f"missing outputs: no parameter {name} in {region} (account {account}); deploy the "
                         "stack once with this version, or pass --outputs FILE") from None
    try:
        document = json.loads(value)
    except json.JSONDecodeError:
        raise InputError(f"missing outputs: {name} in {region} is not JSON") from None
    if not isinstance(document, dict):
        raise InputError(f"missing outputs: {name} in {region} is not a JSON object")
    return document


def load_settings(stack: str, stack_file: Optional[Path]) -> Any:
    """The stack's validated settings from the checkout (no network). Imported here, not above:
    the rehearsal's Job has neither settings nor the synth engine."""
    import yaml

    import settings
    from synth import engine

    try:
        config = engine.stack_config(stack, stack_file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InputError(str(exc)) from None
    try:
        return settings.validate(config, stack=stack)
    except settings.SettingsError as exc:
        raise InputError("invalid stack configuration: " + "; ".join(exc.problems)) from None


def check_account(expected: Any, region: Any) -> None:
    """The credentials are ``expected``'s (GetCallerIdentity, which needs no permission: STS API
    Reference), asked of STS in ``region`` or in $INTELGRAPH_STS_REGION."""
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9]{12}", expected):
        raise InputError(f"missing outputs: aws.accountId must be a 12-digit account (given: {expected!r})")
    sts_region = os.environ.get(STS_REGION_ENV) or region
    if not isinstance(sts_region, str) or not sts_region:
        raise InputError(f"missing outputs: aws.drRegion must name a region (given: {region!r})")
    import boto3

    sts = boto3.client("sts", region_name=sts_region)
    if sts.meta.endpoint_url.rstrip("/") == "https://sts.amazonaws.com":
        # botocore's sts_regional_endpoints "legacy" sends every region to the global endpoint
        raise InputError("STS is configured to use the global endpoint, which us-east-1 serves: unset "
                         "AWS_STS_REGIONAL_ENDPOINTS (or sts_regional_endpoints in ~/.aws/config)")
    account = sts.get_caller_identity()["Account"]
    if account != expected:
        raise InputError(f"wrong account: the AWS credentials are for account {account}, the stack's is {expected}")


# --- the IAM actions a command needs ---------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """IAM actions a command needs on one kind of the stack's resources (ops/oncall.py resolves the
    kind to ARNs). ``implied``: not an API call the command makes but one AWS makes with the
    caller's permissions on its behalf (a KMS decrypt behind GetSecretValue, say)."""

    actions: tuple[str, ...]
    resource: str
    why: str
    implied: bool = False


@dataclass(frozen=True)
class Permissions:
    grants: tuple[Grant, ...]
    # sts:GetCallerIdentity needs no permission ("No permissions are required to perform this
    # operation": STS API Reference); it is listed so that the list names every call
    unpermissioned: tuple[str, ...] = field(default=("sts:GetCallerIdentity",))

    @property
    def actions(self) -> set[str]:
        return {a for g in self.grants for a in g.actions}

    def help(self) -> str:
        rows = [(action, RESOURCES[g.resource] + (f" (AWS calls it for {g.why})" if g.implied else ""))
                for g in self.grants for action in g.actions]
        rows += [(action, "needs no permission (the account check)") for action in self.unpermissioned]
        width = max(len(action) for action, _ in rows)
        return "\n".join(["IAM actions this command needs, on what (docs/operator.md, \"On-call role\"):",
                          *(f"  {action:<{width}}  {what}" for action, what in rows)])


# The kinds of resource a Grant names, as --help describes them (ops/oncall.py resolves each to ARNs).
RESOURCES = {
    "*": "* (the action has no resource type)",
    "outputs-parameter": "the runbook outputs parameter in the DR region",
    "databases": "the PostgreSQL instances",
    "primary-database-and-snapshots": "the primary PostgreSQL instance and its snapshots",
    "master-secrets": "the PostgreSQL master secrets (one per writer) in both regions",
    "health-check": "the primary's Route 53 health check",
    "region-switch-plan": "the stack's Region switch plan",
    "region-switch-approval-role": "the Region switch plan's approval role",
    "backup-buckets": "the backup buckets",
    "backup-objects": "the backup buckets' objects",
    "dr-region-rds": "RDS in the DR region",
    "rehearsal-restore": "rehearsal instances, the replicated backups, the DR subnet, parameter and option groups",
    "rehearsal-instances": "instances named pgrehearsal-* in the DR region",
    "rehearsal-key": "the DR region's database key, through RDS only",
    "clusters": "the stack's EKS clusters",
    "oidc-providers": "the clusters' IAM OIDC providers",
    "ebs-csi-role": "the EBS CSI driver's IAM role",
    "hosted-zone": "the stack's public hosted zone",
    "state-backend": "the state buckets, their replication role and the secrets key (bootstrap only)",
}


# Every command that reads the outputs with --stack reads the DR region's parameter.
READ_OUTPUTS = Grant(("ssm:GetParameter",), "outputs-parameter", "the runbook outputs in the DR region")


def parser(prog: str, doc: Optional[str], permissions: Permissions, outputs: bool = True) -> argparse.ArgumentParser:
    """The command's parser: its docstring's first line, and the IAM actions below the options."""
    made = argparse.ArgumentParser(prog=f"python -m ops.{prog}", description=(doc or "").partition("\n")[0],
                                   epilog=permissions.help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    if outputs:
        made.add_argument("--stack", help="stack name: its outputs are read from the DR region "
                                          f"(SSM parameter {outputs_parameter('<stack>')})")
        made.add_argument("--outputs", type=Path, help="`pulumi stack output --json` file instead")
    return made


# --- one line instead of a traceback ----------------------------------------------------------------

# Codes AWS answers when the credentials themselves are not accepted.
CREDENTIAL_CODES = ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                    "SignatureDoesNotMatch", "InvalidSignatureException", "AuthFailure", "RequestExpired")
DENIED_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")


def cause(exc: BaseException) -> Optional[str]:
    """The one line naming why a command cannot run (exit 2), or None for any other error."""
    if isinstance(exc, InputError):
        return str(exc)
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
        SSOError,
        TokenRetrievalError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return "no AWS credentials: sign in (aws sso login --profile <on-call profile>) and assume the on-call role"
    if isinstance(exc, (SSOError, TokenRetrievalError)):
        return f"no AWS credentials: the SSO session cannot be refreshed ({exc}); run aws sso login"
    if isinstance(exc, NoRegionError):
        return "no AWS region configured: set AWS_REGION to the DR region"
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return (f"no endpoint: cannot reach {url or 'the AWS endpoint'} (no network, or that region's API "
                f"is down: {type(exc).__name__})")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code in CREDENTIAL_CODES:
            return f"the AWS credentials were refused ({exc.operation_name}: {code}); sign in again"
        if code in DENIED_CODES:
            return (f"not permitted: {exc.operation_name} was denied ({code}); this command needs the IAM "
                    "actions its --help lists (the on-call role grants them)")
    return None


def run(prog: str, body: Callable[[], int]) -> int:
    """``body()``; a cause it cannot run for is one line on stderr and exit 2, any other AWS error
    one line and exit 1 - never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return body()
    except (InputError, BotoCoreError, ClientError) as exc:
        why = cause(exc)
        print(f"{prog}: {' '.join((why or f'AWS error: {exc}').split())}", file=sys.stderr)
        return EXIT_BAD_INPUT if why is not None else EXIT_FAILED


def stack_output(outputs: dict, *path: str) -> Any:
    """outputs[path...], or an InputError naming the missing output."""
    value: Any = outputs
    for i, key in enumerate(path):
        if not isinstance(value, dict) or key not in value:
            raise InputError(f"missing outputs: stack output {'.'.join(path[: i + 1])} is missing; is this the "
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
