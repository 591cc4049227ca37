"""``train_ranker``: the context-aware transformer ranker, trained with Ray Train.

Where Ray runs is a parameter: empty, a Ray instance is started inside the step (CPU workers on
one machine); an address, the training is submitted to that cluster as a Ray job. The output is
the best checkpoint by validation NDCG@10, a self-describing folder that serving can load
(``searchrank.components.core.checkpoint``), plus the training curves.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from searchrank.components.core.errors import InputError
from searchrank.components.core.names import COMPONENT_IMAGE
from searchrank.components.core.plots import training_curves
from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_ranker.data import prepare
from searchrank.components.train_ranker.kuberay import SCHEME as KUBERAY
from searchrank.components.train_ranker.kuberay import run_rayjob
from searchrank.components.train_ranker.loop import SCORE
from searchrank.components.train_ranker.rayjob import RayJobSpec


@dataclass(frozen=True)
class TrainSummary:
    """What a training run produced."""

    best_epoch: int
    best_val_ndcg10: float
    epochs_run: int
    history: list[dict[str, float]]
    shapes: dict[str, int]
    checkpoint: str
    model_dir: str
    feature_service: str

    def metrics(self) -> dict[str, float]:
        last = self.history[-1] if self.history else {}
        return {
            "best_val_ndcg@10": self.best_val_ndcg10,
            "best_epoch": float(self.best_epoch),
            "epochs_run": float(self.epochs_run),
            "candidates_per_s": float(last.get("candidates_per_s", 0.0)),
            "train_slates": float(self.shapes["train_slates"]),
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path, field: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(field, str(path), "must be an existing parquet file")
    return pd.read_parquet(path)


def rayjob_spec(config: TrainRankerConfig) -> RayJobSpec:
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


def train_ranker(
    train_path: Path,
    valid_path: Path,
    model_dir: Path,
    config: TrainRankerConfig,
    *,
    feature_service: str = "",
    ray_address: str = "",
    work_dir: Path | None = None,
    job_python: str = "python",
    log: Callable[[str], None] = print,
) -> TrainSummary:
    """Train the ranker on ``train_path``, select it on ``valid_path``, write it to ``model_dir``.

    Args:
        train_path: training split (parquet, the training-set schema or a ranking dataset).
        valid_path: validation split, for early stopping and selection (never the test split).
        model_dir: where the best checkpoint is copied (created).
        config: model, optimisation and scaling.
        feature_service: the Feast feature service of the data, whose domains decide the
            feature encoding; empty for data without one (every feature numeric).
        ray_address: empty to train in a local Ray; a dashboard URL to submit a Ray job there;
            ``kuberay://NAMESPACE`` to create a KubeRay RayJob in that namespace.
        work_dir: where encoded data and Ray checkpoints go; on a cluster, shared storage.
        job_python: the cluster's Python with searchrank installed (Ray job mode only).
        log: where progress lines go.
    """
    from searchrank.components.train_ranker.jobs import submit_and_follow
    from searchrank.components.train_ranker.runner import fit, local_ray, threads_per_worker

    train, valid = _read(train_path, "train"), _read(valid_path, "valid")
    specs = None
    if feature_service:
        from searchrank.components.validate_data.contract import load_feature_specs

        specs = load_feature_specs(feature_service)
    work = work_dir or Path(tempfile.mkdtemp(prefix="searchrank-train-"))
    _, shapes = prepare(train, valid, specs, config.max_list_length, work / "data")
    name = f"ranker-{uuid.uuid4().hex[:8]}"
    spec = {
        "config": config.as_dict(),
        "shapes": shapes.as_dict(),
        "data_dir": str((work / "data").resolve()),
        "threads": threads_per_worker(config),
        "feature_service": feature_service,
        "run_name": name,
    }
    log(
        f"training on {shapes.train_slates:,} slates ({shapes.train_candidates:,} candidates), "
        f"validating on {shapes.valid_slates:,}; {config.num_workers} Ray workers"
    )
    if ray_address.startswith(KUBERAY):
        outcome = run_rayjob(ray_address, spec, work / "ray", rayjob_spec(config), log=log)
        best, history = outcome["best_checkpoint"], outcome["history"]
    elif ray_address:
        outcome = submit_and_follow(ray_address, spec, work / "ray", python=job_python, log=log)
        best, history = outcome["best_checkpoint"], outcome["history"]
    else:
        with local_ray(config):
            best, history = fit(spec, work / "ray", name)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(best, model_dir)
    best_record = max(history, key=lambda h: h[SCORE])
    return TrainSummary(
        best_epoch=int(best_record["epoch"]),
        best_val_ndcg10=float(best_record[SCORE]),
        epochs_run=len(history),
        history=history,
        shapes=shapes.as_dict(),
        checkpoint=best,
        model_dir=str(model_dir),
        feature_service=feature_service,
    )


def curves_html(summary: TrainSummary) -> str:
    """The training curves and per-epoch table as one HTML page."""
    rows = "".join(
        f"<tr><td>{int(h['epoch'])}</td><td>{h['train_loss']:.4f}</td><td>{h[SCORE]:.4f}</td>"
        f"<td>{h['val_ndcg@5']:.4f}</td><td>{h['val_mrr']:.4f}</td>"
        f"<td>{h['candidates_per_s']:,.0f}</td></tr>"
        for h in summary.history
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Ranker training</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px}}
td,th{{border:1px solid #ccc;padding:3px 8px}} table{{border-collapse:collapse;font-size:13px}}
</style></head><body>
<h1>Ranker training</h1>
<p>Best validation NDCG@10 <b>{summary.best_val_ndcg10:.4f}</b> at epoch {summary.best_epoch}
({summary.epochs_run} epochs run; {summary.shapes["train_slates"]:,} training slates).
Checkpoint: <code>{summary.checkpoint}</code>.</p>
<img alt="training curves" src="{training_curves(summary.history, summary.best_epoch)}">
<table><tr><th>epoch</th><th>train loss</th><th>val NDCG@10</th><th>val NDCG@5</th>
<th>val MRR</th><th>candidates/s</th></tr>{rows}</table></body></html>
"""
