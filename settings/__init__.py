"""Typed stack settings: the only package that reads stack configuration.

Every key of the project namespace (``intelgraph-platform:*``) is validated at once against the
models of this package. Unknown keys are errors (a typo must never pass silently) and every problem
is reported with its full key path, the value given and what is allowed, before a single resource
is registered. Adding a component is adding a model in the module of its concern and a field on
``StackSettings``.

The modules, each importing only those above it:

* ``values``: the value types (quantities, CIDRs, regions, cron, time zones, images, versions) and
  ``Model``, the base of every section;
* one module per concern: ``network`` (account, regions, VPCs, clusters), ``backups`` (buckets),
  ``graph`` (Neo4j), ``cache`` (Redis), ``database`` (PostgreSQL), ``edge`` (DNS, Ingress,
  egress), ``operations`` (observability, alerting, rehearsal, logs), ``dr`` (targets, the Region
  switch, retirement);
* ``stack``: ``StackSettings``, the one schema (the single gate, and the source of the generated
  docs/configuration.md), with the rules that relate sections;
* ``loading``: ``validate`` and ``load``, which turn a stack's config into ``StackSettings`` or a
  ``SettingsError``.

What the rest of the program uses is exported here: ``import settings`` and ``settings.X``.
"""

from settings.graph import MAX_NEO4J_SERVERS
from settings.loading import ENGINE_NAMESPACE, PROVIDER_NAMESPACES, SettingsError, load, validate
from settings.network import RegionNetwork
from settings.stack import StackSettings
from settings.values import PROJECT, ROLES, Cron, Model, Role, TimeZone, quantity_value

__all__ = [
    "ENGINE_NAMESPACE", "MAX_NEO4J_SERVERS", "PROJECT", "PROVIDER_NAMESPACES", "ROLES", "Cron", "Model",
    "RegionNetwork", "Role", "SettingsError", "StackSettings", "TimeZone", "load", "quantity_value", "validate",
]
