#!/usr/bin/env bash
# After a deploy was killed (job timeout, cancelled run, lost runner): release the backend's lock,
# stop on what needs a person, roll back every Helm release a killed `helm upgrade` left pending,
# then refresh the state from the cloud. docs/runbooks.md, "Interrupted deploy".
#   cicd/interrupted_deploy.sh STACK NAMESPACE...
# Exit 2 (one line, nothing changed after the lock) when the world needs a decision first.
set -euo pipefail
stack=${1:?usage: cicd/interrupted_deploy.sh STACK NAMESPACE...}
shift
[ $# -gt 0 ] || { echo "usage: cicd/interrupted_deploy.sh STACK NAMESPACE..." >&2; exit 2; }

# 1. The lock. On the S3 backend `pulumi cancel` deletes the stack's lock files (pulumi/pulumi
#    pkg/backend/diy/backend.go CancelCurrentUpdate); run it only when no deploy of this stack runs.
pulumi cancel --stack "$stack" --yes

# 2. Pending operations the killed run recorded. A pending create may exist in the cloud without
#    an ID in the state: only a person can say which (`pulumi refresh --import-pending-creates URN
#    ID`, or `--clear-pending-creates` when nothing was created). Updates and deletes are re-read
#    by the refresh in step 4.
pending=$(pulumi stack export --stack "$stack" \
  | jq -r '.deployment.pending_operations // [] | .[] | select(.type == "creating") | .resource.urn')
if [ -n "$pending" ]; then
  echo "pending creates in $stack, import or clear them first: $(echo "$pending" | tr '\n' ' ')" >&2
  exit 2
fi

# 3. Helm releases a killed upgrade left in pending-install/-upgrade/-rollback refuse every later
#    upgrade ("another operation is in progress"). Roll each back to its last deployed revision;
#    a pending install has none to go back to: stop.
# A rollback restarts a server like an upgrade: the same wait (components/neo4j_cluster.py
# RELEASE_TIMEOUT_SECONDS).
timeout=9205s
rollbacks=()
for namespace in "$@"; do
  while read -r release status; do
    [ -n "$release" ] || continue
    if [ "$status" = pending-install ]; then
      echo "release $release in $namespace is pending-install: no revision to roll back to; see the runbook" >&2
      exit 2
    fi
    revision=$(helm history "$release" -n "$namespace" -o json \
      | jq -r '[.[] | select(.status == "deployed" or .status == "superseded")] | last | .revision // empty')
    if [ -z "$revision" ]; then
      echo "release $release in $namespace ($status) has no deployed revision; see the runbook" >&2
      exit 2
    fi
    rollbacks+=("$namespace $release $revision")
  done < <(helm list -n "$namespace" --pending -o json | jq -r '.[] | "\(.name) \(.status)"')
done
for rollback in "${rollbacks[@]}"; do
  read -r namespace release revision <<<"$rollback"
  helm rollback "$release" "$revision" -n "$namespace" --wait --timeout "$timeout"
done

# 4. The state from the cloud, then the deploy again (a dispatch of deploy.yml from main).
pulumi refresh --stack "$stack" --yes --skip-preview
echo "$stack: lock released, ${#rollbacks[@]} release(s) rolled back, state refreshed; re-run the deploy"
