"""The weekly PITR rehearsal as deployed in the DR region's cluster (it outlives the primary
region: docs/decisions/018-active-region-is-state.md): the CronJob runs the repository's own
runbook with the outputs it needs, through a role that can restore and delete only rehearsal
instances, inside default-deny with exactly its flows, and its alerts pass promtool."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import settings
from components import pg_restore_rehearsal as component
from ops import pg_restore_rehearsal as runbook
from ops._common import STS_REGION_ENV
from synth import engine
from synth.export import kubernetes_objects
from tests.conftest import ROOT, STACKS, stack_settings, synthesized
from tests.tools import promtool_check, require_tool


def objects(stack: str, kind: str) -> list[dict]:
    return [o for o in kubernetes_objects(synthesized(stack), "dr") if o["kind"] == kind]


@pytest.mark.parametrize("stack", STACKS)
def test_the_rehearsal_runs_in_the_dr_cluster_only(stack):
    """The primary region's loss must not stop the rehearsal: nothing of it is in the primary cluster."""
    primary = [o for o in kubernetes_objects(synthesized(stack)) if o["metadata"]["name"].startswith(component.JOB)]
    assert primary == [] and objects(stack, "CronJob")


def code_map(stack: str) -> dict:
    [cm] = [o for o in objects(stack, "ConfigMap") if o["metadata"]["name"] == f"{component.JOB}-code"]
    return cm


