#!/bin/bash
# The DR cluster's graph from the newest backup chain replicated to the DR bucket (its artifact's key
# picked by neo4j_pick_backup.sh into ARTIFACT_FILE), with Neo4j 5's own seeding: every server that
# hosts the database downloads its seed itself from S3 (Operations Manual 5.26, "Managing databases
# in a cluster": seed from URI, CloudSeedProvider; from 5.26 a differential artifact stands for the whole
# chain ending at it, found in the artifact's folder).
#
# MODE=refresh (warm mode's schedule): the database is recreated from that artifact on every allocation
#   (dbms.cluster.recreateDatabase, 5.24+: online or offline, the database's privileges kept),
#   or created from it when it does not exist, then held READ ONLY: a standby takes no writes.
#   Refused when the database is READ WRITE and holds data: a switch promoted it (the DR region is
#   active) and a refresh would replace live writes with an older backup.
# MODE=switch (the region switch): a database that is online on every allocation and holds data
#   (warm mode's refreshed copy; a refresh in flight is waited for) is promoted as it is; anything
#   else (pilot-light's fresh servers, a failed refresh) is seeded first. Promoted = READ WRITE.
#
# Credentials from the cluster's Secret mounted as a file, into cypher-shell's environment (never
# argv). Statements go to the system database through the cluster's routing address.
set -euo pipefail
: "${NEO4J_ADDRESS:?}" "${NEO4J_AUTH_FILE:?}" "${BACKUP_BUCKET:?}" "${ARTIFACT_FILE:?}" "${DATABASE:?}" \
  "${MODE:?}" "${PRIMARIES:?}" "${SECONDARIES:?}"
attempts=${WAIT_ATTEMPTS:-720} interval=${POLL_SECONDS:-10}
case "${MODE}" in refresh | switch) ;; *) echo "refusing: MODE must be refresh or switch (given: ${MODE})" >&2; exit 2 ;; esac
# the database name and the artifact's key sit inside Cypher text: plain characters only
[[ "${DATABASE}" =~ ^[a-z][a-z0-9]*$ ]] || { echo "refusing: database name '${DATABASE}' is not plain" >&2; exit 2; }
artifact=$(cat "${ARTIFACT_FILE}")
[[ "${artifact}" =~ ^[A-Za-z0-9._/:-]+\.backup$ && "${BACKUP_BUCKET}" =~ ^[a-z0-9.-]+$ ]] \
  || { echo "refusing: seed s3://${BACKUP_BUCKET}/${artifact} is not a plain backup artifact key" >&2; exit 2; }
seed="s3://${BACKUP_BUCKET}/${artifact}"
expected=$(( PRIMARIES + SECONDARIES ))
auth=$(cat "${NEO4J_AUTH_FILE}")
export NEO4J_USERNAME="${auth%%/*}" NEO4J_PASSWORD="${auth#*/}"
unset auth
started=$(date +%s)

on() {  # on DATABASE STATEMENT: the result rows, quotes removed, header dropped
  echo "$2" | cypher-shell -a "${NEO4J_ADDRESS}" -d "$1" --non-interactive --format plain | tail -n +2 | tr -d '"'
}
allocations() {  # one line per allocation: access, requested, current, last start, status message
  on system "SHOW DATABASE ${DATABASE} YIELD access, requestedStatus, currentStatus, lastStartTime, statusMessage RETURN access, requestedStatus, currentStatus, lastStartTime, statusMessage;"
}
nodes() { on "${DATABASE}" "MATCH (n) RETURN count(n) AS nodes;" | tail -n 1; }

