"""Shared harness: run the real program (or one component) under the mock engine.

Every call of ``synthesize`` gets a fresh context, event loop, mock monitor and mocks (see
synth/engine.py), so no test can see another's resources. The two real stacks are synthesized
once per session and shared read-only: they are plain data after the run.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from synth import engine
from synth.engine import Synthesis

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("stage", "prod")


def config_with(stack: str, changes: dict[str, Any] | None = None,
                removed: tuple[str, ...] = ()) -> dict[str, str]:
    """The stack's config with dotted-path ``changes`` applied (``"redis.resources.memory"``)."""
    raw = engine.stack_config(stack)
    document = {k: json.loads(v) if v[:1] in "{[" else v for k, v in raw.items()}
    for path, value in (changes or {}).items():
        _set(document, path, value)
    for path in removed:
        _delete(document, path)
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}


def _key_and_rest(path: str) -> tuple[str, list[str]]:
    head, *rest = path.split(".")
    return (head if ":" in head else f"{engine.PROJECT}:{head}"), rest


def _set(document: dict, path: str, value: Any) -> None:
    key, rest = _key_and_rest(path)
    if not rest:
        document[key] = value
        return
    node = document[key]
    for part in rest[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[rest[-1]] = value


def _delete(document: dict, path: str) -> None:
    key, rest = _key_and_rest(path)
    if not rest:
        document.pop(key, None)  # removing what a stack does not set leaves it as it is
        return
    node = document[key]
    for part in rest[:-1]:
        node = node[part]
    node.pop(rest[-1], None)


def stack_settings(stack: str):
    """The stack file's validated settings: what tests expect of a real stack comes from here, not
    from literals that drift from the file (region, account, versions)."""
    import settings

    return settings.validate(engine.stack_config(stack))


_cache: dict[str, Synthesis] = {}


def synthesized(stack: str) -> Synthesis:
    """The real stack, synthesized once per session (read-only)."""
    if stack not in _cache:
        _cache[stack] = engine.synthesize(stack)
    return _cache[stack]


@pytest.fixture(params=STACKS)
def any_stack(request) -> Synthesis:
    return synthesized(request.param)


@pytest.fixture(params=STACKS)
def any_primary(request) -> Synthesis:
    """A real stack without its DR tier: for tests of one region's objects (tests/test_regional_tier.py
    holds the DR tier to the primary's)."""
    return primary_tier(request.param)


@pytest.fixture
def prod_primary() -> Synthesis:
    return primary_tier("prod")


@pytest.fixture
def prod() -> Synthesis:
    return synthesized("prod")


@pytest.fixture
def stage() -> Synthesis:
    return synthesized("stage")


TIER_TYPE = "intelgraph:tier:RegionalTier"


def tiers_of(synthesis: Synthesis) -> dict[str, str | None]:
    """Each resource's RegionalTier (``primary`` / ``dr``), by URN; None outside the tiers."""
    by_urn = {r.urn: r for r in synthesis.resources}
    found: dict[str, str | None] = {}

    def tier(urn: str | None) -> str | None:
        if urn is None or urn not in by_urn:
            return None
        if urn not in found:
            node = by_urn[urn]
            found[urn] = node.name if node.type == TIER_TYPE else tier(node.parent)
        return found[urn]

    return {r.urn: tier(r.urn) for r in synthesis.resources}


_tiers: dict[tuple[str, str], Synthesis] = {}


def in_tier(synthesis: Synthesis, role: str) -> Synthesis:
    """The stack as one region's tier sees it: everything but the other region's tier (tests written
    for one region's objects ask this view, so the DR tier's copies do not double their counts)."""
    key = (synthesis.stack, role)
    if key in _tiers and _cache.get(synthesis.stack) is synthesis:
        return _tiers[key]
    tiers = tiers_of(synthesis)
    view = Synthesis(synthesis.stack, [r for r in synthesis.resources if tiers[r.urn] in (None, role)],
                     synthesis.warnings)
    if _cache.get(synthesis.stack) is synthesis:
        _tiers[key] = view
    return view


def primary_tier(stack: str) -> Synthesis:
    """The real stack without its DR tier (read-only, cached)."""
    return in_tier(synthesized(stack), "primary")


def run_component(build: Callable[[], dict[str, Any]], stack: str = "prod") -> Synthesis:
    """Run ``build`` (which creates resources and returns outputs to export) as a program."""
    import pulumi

    def program() -> None:
        for name, value in build().items():
            pulumi.export(name, value)

    return engine.synthesize(stack, engine.stack_config(stack), program=program)


def deep_copy(value: Any) -> Any:
    return copy.deepcopy(value)


_rendered: dict[str, list[dict]] = {}


def rendered(stack: str) -> list[dict]:
    """The export entries of what the real stack's Helm releases render (real helm and chart),
    rendered once per session (read-only)."""
    from synth import export

    if stack not in _rendered:
        _rendered[stack] = export.render_releases(export.to_export(synthesized(stack)))
    return _rendered[stack]


def region_of(synthesis: Synthesis, resource) -> str:
    """The region a resource is created in: its explicit provider's (the stacks disable default
    providers, so every AWS resource names one)."""
    provider_urn = resource.provider.rsplit("::", 1)[0]
    return next(r for r in synthesis.resources if r.urn == provider_urn).inputs["region"]


def fake_aws_credentials(monkeypatch, account_id: str | None = None) -> None:
    """moto must never see real credentials, and nothing may reach AWS: only fake keys in the
    environment (and moto's account, when a test needs the stack's own)."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if account_id:
        monkeypatch.setenv("MOTO_ACCOUNT_ID", account_id)


def pytest_configure(config) -> None:
    # pyright runs in the background for the whole session (tests/test_types.py), started once
    from tests.test_types import start_pyright

    start_pyright(config)
