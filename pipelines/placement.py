"""Where each task of the search-ranking pipeline runs on Kubernetes, and what it may use.

Every task gets CPU and memory requests equal to its limits (so the scheduler reserves what the
step uses, and a step that outgrows its limit fails visibly instead of starving a node) and a
timeout. Tasks that open Feast mount its configuration and get the online store's and object
store's settings as environment variables; tasks that read object storage get the latter. The
train steps take their size, GPU, node selector and tolerations from ``plan_training``'s
outputs, which Kubeflow's driver resolves when it creates their pods.

The names of the config maps, secrets and variables come from
:mod:`searchrank.core.names`, which the manifests in ``infra/k8s`` follow too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kfp import kubernetes

from searchrank.core import names

RAY_SHM = "2Gi"
"""The memory-backed ``/dev/shm`` of a step that may start Ray: above the 1 GiB object store
the step's Ray is given (``train_ranker``'s runner), so Ray never falls back to ``/tmp``."""
TRAIN_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class PodSize:
    """A task pod's CPU and memory (requests equal limits) and how long it may run."""

    cpu: str
    memory: str
    timeout: timedelta


LIGHT = PodSize("1", "2Gi", timedelta(minutes=30))
"""Planning and the run report: small files only."""
MODELLING = PodSize("2", "8Gi", timedelta(hours=4))
"""Splitting, the intent model, LightGBM, evaluation, the index: one training set in memory."""
FEATURES = PodSize("4", "16Gi", timedelta(hours=4))
"""Feast's point-in-time join, materialization and the data contract: DuckDB's memory limit in
``feature_store.cluster.yaml`` (12 GB) plus the process around it."""
PACKAGING = PodSize("2", "8Gi", timedelta(hours=2))
"""Building the Bento and infra-validating it with ``bentoml serve`` in the same pod."""


def size(task: Any, pod: PodSize) -> None:
    """Give ``task`` the requests, limits and timeout of ``pod``."""
    task.set_cpu_request(pod.cpu).set_cpu_limit(pod.cpu)
    task.set_memory_request(pod.memory).set_memory_limit(pod.memory)
    kubernetes.set_timeout(task, int(pod.timeout.total_seconds()))


def place_trainer(task: Any, placement: Any, gpu_type: Any, work_claim: Any) -> None:
    """Size a train step from ``plan_training``'s outputs (``placement``), give it the shared
    work claim at :data:`names.WORK_MOUNT` and a memory ``/dev/shm`` for its Ray."""
    cpu, memory = placement.outputs["cpu"], placement.outputs["memory"]
    task.set_cpu_request(cpu).set_cpu_limit(cpu)
    task.set_memory_request(memory).set_memory_limit(memory)
    task.set_accelerator_type(gpu_type).set_accelerator_limit(placement.outputs["gpus"])
    kubernetes.add_node_selector_json(task, placement.outputs["node_selector"])
    kubernetes.add_toleration_json(task, placement.outputs["tolerations"])
    kubernetes.set_timeout(task, int(TRAIN_TIMEOUT.total_seconds()))
    kubernetes.mount_pvc(task, pvc_name=work_claim, mount_path=names.WORK_MOUNT)
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=RAY_SHM
    )
    kubernetes.add_pod_label(task, *names.RAY_CLIENT_LABEL)


def read_object_storage(task: Any) -> None:
    """Give ``task`` the object store's endpoint, region and credentials."""
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=names.STORAGE_CONFIG_MAP,
        config_map_key_to_env=names.STORAGE_CONFIG_ENV,
    )
    kubernetes.use_secret_as_env(
        task,
        secret_name=names.OBJECT_STORE_SECRET,
        secret_key_to_env=names.OBJECT_STORE_SECRET_ENV,
    )


def open_feast(task: Any) -> None:
    """Mount Feast's configuration at :data:`names.FEAST_REPO_MOUNT` (the pipeline's default
    ``feature_repo``) and give ``task`` the online store's, registry's and object store's
    settings that ``feature_store.cluster.yaml`` reads; with ``feature_store.ray.yaml`` it
    joins and materializes on the Ray cluster, whose network policy admits Ray clients."""
    kubernetes.use_config_map_as_volume(
        task, config_map_name=names.FEAST_CONFIG_MAP, mount_path=names.FEAST_REPO_MOUNT
    )
    kubernetes.use_secret_as_env(
        task,
        secret_name=names.ONLINE_STORE_SECRET,
        secret_key_to_env=names.ONLINE_STORE_SECRET_ENV,
    )
    kubernetes.add_pod_label(task, *names.FEAST_CLIENT_LABEL)
    kubernetes.add_pod_label(task, *names.RAY_CLIENT_LABEL)
    read_object_storage(task)
