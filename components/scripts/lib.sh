#!/bin/bash
# Shared by every job script (prepended to it): S3 listings that are correct for any number of
# objects. One ListObjectsV2 page (at most 1,000 keys) per call, followed by its continuation
# token: with --output text the CLI applies --query to each page of its own pagination, so a
# query over "the whole listing" answers once per page past 1,000 objects (AWS CLI user guide,
# "Filtering output", client-side filtering; aws/aws-cli#4847). --no-paginate makes the query see
# exactly one API response; callers reduce over the pages.
set -euo pipefail
shopt -s inherit_errexit  # a failed aws call inside $(...) fails the job, not just the subshell

# s3_each_page PREFIX EXPR [ARGS...]: EXPR's value on every page of the listing, one line each.
s3_each_page() {
  local prefix=$1 expr=$2 token="" page
  shift 2
  while :; do
    page=$(aws s3api list-objects-v2 --bucket "${BACKUP_BUCKET}" --prefix "${prefix}" "$@" --no-paginate \
      ${token:+--continuation-token "${token}"} --query "[NextContinuationToken, ${expr}]" --output text)
    token=${page%%$'\t'*}
    printf '%s\n' "${page#*$'\t'}"
    [ "${token}" != "None" ] || break
  done
}

# s3_max PREFIX EXPR: the largest of the pages' values (ISO times and our dated keys sort as text).
s3_max() {
  s3_each_page "$@" | { grep -vx None || true; } | sort | tail -n 1
}
