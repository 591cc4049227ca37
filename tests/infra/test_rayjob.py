"""RayJobs rendered from the shared RayCluster definition."""

from __future__ import annotations

import pytest
import yaml

from searchrank.components.core.errors import InputError
from searchrank.components.train_ranker.rayjob import RAYCLUSTER, RayJobSpec, render_rayjob


def test_a_rendered_rayjob_carries_the_shared_cluster_sized_for_the_job() -> None:
    job = render_rayjob(
        RayJobSpec(
            name="train-42",
            entrypoint="python -m searchrank.components.train_ranker.job /spec.json",
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
