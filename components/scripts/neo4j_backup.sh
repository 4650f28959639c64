#!/bin/bash
# Online backup of every database, from the first reachable server in BACKUP_FROM (secondaries
# first), straight to S3. Credentials come from the pod's IRSA role; there are no keys here.
set -euo pipefail
: "${BACKUP_FROM:?}" "${BACKUP_BUCKET:?}" "${BACKUP_PREFIX:?}"
started=$(date +%s)
scratch=${SCRATCH:-/tmp}
mkdir -p "${scratch}/neo4j-backup"
neo4j-admin database backup \
  --from="${BACKUP_FROM}" \
  --to-path="s3://${BACKUP_BUCKET}/${BACKUP_PREFIX}" \
  --temp-path="${scratch}/neo4j-backup" \
  --type=AUTO \
  --compress=true \
  '*'
echo "backup to s3://${BACKUP_BUCKET}/${BACKUP_PREFIX} took $(( $(date +%s) - started ))s"
