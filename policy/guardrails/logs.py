"""CloudWatch Logs: every log group expires and is encrypted with a customer key; the log groups
RDS exports to exist in the stack (otherwise RDS creates them with neither), and PostgreSQL's
query-text log masks personal data."""

from __future__ import annotations

from . import config_keys
from ._rules import dig, each, present, region_of, resource_rule, stack_rule
from .rds import INSTANCE

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
DATA_PROTECTION = "aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy"


@resource_rule("logs-retention-and-kms", "CloudWatch log groups have a retention and a customer KMS key.",
               (LOG_GROUP,))
def retention_and_kms(props, args):
    # retentionInDays 0 or unset is "never expire" (PutRetentionPolicy)
    if not dig(props, "retentionInDays"):
        yield ("Set retentionInDays (e.g. 30 or 365): without it the group keeps every event forever."
               + config_keys.where(config_keys.LOG_RETENTION))
    if not present(props, "kmsKeyId"):  # at a first preview: the ARN of a key this stack creates
        yield ("Set kmsKeyId to a customer KMS key whose policy lets logs.<region>.amazonaws.com use it "
               "for this account's log groups.")


@stack_rule("logs-rds-exports-managed",
            "Every log RDS exports goes to a log group of the stack; the postgresql log masks personal data.",
            judges=(INSTANCE,))
def rds_exports_managed(resources, args):
    groups = {(dig(g.props, "name"), region_of(g)): g for g in resources if g.resource_type == LOG_GROUP}
    masked = {dig(p.props, "logGroupName") for p in resources if p.resource_type == DATA_PROTECTION}
    for instance in (r for r in resources if r.resource_type == INSTANCE):
        identifier = dig(instance.props, "identifier") or instance.name
        for export in each(instance.props, "enabledCloudwatchLogsExports"):
            name = f"/aws/rds/instance/{identifier}/{export}"
            group = groups.get((name, region_of(instance)))
            if group is None:
                yield (f"RDS instance {identifier} exports its {export} log, but the stack has no log group "
                       f"{name} in {region_of(instance)}: RDS would create it with no retention and no "
                       "customer key. Create it (helpers/log_groups.log_group) before the instance.",
                       instance.urn)
            elif export == "postgresql" and name not in masked:
                yield (f"Log group {name} holds query text and has no data protection policy; add a "
                       "LogDataProtectionPolicy that masks personal data.", group.urn)


POLICIES = [retention_and_kms, rds_exports_managed]
