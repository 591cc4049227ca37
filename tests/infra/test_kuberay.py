"""The vendored KubeRay CRDs and the strict validator over them (tests/infra/kuberay.py)."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import pytest
import yaml

from infra import kuberay
from searchrank.core.raytrain.rayjob import RAYCLUSTER, RayJobSpec, render_rayjob


def cluster() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RAYCLUSTER.read_text())
    return loaded


def test_the_vendored_crds_are_the_ones_their_provenance_names() -> None:
    provenance = (kuberay.CRD_DIR / "PROVENANCE.md").read_text()
    assert "`v1.7.0`" in provenance
    assert "59d663aeec13760646da3db9c1cf8cfe883e30b7" in provenance
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", provenance, re.MULTILINE)
    sums = {name: digest for digest, name in listed}
    assert set(sums) == {*kuberay.CRD_FILES.values(), "LICENSE"}
    for name, digest in sums.items():
        assert hashlib.sha256((kuberay.CRD_DIR / name).read_bytes()).hexdigest() == digest, name
    assert not kuberay.CRD_DIR.is_relative_to(kuberay.ROOT / "infra" / "k8s"), "never applied"


def test_the_shared_cluster_and_a_rendered_job_are_valid() -> None:
    assert kuberay.errors(cluster()) == []
    job = render_rayjob(RayJobSpec(name="train-1", entrypoint="python -m x", image="i:1"))
    assert kuberay.errors(job) == []


def planted(obj: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A copy of ``obj`` with ``value`` set at the dotted ``path`` (list indices as numbers)."""
    broken = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = broken
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return broken


HEAD_CONTAINER = "spec.headGroupSpec.template.spec.containers.0"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.workerGroupSpecz", [], "'workerGroupSpecz' was unexpected"),  # unknown field
        (f"{HEAD_CONTAINER}.imagePullPolicyy", "Always", "'imagePullPolicyy' was unexpected"),
        ("spec.headGroupSpec.template.spec.securityContext.runAsNonroot", True, "unexpected"),
        ("metadata_", {}, "'metadata_' was unexpected"),
        ("spec.workerGroupSpecs.0.replicas", "3", "'3' is not of type 'integer'"),  # wrong type
        ("spec.enableInTreeAutoscaling", "true", "is not of type 'boolean'"),
        (f"{HEAD_CONTAINER}.resources.limits.cpu", [2], "is not valid under any of"),
        (f"{HEAD_CONTAINER}.ports.0.containerPort", "6379", "is not of type 'integer'"),
    ],
)
def test_the_validator_refuses_unknown_fields_and_wrong_types(
    path: str, value: object, message: str
) -> None:
    found = kuberay.errors(planted(cluster(), path, value))
    assert len(found) == 1 and message in found[0], found
    assert found[0].startswith(path.rsplit(".", 1)[0]) or found[0].startswith("<root>")


def test_the_validator_refuses_unknown_fields_inside_a_rayjobs_cluster() -> None:
    job = render_rayjob(RayJobSpec(name="train-1", entrypoint="python -m x", image="i:1"))
    assert kuberay.errors(planted(job, "spec.rayClusterSpec.headGroupSpec.rayStartParamz", {}))
    assert kuberay.errors(planted(job, "spec.shutdownAfterJobFinishes", "yes"))
    assert kuberay.errors({**job, "apiVersion": "ray.io/v1alpha2"})


def test_int_or_string_quantities_take_either() -> None:
    for cpu in (2, "2", "500m"):
        assert (
            kuberay.errors(planted(cluster(), f"{HEAD_CONTAINER}.resources.limits.cpu", cpu)) == []
        )


def test_strictness_follows_the_kubernetes_extensions() -> None:
    schema = {
        "type": "object",
        "properties": {
            "open": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
            "port": {"x-kubernetes-int-or-string": True},
            "when": {"type": "string", "nullable": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    strict = kuberay.strict(schema)
    assert strict["additionalProperties"] is False
    assert "additionalProperties" not in strict["properties"]["open"]
    assert strict["properties"]["closed"]["additionalProperties"] is False
    assert strict["properties"]["port"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert strict["properties"]["when"]["type"] == ["string", "null"]
    assert strict["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert not [k for k in str(strict).split("'") if k.startswith("x-kubernetes-")]
