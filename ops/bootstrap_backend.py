"""Create the Pulumi state backend and secrets key so that both survive the loss of the primary region.

    python -m ops.bootstrap_backend --stack prod     # account and regions from Pulumi.prod.yaml
    python -m ops.bootstrap_backend --account-id 123456789012 --primary-region us-east-1 --dr-region us-west-2

Run once per account, before the first `pulumi stack init`, with administrator rights (not the
on-call role). Idempotent: a re-run finds what exists and completes the rest. It creates
(docs/decisions/022):

* a multi-Region KMS key in the primary region (alias/intelgraph-pulumi-secrets, yearly automatic
  rotation) and its replica in the DR region under the same alias. A replica shares the primary's
  key ID and key material, so what one encrypts the other decrypts, without calling the other's
  Region (AWS KMS Developer Guide, "Multi-Region keys in AWS KMS"): the stack's secrets provider
  works from the DR region's copy when the primary's is gone;
* a state bucket in each region: versioned, encrypted with its region's copy of the key (S3 Bucket
  Key on), every public-access block on, TLS only;
* S3 replication of the primary bucket to the DR one (Replication Time Control: 99.99 % of objects
  within 15 minutes, S3 User Guide; delete markers too; objects re-encrypted with the DR replica
  key), through a role only S3 of this account can assume.

It prints the `pulumi login` and `pulumi stack init --secrets-provider` commands, and the commands
that switch a stack to the DR copies: the secrets provider's URL names no region, so it uses the
key in AWS_REGION; Pulumi decrypts a stack's data key with the URL it was stored with before it can
re-encrypt it under another (pulumi/pulumi sdk/go/pkg/secrets/cloud/manager.go), so a URL pinned
to the primary region could not be changed while that region is down. Exit 0 done, 2 on bad input or no/wrong credentials.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import boto3
from botocore.exceptions import ClientError

from ops._common import EXIT_OK, Grant, InputError, Permissions, check_account, load_settings, parser, run

KEY_ALIAS = "alias/intelgraph-pulumi-secrets"
REPLICATION_ROLE = "intelgraph-pulumi-state-replication"
# Replication Time Control's threshold: the only value S3 accepts (S3 API Reference, ReplicationTime)
RTC_MINUTES = 15

IAM = Permissions((
    Grant(("kms:DescribeKey", "kms:CreateKey", "kms:CreateAlias", "kms:EnableKeyRotation", "kms:ReplicateKey"),
          "state-backend", "the multi-Region key and its replica"),
    Grant(("s3:CreateBucket", "s3:PutBucketPublicAccessBlock", "s3:PutBucketVersioning",
           "s3:PutEncryptionConfiguration", "s3:PutBucketPolicy", "s3:PutReplicationConfiguration"),
          "state-backend", "the state buckets"),
    Grant(("iam:GetRole", "iam:CreateRole", "iam:PutRolePolicy"), "state-backend", "the replication role"),
    # PutBucketReplication hands S3 the role (S3 User Guide, "Setting up permissions for live replication")
    Grant(("iam:PassRole",), "state-backend", "PutBucketReplication", implied=True),
))


@dataclass(frozen=True)
class Backend:
    account: str
    primary_region: str
    dr_region: str

    def bucket(self, region: str) -> str:
        # account and region in the name: bucket names are global, and each region has its own
        return f"intelgraph-pulumi-state-{self.account}-{region}"

    def url(self, region: str) -> str:
        """The S3 backend URL of the copy in ``region``; CI's cloud-url too (cicd/region.py)."""
        return f"s3://{self.bucket(region)}?region={region}&awssdk=v2"

    def login(self, region: str) -> str:
        return f"pulumi login '{self.url(region)}'"


def ensure_key(backend: Backend, sleep: Callable[[float], None] = time.sleep) -> tuple[str, str]:
    """The multi-Region key and its DR replica, both under KEY_ALIAS; returns their ARNs."""
    kms = boto3.client("kms", region_name=backend.primary_region)
    primary = _by_alias(kms)
    if primary is None:
        primary = kms.create_key(Description="Pulumi secrets provider (multi-Region: replica in "
                                             f"{backend.dr_region})", MultiRegion=True,
                                 Tags=[{"TagKey": "purpose", "TagValue": "pulumi-secrets"}])["KeyMetadata"]
        kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=primary["KeyId"])
    if not primary.get("MultiRegion"):
        raise InputError(f"{KEY_ALIAS} in {backend.primary_region} is a single-Region key; it cannot be replicated "
                         "(a key's MultiRegion is fixed at creation): point the alias at a multi-Region key")
    kms.enable_key_rotation(KeyId=primary["KeyId"])
    dr_kms = boto3.client("kms", region_name=backend.dr_region)
    replica = _by_alias(dr_kms)
    if replica is None:
        replica = kms.replicate_key(KeyId=primary["KeyId"], ReplicaRegion=backend.dr_region,
                                    Description="Pulumi secrets provider (replica)")["ReplicaKeyMetadata"]
        for _ in range(60):  # a replica is Creating first
            if dr_kms.describe_key(KeyId=replica["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled":
                break
            sleep(5)
        try:
            dr_kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=replica["KeyId"])
        except ClientError as exc:  # a run stopped between the replica and its alias, or moto's copy
            if exc.response["Error"]["Code"] != "AlreadyExistsException":
                raise
    if replica["KeyId"] != primary["KeyId"]:
        raise InputError(f"{KEY_ALIAS} in {backend.dr_region} is not the replica of the primary region's key")
    return primary["Arn"], replica["Arn"]


def _by_alias(kms) -> Optional[dict]:
    try:
        return kms.describe_key(KeyId=KEY_ALIAS)["KeyMetadata"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        return None


def ensure_bucket(backend: Backend, region: str, key_arn: str) -> str:
    s3, name = boto3.client("s3", region_name=region), backend.bucket(region)
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=name, **where)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
        "BucketKeyEnabled": True}]})
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    return name


