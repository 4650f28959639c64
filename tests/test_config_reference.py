"""The configuration reference a user reads is the schema the program enforces: every settings
field says what it is, and docs/configuration.md is exactly what the generator prints."""

from __future__ import annotations

import subprocess
import sys

from pydantic import BaseModel

import settings
from tests.conftest import ROOT


def _models(model: type[BaseModel], seen: set) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                _models(annotation, seen)
            stack.extend(getattr(annotation, "__args__", ()) or ())


def test_every_settings_field_has_a_description():
    seen: set = set()
    _models(settings.StackSettings, seen)
    undocumented = sorted(f"{m.__name__}.{name}" for m in seen for name, f in m.model_fields.items()
                          if not (f.description or "").strip())
    assert len(seen) > 30 and not undocumented, undocumented


def test_the_committed_reference_is_current():
    generated = subprocess.run([sys.executable, "-m", "synth.config_reference"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == generated, ("docs/configuration.md is stale: run "
                                    "`python -m synth.config_reference > docs/configuration.md`")


def test_the_reference_names_every_key_with_its_rule():
    from synth.config_reference import reference

    text = reference()
    # a leaf, a nested list item, an enum and a range, each as the schema has it
    assert "| `backups.neo4j.transitionStorageClass` | `\"STANDARD_IA\"` \\| `\"ONEZONE_IA\"`" in text
    assert "| `egress.allowlist[].reason` |" in text
    assert "| `postgres.backupRetentionDays` | integer (1-35) | required |" in text
