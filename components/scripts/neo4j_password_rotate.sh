#!/bin/bash
# Change the Neo4j admin password from the previous epoch's to the current one, before the Secret
# that every client of the cluster reads flips to it (the chart reads NEO4J_AUTH
# only to set the *initial* password: once the system database exists, only ALTER USER changes
# it). Safe to run again: when the new password already works there is nothing to do.
# Passwords travel in the environment (cypher-shell reads NEO4J_PASSWORD) and on stdin, never in
# argv, which `ps` shows to every process in the pod.
set -euo pipefail
: "${NEO4J_ADDRESS:?}" "${NEO4J_USERNAME:?}" "${OLD_PASSWORD:?}" "${NEW_PASSWORD:?}"
case "$OLD_PASSWORD$NEW_PASSWORD" in
  *"'"* | *"\\"*) echo "refusing: a password holds a quote or backslash, which a Cypher string literal cannot carry as is" >&2; exit 2 ;;
esac

shell() {  # shell PASSWORD < statements: against the system database, where users live
  NEO4J_PASSWORD="$1" cypher-shell -a "$NEO4J_ADDRESS" -d system --non-interactive --format plain
}

if echo "SHOW CURRENT USER YIELD user;" | shell "$NEW_PASSWORD" >/dev/null 2>&1; then
  echo "the new password already works for $NEO4J_USERNAME: nothing to change"
  exit 0
fi
printf "ALTER CURRENT USER SET PASSWORD FROM '%s' TO '%s';\n" "$OLD_PASSWORD" "$NEW_PASSWORD" | shell "$OLD_PASSWORD"
echo "SHOW CURRENT USER YIELD user;" | shell "$NEW_PASSWORD" >/dev/null
echo "password of $NEO4J_USERNAME changed; the new one authenticates"
