#!/bin/bash
# Snapshot every Neo4j server's data volume, then keep only the newest $RETAIN scheduled snapshots
# of each. A snapshot is pruned only after the new one is ready, so a failing run never leaves a
# volume with fewer good snapshots than before. Pre-change snapshots (label kind=pre-change) are
# never pruned here.
set -euo pipefail
: "${NAMESPACE:?}" "${CLAIMS:?}" "${SNAPSHOT_CLASS:?}" "${RETAIN:?}" "${READY_TIMEOUT:=15m}"
stamp=$(date -u +%Y%m%dt%H%M%Sz)

for claim in $CLAIMS; do
  kubectl -n "$NAMESPACE" get persistentvolumeclaim "$claim" -o name >/dev/null  # fails loudly if gone
  name="$claim-$stamp"
  kubectl -n "$NAMESPACE" create -f - <<MANIFEST
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: $name
  namespace: $NAMESPACE
  labels:
    intelgraph.io/snapshot-of: $claim
    intelgraph.io/kind: scheduled
spec:
  volumeSnapshotClassName: $SNAPSHOT_CLASS
  source:
    persistentVolumeClaimName: $claim
MANIFEST
  kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.readyToUse}'=true "volumesnapshot/$name" --timeout="$READY_TIMEOUT"

  # oldest first; everything before the newest $RETAIN goes
  old=$(kubectl -n "$NAMESPACE" get volumesnapshot -l "intelgraph.io/snapshot-of=$claim,intelgraph.io/kind=scheduled" \
          -o jsonpath='{range .items[*]}{.metadata.creationTimestamp}{" "}{.metadata.name}{" "}{.status.boundVolumeSnapshotContentName}{"\n"}{end}' \
        | sort | head -n "-$RETAIN")
  while read -r _ snapshot content; do
    [ -n "${snapshot:-}" ] || continue
    # The class retains what it snapshots (a deleted namespace keeps its EBS snapshots); expiry
    # is deliberate, so flip this one content to Delete before deleting the snapshot.
    [ -n "${content:-}" ] && kubectl patch volumesnapshotcontent "$content" --type merge -p '{"spec":{"deletionPolicy":"Delete"}}'
    kubectl -n "$NAMESPACE" delete volumesnapshot "$snapshot" --wait=false
  done <<< "$old"
done
echo "snapshotted: $CLAIMS (keeping $RETAIN each)"
