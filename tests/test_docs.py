"""The documentation a newcomer reads: a README short enough to be the entry point, and links that
lead somewhere (every relative link in README.md and docs/**/*.md names a file that exists and,
with a #fragment, a heading of it)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) and [text]: target; the target ends at whitespace or the closing parenthesis
INLINE = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
README_WORDS = 2000  # issue 25: the README is the entry point, the rest lives in docs/ by reader


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's heading anchor: the text without markup, lower-cased, punctuation dropped except
    hyphens and underscores, spaces to hyphens (github/cmark-gfm's anchor filter, as github.com
    renders it; a repeated heading gets -1, -2 ...)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    text = re.sub(r"^(```|~~~).*?^\1", "", path.read_text(), flags=re.S | re.M)
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        base = slug(match.group(1))
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    text = prose(path.read_text())
    return INLINE.findall(text) + REFERENCE.findall(text)


def test_the_slug_is_githubs():
    assert slug("Checklist: a stack's first deploy") == "checklist-a-stacks-first-deploy"
    assert slug("synth: the offline preview") == "synth-the-offline-preview"
    assert slug("Bootstrap (once per account)") == "bootstrap-once-per-account"
    assert slug("Alerting, logging and audit") == "alerting-logging-and-audit"
    assert slug("Postgres replica lag") == "postgres-replica-lag"


def test_the_readme_is_an_entry_point_of_at_most_2000_words():
    words = len((ROOT / "README.md").read_text().split())
    assert words <= README_WORDS, f"README.md has {words} words: move detail to docs/ (operator, reviewer, contributor)"


def test_every_relative_link_resolves_to_a_file_and_a_heading():
    broken = []
    checked = 0
    for path in DOCS:
        for target in links(path):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: - not a file of this repository
                continue
            file_part, _, fragment = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}: {target}"
            checked += 1
            if not destination.exists():
                broken.append(f"{where} (no such file)")
            elif fragment:
                if destination.is_dir() or destination.suffix != ".md":
                    broken.append(f"{where} (an anchor in a file that is not markdown)")
                elif fragment not in anchors(destination):
                    broken.append(f"{where} (no heading #{fragment})")
    assert checked > 40 and not broken, "\n".join(broken)


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    """The checker itself: a link to a file that does not exist and one to a heading that does not
    exist are both found."""
    (tmp_path / "a.md").write_text("# Title\n\n## Real heading\n\n[x](b.md) [y](#real-heading) [z](#nothing) "
                                   "`[not](a-link.md)`\n\n```\n[not](either.md)\n```\n")
    assert links(tmp_path / "a.md") == ["b.md", "#real-heading", "#nothing"]
    assert anchors(tmp_path / "a.md") == {"title", "real-heading"}
