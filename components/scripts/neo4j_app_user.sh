#!/bin/bash
# Give the application its Neo4j user for this epoch. Two users take turns (APP_USER is the one of
# this epoch: app_a on even epochs, app_b on odd), so a client still holding the previous epoch's
# user and password keeps working after this Job - until the epoch after next replaces that user.
# The admin (neo4j) logs in with the password the chart reads (NEO4J_AUTH, "neo4j/<password>").
# Passwords travel in the environment (cypher-shell reads NEO4J_USERNAME/NEO4J_PASSWORD) and on
# stdin, never in argv, which `ps` shows to every process in the pod. Safe to run again: CREATE OR
# REPLACE sets the same user and password again.
set -euo pipefail
: "${NEO4J_ADDRESS:?}" "${NEO4J_AUTH:?}" "${APP_USER:?}" "${APP_PASSWORD:?}" "${APP_ROLE:?}"
attempts=${CONNECT_ATTEMPTS:-60} interval=${CONNECT_INTERVAL_SECONDS:-10}
admin_user=${NEO4J_AUTH%%/*} admin_password=${NEO4J_AUTH#*/}
case "$APP_PASSWORD" in
  *"'"* | *"\\"*) echo "refusing: the password holds a quote or backslash, which a Cypher string literal cannot carry as is" >&2; exit 2 ;;
esac
case "$APP_USER$APP_ROLE" in
  *[!A-Za-z0-9_]*) echo "refusing: user and role must be plain identifiers" >&2; exit 2 ;;
esac

shell() {  # shell USER PASSWORD < statements: against the system database, where users live
  NEO4J_USERNAME="$1" NEO4J_PASSWORD="$2" cypher-shell -a "$NEO4J_ADDRESS" -d system --non-interactive --format plain
}

# On a first install nothing waits for the servers (components/neo4j_cluster.py): wait until the
# cluster answers the admin, a bounded number of times.
for attempt in $(seq 1 "$attempts"); do
  echo "SHOW CURRENT USER YIELD user;" | shell "$admin_user" "$admin_password" >/dev/null 2>&1 && break
  if [ "$attempt" -eq "$attempts" ]; then
    echo "the cluster did not accept the admin login after $attempts attempts" >&2; exit 1
  fi
  sleep "$interval"
done
printf "CREATE OR REPLACE USER %s SET PLAINTEXT PASSWORD '%s' CHANGE NOT REQUIRED;\nGRANT ROLE %s TO %s;\n" \
  "$APP_USER" "$APP_PASSWORD" "$APP_ROLE" "$APP_USER" | shell "$admin_user" "$admin_password"
echo "SHOW CURRENT USER YIELD user;" | shell "$APP_USER" "$APP_PASSWORD" >/dev/null
echo "$APP_USER has this epoch's password and role $APP_ROLE; the other application user is untouched"
