"""What a planned change shows and does, for the reviewer of `synth diff`: the old and new values
(never a secret's), what the change disrupts while it is applied, what AWS refuses outright, and
how to keep a renamed resource (the alias to add). Each rule names the behaviour it follows."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Mapping

import yaml

SIG_KEY = "4dabf18193072939515e22adb298388d"  # Pulumi's secret signature in state and exports
ARROW = "→"
RDS = "aws:rds/instance:Instance"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_SECRET = "kubernetes:core/v1:Secret"
_INLINE = 100  # a value longer than this (as one line) is shown as changed lines


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SIG_KEY in value


def holds_secret(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_secret(v) for v in value)
    return False


def secret_names(*resources: Mapping) -> set[str]:
    """Top-level properties a resource declares secret (``additionalSecretOutputs``, kept in the
    checkpoint and in `pulumi stack export`)."""
    return {n for r in resources for n in (r.get("additionalSecretOutputs") or [])}


def _get(tree: Any, path: str) -> Any:
    """The value at a dotted path as `diff._changed` builds them (keys may hold dots themselves,
    e.g. annotation names: take the longest key that matches)."""
    node, rest = tree, path
    while rest:
        if not isinstance(node, dict):
            return None
        key = next((k for k in sorted(node, key=len, reverse=True) if rest == k or rest.startswith(k + ".")), None)
        if key is None:
            return None
        node, rest = node[key], rest[len(key) + 1:]
    return node


def _inline(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, sort_keys=True)


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False).splitlines()


def value_lines(path: str, before: Any, after: Any, masked: bool) -> list[str]:
    """`path: old → new`, or for a rendered document (a multi-line string such as redis.conf, or a
    long structure) the lines that changed, unified-diff style. A masked value shows no value."""
    if masked or holds_secret(before) or holds_secret(after):
        return [f"{path}: (secret, changed; value not shown)"]
    old, new = _inline(before), _inline(after)
    multiline = any(isinstance(v, str) and "\n" in v for v in (before, after))
    if not multiline and len(old) + len(new) <= 2 * _INLINE:
        return [f"{path}: {old} {ARROW} {new}"]
    changed = [line for line in difflib.unified_diff(_lines(before), _lines(after), lineterm="", n=0)
               if not line.startswith(("---", "+++", "@@"))]
    return [f"{path}: changed lines"] + [f"  {line}" for line in changed]


def values(type_: str, before: Mapping, after: Mapping, paths: list[str]) -> list[str]:
    """Old → new for each changed input path. Masked: a property the resource lists as secret,
    a value wrapped as a Pulumi secret on either side, and a Kubernetes Secret's data (the
    provider marks it secret whatever the program passed)."""
    hidden = secret_names(before, after)
    if type_ == K8S_SECRET:
        hidden |= {"data", "stringData"}
    shown: list[str] = []
    for path in paths:
        masked = path.split(".", 1)[0] in hidden
        shown += value_lines(path, _get(before.get("inputs", {}), path), _get(after.get("inputs", {}), path), masked)
    return shown


# ---------------------------------------------------------------------------------------------
# What AWS refuses


def _version(text: Any) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(text or "")))


def rds_refusals(before: Mapping, after: Mapping) -> list[str]:
    """Changes ModifyDBInstance rejects, so the deploy fails at this resource:
    * storage cannot shrink (RDS User Guide, "Increasing DB instance storage capacity": you can't
      reduce the allocated storage). With storage autoscaling on (maxAllocatedStorage above the
      new value) the provider ignores a lower value instead (terraform-provider-aws
      rds/instance.go, allocated_storage DiffSuppressFunc), so that is no refusal;
    * no engine downgrade: RDS upgrades only (ModifyDBInstance EngineVersion; the way back is a
      restore of the pre-upgrade snapshot);
    * a major upgrade needs AllowMajorVersionUpgrade (ModifyDBInstance: "Major version upgrades
      must be allowed when specifying a value for the EngineVersion parameter that is a different
      major version")."""
    refused: list[str] = []
    old_gb, new_gb = before.get("allocatedStorage"), after.get("allocatedStorage")
    autoscaling = (after.get("maxAllocatedStorage") or 0) > (new_gb or 0)
    if isinstance(old_gb, (int, float)) and isinstance(new_gb, (int, float)) and new_gb < old_gb and not autoscaling:
        refused.append(f"allocatedStorage {old_gb} {ARROW} {new_gb} GiB: RDS cannot shrink storage; "
                       "the way to less storage is a new instance loaded from a dump")
    old_v, new_v = _version(before.get("engineVersion")), _version(after.get("engineVersion"))
    common = min(len(old_v), len(new_v))
    if common and new_v[:common] < old_v[:common]:
        refused.append(f"engineVersion {before.get('engineVersion')} {ARROW} {after.get('engineVersion')} is a "
                       "downgrade: RDS has none (the way back is a restore of the snapshot taken before the upgrade)")
    elif common and new_v[0] != old_v[0] and after.get("allowMajorVersionUpgrade") is not True:
        # The program sets allowMajorVersionUpgrade only for a declared upgrade (settings: postgres.majorUpgrade),
        # which the runbook prepares: preconditions, then the manual snapshot that is the way back.
        refused.append(f"engineVersion {before.get('engineVersion')} {ARROW} {after.get('engineVersion')} is a major "
                       "upgrade without allowMajorVersionUpgrade: RDS refuses it. Declare it: run `python -m "
                       "ops.pg_major_upgrade --outputs outputs.json --target-version "
                       f"{after.get('engineVersion')}` (outputs.json from `pulumi stack output --json`; it checks the "
                       "preconditions and takes the manual snapshot), then set intelgraph-platform:postgres.majorUpgrade "
                       "{fromVersion, snapshotIdentifier} as it prints")
    return refused


def refusals(type_: str, before: Mapping, after: Mapping) -> list[str]:
    return rds_refusals(before, after) if type_ == RDS else []


RESIZE_RUNBOOK = "docs/runbooks.md, 'Growing a Neo4j volume'"
# Kubernetes, pkg/apis/apps/validation/validation.go ValidateStatefulSetUpdate (as of commit 2dd1588c;
# the list of mutable fields grew over releases, volumeClaimTemplates never joined it): "updates to statefulset
# spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy',
# 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".
STS_FORBIDDEN = ("Kubernetes forbids updating a StatefulSet's volumeClaimTemplates (apps/v1 validation: only "
                 "replicas, ordinals, template, updateStrategy, persistentVolumeClaimRetentionPolicy and "
                 "minReadySeconds may change)")


def claim_templates(inputs: Mapping) -> dict[str, Mapping]:
    spec = inputs.get("spec") or {}
    return {str((t.get("metadata") or {}).get("name")): t for t in spec.get("volumeClaimTemplates") or []}


def _storage(template: Mapping) -> Any:
    return (((template.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")


def _without_storage(template: Mapping) -> Any:
    copy = json.loads(json.dumps(template))
    (((copy.get("spec") or {}).get("resources") or {}).get("requests") or {}).pop("storage", None)
    return copy


def _bytes(quantity: Any) -> float | None:
    from settings import quantity_value  # the one parser of Kubernetes quantities

    try:
        return quantity_value(str(quantity))
    except ValueError:
        return None


def claim_template_refusals(before: Mapping[str, Mapping], after: Mapping[str, Mapping],
                            where: str) -> tuple[list[str], list[str]]:
    """A change of a StatefulSet's volumeClaimTemplates, ``where`` naming the StatefulSet when a chart
    renders it: (what only the resize path gets through, what nothing gets through). The API server
    refuses the update either way (STS_FORBIDDEN); growing a claim's storage is possible by
    expanding each PVC (on a StorageClass with allowVolumeExpansion) and re-creating the StatefulSet
    without its pods (--cascade=orphan) - the runbook. A smaller request is refused for PVCs too
    ("field can not be less than previous value", ValidatePersistentVolumeClaimUpdate), and any other
    change would leave the existing claims as they are while the template says otherwise."""
    resize: list[str] = []
    refused: list[str] = []
    if before == after:
        return resize, refused
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        label = f"{where}volumeClaimTemplates {name}"
        if old is None or new is None:
            refused.append(f"{label} {'added' if old is None else 'removed'}: {STS_FORBIDDEN}; existing pods keep "
                           "the claims they have")
            continue
        if _without_storage(old) != _without_storage(new):
            refused.append(f"{label} changes more than its storage request: {STS_FORBIDDEN}, and the existing "
                           "claims keep their class and modes; move the data to new volumes instead")
            continue
        size_old, size_new = _bytes(_storage(old)), _bytes(_storage(new))
        if size_old is not None and size_new is not None and size_new < size_old:
            refused.append(f"{label} storage {_storage(old)} {ARROW} {_storage(new)}: a volume cannot shrink "
                           "(PersistentVolumeClaim validation: 'field can not be less than previous value')")
        else:
            resize.append(f"{label} storage {_storage(old)} {ARROW} {_storage(new)}: {STS_FORBIDDEN}, so the "
                          f"deploy fails unless the resize path runs first ({RESIZE_RUNBOOK}): expand each "
                          "PVC, then delete the StatefulSet with --cascade=orphan")
    return resize, refused


def replaced_claim_notes(before: Mapping, after: Mapping) -> list[str]:
    """pulumi-kubernetes replaces a StatefulSet whose volumeClaimTemplates change (synth/forcenew.py):
    its pods are deleted with it, and the claims they had stay as they are - a claim template is used
    only for a claim that does not exist yet (Kubernetes docs, "StatefulSets": stable storage)."""
    old, new = claim_templates(before), claim_templates(after)
    if old == new:
        return []
    return [f"volumeClaimTemplates change: the replacement deletes every pod at once, and the existing claims "
            f"keep their size and class (a template makes only new claims); to grow them, {RESIZE_RUNBOOK}"]


def release_claim_templates(inputs: Mapping) -> dict[str, dict[str, Mapping]]:
    """The volumeClaimTemplates of every StatefulSet a Neo4j release renders (real helm and chart:
    the chart builds them from any of its `volumes` values), by StatefulSet name."""
    from synth import helm

    rendered = helm.render(str(inputs.get("name")), str(inputs.get("namespace")), str(inputs.get("chart")),
                           dict(inputs.get("values") or {}))
    return {str(d["metadata"]["name"]): claim_templates(d) for d in rendered if d.get("kind") == "StatefulSet"}


def release_claim_changes(before: Mapping, after: Mapping) -> tuple[list[str], list[str]]:
    """claim_template_refusals for the StatefulSets a Neo4j release renders before and after."""
    if not _release_is_neo4j(after) or (before.get("values"), before.get("version")) == (
            after.get("values"), after.get("version")):
        return [], []
    from synth.helm import HelmError

    try:
        old, new = release_claim_templates(before), release_claim_templates(after)
    except HelmError as exc:  # the values the chart refuses are synth check's to report
        return [f"cannot render the release to compare its volumeClaimTemplates ({exc}): review by hand"], []
    resize: list[str] = []
    refused: list[str] = []
    for name in sorted(set(old) & set(new)):
        more = claim_template_refusals(old[name], new[name], f"rendered StatefulSet {name}: ")
        resize += more[0]
        refused += more[1]
    return resize, refused


def major_upgrade(type_: str, before: Mapping, after: Mapping) -> str:
    """RDS upgrades a major version in place, but no API takes it back down: needs a review."""
    if type_ != RDS:
        return ""
    old_v, new_v = _version(before.get("engineVersion")), _version(after.get("engineVersion"))
    if old_v and new_v and new_v[0] > old_v[0]:
        return f"major engine upgrade {old_v[0]} -> {new_v[0]}"
    return ""


# ---------------------------------------------------------------------------------------------
# What a change disrupts

# ModifyDBInstance (RDS API Reference) and the User Guide's "Settings for DB instances" table:
# what each setting does to a running instance. Settings not listed cause no outage.
RDS_OUTAGE = {
    "instanceClass": "an outage while the instance class changes",
    "engineVersion": "an outage: the engine restarts on the new version (Multi-AZ does not help: both "
                     "the primary and the standby are upgraded together)",
    "caCertIdentifier": "the instance may restart to load the new certificate",
    "identifier": "a rename: the instance reboots and its endpoint's DNS name changes (clients using the "
                  "old name fail) (ModifyDBInstance NewDBInstanceIdentifier)",
}
# Settings whose change waits for the maintenance window unless applyImmediately is set.
RDS_DEFERRED = {"instanceClass", "engineVersion", "allocatedStorage", "storageType", "iops", "storageThroughput",
                "multiAz", "caCertIdentifier", "identifier", "backupRetentionPeriod", "maxAllocatedStorage",
                "licenseModel", "networkType"}


def rds_notes(before: Mapping, after: Mapping, changed: list[str]) -> list[str]:
    notes: list[str] = []
    tops = {p.split(".", 1)[0] for p in changed}
    single_az = after.get("multiAz") is not True
    for key in sorted(tops & set(RDS_OUTAGE)):
        note = RDS_OUTAGE[key]
        if key == "instanceClass":
            note += (" (single-AZ: the database is down for all of it)" if single_az else
                     " (Multi-AZ: the standby is changed first, then a failover)")
        notes.append(f"{key}: {note}")
    old_keep, new_keep = before.get("backupRetentionPeriod"), after.get("backupRetentionPeriod")
    if "backupRetentionPeriod" in tops and (old_keep == 0) != (new_keep == 0):
        notes.append("backupRetentionPeriod: turning automated backups on or off causes an outage")
    if "port" in tops:
        notes.append("port: the instance reboots at once, whatever applyImmediately says")
    if "parameterGroupName" in tops:
        notes.append("parameterGroupName: static parameters take effect only after a reboot (pending-reboot)")
    deferred = sorted(tops & RDS_DEFERRED)
    if "replicateSourceDb" in tops and not after.get("replicateSourceDb"):
        # terraform-provider-aws internal/service/rds/instance.go resourceInstanceUpdate: an emptied
        # replicate_source_db is PromoteReadReplica, which carries the backup retention and window
        # itself (so they are not deferred); RDS User Guide, "Promoting a read replica to be a
        # standalone DB instance": the replica reboots, stops replicating for good, writes from then on
        notes.append("replicateSourceDb: removed - the replica is promoted (PromoteReadReplica, with "
                     "backupRetentionPeriod and backupWindow): it reboots, never replicates again, and writes")
        deferred = [k for k in deferred if k != "backupRetentionPeriod"]
    if deferred:
        when = ("applied at once (applyImmediately: true)" if after.get("applyImmediately") is True else
                f"applied in the next maintenance window ({after.get('maintenanceWindow') or 'AWS-chosen'}); "
                "applyImmediately is false, so the plan ends before the change happens")
        notes.append(f"{', '.join(deferred)}: {when}")
    return notes


def _release_is_neo4j(inputs: Mapping) -> bool:
    repo = str((inputs.get("repositoryOpts") or {}).get("repo") or "")
    return inputs.get("chart") == "neo4j" or "helm.neo4j.com" in repo


def release_notes(after: Mapping, changed: list[str], siblings: tuple[int, int]) -> list[str]:
    """A Neo4j 5 server is one Helm release (docs/decisions/001): `helm upgrade` re-renders its
    StatefulSet, and values that reach the pod template (config, memory, image, chart version)
    restart that server. ``siblings`` is (releases of the same cluster changed, all of them)."""
    inputs = after.get("inputs", {})
    if not _release_is_neo4j(inputs) or not any(p.split(".", 1)[0] in ("values", "version", "chart") for p in changed):
        return []
    changed_count, total = siblings
    scope = (f"every Neo4j server of this cluster ({changed_count} of {total}) restarts" if changed_count == total
             else f"{changed_count} of {total} Neo4j servers of this cluster restart")
    order = ("all at once (skipAwait: no release waits for its server): the cluster loses quorum"
             if inputs.get("skipAwait") is True else
             "a rolling restart, one server at a time: each release waits for its server to be ready before "
             "the next one in the dependsOn chain upgrades")
    return [f"helm upgrade restarts this Neo4j server when the values reach its pod template; {scope}, {order}"]


def _template_volumes(workload: Mapping) -> list[Mapping]:
    spec = (workload.get("inputs", {}).get("spec") or {})
    template = spec.get("jobTemplate", {}).get("spec", spec) if "jobTemplate" in spec else spec
    return ((template.get("template") or {}).get("spec") or {}).get("volumes") or []


def mounts_configmap(workload: Mapping, name: str) -> bool:
    for volume in _template_volumes(workload):
        if (volume.get("configMap") or {}).get("name") == name:
            return True
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("configMap") or {}).get("name") == name:
                return True
    return False


def _images(workload: Mapping) -> list[str]:
    spec = ((workload.get("inputs", {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return [str(c.get("image", "")) for c in spec.get("containers") or []]


def statefulset_notes(after: Mapping, changed: list[str]) -> list[str]:
    """A StatefulSet whose pod template changes replaces its pods one at a time, highest ordinal
    first (Kubernetes docs, "StatefulSets": RollingUpdate; OnDelete waits for a manual delete).
    A pod without a volume claim template keeps nothing across the restart: Redis without
    persistence comes back with an empty cache."""
    if not any(p == "spec.template" or p.startswith("spec.template.") for p in changed):
        return []
    spec = after.get("inputs", {}).get("spec") or {}
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return ["pod template changes, but updateStrategy OnDelete: pods keep the old one until deleted by hand"]
    note = "pod template changes: every pod restarts, one at a time (RollingUpdate, highest ordinal first)"
    if not spec.get("volumeClaimTemplates"):
        redis = any("redis" in image.rsplit("/", 1)[-1] for image in _images(after))
        note += ("; Redis without persistence (no volume claim template) restarts with an empty cache: its "
                 "keys are lost and clients miss until it warms up" if redis else
                 "; no volume claim template, so each pod restarts empty")
    return [note]


def configmap_notes(after: Mapping, changed: list[str], workloads: list[tuple[Mapping, bool]]) -> list[str]:
    """A ConfigMap is read when a pod starts (a subPath mount never sees an update: Kubernetes
    docs, "ConfigMaps"). ``workloads``: (workload that mounts it, whether its pod template also
    changes in this plan)."""
    if not any(p.split(".", 1)[0] in ("data", "binaryData") for p in changed):
        return []
    if not workloads:
        return []
    restarting = [w for w, rolls in workloads if rolls]
    stale = [w for w, rolls in workloads if not rolls]
    notes = []
    if restarting:
        notes.append("read at pod start: " + ", ".join(_name(w) for w in restarting) +
                     " restart(s) with it in this plan (their pod template changes too)")
    if stale:
        notes.append("read at pod start, and nothing restarts " + ", ".join(_name(w) for w in stale) +
                     ": they keep the old configuration until their pods restart")
    return notes


def _name(resource: Mapping) -> str:
    return f"{resource['type'].rsplit(':', 1)[-1]} {resource['urn'].rsplit('::', 1)[-1]}"


# ---------------------------------------------------------------------------------------------
# Stack identity and renames


def stack_of(document: Mapping) -> tuple[str, str]:
    """(stack, project) of an export, from its URNs (urn:pulumi:<stack>::<project>::...)."""
    for entry in document["deployment"]["resources"]:
        parts = entry["urn"].split("::")
        if len(parts) >= 4 and parts[0].startswith("urn:pulumi:"):
            return parts[0].removeprefix("urn:pulumi:"), parts[1]
    return "", ""


def urn_parts(urn: str) -> tuple[str, str]:
    """(qualified type: parent types $ type, name) of a URN."""
    parts = urn.split("::")
    return parts[2], "::".join(parts[3:])


def alias_for(old: Mapping, new: Mapping, parent_aliased: bool = False) -> str:
    """The `pulumi.Alias(...)` that makes the new resource the old one (Pulumi docs, "aliases"):
    the old name, and the old parent when the parent changed (unless the parent carries its own
    alias, which the child's combines with)."""
    old_name, new_name = urn_parts(old["urn"])[1], urn_parts(new["urn"])[1]
    args = [f'name="{old_name}"'] if old_name != new_name else []
    if (old.get("parent") or "") != (new.get("parent") or "") and not parent_aliased:
        args.append(f'parent="{old["parent"]}"' if old.get("parent") else "parent=pulumi.ROOT_STACK_RESOURCE")
    return f"opts=pulumi.ResourceOptions(aliases=[pulumi.Alias({', '.join(args)})])"


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def pair_renames(deleted: list[Mapping], created: list[Mapping]) -> list[tuple[Mapping, Mapping]]:
    """Pairs (old, new) of one type that look like one resource renamed or moved: the same parent
    chain and a similar name (or the only one of its kind on both sides), the same name under
    another parent, or a similar name under a similar parent. Best match first; each resource
    pairs at most once."""
    def chains(found: list[Mapping]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in found:
            counts[urn_parts(r["urn"])[0]] = counts.get(urn_parts(r["urn"])[0], 0) + 1
        return counts

    gone, come = chains(deleted), chains(created)
    scored: list[tuple[float, int, int]] = []
    for i, old in enumerate(deleted):
        old_qualified, old_name = urn_parts(old["urn"])
        for j, new in enumerate(created):
            if new["type"] != old["type"]:
                continue
            new_qualified, new_name = urn_parts(new["urn"])
            name = similarity(old_name, new_name)
            same_chain = old_qualified == new_qualified
            # the only one of its kind to go and to come, or one name inside the other
            alone = same_chain and gone[old_qualified] == come[new_qualified] == 1
            contains = old_name in new_name or new_name in old_name
            if (same_chain and (name >= 0.5 or alone or contains)) or name == 1.0 or (name >= 0.6 and similarity(
                    old.get("parent") or "", new.get("parent") or "") >= 0.6):
                scored.append((name + same_chain + alone, i, j))
    pairs, used_old, used_new = [], set(), set()
    for _, i, j in sorted(scored, reverse=True):
        if i not in used_old and j not in used_new:
            pairs.append((deleted[i], created[j]))
            used_old.add(i)
            used_new.add(j)
    return pairs
