"""Running a Ray Train job: in a local Ray started for the step, or inside a Ray job on a
cluster. Both build the same ``TorchTrainer`` (see :func:`fit`).

The ranker, the retriever and the generative retriever train through this one runner
(:func:`train_run`). What differs is a :class:`RunRecipe` and travels in the run's spec
(:func:`run_spec`, a JSON-able dict, so that a Ray job on a cluster can read it from shared
storage): ``loop`` names the per-worker train function as ``module:function``, ``train_file``
the parquet file in ``data_dir`` that Ray Data shards across workers, ``score`` the reported
metric that selects the best checkpoint, and ``description`` the JSON file of a checkpoint that
holds the run's history. ``config`` carries the trainer's whole configuration, whose scaling
fields all trainers share.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from searchrank.core.names import COMPONENT_IMAGE
from searchrank.core.ray_address import RayTarget, ray_target
from searchrank.core.raytrain.rayjob import RayJobSpec

OBJECT_STORE_BYTES = 1 << 30


class Scaling(Protocol):
    """The scaling fields every trainer's configuration has."""

    @property
    def num_workers(self) -> int: ...
    @property
    def cpus_per_worker(self) -> float: ...
    @property
    def use_gpu(self) -> bool: ...
    @property
    def gpus_per_worker(self) -> float: ...


class RunConfig(Scaling, Protocol):
    """A trainer's configuration: its scaling fields, and all of it as a JSON-able dict."""

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunRecipe:
    """What one trainer's Ray runs share (see the module docstring).

    Attributes:
        loop: the per-worker train function, ``module:function``.
        train_file: the parquet file in the data folder that Ray Data shards across workers.
        score: the reported metric whose highest value selects the best checkpoint.
        description: the JSON file in a checkpoint folder that holds the run's history.
    """

    loop: str
    train_file: str
    score: str
    description: str


@dataclass(frozen=True)
class TrainedRun:
    """What :func:`train_run` leaves.

    Attributes:
        checkpoint: where the best checkpoint lasts: Ray's own in the work folder when the
            caller keeps it (shared storage that a rerun resumes from), else the model folder,
            because the work folder, a temporary one, is gone (lineage must never name it).
        history: one record per epoch run, as the loop reported it.
        best: the record of the epoch whose score was highest.
    """

    checkpoint: str
    history: list[dict[str, float]]
    best: dict[str, float]

    @property
    def best_epoch(self) -> int:
        return int(self.best["epoch"])


def rayjob_spec(config: Scaling) -> RayJobSpec:
    """The RayJob's image and sizes from the scaling parameters (name and entrypoint are set
    when the job is created)."""
    image = f"{COMPONENT_IMAGE}-cuda" if config.use_gpu else COMPONENT_IMAGE
    return RayJobSpec(
        name="searchrank-train",
        entrypoint="python",
        image=image,
        num_workers=config.num_workers,
        cpus_per_worker=config.cpus_per_worker,
        gpus_per_worker=math.ceil(config.gpus_per_worker) if config.use_gpu else 0,
    )


def run_spec(
    recipe: RunRecipe, config: RunConfig, shapes: dict[str, Any], data_dir: Path, name: str
) -> dict[str, Any]:
    """The spec every worker of the run named ``name`` reads: the recipe, ``config``, the
    prepared data's ``shapes`` and folder, and the threads each worker may use."""
    return {
        "config": config.as_dict(),
        "shapes": shapes,
        "data_dir": str(data_dir.resolve()),
        "threads": threads_per_worker(config),
        "run_name": name,
        "loop": recipe.loop,
        "train_file": recipe.train_file,
        "score": recipe.score,
        "description": recipe.description,
    }


def train_run(
    recipe: RunRecipe,
    config: RunConfig,
    shapes: dict[str, Any],
    work: Path,
    name: str,
    model_dir: Path,
    *,
    keep_work: bool,
    ray_address: str = "",
    job_python: str = "python",
    log: Callable[[str], None] = print,
) -> TrainedRun:
    """Train the run ``name`` on the data prepared in ``work / "data"`` where ``ray_address``
    says (:func:`train_anywhere`, Ray's checkpoints in ``work / "ray"``), copy its best
    checkpoint to ``model_dir``, and remove ``work`` unless ``keep_work``."""
    spec = run_spec(recipe, config, shapes, work / "data", name)
    best, history = train_anywhere(
        spec, work / "ray", config, ray_address, model_dir, job_python, log
    )
    if not keep_work:  # the best checkpoint is in model_dir now
        shutil.rmtree(work, ignore_errors=True)
    return TrainedRun(
        checkpoint=best if keep_work else str(model_dir),
        history=history,
        best=max(history, key=lambda h: h[recipe.score]),
    )


def train_anywhere(
    spec: dict[str, Any],
    storage: Path,
    config: Scaling,
    ray_address: str,
    model_dir: Path,
    job_python: str = "python",
    log: Callable[[str], None] = print,
) -> tuple[str, list[dict[str, float]]]:
    """Train where ``ray_address`` says: empty, in a local Ray started for the call; a
    dashboard URL, as a Ray job on that cluster; ``kuberay://NAMESPACE``, as a KubeRay RayJob.
    The best checkpoint is then copied to ``model_dir`` (replacing what was there).

    Returns:
        (the path of the best checkpoint where Ray keeps it, the per-epoch history).
    """
    best, history = _train(spec, storage, config, ray_address, job_python, log)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(best, model_dir)
    return best, history


