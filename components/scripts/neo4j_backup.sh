#!/bin/bash
# Online backup of the cluster's databases (neo4j and system: the platform creates no others),
# from the first server in BACKUP_FROM (secondaries first) that completes it, straight to S3, into a chain: s3://<bucket>/<prefix>chains/<chain start date>/. Every
# CHAIN_DAYS (days since Monday 1970-01-05, UTC) a full backup starts a new chain; the runs between
# add differentials to it. A differential needs its chain's full backup, so chains are only ever
# deleted whole (neo4j_backup_prune.sh). Credentials come from the pod's IRSA role; no keys here.
: "${BACKUP_FROM:?}" "${BACKUP_BUCKET:?}" "${BACKUP_PREFIX:?}" "${CHAIN_DAYS:?}" "${INTERVAL_SECONDS:?}"
now=${NOW:-$(date -u +%s)}
scratch=${SCRATCH:-/tmp}

chain_of() {  # chain_of EPOCH: the start date of the chain EPOCH falls in
  local day=$(( $1 / 86400 ))
  date -u -d "@$(( (4 + (day - 4) / CHAIN_DAYS * CHAIN_DAYS) * 86400 ))" +%F
}

backup() {  # backup TYPE CHAIN (called under ||, where errexit is off: every status is checked)
  # One server per call, in BACKUP_FROM's order, until one succeeds. Given several --from
  # addresses and a database pattern, neo4j-admin asks every server and exits non-zero when any
  # does not answer (operations manual, "Back up an online database": multiple servers, exit
  # codes), so one server down failed every backup. Databases are named, not '*', for the same
  # reason: a name is backed up from the first listed server that has it.
  local started rc=1 server servers
  IFS=, read -r -a servers <<< "${BACKUP_FROM}"
  for server in "${servers[@]}"; do
    started=$(date +%s)
    rm -rf "${scratch}/neo4j-backup" && mkdir -p "${scratch}/neo4j-backup" || return 1
    rc=0
    neo4j-admin database backup \
      --from="${server}" \
      --to-path="s3://${BACKUP_BUCKET}/${BACKUP_PREFIX}chains/$2/" \
      --temp-path="${scratch}/neo4j-backup" \
      --type="$1" \
      --compress=true \
      neo4j system || rc=$?
    echo "$1 backup into chain $2 from ${server} $( [ "${rc}" -eq 0 ] && echo took || echo FAILED after ) $(( $(date +%s) - started ))s"
    [ "${rc}" -ne 0 ] || return 0
  done
  return "${rc}"
}

current=$(chain_of "${now}")
previous=$(chain_of $(( now - INTERVAL_SECONDS )))
failed=0
if [ "${previous}" != "${current}" ]; then
  # First run of a new chain: close the old chain with a differential (cheap, keeps the RPO),
  # then the full backup that starts the new one. Both are tried; either failing fails the job.
  backup DIFF "${previous}" || failed=1
  backup FULL "${current}" || failed=1
else
  # DIFF onto the chain's full backup, or FULL when the chain has none yet (its first run failed
  # or was skipped): neo4j-admin's AUTO (operations manual, "Back up an online database").
  backup AUTO "${current}" || failed=1
fi
exit "${failed}"