@pytest.mark.parametrize("stack", STACKS)
def test_the_cronjob_runs_the_repositorys_runbook_from_a_read_only_mount(stack, tmp_path):
    [job] = [o for o in objects(stack, "CronJob") if o["metadata"]["name"] == component.JOB]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"][:3] == ["python3", "-m", "ops.pg_restore_rehearsal"]
    assert pod["serviceAccountName"] == component.JOB
    data = code_map(stack)["data"]
    for name in component.OPS_FILES:
        assert data[name] == (ROOT / "ops" / name).read_text()  # the code reviewed here is what runs
    # Rebuild the mount exactly as the pod sees it and let the real module parse its arguments and
    # its outputs file: the same command line, only the paths moved under tmp_path.
    (tmp_path / "ops").mkdir()
    for item in pod["volumes"][0]["configMap"]["items"]:
        (tmp_path / "ops" / item["path"]).write_text(data[item["key"]])
    outputs = json.loads(data["outputs.json"])
    source, target = runbook.target_from_outputs(outputs)
    aws = stack_settings("prod").aws
    assert target.region == aws.dr_region and source.region == aws.primary_region and target.prefix == component.PREFIX
    args = container["command"][3:]
    args[args.index("--outputs") + 1] = str(tmp_path / "ops" / "outputs.json")
    # the account check (GetCallerIdentity) goes to STS in the region the pod's network policy allows:
    # its own, the DR region's (it runs in the DR cluster)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env[STS_REGION_ENV] == env["AWS_REGION"] == aws.dr_region
    probe = ("import sys, ops._common as c, ops.pg_restore_rehearsal as r; "
             "c.check_account = lambda account, region: print('account', account, region); "
             "r.rehearse = lambda *a, **k: "
             "(print('would rehearse', a[1].region, k['timeout_seconds']), 0)[1]; sys.exit(r.main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"account {stack_settings(stack).aws.account_id} {aws.dr_region}" in run.stdout  # before the rehearsal
    assert f"would rehearse {aws.dr_region}" in run.stdout
    assert job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > float(args[args.index("--timeout-seconds") + 1])


@pytest.mark.parametrize("stack", STACKS)
def test_boto3_in_the_pod_calls_the_dr_rds_interface_endpoint_not_the_public_name(stack):
    """The regional name rds.us-west-2.amazonaws.com reaches the interface endpoint only where its
    private DNS answers (inside its own VPC, with private DNS on: AWS PrivateLink guide "Access an
    AWS service using an interface VPC endpoint"); elsewhere it resolves to public addresses, which
    default-deny refuses. The CronJob names the endpoint itself in AWS_ENDPOINT_URL_RDS, which
    boto3 honours (AWS SDKs and Tools Reference Guide, "Service-specific endpoints"), so it does not
    depend on that: the real boto3, with the pod's environment, builds the client the runbook
    builds and must send RDS calls to the DR endpoint."""
    [job] = [o for o in objects(stack, "CronJob") if o["metadata"]["name"] == component.JOB]
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    _, target = runbook.target_from_outputs(json.loads(code_map(stack)["data"]["outputs.json"]))
    probe = ("import boto3, sys; c = boto3.client('rds', region_name=sys.argv[1]); "
             "print(c.meta.endpoint_url); print(boto3.client('sts').meta.endpoint_url)")
    run = subprocess.run([sys.executable, "-c", probe, target.region], capture_output=True, text=True, timeout=60,
                         env={**env, "PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                              "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    assert run.returncode == 0, run.stderr
    rds_url, sts_url = run.stdout.split()
    assert re.fullmatch(rf"https://vpce-[0-9a-f]+-[0-9a-z]+\.rds\.{target.region}\.vpce\.amazonaws\.com", rds_url)
    assert "vpce" not in sts_url and rds_url != sts_url  # only RDS is redirected; IRSA's STS is not
    settings_cfg = settings.validate(engine.stack_config(stack)).pg_restore_rehearsal
    assert rds_url == settings_cfg.dr_rds_endpoint_url


def test_the_role_restores_and_deletes_only_rehearsal_instances_in_the_dr_region(prod):
    role = prod.named("pg-restore-rehearsal-role", "aws:iam/rolePolicy:RolePolicy")
    policy = json.loads(role.inputs["policy"])
    by_action = {a: s for s in policy["Statement"] for a in s["Action"]}
    aws = stack_settings("prod").aws
    prefix = f"arn:aws:rds:{aws.dr_region}:{aws.account_id}:db:{component.PREFIX}*"
    for action in ("rds:RestoreDBInstanceToPointInTime", "rds:DeleteDBInstance", "rds:AddTagsToResource"):
        resources = by_action[action]["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        assert prefix in resources
        assert not any(r.endswith(":db:*") or r == "*" for r in resources), action
    # after a failover it restores the DR writer's own backups: that one instance is a source, named
    # in every state (a failover changes no IAM policy), and nothing of the primary region
    restores = by_action["rds:RestoreDBInstanceToPointInTime"]["Resource"]
    assert f"arn:aws:rds:{aws.dr_region}:{aws.account_id}:db:intelgraph-pg-replica" in restores
    assert not any(f":{aws.primary_region}:" in r for r in restores)
    assert by_action["kms:CreateGrant"]["Condition"]["StringEquals"]["kms:ViaService"] == "rds.us-west-2.amazonaws.com"
    assert by_action["kms:CreateGrant"]["Resource"] == prod.outputs["pgRestoreRehearsal"]["kmsKeyArn"]
    # every RDS call the runbook makes is allowed (botocore names the IAM action after the operation)
    import re

    import botocore
    import botocore.session
    model = botocore.session.get_session().get_service_model("rds")
    source = (ROOT / "ops" / "pg_restore_rehearsal.py").read_text()
    calls = set(re.findall(r"rds\.(\w+)\(", source)) - {"get_paginator"}
    calls |= set(re.findall(r'get_paginator\("(\w+)"\)', source))
    operations = {botocore.xform_name(op): op for op in model.operation_names}
    assert calls >= {"restore_db_instance_to_point_in_time", "delete_db_instance", "describe_db_instances"}
    for call in calls:
        operation = operations[call]
        assert f"rds:{operation}" in by_action, f"the role does not allow rds:{operation}"


@pytest.mark.parametrize("stack", STACKS)
def test_the_rehearsal_alerts_pass_promtool(stack, tmp_path):
    [rule] = [o for o in objects(stack, "PrometheusRule") if o["metadata"]["name"] == "pg-restore-rehearsal-rules"]
    result = promtool_check(rule["spec"]["groups"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_never_succeeded_fires_a_week_after_creation_without_a_success(prod, tmp_path):
    """promtool's rule unit test: created 9 days ago, never succeeded -> the alert fires."""
    [rule] = [o for o in objects("prod", "PrometheusRule") if o["metadata"]["name"] == "pg-restore-rehearsal-rules"]
    promtool_check(rule["spec"]["groups"], tmp_path)
    labels = f'namespace="dr-verify", cronjob="{component.JOB}"'
    (tmp_path / "test.yaml").write_text(json.dumps({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m",
                   # the CronJob object was created at t=0; evaluation at 9 days
                   "input_series": [{"series": f"kube_cronjob_created{{{labels}}}", "values": "0x13000"}],
                   "alert_rule_test": [
                       {"eval_time": "6d", "alertname": "PostgresRestoreRehearsalNeverSucceeded", "exp_alerts": []},
                       {"eval_time": "9d", "alertname": "PostgresRestoreRehearsalNeverSucceeded", "exp_alerts": [{
                           "exp_labels": {"severity": "warning", "namespace": "dr-verify", "cronjob": component.JOB},
                           "exp_annotations": {
                               "summary": "The PostgreSQL restore rehearsal has never succeeded",
                               "runbook_url": "https://github.com/intelgraph/platform-infrastructure/blob/main/"
                                              "docs/runbooks.md#postgres-restore-rehearsal-failed-or-stale"}}]},
                   ]},
                  # the CronJob is not seen at all (not deployed, or kube-state-metrics not scraped)
                  {"interval": "1m",
                   "input_series": [{"series": 'up{job="kube-state-metrics"}', "values": "1x180"}],
                   "alert_rule_test": [{"eval_time": "2h", "alertname": "PostgresRestoreRehearsalNeverSucceeded",
                                        "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "dr-verify",
                                                                       "cronjob": component.JOB},
                                                        "exp_annotations": {
                                                            "summary": "The PostgreSQL restore rehearsal has never "
                                                                       "succeeded",
                                                            "runbook_url": "https://github.com/intelgraph/platform-"
                                                                           "infrastructure/blob/main/docs/runbooks.md"
                                                                           "#postgres-restore-rehearsal-failed-or-stale"}}]}]}],
    }))
    run = subprocess.run([require_tool("promtool"), "test", "rules", "test.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_rehearsal_reaches_sts_and_the_dr_rds_api_and_nothing_else(prod, tmp_path):
    """network-config-analyzer over the stack's namespaces, policies and workloads."""
    from tests.nca_map import connectivity, reaches

    rows = connectivity(kubernetes_objects(prod, "dr"), tmp_path)
    job = component.JOB
    assert reaches(rows, "dr-verify", job, 443, ip="10.41.2.33")  # DR RDS API endpoint (prod config)
    assert reaches(rows, "dr-verify", job, 443, ip="10.41.1.61")  # the DR region's STS endpoint
    assert reaches(rows, "dr-verify", job, 53, dst_ns="kube-system", dst_pod="*")
    assert not reaches(rows, "dr-verify", job, 443, ip="10.41.2.87")  # S3: not this job's business
    assert not reaches(rows, "dr-verify", job, 443, ip="10.40.1.52")  # nothing in the primary region
    assert not reaches(rows, "dr-verify", job, 443, ip="52.94.0.10")  # public AWS ranges
    assert not reaches(rows, "dr-verify", job, 5432, ip="10.41.2.33")  # only the API port
