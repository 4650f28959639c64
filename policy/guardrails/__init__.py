"""The IntelGraph guardrails: every rule of the CrossGuard pack, importable by tests and synth."""

from . import s3

PACK_NAME = "intelgraph-guardrails"
POLICIES = [*s3.POLICIES]
