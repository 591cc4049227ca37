"""Running the Ray Train job: in a local Ray started for the step, or inside a Ray job on a
cluster. Both build the same ``TorchTrainer`` (see :func:`fit`)."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from searchrank.components.core.checkpoint import DESCRIPTION
from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_ranker.data import TRAIN_SLATES
from searchrank.components.train_ranker.loop import SCORE, train_loop_per_worker

OBJECT_STORE_BYTES = 1 << 30


def quiet_ray_environment() -> None:
    """Environment settings that keep Ray quiet and local (set before ``ray`` starts)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


@contextmanager
def local_ray(config: TrainRankerConfig) -> Iterator[None]:
    """A Ray instance on this machine for the duration of the block.

    Logical CPUs are declared above what the workers take: Ray Data's read tasks need a CPU
    of their own, and with every CPU held by a train worker they wait forever.
    """
    quiet_ray_environment()
    import ray

    cpus = math.ceil(config.num_workers * config.cpus_per_worker) + max(os.cpu_count() or 1, 2)
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        object_store_memory=OBJECT_STORE_BYTES,
    )
    try:
        yield
    finally:
        ray.shutdown()


def threads_per_worker(config: TrainRankerConfig) -> int:
    return max(1, int((os.cpu_count() or 1) / config.num_workers))


def fit(spec: dict[str, Any], storage: Path, name: str) -> tuple[str, list[dict[str, float]]]:
    """Train in the current Ray session.

    Returns:
        (the path of the best checkpoint by validation NDCG@10, the per-epoch history).
    """
    import ray
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config = TrainRankerConfig(**spec["config"])
    ray.data.DataContext.get_current().enable_progress_bars = False
    dataset = ray.data.read_parquet(str(Path(spec["data_dir"]) / TRAIN_SLATES))
    resources = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        resources["GPU"] = config.gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec,
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=config.use_gpu,
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage.resolve()),
            checkpoint_config=CheckpointConfig(
                checkpoint_score_attribute=SCORE, checkpoint_score_order="max"
            ),
            failure_config=FailureConfig(max_failures=config.max_failures),
        ),
        datasets={"train": dataset},
    )
    result = trainer.fit()
    if not result.best_checkpoints:
        raise RuntimeError("training finished without a checkpoint")
    best, _ = max(result.best_checkpoints, key=lambda pair: pair[1][SCORE])
    # The latest checkpoint carries the whole run's history, including epochs after the best.
    with (result.checkpoint or best).as_directory() as folder:
        history = json.loads((Path(folder) / DESCRIPTION).read_text())["history"]
    return best.path, history
