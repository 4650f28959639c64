#!/bin/bash
# Snapshots of the Neo4j servers' data volumes, in one of two modes:
#   MODE=scheduled   every claim in $CLAIMS, each waited for until ready (its EBS snapshot
#                    completed), then keep only the newest $RETAIN of each kind (scheduled,
#                    pre-change); nothing is pruned unless the new one is ready, so a failing run
#                    never leaves a volume with fewer good snapshots than before.
#   MODE=pre-change  one server ($RELEASE) just before its release changes ($CHANGE names the
#                    change, $JOB_UID this Job): the deploy restarts the server once this exits 0.
#                    It waits until the snapshot is cut (status.creationTime: EBS takes the point
#                    in time at once and copies the blocks in the background, the volume in use),
#                    not until the copy completes, which can take hours for a first snapshot.
# Any kubectl error other than "not found" fails the run: a refused or timed-out call never
# passes for "nothing to snapshot".
set -euo pipefail
: "${NAMESPACE:?}" "${SNAPSHOT_CLASS:?}" "${READY_TIMEOUT:=15m}" "${MODE:=scheduled}"

found() {  # found KIND NAME: prints KIND/NAME when it exists, nothing when it does not; fails on any other error
  kubectl -n "$NAMESPACE" get "$1" "$2" --ignore-not-found -o name
}

snapshot() {  # snapshot NAME CLAIM KIND [CHANGE]: create NAME unless a retry of this run made it
  local name=$1 claim=$2 kind=$3 change=${4:-} existing
  existing=$(found volumesnapshot "$name")  # an assignment, not a test: a failing call stops the run (set -e)
  [ -n "$existing" ] && return 0
  kubectl -n "$NAMESPACE" create -f - <<MANIFEST
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: "$name"
  namespace: "$NAMESPACE"
  labels:
    intelgraph.io/snapshot-of: "$claim"
    intelgraph.io/kind: "$kind"${change:+
    intelgraph.io/change: \"$change\"}
spec:
  volumeSnapshotClassName: "$SNAPSHOT_CLASS"
  source:
    persistentVolumeClaimName: "$claim"
MANIFEST
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
      kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.readyToUse}'=true "volumesnapshot/$claim-$stamp" --timeout="$READY_TIMEOUT"
      expire "$claim" scheduled
      expire "$claim" pre-change
    done
    echo "snapshotted: $CLAIMS (keeping $RETAIN of each kind)"
    ;;
  pre-change)
    : "${RELEASE:?}" "${CHANGE:?}" "${JOB_UID:?}"
    claim="data-$RELEASE-0"  # the chart's claim: template "data", StatefulSet "$RELEASE", one pod
    pvc=$(found persistentvolumeclaim "$claim")  # assignments: a failing call stops the run (set -e)
    if [ -z "$pvc" ]; then
      statefulset=$(found statefulset "$RELEASE")
      if [ -n "$statefulset" ]; then
        echo "statefulset/$RELEASE exists but its data claim $claim does not: stopping before the release changes" >&2
        exit 1
      fi
      echo "no server $RELEASE yet (no statefulset, no claim $claim): nothing to snapshot before it is created"
      exit 0
    fi
    phase=$(kubectl -n "$NAMESPACE" get persistentvolumeclaim "$claim" -o jsonpath='{.status.phase}')
    if [ "$phase" != Bound ]; then  # a snapshot of an unbound claim is never cut
      echo "claim $claim is $phase, not Bound: stopping before the release changes" >&2
      exit 1
    fi
    # One snapshot per Job (its retries share the uid): a change back to earlier values is a new
    # Job and gets a snapshot of the volume as it is now, not the one taken before that change.
    name="$claim-pre-$CHANGE-${JOB_UID:0:8}"
    snapshot "$name" "$claim" pre-change "$CHANGE"
    kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.creationTime}' "volumesnapshot/$name" --timeout="$READY_TIMEOUT"
    error=$(kubectl -n "$NAMESPACE" get volumesnapshot "$name" -o jsonpath='{.status.error.message}')
    if [ -n "$error" ]; then
      echo "snapshot $name failed: $error" >&2
      exit 1
    fi
    echo "snapshotted $claim as $name before change $CHANGE"
    ;;
  *)
    echo "MODE must be scheduled or pre-change, not '$MODE'" >&2
    exit 2
    ;;
esac
