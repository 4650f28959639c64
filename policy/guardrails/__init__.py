"""The IntelGraph guardrails: every rule of the CrossGuard pack, importable by tests and synth."""

from . import audit, edge, kubernetes, logs, rds, route53, s3, stack

PACK_NAME = "intelgraph-guardrails"
POLICIES = [*s3.POLICIES, *rds.POLICIES, *route53.POLICIES, *kubernetes.POLICIES, *stack.POLICIES,
            *logs.POLICIES, *audit.POLICIES, *edge.POLICIES]
