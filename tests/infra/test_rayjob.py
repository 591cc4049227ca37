"""RayJobs rendered from the shared RayCluster definition."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra import kuberay
from searchrank.core.errors import InputError
from searchrank.core.raytrain.rayjob import RAYCLUSTER, RayJobSpec, render_rayjob

GPU = {
    "image": "searchrank/components:0.1.0-cuda",
    "gpus_per_worker": 1,
    "node_selector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}
SPECS = {
    "cpu": {},
    "gpu": GPU,
    "many-workers": {**GPU, "num_workers": 8, "gpus_per_worker": 2, "cpus_per_worker": 7.5},
    "fractional-cpu": {"num_workers": 1, "cpus_per_worker": 0.5, "ttl_seconds": 0},
}
"""RayJobSpec fields over a CPU default, by case."""


def rendered(case: str) -> dict[str, Any]:
    arguments = {"name": f"train-{case}", "entrypoint": "python -m x", "image": "i:1"}
    return render_rayjob(RayJobSpec(**{**arguments, **SPECS[case]}))  # type: ignore[arg-type]


def test_a_rendered_rayjob_carries_the_shared_cluster_sized_for_the_job() -> None:
    job = render_rayjob(
        RayJobSpec(
            name="train-42",
            entrypoint="python -m searchrank.core.raytrain.job /spec.json",
            image="searchrank/components:0.1.0-cuda",
            num_workers=3,
            gpus_per_worker=1,
            node_selector={"nvidia.com/gpu.present": "true"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        )
    )
    assert job["kind"] == "RayJob" and job["metadata"]["name"] == "train-42"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    cluster = job["spec"]["rayClusterSpec"]
    shared = yaml.safe_load(RAYCLUSTER.read_text())["spec"]
    assert cluster["rayVersion"] == shared["rayVersion"]
    assert cluster["headGroupSpec"]["rayStartParams"] == shared["headGroupSpec"]["rayStartParams"]
    group = cluster["workerGroupSpecs"][0]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    worker = group["template"]["spec"]
    limits = worker["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and limits["cpu"] == "4"
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert worker["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert shared["workerGroupSpecs"][0]["replicas"] == 0, "the shared file is not modified"


@pytest.mark.parametrize(
    ("field", "value"), [("name", "Train_42"), ("entrypoint", " "), ("num_workers", 0)]
)
def test_bad_rayjob_parameters_are_refused(field: str, value: object) -> None:
    arguments = {"name": "train-1", "entrypoint": "python x.py", "image": "i"}
    with pytest.raises(InputError, match=field):
        RayJobSpec(**{**arguments, field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("case", SPECS)
def test_rendered_rayjobs_validate_against_the_kuberay_crd(case: str) -> None:
    """Strictly (tests/infra/kuberay.py): the job's fields and the shared cluster inside it."""
    job = rendered(case)
    assert kuberay.errors(job) == []


@pytest.mark.parametrize("case", SPECS)
def test_rendered_rayjobs_pods_have_a_memory_backed_dev_shm(case: str) -> None:
    pods = list(kuberay.ray_pods(rendered(case)))
    assert len(pods) == 2
    for name, pod in pods:
        kuberay.assert_shm_holds_rays_object_store(name, pod)


def test_a_rayjob_with_more_worker_memory_gets_a_dev_shm_sized_to_it() -> None:
    job = render_rayjob(
        RayJobSpec(
            name="train-big", entrypoint="python -m x", image="i:1", memory_per_worker="64Gi"
        )
    )
    for name, pod in kuberay.ray_pods(job):
        kuberay.assert_shm_holds_rays_object_store(name, pod)
