#!/bin/bash
# Snapshots of the Neo4j servers' data volumes, in one of two modes:
#   MODE=scheduled   every claim in $CLAIMS, then keep only the newest $RETAIN of each kind
#                    (scheduled, pre-change); a snapshot is pruned only after the new one is
#                    ready, so a failing run never leaves a volume with fewer good snapshots.
#   MODE=pre-change  one server ($RELEASE) just before its release changes ($CHANGE names the
#                    change): the deploy waits for this snapshot before it restarts the server.
set -euo pipefail
: "${NAMESPACE:?}" "${SNAPSHOT_CLASS:?}" "${READY_TIMEOUT:=15m}" "${MODE:=scheduled}"

snapshot() {  # snapshot NAME CLAIM KIND [CHANGE]: create NAME (unless a retry made it) and wait until ready
  local name=$1 claim=$2 kind=$3 change=${4:-}
  if ! kubectl -n "$NAMESPACE" get volumesnapshot "$name" -o name >/dev/null 2>&1; then
    kubectl -n "$NAMESPACE" create -f - <<MANIFEST
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: $name
  namespace: $NAMESPACE
  labels:
    intelgraph.io/snapshot-of: $claim
    intelgraph.io/kind: $kind${change:+
    intelgraph.io/change: $change}
spec:
  volumeSnapshotClassName: $SNAPSHOT_CLASS
  source:
    persistentVolumeClaimName: $claim
MANIFEST
  fi
  kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.readyToUse}'=true "volumesnapshot/$name" --timeout="$READY_TIMEOUT"
}

expire() {  # expire CLAIM KIND: delete all but the newest $RETAIN snapshots of CLAIM of that KIND
  local claim=$1 kind=$2 old
  old=$(kubectl -n "$NAMESPACE" get volumesnapshot -l "intelgraph.io/snapshot-of=$claim,intelgraph.io/kind=$kind" \
          -o jsonpath='{range .items[*]}{.metadata.creationTimestamp}{" "}{.metadata.name}{" "}{.status.boundVolumeSnapshotContentName}{"\n"}{end}' \
        | sort | head -n "-$RETAIN")
  while read -r _ snapshot content; do
    [ -n "${snapshot:-}" ] || continue
    # The class retains what it snapshots (a deleted namespace keeps its EBS snapshots); expiry
    # is deliberate, so flip this one content to Delete before deleting the snapshot.
    [ -n "${content:-}" ] && kubectl patch volumesnapshotcontent "$content" --type merge -p '{"spec":{"deletionPolicy":"Delete"}}'
    kubectl -n "$NAMESPACE" delete volumesnapshot "$snapshot" --wait=false
  done <<< "$old"
}

case "$MODE" in
  scheduled)
    : "${CLAIMS:?}" "${RETAIN:?}"
    stamp=$(date -u +%Y%m%dt%H%M%Sz)
    for claim in $CLAIMS; do
      kubectl -n "$NAMESPACE" get persistentvolumeclaim "$claim" -o name >/dev/null  # fails loudly if gone
      snapshot "$claim-$stamp" "$claim" scheduled
      expire "$claim" scheduled
      expire "$claim" pre-change
    done
    echo "snapshotted: $CLAIMS (keeping $RETAIN of each kind)"
    ;;
  pre-change)
    : "${RELEASE:?}" "${CHANGE:?}"
    claim="data-$RELEASE-0"  # the chart's claim: template "data", StatefulSet "$RELEASE", one pod
    if ! kubectl -n "$NAMESPACE" get persistentvolumeclaim "$claim" -o name >/dev/null 2>&1; then
      if kubectl -n "$NAMESPACE" get statefulset "$RELEASE" -o name >/dev/null 2>&1; then
        echo "statefulset/$RELEASE exists but its data claim $claim does not: stopping before the release changes" >&2
        exit 1
      fi
      echo "no server $RELEASE yet (no statefulset, no claim $claim): nothing to snapshot before it is created"
      exit 0
    fi
    snapshot "$claim-pre-$CHANGE" "$claim" pre-change "$CHANGE"
    echo "snapshotted $claim before change $CHANGE"
    ;;
  *)
    echo "MODE must be scheduled or pre-change, not '$MODE'" >&2
    exit 2
    ;;
esac
