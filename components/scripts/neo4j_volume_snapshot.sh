#!/bin/bash
# Snapshots of the Neo4j servers' data volumes, in one of two modes:
#   MODE=scheduled   a snapshot of every claim in $CLAIMS, all taken at once and then polled together
#                    until each is readyToUse (its EBS snapshot completed) or failed, within one
#                    $READY_TIMEOUT for the whole run: EBS copies a volume's first snapshot in full,
#                    which "can take several hours", later ones only the changed blocks (Amazon EBS
#                    User Guide, "Create Amazon EBS snapshots", "How Amazon EBS snapshots work"). A
#                    claim whose snapshot from an earlier run is still copying waits on that one instead
#                    of starting another full copy. A snapshot whose status.error stays set for
#                    $ERROR_GRACE seconds has failed (the snapshot controller retries, and clears the
#                    error on success: external-snapshotter VolumeSnapshotStatus.error). Each claim whose
#                    new snapshot is ready keeps only the newest $RETAIN ready ones of each kind
#                    (scheduled, pre-change); a claim whose snapshot failed or is still copying prunes
#                    nothing, so it never has fewer good snapshots than before. The run fails (exit 1,
#                    naming each claim) when any claim has no new ready snapshot, after the others are done.
#   MODE=pre-change  one server ($RELEASE) just before its release changes ($CHANGE names the
#                    change, $JOB_UID this Job): the deploy restarts the server once this exits 0.
#                    It waits until the snapshot is cut (status.creationTime: EBS takes the point
#                    in time at once and copies the blocks in the background, the volume in use),
#                    not until the copy completes, which can take hours for a first snapshot.
# Any kubectl error other than "not found" fails the run: a refused or timed-out call never
# passes for "nothing to snapshot".
set -euo pipefail
: "${NAMESPACE:?}" "${SNAPSHOT_CLASS:?}" "${READY_TIMEOUT:=15m}" "${MODE:=scheduled}"
: "${POLL_SECONDS:=30}" "${ERROR_GRACE:=300}"

seconds() {  # seconds 15m|5h|90s|90: the duration in seconds
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}

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

ready_of() {  # ready_of CLAIM KIND: "creationTimestamp|name|readyToUse|content" of each snapshot, oldest first
  kubectl -n "$NAMESPACE" get volumesnapshot -l "intelgraph.io/snapshot-of=$1,intelgraph.io/kind=$2" \
    -o jsonpath='{range .items[*]}{.metadata.creationTimestamp}{"|"}{.metadata.name}{"|"}{.status.readyToUse}{"|"}{.status.boundVolumeSnapshotContentName}{"\n"}{end}' \
    | sort
}

expire() {  # expire CLAIM KIND: delete all but the newest $RETAIN ready snapshots of CLAIM of that KIND
  local claim=$1 kind=$2 listing old
  listing=$(ready_of "$claim" "$kind")  # an assignment: a failing call stops the run (set -e)
  # only ready snapshots count and go: one still copying (or failed) is neither kept in their place
  # nor deleted here
  old=$(grep '^[^|]*|[^|]*|true|' <<< "$listing" | head -n "-$RETAIN" || true)
  while IFS='|' read -r _ snapshot _ content; do
    [ -n "${snapshot:-}" ] || continue
    # The class retains what it snapshots (a deleted namespace keeps its EBS snapshots); expiry
    # is deliberate, so flip this one content to Delete before deleting the snapshot.
    [ -n "${content:-}" ] && kubectl patch volumesnapshotcontent "$content" --type merge -p '{"spec":{"deletionPolicy":"Delete"}}'
    kubectl -n "$NAMESPACE" delete volumesnapshot "$snapshot" --wait=false
  done <<< "$old"
}

await_all() {  # await_all FIELD NAME...: poll the snapshots together until .status.FIELD is set
  # (readyToUse: true) or status.error has stayed set for $ERROR_GRACE s; sets failed=(names)
  local field=$1 name status value error now deadline
  shift
  local pending=("$@") still
  local -A erred_since=()
  failed=()
  deadline=$(( $(date +%s) + $(seconds "$READY_TIMEOUT") ))
  while [ "${#pending[@]}" -gt 0 ]; do
    still=()
    for name in "${pending[@]}"; do
      status=$(kubectl -n "$NAMESPACE" get volumesnapshot "$name" -o jsonpath="{.status.$field}{\"|\"}{.status.error.message}")
      value=${status%%|*} error=${status#*|} now=$(date +%s)
      if [ -n "$error" ]; then
        : "${erred_since[$name]:=$now}"
        if (( now - erred_since[$name] >= ERROR_GRACE )); then
          echo "snapshot $name failed: $error" >&2
          failed+=("$name")
        else
          still+=("$name")
        fi
        continue
      fi
      unset "erred_since[$name]"  # the controller retried and the error cleared
      if [ "$value" = true ] || { [ "$field" = creationTime ] && [ -n "$value" ]; }; then
        echo "snapshot $name: $field"
      else
        still+=("$name")
      fi
    done
    pending=(${still[@]+"${still[@]}"})
    [ "${#pending[@]}" -gt 0 ] || break
    if (( $(date +%s) >= deadline )); then
      for name in "${pending[@]}"; do
        echo "snapshot $name: timed out after $READY_TIMEOUT waiting for $field (EBS may still be copying)" >&2
        failed+=("$name")
      done
      break
    fi
    sleep "$POLL_SECONDS"
  done
}

case "$MODE" in
  scheduled)
    : "${CLAIMS:?}" "${RETAIN:?}"
    stamp=$(date -u +%Y%m%dt%H%M%Sz)
    declare -A awaited=()
    for claim in $CLAIMS; do
      kubectl -n "$NAMESPACE" get persistentvolumeclaim "$claim" -o name >/dev/null  # fails loudly if gone
      listing=$(ready_of "$claim" scheduled)
      # the newest snapshot of an earlier run still copying (not ready, no error): wait on it
      # rather than start a second full copy
      copying=""
      while IFS='|' read -r _ name ready _; do
        { [ -n "$name" ] && [ "$ready" != true ]; } || continue
        status=$(kubectl -n "$NAMESPACE" get volumesnapshot "$name" -o jsonpath='{.status.error.message}')
        [ -n "$status" ] || copying=$name
      done <<< "$listing"
      if [ -n "$copying" ]; then
        echo "$claim: $copying of an earlier run is still copying; waiting on it instead of a new one"
        awaited[$claim]=$copying
      else
        snapshot "$claim-$stamp" "$claim" scheduled
        awaited[$claim]=$claim-$stamp
      fi
    done
    names=()
    for claim in $CLAIMS; do names+=("${awaited[$claim]}"); done
    await_all readyToUse "${names[@]}"
    lost=()
    for claim in $CLAIMS; do
      if [[ " ${failed[*]} " == *" ${awaited[$claim]} "* ]]; then
        lost+=("$claim")  # nothing of its pruned: it has no new good snapshot
      else
        expire "$claim" scheduled
        expire "$claim" pre-change
      fi
    done
    if [ "${#lost[@]}" -gt 0 ]; then
      echo "no new ready snapshot of: ${lost[*]}" >&2
      exit 1
    fi
    echo "snapshotted: $CLAIMS (keeping $RETAIN ready ones of each kind)"
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
    await_all creationTime "$name"
    [ "${#failed[@]}" -eq 0 ] || exit 1
    echo "snapshotted $claim as $name before change $CHANGE"
    ;;
  *)
    echo "MODE must be scheduled or pre-change, not '$MODE'" >&2
    exit 2
    ;;
esac
