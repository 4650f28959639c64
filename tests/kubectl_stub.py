"""A fake ``kubectl`` for ops.preflight's tests: serves JSON objects of fake clusters and refuses
anything but the read-only calls preflight is allowed to make.

Run as ``kubectl`` (tests/test_preflight.py puts a wrapper on PATH). Environment:
KUBECTL_STUB_CLUSTERS, a JSON file {"<context>": [object, ...]}; KUBECTL_STUB_LOG, a file each call's
argv is appended to (one JSON line). Answers as kubectl does: the object, a List, ``Error from
server (NotFound)`` for a missing object, ``the server doesn't have a resource type`` for a kind
whose CRD the cluster lacks, and ``context ... does not exist`` for an unknown context.
"""

from __future__ import annotations

import json
import os
import sys

# resource as preflight names it -> (kind, namespaced, CRD that serves it or None for built-ins)
RESOURCES = {
    "customresourcedefinitions.apiextensions.k8s.io": ("CustomResourceDefinition", False, None),
    "deployments.apps": ("Deployment", True, None),
    "daemonsets.apps": ("DaemonSet", True, None),
    "configmaps": ("ConfigMap", True, None),
    "secrets": ("Secret", True, None),
    "serviceaccounts": ("ServiceAccount", True, None),
    "services": ("Service", True, None),
    "namespaces": ("Namespace", False, None),
    "ingressclasses.networking.k8s.io": ("IngressClass", False, None),
    "csidrivers.storage.k8s.io": ("CSIDriver", False, None),
    "storageclasses.storage.k8s.io": ("StorageClass", False, None),
    "volumesnapshotclasses.snapshot.storage.k8s.io": ("VolumeSnapshotClass", False,
                                                      "volumesnapshotclasses.snapshot.storage.k8s.io"),
    "prometheuses.monitoring.coreos.com": ("Prometheus", True, "prometheuses.monitoring.coreos.com"),
    "alertmanagers.monitoring.coreos.com": ("Alertmanager", True, "alertmanagers.monitoring.coreos.com"),
}


def refuse(message: str) -> None:
    """A call preflight must never make: the test sees exit 3 as a failed check and the log."""
    print(f"kubectl stub: {message}", file=sys.stderr)
    sys.exit(3)


def main(argv: list[str]) -> int:
    with open(os.environ["KUBECTL_STUB_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    clusters = json.load(open(os.environ["KUBECTL_STUB_CLUSTERS"]))
    if len(argv) < 2 or argv[0] != "--context":
        refuse(f"the cluster must be named first with --context (got {argv[:2]})")
    context, rest = argv[1], argv[2:]
    if not rest or rest[0] != "get":
        refuse(f"only `get` is allowed (read-only), got {rest[:1]}")
    if rest[-3:] != ["-o", "json", "--request-timeout=30s"]:
        refuse(f"expected `-o json --request-timeout=30s` last, got {rest[-3:]}")
    words = rest[1:-3]
    resource, words = words[0], words[1:]
    name = words.pop(0) if words and not words[0].startswith("-") else None
    namespace, everywhere = None, False
    if words[:1] == ["-n"] and len(words) == 2:
        namespace = words[1]
    elif words == ["--all-namespaces"] and name is None:
        everywhere = True
    elif words:
        refuse(f"unexpected arguments {words}")
    if context not in clusters:
        print(f'error: context "{context}" does not exist', file=sys.stderr)
        return 1
    objects = clusters[context]
    if resource not in RESOURCES:
        refuse(f"preflight reads {resource!r}, which this stub does not serve")
    kind, namespaced, crd = RESOURCES[resource]
    if crd and not any(o["kind"] == "CustomResourceDefinition" and o["metadata"]["name"] == crd for o in objects):
        print(f'error: the server doesn\'t have a resource type "{resource.split(".")[0]}"', file=sys.stderr)
        return 1
    if namespaced and not (namespace or everywhere):
        refuse(f"{resource} is namespaced: say -n or --all-namespaces")
    if not namespaced and namespace:
        refuse(f"{resource} is not namespaced")
    found = [o for o in objects if o["kind"] == kind
             and (not namespace or o["metadata"].get("namespace") == namespace)
             and (name is None or o["metadata"]["name"] == name)]
    if name is None:
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": found}))
        return 0
    if not found:
        print(f'Error from server (NotFound): {resource} "{name}" not found', file=sys.stderr)
        return 1
    print(json.dumps(found[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
