"""``train_ranker``: the context-aware transformer ranker, trained with Ray Train.

Where Ray runs is a parameter: empty, a Ray instance is started inside the step (CPU workers on
one machine); an address, the training is submitted to that cluster as a Ray job. The output is
the best checkpoint by validation NDCG@10, a self-describing folder that serving can load
(``searchrank.core.checkpoint``), plus the training curves.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_ranker.data import TRAIN_SLATES, prepare
from searchrank.components.train_ranker.loop import SCORE
from searchrank.core.checkpoint import DESCRIPTION
from searchrank.core.contract import FeatureContract
from searchrank.core.html import render_page
from searchrank.core.io import read_parquet_input
from searchrank.core.plots import training_curves
from searchrank.core.raytrain.runner import RunRecipe, train_run


@dataclass(frozen=True)
class TrainSummary:
    """What a training run produced."""

    best_epoch: int
    best_val_ndcg10: float
    epochs_run: int
    history: list[dict[str, float]]
    shapes: dict[str, int]
    checkpoint: str
    """Where the best checkpoint lasts: Ray's own in ``work_dir`` when one was given (shared
    storage that a rerun resumes from), else ``model_dir``: Ray then wrote to a temporary
    folder, which lineage must never name."""
    model_dir: str

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


RANKER_RUN = RunRecipe(
    loop="searchrank.components.train_ranker.loop:train_loop_per_worker",
    train_file=TRAIN_SLATES,
    score=SCORE,
    description=DESCRIPTION,
)
"""The ranker's Ray runs (see :mod:`searchrank.core.raytrain.runner`)."""


def train_ranker(
    train_path: Path,
    valid_path: Path,
    model_dir: Path,
    config: TrainRankerConfig,
    *,
    contract: FeatureContract | None = None,
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
        contract: the data's feature contract, whose types and domains decide the feature
            encoding and which the model folder keeps; None for data without one (every
            feature numeric).
        ray_address: empty to train in a local Ray; a dashboard URL to submit a Ray job there;
            ``kuberay://NAMESPACE`` to create a KubeRay RayJob in that namespace.
        work_dir: where encoded data and Ray checkpoints go; on a cluster, shared storage.
            None: a temporary folder, which the summary never names (see ``checkpoint``).
        job_python: the cluster's Python with searchrank installed (Ray job mode only).
        log: where progress lines go.
    """
    train, valid = read_parquet_input(train_path, "train"), read_parquet_input(valid_path, "valid")
    work = work_dir or Path(tempfile.mkdtemp(prefix="searchrank-train-"))
    _, shapes = prepare(
        train, valid, contract, config.max_list_length, work / "data", config.position_bias
    )
    log(
        f"training on {shapes.train_slates:,} slates ({shapes.train_candidates:,} candidates), "
        f"validating on {shapes.valid_slates:,}; {config.num_workers} Ray workers"
    )
    run = train_run(
        RANKER_RUN,
        config,
        shapes.as_dict(),
        work,
        f"ranker-{uuid.uuid4().hex[:8]}",
        model_dir,
        keep_work=work_dir is not None,
        ray_address=ray_address,
        job_python=job_python,
        log=log,
    )
    if contract is not None:
        contract.save(model_dir)
    return TrainSummary(
        best_epoch=run.best_epoch,
        best_val_ndcg10=float(run.best[SCORE]),
        epochs_run=len(run.history),
        history=run.history,
        shapes=shapes.as_dict(),
        checkpoint=run.checkpoint,
        model_dir=str(model_dir),
    )


def curves_html(summary: TrainSummary) -> str:
    """The training curves and per-epoch table as one HTML page."""
    rows = "".join(
        f"<tr><td>{int(h['epoch'])}</td><td>{h['train_loss']:.4f}</td><td>{h[SCORE]:.4f}</td>"
        f"<td>{h['val_ndcg@5']:.4f}</td><td>{h['val_mrr']:.4f}</td>"
        f"<td>{h['candidates_per_s']:,.0f}</td></tr>"
        for h in summary.history
    )
    body = f"""
<p>Best validation NDCG@10 <b>{summary.best_val_ndcg10:.4f}</b> at epoch {summary.best_epoch}
({summary.epochs_run} epochs run; {summary.shapes["train_slates"]:,} training slates).
Checkpoint: <code>{summary.checkpoint}</code>.</p>
<img alt="training curves" src="{training_curves(summary.history, summary.best_epoch)}">
<table><tr><th>epoch</th><th>train loss</th><th>val NDCG@10</th><th>val NDCG@5</th>
<th>val MRR</th><th>candidates/s</th></tr>{rows}</table>"""
    return render_page("Ranker training", body)
