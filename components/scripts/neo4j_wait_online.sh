#!/bin/bash
# Between two servers of a roll: wait until the server just restarted is Available and every
# database allocation on it that is requested online is online (SHOW SERVERS health; SHOW
# DATABASES requestedStatus/currentStatus per allocation, one row per hosting server, its address
# the server's Bolt advertised address). The chart's readiness probe only asks whether Bolt answers;
# a server can answer while its databases are still "starting" or catching up, and restarting the
# next server then may leave a database without a majority of online primaries.
# Credentials from the chart's Secret mounted as a file (NEO4J_AUTH_FILE: "user/password") into
# cypher-shell's environment, never argv. The Job's activeDeadlineSeconds bounds the wait.
set -euo pipefail
: "${NEO4J_ADDRESS:?}" "${SERVER_ADDRESS:?}" "${NEO4J_AUTH_FILE:?}"
if [ "${FIRST_INSTALL:-false}" = "true" ]; then
  echo "first install: the servers form the cluster on their own; nothing to wait for"
  exit 0
fi
auth=$(cat "${NEO4J_AUTH_FILE}")
export NEO4J_USERNAME="${auth%%/*}" NEO4J_PASSWORD="${auth#*/}"
unset auth

rows() {  # rows STATEMENT: the result rows of STATEMENT on the system database, quotes removed, header dropped
  echo "$1" | cypher-shell -a "$NEO4J_ADDRESS" -d system --non-interactive --format plain | tail -n +2 | tr -d '"'
}

while :; do
  if health=$(rows "SHOW SERVERS YIELD address, health WHERE address = '${SERVER_ADDRESS}' RETURN health;") \
      && allocations=$(rows "SHOW DATABASES YIELD name, address, requestedStatus, currentStatus WHERE address = '${SERVER_ADDRESS}' RETURN name, requestedStatus, currentStatus;"); then
    waiting=$(awk -F', ' '$2 == "online" && $3 != "online" { printf "%s%s (%s)", sep, $1, $3; sep = ", " }' <<<"${allocations}")
    hosted=$(grep -c . <<<"${allocations}" || true)
    if [ "${health}" = "Available" ] && [ "${hosted}" -gt 0 ] && [ -z "${waiting}" ]; then
      echo "${SERVER_ADDRESS}: Available, ${hosted} allocation(s), every one requested online is online"
      exit 0
    fi
    echo "${SERVER_ADDRESS}: health '${health}', ${hosted} allocation(s); not online yet: ${waiting:-none}"
  else
    echo "the cluster does not answer yet"
  fi
  sleep "${POLL_SECONDS:-10}"
done
