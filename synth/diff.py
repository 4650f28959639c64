"""python -m synth diff OLD.json NEW.json: what a change would do to a stack, per resource.

OLD and NEW are stack exports (two synth runs - main and a branch - or `pulumi stack export`).
Resources are matched as the engine matches them: by URN, or by an alias of the new resource
that names the old URN. Each is listed as create, update (which properties), replace (what
forces it) or delete; stateful ones first. Exit 1 when a stateful or protected resource would be
replaced or deleted, unless `--approved-by NAME` records who reviewed exactly that; 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from helpers.stateful import is_stateful
from synth import consequences, forcenew
from synth.consequences import is_secret

EXIT_OK, EXIT_STATEFUL, EXIT_INVALID = 0, 1, 2

# Which input changes replace a resource: synth/forcenew.py, per type, audited against the
# provider sources (terraform-provider-aws, pulumi-kubernetes, terraform-provider-random).

# Provider inputs whose change replaces every resource the provider manages. The engine asks the
# new provider's DiffConfig whenever a resource's provider changes, and a replacing diff cascades
# to all of its resources (pulumi/pulumi pkg/resource/deploy/step_generator.go, providerChanged and
# calculateDependentReplacements). pulumi-aws does so for `region` (pulumi/pulumi-aws#4000); from v7
# the region is also each resource's own input, injected from the provider's (terraform-provider-aws
# 6 "enhanced region support"): either way a resource does not move to another region in place.
PROVIDER_FORCE_NEW: dict[str, tuple[str, ...]] = {"pulumi:providers:aws": ("region",)}
PROVIDER_PREFIX = "pulumi:providers:"

ORDER = {"replace": 0, "delete": 1, "create": 2, "update": 3}
# The input that fixes a resource's physical name. Pulumi replaces create-first (Pulumi docs,
# "deleteBeforeReplace"), so a replacement that keeps the name collides with the old resource and
# fails half-way through the deploy. (Kubernetes objects are exempt: pulumi-kubernetes deletes
# first by itself when a replaced object keeps its name, provider.go Diff.) With retainOnDelete
# the delete only forgets the old resource and leaves it in AWS under that name, so
# deleteBeforeReplace cannot help there: the create fails either way.
FIXED_NAME = {"aws:rds/instance:Instance": "identifier", "aws:s3/bucket:Bucket": "bucket",
              "aws:rds/parameterGroup:ParameterGroup": "name", "aws:rds/subnetGroup:SubnetGroup": "name",
              "aws:kms/alias:Alias": "name", "kubernetes:helm.sh/v3:Release": "name"}


# What the engine refuses whatever the approval (pulumi/pulumi pkg/resource/deploy): a delete of a
# resource its state records as protected (step.go DeleteStep.Apply, checked before its preview
# branch, so the preview fails too), and a replace of one protected in the state and the program
# (step_generator.go: `new.Protect && old.Protect`; "we do allow unprotecting and replacing to happen
# in a single update cycle"). The way through is the `retire` setting (docs/cicd.md).
PROTECTED_DELETE = ("the Pulumi engine refuses, in preview too, to delete a resource its state records as "
                    "protected: first deploy a change that lists its URN in `retire`, then remove it (docs/cicd.md)")
PROTECTED_REPLACE = ("the Pulumi engine refuses to replace a resource protected in its state and in the program: "
                     "list its URN in `retire`, and the replace may go in that deploy (docs/cicd.md)")
# A changed `protect` alone is no provider call: the engine plans a `same` step whose new state it
# writes (pkg/engine/journal_snapshot.go: a changed Protect must be written; the display shows such a
# step, pkg/backend/display/display.go shouldShow). Listed as an update of the pseudo-property; so is
# `retainOnDelete`, which the engine writes the same way (mustWrite "because of RetainOnDelete") and
# which decides whether a later delete reaches the provider (retiring: helpers/stateful.py). The
# engine's display shows a same step only for a changed Protect; its preview JSON carries both.
PROTECT = "protect"
RETAIN = "retainOnDelete"
# the engine's delete step is then no provider call (step.go DeleteStep.Apply: `s.old.RetainOnDelete`)
RETAINED = "retained: only dropped from the state, left running in AWS (retainOnDelete in its state)"
OPTIONS = (PROTECT, RETAIN)


def _options_changed(before: dict, after: dict) -> list[str]:
    return [o for o in OPTIONS if bool(before.get(o)) != bool(after.get(o))]


@dataclass
class Change:
    action: str  # create | update | replace | delete
    urn: str
    type: str
    stateful: bool
    protected: bool = False
    properties: list[str] = field(default_factory=list)
    reason: str = ""
    aliased_from: Optional[str] = None
    needs_review: bool = False  # an in-place change that still cannot be undone (a major upgrade)
    values: list[str] = field(default_factory=list)  # old -> new, secrets masked
    notes: list[str] = field(default_factory=list)  # what applying it disrupts
    refused: list[str] = field(default_factory=list)  # what the cloud or engine rejects: the deploy fails here
    hint: str = ""  # for a delete or create: the alias that makes it a rename
    # what the API refuses unless an operator runs the documented path first (a volume resize)
    resize: list[str] = field(default_factory=list)

    @property
    def dangerous(self) -> bool:
        return self.needs_review or (self.action in ("replace", "delete") and (self.stateful or self.protected))

    def details(self) -> list[str]:
        """The lines under the change: values, then what it disrupts, refusals and the alias hint."""
        return ([f"    {v}" for v in self.values] + [f"    ~ {n}" for n in self.notes]
                + [f"    x refused: {r}" for r in self.refused]
                + [f"    x refused unless the resize path runs first: {r}" for r in self.resize]
                + ([f"    > {self.hint}"] if self.hint else []))

    def line(self) -> str:
        marks = "".join(m for m, on in (("S", self.stateful), ("P", self.protected)) if on) or "-"
        detail = ", ".join(self.properties)
        if self.reason:
            detail = f"{self.reason}" + (f"; changed: {detail}" if detail else "")
        if self.aliased_from:
            detail = f"renamed from {self.aliased_from} (alias)" + (f"; {detail}" if detail else "")
        return f"{self.action:<8} {marks:<2} {self.urn}" + (f"  [{detail}]" if detail else "")


def _changed(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths whose values differ; maps are compared key by key, lists and secrets whole."""
    if isinstance(old, dict) and isinstance(new, dict) and not (is_secret(old) or is_secret(new)):
        found: list[str] = []
        for key in sorted(set(old) | set(new)):
            if key.startswith("__"):
                continue  # engine bookkeeping (__defaults), not a property
            found += _changed(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return found
    return [] if old == new else [path]


def _provider_urn(resource: dict) -> str:
    """The URN part of a provider reference (``<urn>::<id>``); "" for none."""
    return (resource.get("provider") or "").rsplit("::", 1)[0]


def _provider_replacement(old: dict, new: dict, before: dict, after: dict) -> str:
    """Why the resource's provider forces its replacement, or "": its provider (the same one, or
    the one it now names) differs from the old one in an input that replaces its resources."""
    old_urn, new_urn = _provider_urn(before), _provider_urn(after)
    if not old_urn or not new_urn or old_urn not in old or new_urn not in new:
        return ""
    was, now = old[old_urn], new[new_urn]
    if old_urn in now.get("aliases", []):  # the engine treats an aliased provider as the same one
        old_urn = new_urn
    keys = PROVIDER_FORCE_NEW.get(now["type"])
    if keys is None:  # a provider we do not model: the engine's DiffConfig decides; assume the worst
        return f"its provider changes ({old_urn} -> {new_urn})" if old_urn != new_urn else ""
    forced = [k for k in keys if was.get("inputs", {}).get(k) != now.get("inputs", {}).get(k)]
    if not forced:
        return ""
    name = new_urn.rsplit("::", 1)[-1]
    moves = ", ".join(f"{k} {was.get('inputs', {}).get(k)} -> {now.get('inputs', {}).get(k)}" for k in forced)
    return f"its provider {name} is {'another one' if old_urn != new_urn else 'changed'}: {moves}"


class StackMismatch(ValueError):
    """Two exports of different stacks: every resource would look deleted and created."""


def compare(old_doc: dict, new_doc: dict) -> list[Change]:
    was, now = consequences.stack_of(old_doc), consequences.stack_of(new_doc)
    if was != now:
        raise StackMismatch(f"the exports are of different stacks ({'/'.join(reversed(was))} and "
                            f"{'/'.join(reversed(now))}); compare two exports of the same stack")
    old = {r["urn"]: r for r in old_doc["deployment"]["resources"]}
    new = {r["urn"]: r for r in new_doc["deployment"]["resources"]}
    changes: list[Change] = []
    matched: set[str] = set()
    updated: dict[str, list[str]] = {}  # urn -> changed paths, for the notes that need the whole plan
    previous: dict[str, dict] = {}  # urn -> the inputs it had
    for urn, after in new.items():
        if after["type"] == "pulumi:pulumi:Stack":
            matched.add(urn)
            continue
        source = urn if urn in old else next((a for a in after.get("aliases", []) if a in old), None)
        stateful = is_stateful(after["type"])
        if source is None:
            changes.append(Change("create", urn, after["type"], stateful, bool(after.get("protect"))))
            continue
        matched.add(source)
        before = old[source]
        protected = bool(before.get("protect") or after.get("protect"))
        retained = bool(before.get("retainOnDelete"))
        stateful = stateful or retained
        inputs_before, inputs_after = before.get("inputs", {}), after.get("inputs", {})
        # the engine puts an ignored property's old value back before it diffs (pulumi/pulumi
        # step_generator.go processIgnoreChanges; the checkpoint keeps the list, apitype ResourceV3)
        ignored = after.get("ignoreChanges") or []
        changed = [path for path in _changed(inputs_before, inputs_after)
                   if not any(path == i or path.startswith(f"{i}.") for i in ignored)]
        updated[urn], previous[urn] = changed, inputs_before
        provider = new.get(_provider_urn(after), {}).get("inputs", {})
        forced = forcenew.forced_by(after["type"], changed, inputs_after, provider)
        reason = ""
        by_provider = "" if after["type"].startswith(PROVIDER_PREFIX) else _provider_replacement(
            old, new, before, after)
        if by_provider:
            reason = by_provider
        elif forced:
            reason = "forced by " + ", ".join(forced)
        elif after.get("custom") and before.get("id") and after.get("id") and before["id"] != after["id"]:
            # the export's own word: the physical resource behind the URN is another one
            reason = f"the export's id changes ({before['id']} -> {after['id']})"
        name_key = FIXED_NAME.get(after["type"])
        fixed = name_key and inputs_after.get(name_key)
        if reason and fixed and fixed == inputs_before.get(name_key) and not after["type"].startswith("kubernetes:"):
            reason += (f"; the fixed name {fixed!r} stays and the old one is retained under it, so the replacement "
                       "cannot be created (deleteBeforeReplace would not help): give it a new name and move the "
                       "data, or undo the change" if retained else
                       f"; the fixed name {fixed!r} stays, so creating the replacement first fails: "
                       "set deleteBeforeReplace or let Pulumi name it")
        values = consequences.values(after["type"], before, after, changed)
        options = _options_changed(before, after)
        values += [consequences.value_lines(o, bool(before.get(o)), bool(after.get(o)), False)[0] for o in options]
        if reason:
            changes.append(Change("replace", urn, after["type"], stateful, protected, changed, reason,
                                  source if source != urn else None, values=values,
                                  refused=[PROTECTED_REPLACE] if before.get("protect") and after.get("protect") else []))
        elif changed or source != urn or options:
            upgrade = consequences.major_upgrade(after["type"], inputs_before, inputs_after)
            unknown = (changed and after.get("custom") and not forcenew.known(after["type"])
                       and not after["type"].startswith(PROVIDER_PREFIX))
            resize, refused = _claim_template_changes(after["type"], inputs_before, inputs_after)
            changes.append(Change(
                "update", urn, after["type"], stateful, protected, changed + options,
                upgrade or ("volumeClaimTemplates change: only the resize path gets it through" if resize else ""),
                aliased_from=source if source != urn else None, needs_review=bool(upgrade or resize), values=values,
                refused=consequences.refusals(after["type"], inputs_before, inputs_after) + refused,
                resize=resize,
                notes=["this type is not in the ForceNew table (synth/forcenew.py): whether it is replaced "
                       "is the provider's call"] if unknown else []))
    for urn, before in old.items():
        if urn not in matched:
            changes.append(Change("delete", urn, before["type"],
                                  is_stateful(before["type"]) or bool(before.get("retainOnDelete")),
                                  bool(before.get("protect")),
                                  refused=[PROTECTED_DELETE] if before.get("protect") else [],
                                  notes=[RETAINED] if before.get("retainOnDelete") else []))
    _add_notes(changes, new, updated, previous)
    _pair_renames(changes, old, new)
    return sorted(changes, key=lambda c: (not c.stateful, ORDER[c.action], c.urn))


def _claim_template_changes(type_: str, before: dict, after: dict) -> tuple[list[str], list[str]]:
    """(resize path, refused) for the volumeClaimTemplates a Neo4j release renders: helm upgrades the
    StatefulSet in place, which the API server refuses. (A StatefulSet of our own is replaced by
    pulumi-kubernetes instead: consequences.replaced_claim_notes.)"""
    if type_ == consequences.RELEASE:
        return consequences.release_claim_changes(before, after)
    return [], []


def _add_notes(changes: list[Change], new: dict, updated: dict[str, list[str]], previous: dict[str, dict]) -> None:
    """What applying each update or replace disrupts; some notes need the rest of the plan (which
    servers of a cluster change, which workloads read a changed ConfigMap and also restart)."""
    def rolls(urn: str) -> bool:
        return any(p == "spec.template" or p.startswith(("spec.template.", "spec.jobTemplate."))
                   for p in updated.get(urn, []))

    releases: dict[str, list[str]] = {}
    for urn, res in new.items():
        if res["type"] == consequences.RELEASE:
            releases.setdefault(res.get("parent") or "", []).append(urn)
    for change in changes:
        if change.action not in ("update", "replace"):
            continue
        after, paths = new[change.urn], change.properties
        if change.type == consequences.RDS:
            change.notes += consequences.rds_notes(previous[change.urn], after.get("inputs", {}), paths)
        elif change.type == consequences.RELEASE:
            cluster = releases.get(after.get("parent") or "", [])
            moving = sum(1 for u in cluster if any(p.split(".", 1)[0] in ("values", "version", "chart")
                                                    for p in updated.get(u, [])))
            change.notes += consequences.release_notes(after, paths, (moving, len(cluster)))
        elif change.type == consequences.STATEFULSET:
            change.notes += consequences.statefulset_notes(after, paths)
            if change.action == "replace":
                change.notes += consequences.replaced_claim_notes(previous[change.urn], after.get("inputs", {}))
        elif change.type == consequences.CONFIGMAP:
            meta = after.get("inputs", {}).get("metadata") or {}
            readers = [(w, rolls(u)) for u, w in new.items()
                       if w["type"].startswith("kubernetes:") and (w.get("inputs", {}).get("metadata") or {}).get(
                           "namespace") == meta.get("namespace") and consequences.mounts_configmap(w, str(meta.get("name")))]
            change.notes += consequences.configmap_notes(after, paths, readers)
def _pair_renames(changes: list[Change], old: dict, new: dict) -> None:
    """A delete and a create of one type that look like one resource renamed or moved (same parent
    chain, or a similar name): suggest the alias that makes the engine treat them as the same
    resource. (A URN holds its parents' types, not their names, so a child keeping its own name
    under a renamed component keeps its URN; children named after the component need their own.)"""
    deleted = [old[c.urn] for c in changes if c.action == "delete"]
    created = [new[c.urn] for c in changes if c.action == "create"]
    pairs = consequences.pair_renames(deleted, created)
    paired = {n["urn"]: o["urn"] for o, n in pairs}
    by_urn = {c.urn: c for c in changes}
    for was, now in pairs:
        by_urn[was["urn"]].hint = f"looks renamed to {now['urn']}"
        moved_parent = bool(was.get("parent")) and paired.get(now.get("parent") or "") == was.get("parent")
        alias = consequences.alias_for(was, now, moved_parent)
        by_urn[now["urn"]].hint = (
            f"if this is {was['urn'].rsplit('::', 1)[-1]} renamed, keep it: {alias}"
            + (f", together with the alias on its parent {now['parent'].rsplit('::', 1)[-1]} (Pulumi combines "
               "a child's aliases with its parent's)" if moved_parent else ""))


# `pulumi preview --json` step ops (pulumi/pulumi pkg/display/json.go PreviewStep: op, urn,
# oldState, newState, diffReasons, replaceReasons). A replacement shows as create-replacement,
# replace and delete-replaced steps of one URN. Only with --show-replacement-steps does the JSON
# carry the delete-replaced steps (pkg/backend/display/display.go shouldShow), among them the
# delete of an old copy a failed replacement left pending: a delete-replaced step without a
# replace of its URN in the same plan deletes a physical resource, so it counts as a delete.
ENGINE_ACTIONS = {"create": "create", "update": "update", "delete": "delete", "replace": "replace",
                  "create-replacement": "replace", "delete-replaced": "replace", "same": "update"}
PENDING_DELETE = "delete-replaced"


def engine_plan(preview: dict) -> list[Change]:
    """The engine's own verdict: the same Changes, from the steps of `pulumi preview --json`."""
    steps = preview.get("steps") if isinstance(preview, dict) else None
    if not isinstance(steps, list):
        raise ValueError("no steps list; is this `pulumi preview --json` output?")
    replaced = {s.get("urn") for s in steps if s.get("op") in ("replace", "create-replacement")}
    found: dict[str, Change] = {}
    for step in steps:
        action = ENGINE_ACTIONS.get(step.get("op", ""))
        old_state, new_state = step.get("oldState") or {}, step.get("newState") or {}
        type_ = old_state.get("type") or new_state.get("type") or ""
        if action is None or type_ == "pulumi:pulumi:Stack":
            continue  # read, refresh, the stack itself
        was, now = bool(old_state.get("protect")), bool(new_state.get("protect"))
        options = _options_changed(old_state, new_state) if old_state and new_state else []
        if step.get("op") == "same" and not options:
            continue  # unchanged; a same step that flips protect or retainOnDelete is listed (an update of it)
        key, reason = step["urn"], ""
        if step.get("op") == PENDING_DELETE and step["urn"] not in replaced:
            # its own entry: the URN may also be updated (or kept) in this plan
            key, action, reason = f"{step['urn']}#{PENDING_DELETE}", "delete", \
                "a replaced copy left pending by an earlier run is deleted (delete-replaced)"
        refused = ([PROTECTED_DELETE] if action == "delete" and step.get("op") == "delete" and was else
                   [PROTECTED_REPLACE] if action == "replace" and was and now else [])
        if key in found and found[key].action == "replace":
            found[key].refused = found[key].refused or refused  # the steps of one replacement
            continue
        replace = step.get("replaceReasons") or []
        if action == "replace" and replace:
            reason = f"the engine replaces it: {', '.join(replace)}"
        found[key] = Change(
            action, step["urn"], type_,
            stateful=is_stateful(type_) or bool(old_state.get("retainOnDelete") or new_state.get("retainOnDelete")),
            protected=was or now,
            properties=options if step.get("op") == "same" else list(step.get("diffReasons") or []),
            reason=reason, refused=refused)
    return sorted(found.values(), key=lambda c: (not c.stateful, ORDER[c.action], c.urn))


def summary(changes: list[Change], approved_by: Optional[str]) -> tuple[str, int]:
    counts = {a: sum(c.action == a for c in changes) for a in ORDER}
    dangerous = [c for c in changes if c.dangerous]
    refused = [c for c in changes if c.refused]
    lines = [f"synth diff: {counts['create']} to create, {counts['update']} to update, "
             f"{counts['replace']} to replace, {counts['delete']} to delete "
             "(S stateful, P protected; stateful first; ~ what it disrupts, x what the cloud or engine refuses, "
             "> how to keep it)"]
    for c in changes:
        lines += [f"  {c.line()}", *c.details()]
    if refused:
        # no approval makes the cloud accept these: the deploy would stop at them half-way
        lines.append(f"{len(refused)} change(s) the cloud or the engine refuses; the deploy would fail there:")
        lines += [f"  x {c.urn}: {r}" for c in refused for r in c.refused]
    if not dangerous:
        lines.append("No stateful or protected resource is replaced or deleted.")
        return "\n".join(lines), EXIT_STATEFUL if refused else EXIT_OK
    lines.append(f"{len(dangerous)} stateful or protected resource(s) would be replaced, deleted or "
                 "upgraded past undoing:")
    lines += [f"  ! {c.action} {c.urn}" + (f" ({c.reason})" if c.needs_review else "") for c in dangerous]
    if approved_by:
        lines.append(f"Approved by {approved_by}: the replacements and deletions above are intended.")
        return "\n".join(lines), EXIT_STATEFUL if refused else EXIT_OK
    lines.append("Not approved. If this is intended, a reviewer other than the author approves the pull "
                 "request's head commit (cicd/approval.py; `--approved-by NAME` here); "
                 "otherwise add an alias or undo the change that forces it.")
    return "\n".join(lines), EXIT_STATEFUL


def main(argv: list[str]) -> int:
    import json

    from synth.__main__ import _read_export

    parser = argparse.ArgumentParser(prog="python -m synth diff", description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("old", type=Path, nargs="?", help="the export before the change (e.g. main's synth)")
    parser.add_argument("new", type=Path, nargs="?", help="the export after the change (e.g. the branch's synth)")
    parser.add_argument("--engine", type=Path, help="judge `pulumi preview --json` output instead of two exports")
    parser.add_argument("--approved-by", help="who approved replacing or deleting stateful resources")
    parser.add_argument("--markdown", type=Path, help="also write the summary here (a PR comment)")
    args = parser.parse_args(argv)
    if bool(args.engine) == bool(args.old and args.new) or (args.engine and args.old):
        parser.error("give OLD.json NEW.json, or --engine PREVIEW.json")
    try:
        if args.engine:
            changes, title = engine_plan(json.loads(args.engine.read_text())), f"`{args.engine}` (the engine's plan)"
        else:
            changes = compare(_read_export(args.old), _read_export(args.new))
            title = f"`{args.new}` against `{args.old}`"
    except (OSError, ValueError) as exc:
        print(f"synth diff: {exc}", file=sys.stderr)
        return EXIT_INVALID
    text, code = summary(changes, (args.approved_by or "").strip() or None)
    print(text)
    if args.markdown:
        with args.markdown.open("a") as out:
            out.write(f"### {title}\n\n```\n{text}\n```\n\n")
    return code