def replication_policy(backend: Backend, key_arn: str, replica_key_arn: str) -> dict:
    """What S3 needs to replicate KMS-encrypted objects (S3 User Guide, "Setting up permissions for
    live replication" and "Replicating encrypted objects"): read the source's versions and decrypt
    them with the primary key, write replicas and encrypt them with the DR key, each key only
    through S3 in its region."""
    source, target = backend.bucket(backend.primary_region), backend.bucket(backend.dr_region)
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
         "Resource": f"arn:aws:s3:::{source}"},
        {"Effect": "Allow", "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                                       "s3:GetObjectVersionTagging"], "Resource": f"arn:aws:s3:::{source}/*"},
        {"Effect": "Allow", "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
         "Resource": f"arn:aws:s3:::{target}/*"},
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": key_arn,
         "Condition": {"StringLike": {"kms:ViaService": f"s3.{backend.primary_region}.amazonaws.com"}}},
        {"Effect": "Allow", "Action": ["kms:Encrypt"], "Resource": replica_key_arn,
         "Condition": {"StringLike": {"kms:ViaService": f"s3.{backend.dr_region}.amazonaws.com"}}},
    ]}


def ensure_replication(backend: Backend, key_arn: str, replica_key_arn: str) -> None:
    iam = boto3.client("iam")
    try:
        role_arn = iam.get_role(RoleName=REPLICATION_ROLE)["Role"]["Arn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
        role_arn = iam.create_role(RoleName=REPLICATION_ROLE, Description="S3 replicates the Pulumi state bucket",
                                   AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                                       "Effect": "Allow", "Action": "sts:AssumeRole",
                                       "Principal": {"Service": "s3.amazonaws.com"},
                                       "Condition": {"StringEquals": {"aws:SourceAccount": backend.account}}}]}),
                                   )["Role"]["Arn"]
    iam.put_role_policy(RoleName=REPLICATION_ROLE, PolicyName="replicate-state",
                        PolicyDocument=json.dumps(replication_policy(backend, key_arn, replica_key_arn)))
    minutes = {"Minutes": RTC_MINUTES}
    boto3.client("s3", region_name=backend.primary_region).put_bucket_replication(
        Bucket=backend.bucket(backend.primary_region), ReplicationConfiguration={"Role": role_arn, "Rules": [{
            "ID": "state-to-dr-region", "Priority": 1, "Status": "Enabled", "Filter": {},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
            "Destination": {"Bucket": f"arn:aws:s3:::{backend.bucket(backend.dr_region)}",
                            "EncryptionConfiguration": {"ReplicaKmsKeyID": replica_key_arn},
                            "ReplicationTime": {"Status": "Enabled", "Time": minutes},
                            "Metrics": {"Status": "Enabled", "EventThreshold": minutes}}}]})


def instructions(backend: Backend, stack: str) -> str:
    primary, dr = backend.primary_region, backend.dr_region
    return f"""
State backend ready: {backend.bucket(primary)} replicates to {backend.bucket(dr)};
{KEY_ALIAS} is a multi-Region key in {primary} with its replica in {dr}.

Use it (docs/operator.md, "First-time bootstrap"). No region in the secrets provider's URL: the
key is then the one in AWS_REGION, and either copy decrypts what the other encrypted.
  {backend.login(primary)}
  AWS_REGION={primary} pulumi stack init {stack} --secrets-provider 'awskms://{KEY_ALIAS}'

When {primary} is lost (docs/operator.md, "When the primary region is lost: state and secrets"):
  {backend.login(dr)}
  export AWS_REGION={dr}
  pulumi stack change-secrets-provider --stack {stack} 'awskms://{KEY_ALIAS}?region={dr}'   # optional: pins the DR copy
"""


def main(argv: Optional[list[str]] = None) -> int:
    command = parser("bootstrap_backend", __doc__, IAM, outputs=False)
    command.add_argument("--stack", help="the stack whose Pulumi.<stack>.yaml names the account and regions")
    command.add_argument("--account-id")
    command.add_argument("--primary-region")
    command.add_argument("--dr-region")
    args = command.parse_args(argv)
    return run("bootstrap_backend", lambda: bootstrap(args))


def bootstrap(args) -> int:
    if args.stack:
        cfg = load_settings(args.stack, None)
        backend = Backend(cfg.aws.account_id, cfg.aws.primary_region, cfg.aws.dr_region)
    elif args.account_id and args.primary_region and args.dr_region:
        backend = Backend(args.account_id, args.primary_region, args.dr_region)
    else:
        raise InputError("say where: --stack NAME, or all of --account-id, --primary-region and --dr-region")
    if backend.primary_region == backend.dr_region:
        raise InputError(f"the primary and DR regions are both {backend.dr_region}")
    check_account(backend.account, backend.dr_region)
    key_arn, replica_key_arn = ensure_key(backend)
    ensure_bucket(backend, backend.primary_region, key_arn)
    ensure_bucket(backend, backend.dr_region, replica_key_arn)
    ensure_replication(backend, key_arn, replica_key_arn)
    print(instructions(backend, args.stack or "<stack>"))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
