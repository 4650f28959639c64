"""Every component can be instantiated twice in one stack: its children are named after it.

A URN is type chain plus name, and a child's URN carries its parent's *type*, not its name
(Pulumi docs, "Resource names": urn:pulumi:<stack>::<project>::<parent type>$<type>::<name>). A child
named from a constant or from an argument alone gets the same URN in a second instance, which the
engine refuses ("Duplicate resource URN"). The real program runs here under the mock engine with
every component built twice - the second under "twin-<name>" with the same arguments.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pulumi
import pytest

import components
from synth import engine
from tests.conftest import ROOT


def component_classes() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(components.__path__):
        module = importlib.import_module(f"components.{info.name}")
        found += [c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, pulumi.ComponentResource)
                  and c is not pulumi.ComponentResource and c.__module__ == module.__name__]
    return found


# The arguments by which a component adopts resources an existing stack holds under old URNs
# (aliases): a new instance adopts none of them, or two resources would claim one URN.
ADOPTING = {"unprefixed_release_urns": False, "moved_from_root": False, "moved_from": None}


def fresh(args):
    """``args`` of a new instance: no adoption, in it or in the arguments it nests."""
    if not dataclasses.is_dataclass(args) or isinstance(args, type):
        return args
    changes = {}
    for f in dataclasses.fields(args):
        value = getattr(args, f.name)
        if f.name in ADOPTING:
            changes[f.name] = ADOPTING[f.name]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = fresh(value)
    return dataclasses.replace(args, **changes)


@pytest.fixture(scope="module")
def twice():
    classes = component_classes()
    originals = {c: c.__init__ for c in classes}

    def twin(cls, original):
        def init(self, name, args, opts=None):
            original(self, name, args, opts)
            if not name.startswith("twin-"):
                cls(f"twin-{name}", fresh(args), opts)
        return init

    for cls, original in originals.items():
        cls.__init__ = twin(cls, original)
    try:
        yield classes, engine.synthesize("prod", engine.stack_config("prod"), program=ROOT / "__main__.py")
    finally:
        for cls, original in originals.items():
            cls.__init__ = original


def test_every_component_of_the_stack_is_built_twice_without_a_duplicate_urn(twice):
    classes, synthesis = twice
    # the engine raised on a duplicate URN already; what it built: each component type twice
    tokens = [r.type for r in synthesis.resources if not r.custom and r.type.startswith("intelgraph:")]
    assert len(set(tokens)) >= 13, sorted(set(tokens))
    for token in set(tokens):
        assert tokens.count(token) % 2 == 0, f"{token}: not every instance got its twin"
    twins = [r for r in synthesis.resources if r.name.startswith("twin-") and not r.custom]
    for component in twins:
        children = [r for r in synthesis.resources if r.parent == component.urn]
        assert children, f"{component.urn} has no children"
        for child in children:
            # '<component>-<child>'; or '<child>-<tier>' for a RegionalTier, whose children keep the
            # names they have in the other region's tier ('redis', 'redis-dr')
            assert child.name.startswith(component.name) or child.name.endswith(f"-{component.name}"), \
                f"{child.urn}: a twin's child not named after it"


def test_no_two_resources_claim_the_same_old_urn(twice):
    # an alias says "I am the resource that was at this URN": two claimants cannot both be it
    _, synthesis = twice
    claims: dict[str, str] = {}
    for resource in synthesis.resources:
        for urn in resource.aliases:
            assert urn not in claims, f"{resource.urn} and {claims[urn]} both alias {urn}"
            claims[urn] = resource.urn
