"""What a training step's pod asks Kubernetes for, decided from where its Ray runs.

A train step that starts Ray inside itself (``ray_address`` empty) does the training in its own
pod: it needs the workers' CPUs and, with ``use_gpu``, their GPUs on a GPU node. A step that
submits the training to a Ray cluster (a Ray job or a KubeRay RayJob) only encodes the data and
follows the job: it asks for no GPU, no GPU node and a couple of CPUs. Kubernetes placement is
fixed per task in a compiled pipeline, so the pipeline reads it from this step's outputs at run
time, which the Kubeflow driver resolves before it creates the train step's pod.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from searchrank.core.errors import InputError
from searchrank.core.ray_address import RayTarget, ray_target

FOLLOWER_CPU = "2"
"""CPUs of a step whose training runs elsewhere: reading, encoding and writing the data."""
DRIVER_CPUS = 1
"""CPUs beyond the workers' for a step that trains itself: the Ray driver and Ray Data's reads."""
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?")


@dataclass(frozen=True)
class TrainingPlacement:
    """The train steps' pod settings.

    Attributes:
        target: where the training runs.
        gpus: the GPU limit of the step's pod ("0" unless it trains on GPUs itself); a string,
            as Kubeflow's driver reads a resource count from a string parameter.
        cpu: the step pod's CPU request and limit.
        memory: the step pod's memory request and limit.
        node_selector: labels the step's node must carry (a GPU node's, or none).
        tolerations: taints the step tolerates (a GPU node's, or none).
    """

    target: RayTarget
    gpus: str
    cpu: str
    memory: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]


def plan_training(
    ray_address: str,
    use_gpu: bool,
    num_workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    memory: str,
    gpu_node_selector: dict[str, str],
    gpu_toleration: dict[str, Any],
) -> TrainingPlacement:
    """Place the train steps (see the module docstring).

    Args:
        ray_address: the train steps' ``ray_address`` parameter.
        use_gpu, num_workers, cpus_per_worker, gpus_per_worker: their Ray Train scaling.
        memory: the train step pod's memory, a Kubernetes quantity such as ``16Gi``.
        gpu_node_selector, gpu_toleration: how a pod reaches a GPU node; empty for none.

    Raises:
        InputError: a malformed address, scaling or quantity.
    """
    target = ray_target(ray_address)
    if num_workers < 1:
        raise InputError("num_workers", num_workers, "must be at least 1")
    if not cpus_per_worker > 0:
        raise InputError("cpus_per_worker", cpus_per_worker, "must be positive")
    if use_gpu and not gpus_per_worker > 0:
        raise InputError("gpus_per_worker", gpus_per_worker, "must be positive with use_gpu")
    if not _QUANTITY.fullmatch(memory):
        raise InputError("memory", memory, "must be a Kubernetes quantity such as 16Gi")
    if target is not RayTarget.STEP:
        return TrainingPlacement(target, "0", FOLLOWER_CPU, memory, {}, [])
    cpu = str(math.ceil(num_workers * cpus_per_worker) + DRIVER_CPUS)
    if not use_gpu:
        return TrainingPlacement(target, "0", cpu, memory, {}, [])
    gpus = str(math.ceil(num_workers * gpus_per_worker))
    tolerations = [dict(gpu_toleration)] if gpu_toleration else []
    return TrainingPlacement(target, gpus, cpu, memory, dict(gpu_node_selector), tolerations)
