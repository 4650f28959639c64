#!/bin/bash
# Init step of the restore rehearsal (aws-cli image): find the newest backup artifact of DATABASE
# in the newest chain and write its key to ARTIFACT_FILE. neo4j-admin restores a single named
# database only from a single artifact, and a differential artifact restores the whole chain
# ending at it (operations manual, "Restore a database backup"). Keys are
# <prefix>chains/<date>/<database>-<timestamp>.backup, so the largest key is the newest.
: "${BACKUP_BUCKET:?}" "${BACKUP_PREFIX:?}" "${DATABASE:?}" "${ARTIFACT_FILE:?}"
newest=$(s3_max "${BACKUP_PREFIX}chains/" \
  "max((Contents || \`[]\`)[?ends_with(Key, '.backup') && contains(Key, '/${DATABASE}-')].Key)")
if [ -z "${newest}" ]; then
  echo "FAILED: no ${DATABASE} backup artifact under s3://${BACKUP_BUCKET}/${BACKUP_PREFIX}chains/"
  exit 1
fi
echo "${newest}" > "${ARTIFACT_FILE}"
echo "restoring s3://${BACKUP_BUCKET}/${newest}"
