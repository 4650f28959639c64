"""Mistakes pyright must catch against the pinned SDKs' types (tests/test_types.py checks this
file with the program and expects exactly the marked errors). Never imported or run."""

from __future__ import annotations

import os

import pulumi_aws as aws

# a key the SDK's ArgsDict does not declare: the provider would ignore or refuse it at preview
aws.s3.BucketVersioning("canary-versioning", bucket="b",
                        versioning_configuration={"stauts": "Enabled"})  # expect: reportArgumentType
# a misspelt argument name
aws.s3.Bucket("canary-bucket", bucket_prefx="x")  # expect: reportCallIssue
# `str | None` where the SDK requires a str (a failover policy's type)
aws.route53.Record("canary-record", name="n", type="A", zone_id="z", set_identifier="primary",
                   failover_routing_policies=[{"type": os.environ.get("ROLE")}])  # expect: reportArgumentType
# an options dict splatted into a typed call: each value is checked against every parameter
options = dict(type="A", zone_id="z", ttl=300)
aws.route53.Record("canary-splat", name="n", **options)  # expect: reportArgumentType
