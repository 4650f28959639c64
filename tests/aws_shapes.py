"""Turn Pulumi's camelCase inputs into the PascalCase request shapes of the AWS API (boto3)."""

from __future__ import annotations

from typing import Any

# Where AWS's member names are not simply the capitalised Pulumi names.
_RENAMES = {
    "id": "ID",
    "kmsMasterKeyId": "KMSMasterKeyID",
    "sseAlgorithm": "SSEAlgorithm",
    "replicaKmsKeyId": "ReplicaKmsKeyID",
    # CloudTrail advanced field selectors: the provider pluralises list fields
    "startsWiths": "StartsWith", "endsWiths": "EndsWith",
    "notStartsWiths": "NotStartsWith", "notEndsWiths": "NotEndsWith",
}


def to_aws(value: Any) -> Any:
    if isinstance(value, dict):
        return {_RENAMES.get(k, k[:1].upper() + k[1:]): to_aws(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_aws(v) for v in value]
    return value
