"""The ``plan_training`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import NamedTuple

from kfp import dsl

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_training_op(
    ray_address: str,
    use_gpu: bool,
    num_workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    memory: str,
    gpu_node_selector: dict,
    gpu_toleration: dict,
) -> NamedTuple(  # type: ignore[valid-type]
    "Placement",
    [
        ("target", str),
        ("gpus", str),
        ("cpu", str),
        ("memory", str),
        ("node_selector", dict),
        ("tolerations", list),
    ],
):
    """Decide what the train steps' pods ask Kubernetes for, from where their Ray runs.

    Args:
        ray_address: empty (Ray in the step), a Ray dashboard URL, or kuberay://NAMESPACE.
        use_gpu: whether the workers train on GPUs.
        num_workers: Ray Train workers.
        cpus_per_worker: CPUs per worker.
        gpus_per_worker: GPUs per worker.
        memory: the train step pod's memory (a Kubernetes quantity).
        gpu_node_selector: the labels of a GPU node.
        gpu_toleration: the toleration of a GPU node's taint.

    Returns:
        target (step, ray-jobs or kuberay), gpus, cpu, memory, node_selector and tolerations of
        the train steps' pods: a GPU, its node selector and toleration only when the step
        trains on GPUs itself.
    """
    from collections import namedtuple

    from searchrank.components.plan_training.logic import plan_training

    placement = plan_training(
        ray_address,
        use_gpu,
        num_workers,
        cpus_per_worker,
        gpus_per_worker,
        memory,
        gpu_node_selector,
        gpu_toleration,
    )
    placed = namedtuple(
        "placed", ["target", "gpus", "cpu", "memory", "node_selector", "tolerations"]
    )
    return placed(
        str(placement.target),
        placement.gpus,
        placement.cpu,
        placement.memory,
        placement.node_selector,
        placement.tolerations,
    )
