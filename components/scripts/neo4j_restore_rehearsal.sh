#!/bin/bash
# Weekly proof that backups restore: restore the newest backup of the default database into a
# throwaway, localhost-only instance, count its nodes, and fail unless there are some.
set -euo pipefail
: "${BACKUP_BUCKET:?}" "${BACKUP_PREFIX:?}" "${DATABASE:?}"
started=$(date +%s)

# A private config on the writable scratch volume: the root filesystem stays read-only.
scratch=${SCRATCH:-/tmp}
export NEO4J_CONF="${scratch}/conf"
mkdir -p "${NEO4J_CONF}" "${scratch}/restore" "${scratch}/run"
cat > "${NEO4J_CONF}/neo4j.conf" <<CONF
server.default_listen_address=127.0.0.1
dbms.security.auth_enabled=false
server.directories.data=/data
server.directories.logs=/logs
server.directories.run=${scratch}/run
server.memory.heap.initial_size=1g
server.memory.heap.max_size=1g
server.memory.pagecache.size=512m
CONF

neo4j-admin database restore --from-path="s3://${BACKUP_BUCKET}/${BACKUP_PREFIX}" \
  --temp-path="${scratch}/restore" --overwrite-destination=true "${DATABASE}"
neo4j start
trap 'neo4j stop || true' EXIT
for _ in $(seq 1 120); do
  cypher-shell -a bolt://127.0.0.1:7687 -d "${DATABASE}" "RETURN 1" >/dev/null 2>&1 && break
  sleep 5
done
count=$(cypher-shell -a bolt://127.0.0.1:7687 -d "${DATABASE}" --format plain \
  "MATCH (n) RETURN count(n) AS nodes" | tail -n 1)
if ! [[ "${count}" =~ ^[0-9]+$ ]] || [ "${count}" -eq 0 ]; then
  echo "FAILED: the restored ${DATABASE} database has '${count}' nodes"
  exit 1
fi
echo "ok: restored ${DATABASE} with ${count} nodes in $(( $(date +%s) - started ))s (compare dr.neo4jRestoreEstimateSeconds)"