wait_online() {  # wait_online SETTLE|SEEDED [STARTS_BEFORE]: until every allocation is online
  # SEEDED: started anew (a lastStartTime not among STARTS_BEFORE: right after the call the old
  # allocations may still report online). SETTLE: give up at once on an allocation that failed to
  # start (offline with a message, e.g. a seed that did not download), since waiting cannot help.
  local how=$1 before=${2:- } state online failed
  for _ in $(seq 1 "${attempts}"); do
    if ! state=$(allocations); then  # a leader election of the system database: ask again
      echo "the cluster does not answer yet"
      sleep "${interval}"
      continue
    fi
    online=$(awk -F', ' -v before="${before}" '$3 == "online" && index(before, " " $4 " ") == 0 { n++ } END { print n + 0 }' <<<"${state}")
    failed=$(awk -F', ' '$2 == "online" && $3 == "offline" && $5 != "" { print $5; exit }' <<<"${state}")
    if [ "${online}" -eq "${expected}" ]; then return 0; fi
    if [ "${how}" = SETTLE ] && [ -n "${failed}" ]; then echo "${DATABASE} failed to start: ${failed}"; return 1; fi
    echo "${DATABASE}: ${online} of ${expected} allocation(s) online${failed:+ (${failed})}"
    sleep "${interval}"
  done
  echo "${DATABASE} not online on ${expected} allocation(s) after ${attempts} checks"
  return 1
}

state=$(allocations)
exists=$(grep -c . <<<"${state}" || true)
access=$(head -n 1 <<<"${state}" | cut -d, -f1)
promote_as_is=""
if [ "${MODE}" = refresh ] && [ "${exists}" -gt 0 ] && [ "${access}" = read-write ]; then
  count=$(nodes || true)  # no answer: it cannot tell, so it refuses
  if ! [[ "${count}" =~ ^[0-9]+$ ]] || [ "${count}" -ne 0 ]; then
    echo "FAILED: refusing to refresh: ${DATABASE} is read-write with '${count}' nodes, so a switch promoted it" \
         "(the DR region is active); set it READ ONLY only once the primary region is the writer again"
    exit 1
  fi
  # READ ONLY before seeding: recreation keeps a database's access (it cannot change it), so a
  # switch that promotes while this refresh runs is never undone by it
  on system "ALTER DATABASE ${DATABASE} SET ACCESS READ ONLY;" >/dev/null
fi
if [ "${MODE}" = switch ] && [ "${exists}" -gt 0 ] && wait_online SETTLE; then
  count=$(nodes || true)
  if [[ "${count}" =~ ^[0-9]+$ ]] && [ "${count}" -gt 0 ]; then promote_as_is=yes; fi
fi

if [ -z "${promote_as_is}" ]; then
  echo "seeding ${DATABASE} from ${seed} on ${expected} allocation(s)"
  if [ "${exists}" -gt 0 ]; then
    before=" $(awk -F', ' '{ printf "%s ", $4 }' <<<"${state}")"
    on system "CALL dbms.cluster.recreateDatabase('${DATABASE}', {seedURI: '${seed}'});" >/dev/null
  else
    before=" "
    on system "CREATE DATABASE ${DATABASE} TOPOLOGY ${PRIMARIES} PRIMARIES ${SECONDARIES} SECONDARIES OPTIONS {existingData: 'use', seedURI: '${seed}'};" >/dev/null
    [ "${MODE}" = switch ] || on system "ALTER DATABASE ${DATABASE} SET ACCESS READ ONLY;" >/dev/null
  fi
  wait_online SEEDED "${before}" || { echo "FAILED: the seeded database did not come online"; exit 1; }
fi

[ "${MODE}" = refresh ] || on system "ALTER DATABASE ${DATABASE} SET ACCESS READ WRITE;" >/dev/null
count=$(nodes || true)
if ! [[ "${count}" =~ ^[0-9]+$ ]] || [ "${count}" -eq 0 ]; then
  echo "FAILED: ${DATABASE} has '${count}' nodes after the ${MODE}"
  exit 1
fi
if [ -n "${promote_as_is}" ]; then
  echo "ok: switch: promoted ${DATABASE} as the last refresh left it (${count} nodes); READ WRITE"
else
  echo "ok: ${MODE}: ${DATABASE} seeded from ${seed} with ${count} nodes in $(( $(date +%s) - started ))s;" \
       "$( [ "${MODE}" = refresh ] && echo "READ ONLY until a switch" || echo "READ WRITE" )"
fi
