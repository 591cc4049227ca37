"""RayJobs for training on KubeRay, rendered from the manifests beside this module.

``k8s/raycluster.yaml`` (a link to ``infra/k8s/base/raycluster.yaml``, which infra owns) is the
one definition of the training cluster (kustomize applies it as the standing cluster);
``k8s/rayjob.yaml`` holds only the job's own fields. A rendered RayJob is the job template with
a copy of the cluster spec, sized by the component's scaling parameters.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from searchrank.core.errors import InputError

MANIFESTS = Path(__file__).resolve().parent / "k8s"
RAYCLUSTER = MANIFESTS / "raycluster.yaml"
RAYJOB = MANIFESTS / "rayjob.yaml"
GPU_RESOURCE = "nvidia.com/gpu"
SHM_VOLUME = "dshm"
SHM_SHARE = 3 / 8
"""The worker's memory-backed /dev/shm as a share of its memory: Ray's object store takes 30 %
of a container's memory and falls back to /tmp when /dev/shm is smaller (raycluster.yaml)."""
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_MEBIBYTES = {"Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
_MEMORY = re.compile(rf"([0-9]+)({'|'.join(_MEBIBYTES)})")


@dataclass(frozen=True)
class RayJobSpec:
    """What varies between training RayJobs."""

    name: str
    entrypoint: str
    image: str
    num_workers: int = 2
    cpus_per_worker: float = 4.0
    memory_per_worker: str = "16Gi"
    gpus_per_worker: int = 0
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    ttl_seconds: int = 600

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InputError("name", self.name, "must be a Kubernetes name (a-z, 0-9, -; ≤ 63)")
        if not self.entrypoint.strip():
            raise InputError("entrypoint", self.entrypoint, "must be a command")
        if self.num_workers < 1:
            raise InputError("num_workers", self.num_workers, "must be at least 1")
        if self.gpus_per_worker < 0:
            raise InputError("gpus_per_worker", self.gpus_per_worker, "must not be negative")
        if not _MEMORY.fullmatch(self.memory_per_worker):
            raise InputError(
                "memory_per_worker", self.memory_per_worker, "must be a quantity such as 16Gi"
            )

    @property
    def shm_size(self) -> str:
        """The worker's /dev/shm size (see :data:`SHM_SHARE`)."""
        match = _MEMORY.fullmatch(self.memory_per_worker)
        assert match is not None  # checked in __post_init__
        mebibytes = int(match.group(1)) * _MEBIBYTES[match.group(2)]
        return f"{int(mebibytes * SHM_SHARE)}Mi"


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def render_rayjob(spec: RayJobSpec) -> dict[str, Any]:
    """The RayJob object for ``spec`` (a dict ready for the Kubernetes API)."""
    job = load(RAYJOB)
    cluster = copy.deepcopy(load(RAYCLUSTER)["spec"])
    job["metadata"]["name"] = spec.name
    job["spec"]["entrypoint"] = spec.entrypoint
    job["spec"]["ttlSecondsAfterFinished"] = spec.ttl_seconds
    cluster["enableInTreeAutoscaling"] = False  # a job's cluster has a fixed size
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["image"] = spec.image
    group = cluster["workerGroupSpecs"][0]
    group["replicas"] = group["minReplicas"] = group["maxReplicas"] = spec.num_workers
    pod = group["template"]["spec"]
    worker = pod["containers"][0]
    worker["image"] = spec.image
    amounts: dict[str, str] = {
        "cpu": f"{spec.cpus_per_worker:g}",
        "memory": spec.memory_per_worker,
    }
    if spec.gpus_per_worker:
        amounts[GPU_RESOURCE] = str(spec.gpus_per_worker)
    worker["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    for volume in pod["volumes"]:
        if volume["name"] == SHM_VOLUME:
            volume["emptyDir"]["sizeLimit"] = spec.shm_size
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    job["spec"]["rayClusterSpec"] = cluster
    return job
