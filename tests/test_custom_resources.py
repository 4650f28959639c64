"""Every custom resource the stacks create, validated strictly against the upstream CRD of its
served version (../shared/crds, tests/upstream-crds): an unknown or misspelt field is an error, as
`kubectl apply --validate=strict` would report it."""

from __future__ import annotations

import jsonschema
import pytest

from synth.export import every_cluster_objects
from tests import crds
from tests.conftest import STACKS, synthesized

BUILTIN_GROUPS = ("v1", "apps/", "batch/", "policy/", "networking.k8s.io/", "rbac.authorization.k8s.io/",
                  "scheduling.k8s.io/")


@pytest.mark.parametrize("stack", STACKS)
def test_every_custom_resource_matches_its_upstream_crd(stack):
    custom = [o for o in every_cluster_objects(synthesized(stack)) if not o["apiVersion"].startswith(BUILTIN_GROUPS)]
    assert {o["kind"] for o in custom} >= {"ServiceMonitor", "PrometheusRule", "PodMonitor", "AlertmanagerConfig",
                                         "TargetGroupBinding"}
    for obj in custom:
        try:
            crds.validate(obj)
        except LookupError:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: no upstream CRD in {crds.CRDS}; add it there")
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.absolute_path)}")
