"""The CrossGuard pack. Pulumi runs this file; it serves the engine until the run ends."""

from pulumi_policy import EnforcementLevel, PolicyPack

from guardrails import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
