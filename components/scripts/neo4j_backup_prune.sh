#!/bin/bash
# Retention by whole chains: a chain is deleted, all of it, once its last backup is RETENTION_DAYS
# old. S3 lifecycle expiry cannot do this (it counts each object's own age, so it would expire a
# chain's full backup while that chain's later differentials are still kept); the bucket's expiry
# is set beyond chainDays + retentionDays as a backstop only. In a versioned bucket a delete writes
# a delete marker; Object Lock keeps the versions until their retention ends (and noncurrent
# expiry removes them after), which is what the lock is for.
: "${BACKUP_BUCKET:?}" "${BACKUP_PREFIX:?}" "${CHAIN_DAYS:?}" "${RETENTION_DAYS:?}"
now=${NOW:-$(date -u +%s)}
kept=0
deleted=0
# assigned first: a failed listing must fail the job (a for loop ignores its list's exit status)
chains=$(s3_each_page "${BACKUP_PREFIX}chains/" "join(' ', (CommonPrefixes || \`[]\`)[].Prefix)" --delimiter /)
# The newest chain is never deleted, however old: when backups have failed for RETENTION_DAYS it
# holds the last restore point. S3 has no empty prefixes, so the newest listed chain holds a
# backup, and its first (AUTO/FULL) backup is a full one. Dated names sort by date.
newest=$(printf '%s\n' ${chains} | grep -E "chains/[0-9]{4}-[0-9]{2}-[0-9]{2}/$" | sort | tail -n 1 || true)
for chain in ${chains}; do
  [ "${chain}" != "None" ] || continue
  name=${chain%/}
  name=${name##*/}
  if ! [[ "${name}" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
    echo "leaving ${chain} alone: not a chain this job wrote"
    continue
  fi
  # the chain's backups were all taken before its end; retention counts from there
  ended=$(( $(date -u -d "${name}" +%s) + CHAIN_DAYS * 86400 ))
  if [ "${chain}" = "${newest}" ]; then
    [ $(( now - ended )) -lt $(( RETENTION_DAYS * 86400 )) ] || echo "keeping chain ${name} past retention: it is the newest (no backup since)"
    kept=$(( kept + 1 ))
  elif [ $(( now - ended )) -ge $(( RETENTION_DAYS * 86400 )) ]; then
    aws s3 rm "s3://${BACKUP_BUCKET}/${chain}" --recursive --only-show-errors
    echo "deleted chain ${name}"
    deleted=$(( deleted + 1 ))
  else
    kept=$(( kept + 1 ))
  fi
done
echo "ok: ${kept} chains kept, ${deleted} deleted (retention ${RETENTION_DAYS} days after a chain ends)"
