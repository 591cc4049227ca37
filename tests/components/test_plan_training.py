"""``plan_training``: the train steps' pods follow where their Ray runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from searchrank.components.plan_training.logic import TrainingPlacement, plan_training
from searchrank.core.errors import InputError
from searchrank.core.ray_address import RayTarget

GPU_NODE = {"nvidia.com/gpu.present": "true"}
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def placed(**changes: Any) -> TrainingPlacement:
    """Two workers of 1.5 CPUs and half a GPU each, training in the step, changed as given."""
    arguments: dict[str, Any] = {
        "ray_address": "",
        "use_gpu": True,
        "num_workers": 2,
        "cpus_per_worker": 1.5,
        "gpus_per_worker": 0.5,
        "memory": "16Gi",
        "gpu_node_selector": GPU_NODE,
        "gpu_toleration": GPU_TAINT,
    }
    return plan_training(**{**arguments, **changes})


def test_a_step_that_trains_on_gpus_itself_asks_for_them_on_a_gpu_node() -> None:
    placement = placed()
    assert placement.target is RayTarget.STEP
    assert placement.gpus == "1", "two workers with half a GPU each share one"
    assert placement.cpu == "4", "three CPUs for the workers and one for the driver"
    assert placement.node_selector == GPU_NODE and placement.tolerations == [GPU_TAINT]
    assert placement.memory == "16Gi"


def test_a_step_that_trains_on_cpus_asks_for_no_gpu_node() -> None:
    placement = placed(use_gpu=False)
    assert (placement.gpus, placement.node_selector, placement.tolerations) == ("0", {}, [])
    assert placement.cpu == "4"


@pytest.mark.parametrize(
    ("address", "target"),
    [("http://ray-head:8265", RayTarget.RAY_JOBS), ("kuberay://searchrank", RayTarget.KUBERAY)],
)
def test_a_step_that_follows_remote_training_asks_for_little(
    address: str, target: RayTarget
) -> None:
    placement = placed(ray_address=address, num_workers=8)
    assert placement.target is target
    assert (placement.gpus, placement.node_selector, placement.tolerations) == ("0", {}, [])
    assert placement.cpu == "2"


@pytest.mark.parametrize(
    ("field", "arguments"),
    [
        ("ray_address", {"ray_address": "ray-head:8265"}),
        ("ray_address", {"ray_address": "kuberay://"}),
        ("num_workers", {"num_workers": 0}),
        ("cpus_per_worker", {"cpus_per_worker": 0.0}),
        ("gpus_per_worker", {"gpus_per_worker": 0.0}),
        ("memory", {"memory": "16 GB"}),
    ],
)
def test_bad_placement_parameters_name_the_field(field: str, arguments: dict[str, object]) -> None:
    with pytest.raises(InputError, match=field):
        placed(**arguments)


def test_the_op_outputs_the_placement_as_kubeflow_reads_it(kfp_local: Path) -> None:
    from searchrank.components.plan_training import plan_training_op

    task = plan_training_op(
        ray_address="",
        use_gpu=True,
        num_workers=2,
        cpus_per_worker=1.0,
        gpus_per_worker=1.0,
        memory="8Gi",
        gpu_node_selector=GPU_NODE,
        gpu_toleration=GPU_TAINT,
    )
    assert task.outputs["target"] == "step"
    assert task.outputs["gpus"] == "2" and task.outputs["cpu"] == "3"
    assert task.outputs["node_selector"] == GPU_NODE
    assert task.outputs["tolerations"] == [GPU_TAINT]
