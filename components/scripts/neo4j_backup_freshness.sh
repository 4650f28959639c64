#!/bin/bash
# Fails when the newest backup under the prefix is older than MAX_AGE_SECONDS (the longest gap
# between backups plus slack). Age, not mere existence: a backup job that silently stopped must page.
: "${BACKUP_BUCKET:?}" "${BACKUP_PREFIX:?}" "${MAX_AGE_SECONDS:?}"
newest=$(s3_max "${BACKUP_PREFIX}" 'max_by(Contents || `[]`, &LastModified).LastModified')
if [ -z "${newest}" ]; then
  echo "FAILED: no backup at all under s3://${BACKUP_BUCKET}/${BACKUP_PREFIX}"
  exit 1
fi
age=$(( $(date -u +%s) - $(date -u -d "${newest}" +%s) ))
if [ "${age}" -gt "${MAX_AGE_SECONDS}" ]; then
  echo "FAILED: newest backup (${newest}) is ${age}s old; limit ${MAX_AGE_SECONDS}s"
  exit 1
fi
echo "ok: newest backup (${newest}) is ${age}s old; limit ${MAX_AGE_SECONDS}s"
