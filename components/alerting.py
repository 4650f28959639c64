"""Alert plumbing shared by components: an encrypted SNS topic CloudWatch alarms can publish to,
and the alarm itself. One function each, so every alarm in the stack is built the same way."""

from __future__ import annotations

import json
from typing import Optional

import pulumi
import pulumi_aws as aws


def alert_topic(name: str, account_id: str, opts: pulumi.ResourceOptions) -> aws.sns.Topic:
    """An SNS topic encrypted with its own customer key.

    CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key, so the key
    policy grants CloudWatch exactly the two calls it needs; everything else stays with IAM.
    """
    key = aws.kms.Key(
        f"{name}-key",
        description=f"Encrypts the {name} alert topic",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps(alert_key_policy(account_id)),
        opts=opts,
    )
    return aws.sns.Topic(name, kms_master_key_id=key.arn, opts=opts)


def alert_key_policy(account_id: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKeyThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ],
    }


def alarm(
    name: str,
    *,
    description: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, pulumi.Input[str]],
    statistic: str,
    comparison: str,
    threshold: pulumi.Input[float],
    period_seconds: int,
    evaluation_periods: int,
    topic: aws.sns.Topic,
    opts: pulumi.ResourceOptions,
    treat_missing_data: str = "breaching",
    unit: Optional[str] = None,
) -> aws.cloudwatch.MetricAlarm:
    """A metric alarm that notifies ``topic`` on alarm and on recovery.

    Missing data counts as breaching by default: a replica or health check that stops reporting
    is exactly the failure these alarms exist for.
    """
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric,
        dimensions=dimensions,
        statistic=statistic,
        comparison_operator=comparison,
        threshold=threshold,
        period=period_seconds,
        evaluation_periods=evaluation_periods,
        treat_missing_data=treat_missing_data,
        unit=unit,
        alarm_actions=[topic.arn],
        ok_actions=[topic.arn],
        opts=opts,
    )
