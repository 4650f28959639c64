#!/bin/bash
# Fails when the newest backup under the prefix is older than MAX_AGE_SECONDS (the schedule
# interval plus slack). Age, not mere existence: a backup job that silently stopped must page.
#
# One ListObjectsV2 page (at most 1,000 keys) per call, followed by its continuation token: with
# --output text the CLI applies --query to each page of its own pagination, so a max_by over the
# whole listing prints one "newest" per page once there are more than 1,000 objects (AWS CLI user
# guide, "Filtering output": client-side filtering with text output). --no-paginate makes the
# query see exactly one API response; the maximum over the pages is taken here.
set -euo pipefail
: "${BACKUP_BUCKET:?}" "${BACKUP_PREFIX:?}" "${MAX_AGE_SECONDS:?}"
newest=""
token=""
pages=0
while :; do
  page=$(aws s3api list-objects-v2 --bucket "${BACKUP_BUCKET}" --prefix "${BACKUP_PREFIX}" --no-paginate \
    ${token:+--continuation-token "${token}"} \
    --query '[NextContinuationToken, max_by(Contents || `[]`, &LastModified).LastModified]' --output text)
  read -r token page_newest <<<"${page}"
  pages=$((pages + 1))
  # LastModified is always UTC in one format: the string order is the time order.
  if [ -n "${page_newest}" ] && [ "${page_newest}" != "None" ] && [[ "${page_newest}" > "${newest}" ]]; then
    newest=${page_newest}
  fi
  [ -n "${token}" ] && [ "${token}" != "None" ] || break
done
if [ -z "${newest}" ]; then
  echo "FAILED: no backup at all under s3://${BACKUP_BUCKET}/${BACKUP_PREFIX}"
  exit 1
fi
age=$(( $(date -u +%s) - $(date -u -d "${newest}" +%s) ))
if [ "${age}" -gt "${MAX_AGE_SECONDS}" ]; then
  echo "FAILED: newest backup (${newest}) is ${age}s old; limit ${MAX_AGE_SECONDS}s (${pages} pages listed)"
  exit 1
fi
echo "ok: newest backup (${newest}) is ${age}s old; limit ${MAX_AGE_SECONDS}s (${pages} pages listed)"
