#!/bin/bash
# Weekly proof that backups restore: restore the newest backup artifact of the default database
# (its key picked by neo4j_pick_backup.sh into ARTIFACT_FILE; restoring it replays its whole chain)
# into a throwaway, localhost-only instance, count its nodes, and fail unless there are some.
: "${BACKUP_BUCKET:?}" "${DATABASE:?}" "${ARTIFACT_FILE:?}"
artifact=$(cat "${ARTIFACT_FILE}")
started=$(date +%s)
scratch=${SCRATCH:-/tmp}

# Start from the image's own config and override only what must change. Neo4j 5 builds the JVM's
# options from server.jvm.additional in neo4j.conf alone (the stock file carries the --add-opens
# lines JDK 17 needs), and strict validation refuses a key set twice (except that one), so an
# overridden key is removed before it is appended. The whole directory is copied: neo4j.conf
# names server-logs.xml and user-logs.xml relative to it.
image_conf="${NEO4J_HOME:-/var/lib/neo4j}/conf"
export NEO4J_CONF="${scratch}/conf"
mkdir -p "${NEO4J_CONF}" "${scratch}/restore" "${scratch}/run"
cp -R "${image_conf}/." "${NEO4J_CONF}/"
overrides=(
  "server.default_listen_address=127.0.0.1"
  "dbms.security.auth_enabled=false"
  "server.directories.data=/data"
  "server.directories.logs=/logs"
  "server.directories.run=${scratch}/run"
  # Enterprise writes CSV metrics under NEO4J_HOME by default: the root filesystem is read-only.
  "server.metrics.csv.enabled=false"
  "server.memory.heap.initial_size=1g"
  "server.memory.heap.max_size=1g"
  "server.memory.pagecache.size=512m"
)
keys=$(printf '%s\n' "${overrides[@]}" | cut -d= -f1 | sed 's/\./\\./g' | paste -sd'|')
grep -Ev "^[[:space:]]*(${keys})[[:space:]]*=" "${image_conf}/neo4j.conf" > "${NEO4J_CONF}/neo4j.conf" || true
printf '%s\n' "${overrides[@]}" >> "${NEO4J_CONF}/neo4j.conf"

neo4j-admin database restore --from-path="s3://${BACKUP_BUCKET}/${artifact}" \
  --temp-path="${scratch}/restore" --overwrite-destination=true "${DATABASE}"
trap 'neo4j stop || true' EXIT
neo4j start
ready=""
for _ in $(seq 1 "${START_ATTEMPTS:-120}"); do
  if cypher-shell -a bolt://127.0.0.1:7687 -d "${DATABASE}" "RETURN 1" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep "${START_POLL_SECONDS:-5}"
done
if [ -z "${ready}" ]; then
  echo "FAILED: the restored ${DATABASE} database never answered on bolt://127.0.0.1:7687"
  exit 1
fi
count=$(cypher-shell -a bolt://127.0.0.1:7687 -d "${DATABASE}" --format plain \
  "MATCH (n) RETURN count(n) AS nodes" | tail -n 1)
if ! [[ "${count}" =~ ^[0-9]+$ ]] || [ "${count}" -eq 0 ]; then
  echo "FAILED: the restored ${DATABASE} database has '${count}' nodes"
  exit 1
fi
echo "ok: restored ${DATABASE} from ${artifact} with ${count} nodes in $(( $(date +%s) - started ))s" \
  "(compare dr.neo4jRestoreEstimateSeconds + differentials x dr.neo4jDifferentialEstimateSeconds)"