def _train(
    spec: dict[str, Any],
    storage: Path,
    config: Scaling,
    ray_address: str,
    job_python: str,
    log: Callable[[str], None],
) -> tuple[str, list[dict[str, float]]]:
    from searchrank.core.raytrain.jobs import submit_and_follow
    from searchrank.core.raytrain.kuberay import run_rayjob

    target = ray_target(ray_address)
    if target is RayTarget.KUBERAY:
        outcome = run_rayjob(ray_address, spec, storage, rayjob_spec(config), log=log)
    elif target is RayTarget.RAY_JOBS:
        outcome = submit_and_follow(ray_address, spec, storage, python=job_python, log=log)
    else:
        with local_ray(config):
            return fit(spec, storage, spec["run_name"])
    return str(outcome["best_checkpoint"]), list(outcome["history"])


NOISY_RAY_LINES = (
    "worker processes have been started on node|ExecutionOptions.exclude_resources"
    "|self.exclude_resources = exclude_resources"
)
"""Ray log lines that say nothing about a training run (a regular expression): the raylet's
worker start-up count, which Ray Train's and Ray Data's actors exceed on a machine with few
cores by design, and Ray Data's deprecation warning (two lines) about an option that Ray's own
dataset manager sets when Ray Train shards a dataset."""


def quiet_ray_environment() -> None:
    """Environment settings that keep Ray quiet and local (set before ``ray`` starts)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS_SKIP_REGEX", NOISY_RAY_LINES)
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


def local_cpus(config: Scaling) -> int:
    """The logical CPUs a Ray on this machine declares for ``config``'s workers.

    More than the workers take: Ray Data's read tasks need a CPU of their own, and with every
    CPU held by a train worker they wait forever.
    """
    return math.ceil(config.num_workers * config.cpus_per_worker) + max(os.cpu_count() or 1, 2)


@contextmanager
def local_ray(config: Scaling) -> Iterator[None]:
    """A Ray on this machine for the duration of the block: the one this process already runs
    (a test session's), else the running cluster that ``RAY_ADDRESS`` names (Ray's own
    variable; ``searchrank demo`` starts one for all its training steps, see
    :func:`shared_local_ray`), else one started for the block and stopped after it.

    The workers' output reaches this process (``log_to_driver``): their per-epoch lines are how
    a training step shows progress.
    """
    quiet_ray_environment()
    import ray

    if ray.is_initialized():
        yield
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=local_cpus(config),
            include_dashboard=False,
            logging_level=logging.WARNING,
            object_store_memory=OBJECT_STORE_BYTES,
        )
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def shared_local_ray(config: Scaling) -> Iterator[str]:
    """Start a Ray on this machine, sized for ``config``'s workers, that other processes join
    while the block runs: it yields the cluster's address and sets ``RAY_ADDRESS`` to it, so
    that every training step started meanwhile (a ``kfp.local`` step is a process of its own)
    connects instead of starting a Ray of its own (some 10 s each here)."""
    quiet_ray_environment()
    import ray

    previous = os.environ.get("RAY_ADDRESS")
    ray.init(
        num_cpus=local_cpus(config),
        include_dashboard=False,
        logging_level=logging.WARNING,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
    )
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    try:
        yield os.environ["RAY_ADDRESS"]
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = previous


def threads_per_worker(config: Scaling) -> int:
    return max(1, int((os.cpu_count() or 1) / config.num_workers))


def train_function(path: str) -> Callable[[dict[str, Any]], None]:
    """The per-worker train function named ``module:function``."""
    module, _, function = path.partition(":")
    found: Callable[[dict[str, Any]], None] = getattr(importlib.import_module(module), function)
    return found


def fit(spec: dict[str, Any], storage: Path, name: str) -> tuple[str, list[dict[str, float]]]:
    """Train in the current Ray session (see the module docstring for the spec's keys).

    Returns:
        (the path of the best checkpoint by the spec's score, the per-epoch history).
    """
    import ray
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config, score = spec["config"], spec["score"]
    ray.data.DataContext.get_current().enable_progress_bars = False
    dataset = ray.data.read_parquet(str(Path(spec["data_dir"]) / spec["train_file"]))
    resources = {"CPU": config["cpus_per_worker"]}
    if config["use_gpu"]:
        resources["GPU"] = config["gpus_per_worker"]
    trainer = TorchTrainer(
        train_function(spec["loop"]),
        train_loop_config=spec,
        scaling_config=ScalingConfig(
            num_workers=config["num_workers"],
            use_gpu=config["use_gpu"],
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage.resolve()),
            checkpoint_config=CheckpointConfig(
                checkpoint_score_attribute=score, checkpoint_score_order="max"
            ),
            failure_config=FailureConfig(max_failures=config["max_failures"]),
        ),
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if not result.best_checkpoints:
        raise RuntimeError("training finished without a checkpoint")
    best, _ = max(result.best_checkpoints, key=lambda pair: pair[1][score])
    # The latest checkpoint carries the whole run's history, including epochs after the best.
    with (result.checkpoint or best).as_directory() as folder:
        history = json.loads((Path(folder) / spec["description"]).read_text())["history"]
    return best.path, history
