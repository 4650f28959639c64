"""Time-boxed policy exceptions (policy/exceptions.yaml), as design-notes PR 45 asked
(docs/decisions/011-time-boxed-policy-exceptions.md): explicit, with a
reason and an approver, expiring on a date. A valid entry waives one policy for one resource
until it expires; an expired or malformed entry is itself a mandatory violation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Optional

import yaml

FILE = Path(__file__).resolve().parent.parent / "exceptions.yaml"
FIELDS = ("policy", "resource", "reason", "approver", "expires")


@dataclass(frozen=True)
class Exception_:
    policy: str
    resource: str  # the resource's logical name (the last part of its URN)
    reason: str
    approver: str
    expires: date


@dataclass(frozen=True)
class Loaded:
    valid: tuple[Exception_, ...]
    problems: tuple[str, ...]  # expired or malformed entries, one message each


def load(path: Optional[Path] = None, today: Optional[date] = None) -> Loaded:
    path = path or FILE
    today = today or date.today()
    if not path.exists():
        return Loaded((), ())
    text = path.read_text()
    try:
        document = _parsed(text) or {}
    except yaml.YAMLError:
        try:  # PyYAML's own parser decides, and its error quotes the line (libyaml's gives numbers only)
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            return Loaded((), (f"{path.name} is not valid YAML: {exc}",))
    entries = document.get("exceptions", []) if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return Loaded((), (f"{path.name} must hold a list under 'exceptions:'",))
    valid, problems = [], []
    for i, entry in enumerate(entries):
        where = f"{path.name} entry {i + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not a mapping of {', '.join(FIELDS)}")
            continue
        missing = [f for f in FIELDS if not entry.get(f)]
        unknown = sorted(set(entry) - set(FIELDS))
        if missing or unknown:
            problems.append(f"{where} ({entry.get('policy', '?')} on {entry.get('resource', '?')}): "
                            + "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                                      f"unknown keys {', '.join(unknown)}" if unknown else ""])))
            continue
        expires = entry["expires"]
        if isinstance(expires, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", expires):
            expires = date.fromisoformat(expires)
        if not isinstance(expires, date):
            problems.append(f"{where}: expires must be a date like 2026-12-31 (given {entry['expires']!r})")
            continue
        if len(str(entry["reason"])) < 15:
            problems.append(f"{where}: give a reason a reviewer can judge (at least 15 characters)")
            continue
        if expires < today:
            problems.append(f"{where}: the exception for {entry['policy']} on {entry['resource']} expired on "
                            f"{expires} (approved by {entry['approver']}); fix the resource or renew it")
            continue
        valid.append(Exception_(str(entry["policy"]), str(entry["resource"]), str(entry["reason"]),
                                str(entry["approver"]), expires))
    return Loaded(tuple(valid), tuple(problems))


@lru_cache(maxsize=4)
def _parsed(text: str):
    """The file's YAML, parsed once per distinct text: the rules that honour waivers each read the
    file, thirteen times per evaluation (issue 24 item 11). Keyed on the text read at each call,
    so an edited file is parsed again; what is valid today is still decided at each call. The
    document is only read, never changed, so one parse can serve every call."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: same safe objects


def current() -> Loaded:
    """The exceptions in force now, read from the file at each call: one analyzer process serves
    a whole `pulumi up`, so a cache would keep an entry that expired (or was deleted) meanwhile."""
    return load()


def waiver(policy: str, urn: Optional[str]) -> Optional[Exception_]:
    """The valid exception that waives ``policy`` for the resource at ``urn``, if any. Pure: the
    pack serves many evaluations in one process, so nothing is remembered between calls."""
    name = urn.rsplit("::", 1)[-1] if urn else None
    return next((e for e in current().valid if name and e.policy == policy and e.resource == name), None)


def waived(policy: str, urn: Optional[str]) -> bool:
    return waiver(policy, urn) is not None


def describe(e: Exception_) -> str:
    return (f"waived by policy/exceptions.yaml until {e.expires}: {e.reason} "
            f"(approved by {e.approver})")
