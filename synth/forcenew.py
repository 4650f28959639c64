"""Which input changes make a provider replace a resource (ForceNew), per resource type.

No machine-readable source ships with the installed SDKs: pulumi-aws's Python package holds no
schema, and its Pulumi schema (and `terraform providers schema -json`) carry no ForceNew flag. So
this is a table, audited against the provider sources the engine really runs, one entry per type
the synthesized stacks contain (tests/test_diff.py fails when a synthesized type is missing):

* AWS (pulumi-aws bridges terraform-provider-aws unchanged): the ``ForceNew: true`` schema fields
  of internal/service/<svc>/<file>.go, named below per type, in the engine's camelCase.
* Kubernetes: pulumi-kubernetes provider/pkg/provider/diff.go ``forceNewProperties`` (metadata
  name and namespace for every kind, plus per-kind fields), and helm_release.go (a release's name
  and namespace).
* random: terraform-provider-random internal/provider/resource_{id,password,string}.go, where
  every input carries ``RequiresReplace``.
"""

from __future__ import annotations

from typing import Mapping, Optional

_S3_CHILD = ("bucket", "expectedBucketOwner")  # s3/bucket_*.go: the bucket a setting belongs to

AWS: dict[str, tuple[str, ...]] = {
    # rds/instance.go (v5+: identifier and identifierPrefix update in place via
    # NewDBInstanceIdentifier, #31232 closing #507; engineVersion, dbSubnetGroupName and
    # parameterGroupName update in place too)
    "aws:rds/instance:Instance": ("engine", "kmsKeyId", "storageEncrypted", "username", "dbName",
                                  "availabilityZone", "characterSetName", "ncharCharacterSetName",
                                  "timezone", "customIamInstanceProfile", "snapshotIdentifier",
                                  "restoreToPointInTime", "backupTarget", "s3Import"),
    # rds/instance_automated_backups_replication.go: no Update at all, every input is ForceNew
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication": (
        "sourceDbInstanceArn", "kmsKeyId", "preSignedUrl", "retentionPeriod"),
    # rds/parameter_group.go (RDS has no API to change a group's description), rds/subnet_group.go
    "aws:rds/parameterGroup:ParameterGroup": ("name", "namePrefix", "family", "description"),
    "aws:rds/subnetGroup:SubnetGroup": ("name", "namePrefix"),
    # s3/bucket.go: no rename, no Object Lock off, the namespace is fixed at CreateBucket
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "bucketNamespace", "objectLockEnabled"),
    "aws:s3/bucketVersioning:BucketVersioning": _S3_CHILD,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _S3_CHILD,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _S3_CHILD,
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": _S3_CHILD,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("bucket",),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("bucket",),
    "aws:s3/bucketPolicy:BucketPolicy": ("bucket",),
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": ("bucket",),
    # kms/key.go, kms/alias.go (targetKeyId updates in place)
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId", "xksKeyId"),
    "aws:kms/alias:Alias": ("name", "namePrefix"),
    # ec2/vpc_security_group.go: a group cannot move to another VPC, be renamed or re-described
    "aws:ec2/securityGroup:SecurityGroup": ("vpcId", "name", "namePrefix", "description"),
    # iam/role.go, role_policy.go, role_policy_attachment.go (the attachment has no Update)
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "namePrefix", "role"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("role", "policyArn"),
    # cloudtrail/trail.go, logs/group.go, logs/data_protection_policy.go, cloudwatch/metric_alarm.go
    "aws:cloudtrail/trail:Trail": ("name",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix", "logGroupClass"),
    "aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy": ("logGroupName",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name",),  # alarm_name; Pulumi names it `name`
    # route53/health_check.go, route53/record.go
    "aws:route53/healthCheck:HealthCheck": ("type", "referenceName", "requestInterval", "measureLatency",
                                            "routingControlArn"),
    "aws:route53/record:Record": ("name", "zoneId"),
    # secretsmanager/secret.go, secret_version.go (secret_string_wo is write-only: never diffed; its
    # version is ForceNew), secret_rotation.go, sns/topic.go, sns/topic_subscription.go
    "aws:secretsmanager/secret:Secret": ("name", "namePrefix"),
    "aws:secretsmanager/secretVersion:SecretVersion": ("secretId", "secretBinary", "secretString",
                                                       "secretStringWoVersion"),
    "aws:secretsmanager/secretRotation:SecretRotation": ("secretId",),
    # serverlessrepo/cloudformation_stack.go: the SAR application and the stack's name
    "aws:serverlessrepository/cloudFormationStack:CloudFormationStack": ("applicationId", "name"),
    # vpc/security_group_egress_rule.go (framework): only the group requires a replacement
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("securityGroupId",),
    "aws:sns/topic:Topic": ("name", "namePrefix", "fifoTopic"),
    "aws:sns/topicSubscription:TopicSubscription": ("topic", "protocol", "endpoint"),  # topic_arn; Pulumi names it `topic`
    # elbv2/load_balancer.go (a fixed name: a replacement must delete first, the name is taken),
    # listener.go, listener_rule.go (priority updates in place), target_group.go
    "aws:lb/loadBalancer:LoadBalancer": ("name", "namePrefix", "internal", "loadBalancerType",
                                         "customerOwnedIpv4Pool"),
    "aws:lb/listener:Listener": ("loadBalancerArn",),
    "aws:lb/listenerRule:ListenerRule": ("listenerArn",),
    "aws:lb/targetGroup:TargetGroup": ("name", "namePrefix", "port", "protocol", "protocolVersion", "targetType",
                                       "vpcId", "ipAddressType"),
    # arcregionswitch/plan.go (framework): RequiresReplace on name, recovery_approach and regions, and
    # on the resource's region (@Region); Update sends only the role, description, RTO, workflows,
    # alarms and triggers
    "aws:arcregionswitch/plan:Plan": ("name", "recoveryApproach", "regions", "region"),
    # ssm/parameter.go: name and data_type ForceNew; a tier moved from Advanced to Standard also
    # replaces (CustomizeDiff, which the table cannot express: the runbook outputs stay Standard)
    "aws:ssm/parameter:Parameter": ("name", "dataType"),
    # wafv2/web_acl_association.go: no Update at all
    "aws:wafv2/webAclAssociation:WebAclAssociation": ("resourceArn", "webAclArn"),
    # wafv2/ip_set.go, web_acl.go, web_acl_logging_configuration.go
    "aws:wafv2/ipSet:IpSet": ("name", "namePrefix", "scope", "ipAddressVersion"),
    "aws:wafv2/webAcl:WebAcl": ("name", "namePrefix", "scope"),
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": ("resourceArn", "logDestinationConfigs"),
}

RANDOM: dict[str, tuple[str, ...]] = {
    "random:index/randomId:RandomId": ("byteLength", "keepers", "prefix"),
    "random:index/randomPassword:RandomPassword": (
        "keepers", "length", "special", "upper", "lower", "number", "numeric", "minNumeric", "minUpper",
        "minLower", "minSpecial", "overrideSpecial"),
    # the same schema as RandomPassword (resource_string.go), minus bcrypt
    "random:index/randomString:RandomString": (
        "keepers", "length", "special", "upper", "lower", "number", "numeric", "minNumeric", "minUpper",
        "minLower", "minSpecial", "overrideSpecial"),
}

_SELECTOR = ("spec.selector",)
# pulumi-kubernetes diff.go, by kind (the group/version table there; kinds it does not list
# replace only on a new name or namespace)
KUBERNETES_KIND: dict[str, tuple[str, ...]] = {
    "apps/v1:StatefulSet": ("spec.podManagementPolicy", "spec.revisionHistoryLimit", "spec.serviceName",
                            "spec.volumeClaimTemplates", *_SELECTOR),
    "apps/v1:Deployment": _SELECTOR,
    "apps/v1:DaemonSet": _SELECTOR,
    "batch/v1:Job": ("spec.completions", "spec.parallelism", "spec.template", *_SELECTOR),
    "core/v1:Service": ("spec.clusterIP",),
    "core/v1:PersistentVolumeClaim": ("spec.accessModes", "spec.storageClassName", "spec.volumeName",
                                      *_SELECTOR),
    "rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
    "storage.k8s.io/v1:StorageClass": ("parameters", "provisioner"),
}
# A ConfigMap's or Secret's data replaces it unless the provider sets enableConfigMapMutable /
# enableSecretMutable (both default false: provider.go) or the object is immutable.
_MUTABLE_SWITCH = {"core/v1:ConfigMap": ("enableConfigMapMutable", ("data", "binaryData")),
                   "core/v1:Secret": ("enableSecretMutable", ("type", "stringData", "data"))}
KUBERNETES_IDENTITY = ("metadata.name", "metadata.namespace")
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def _true(value: object) -> bool:
    return value is True or str(value).lower() == "true"


def fields(resource_type: str, inputs: Mapping, provider_inputs: Optional[Mapping] = None) -> Optional[tuple[str, ...]]:
    """The ForceNew input paths of a resource, or None when the type is not in the table (then the
    plan cannot tell, and says so). ``provider_inputs`` are the inputs of the resource's provider
    (the Kubernetes provider's mutability switches)."""
    if resource_type in AWS:
        return AWS[resource_type]
    if resource_type in RANDOM:
        return RANDOM[resource_type]
    if resource_type == HELM_RELEASE:
        return ("name", "namespace")  # helm_release.go forceNewFields
    if not resource_type.startswith("kubernetes:"):
        return None
    kind = resource_type.removeprefix("kubernetes:")
    found = KUBERNETES_IDENTITY + KUBERNETES_KIND.get(kind, ())
    if kind in _MUTABLE_SWITCH:
        switch, data = _MUTABLE_SWITCH[kind]
        if kind.endswith("Secret"):
            found += ("type",)
        if inputs.get("immutable") is True or not _true((provider_inputs or {}).get(switch)):
            found += data
    return tuple(dict.fromkeys(found))


def known(resource_type: str) -> bool:
    """Whether the table speaks for this type (every Kubernetes kind has at least its identity)."""
    return (resource_type in AWS or resource_type in RANDOM or resource_type == HELM_RELEASE
            or resource_type.startswith("kubernetes:"))


def forced_by(resource_type: str, changed: list[str], inputs: Mapping,
              provider_inputs: Optional[Mapping] = None) -> list[str]:
    table = fields(resource_type, inputs, provider_inputs) or ()
    return [p for p in changed if any(p == f or p.startswith(f + ".") for f in table)]
