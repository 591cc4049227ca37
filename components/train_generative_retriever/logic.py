"""``train_generative_retriever``: a generative, semantic-ID retriever trained with Ray Train.

The items' semantic IDs are fit on the two-tower retriever's item embeddings (what
``train_retriever`` writes as ``embeddings``); an encoder–decoder then learns to write the ID
of the item a (query, listener) wanted (:mod:`searchrank.core.generative`). Ray runs where
``ray_address`` says, through the ranker's runner, like ``train_retriever``.

The output is the best checkpoint by validation log-likelihood: a folder
:class:`~searchrank.core.generative.GenerativeSource` loads (weights, model shape and token
settings, the listener vocabulary, the semantic IDs) plus the run's history
(:data:`~.loop.TRAINING`) and its resume state.

With a ``work_dir``, the Ray run is named after the configuration and the data's shapes, so a
rerun of the same step with the same ``work_dir`` (a retried pod, say) finds the run's
checkpoints there and continues from the latest instead of starting again.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.components.train_generative_retriever.data import TRAIN_PAIRS, prepare
from searchrank.components.train_generative_retriever.loop import SCORE, TRAINING
from searchrank.core.html import render_page
from searchrank.core.io import read_parquet_input
from searchrank.core.plots import training_curves
from searchrank.core.raytrain.runner import RunRecipe, train_run

CURVES = {"val_recall@100": "Recall@100", "val_recall@10": "Recall@10", "val_mrr": "MRR"}
"""The decoded validation metrics drawn by epoch (the log-likelihood has its own scale)."""
GENERATIVE_RUN = RunRecipe(
    loop="searchrank.components.train_generative_retriever.loop:train_loop_per_worker",
    train_file=TRAIN_PAIRS,
    score=SCORE,
    description=TRAINING,
)
"""The generative retriever's Ray runs (see :mod:`searchrank.core.raytrain.runner`)."""


@dataclass(frozen=True)
class GenerativeSummary:
    """What a generative retriever training run produced."""

    best_epoch: int
    best: dict[str, float]
    epochs_run: int
    history: list[dict[str, float]]
    shapes: dict[str, Any]
    """:class:`~.data.GenerativeShapes` as a dict, with the semantic IDs' report."""
    checkpoint: str
    """Where the best checkpoint lasts: Ray's own in ``work_dir`` when one was given, else
    ``model_dir`` (as ``train_retriever``'s summary)."""
    model_dir: str

    def metrics(self) -> dict[str, float]:
        report = self.shapes["semantic_ids"]
        return {
            "best_val_log_likelihood": self.best[SCORE],
            "best_val_recall@100": self.best["val_recall@100"],
            "best_val_recall@10": self.best["val_recall@10"],
            "best_val_mrr": self.best["val_mrr"],
            "best_epoch": float(self.best_epoch),
            "epochs_run": float(self.epochs_run),
            "train_pairs": float(self.shapes["train_pairs"]),
            "pairs_per_s": float(self.history[-1]["pairs_per_s"]),
            "semantic_id_collisions": float(report["collisions"]),
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_name(config: TrainGenerativeConfig, shapes: dict[str, Any]) -> str:
    """The Ray run's name: the same for the same configuration and data (see the module
    docstring), so a rerun in the same storage resumes."""
    fingerprint = json.dumps({"config": config.as_dict(), "shapes": shapes}, sort_keys=True)
    return f"generative-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"


def train_generative_retriever(
    train_path: Path,
    valid_path: Path,
    catalogue_path: Path,
    embeddings_path: Path,
    model_dir: Path,
    config: TrainGenerativeConfig,
    *,
    ray_address: str = "",
    work_dir: Path | None = None,
    job_python: str = "python",
    log: Callable[[str], None] = print,
) -> GenerativeSummary:
    """Fit semantic IDs on the item embeddings, train the model, select it on ``valid_path``.

    Args:
        train_path: training split: logged (search × candidate) rows with labels.
        valid_path: validation split, for early stopping and selection.
        catalogue_path: one row per item with ``item_id``; the items that can be retrieved.
        embeddings_path: ``train_retriever``'s item embeddings (``item_id``, ``embedding``).
        model_dir: where the best checkpoint is copied (created).
        config: semantic IDs, model, optimisation, validation and scaling.
        ray_address: empty, a dashboard URL or ``kuberay://NAMESPACE`` (as ``train_ranker``).
        work_dir: where encoded data and Ray checkpoints go (on a cluster, shared storage); a
            rerun with the same one resumes. None: a temporary folder, which the summary never
            names (see ``checkpoint``).
        job_python: the cluster's Python with searchrank installed (Ray job mode only).
        log: where progress lines go.
    """
    train, valid = read_parquet_input(train_path, "train"), read_parquet_input(valid_path, "valid")
    catalogue = read_parquet_input(catalogue_path, "catalogue")
    embeddings = read_parquet_input(embeddings_path, "embeddings")
    work = work_dir or Path(tempfile.mkdtemp(prefix="searchrank-generative-"))
    shapes = prepare(train, valid, catalogue, embeddings, config, work / "data").as_dict()
    report = shapes["semantic_ids"]
    log(
        f"semantic IDs of {shapes['items']:,} items: {report['collisions']:.1%} collisions, "
        f"perplexity {', '.join(f'{p:.0f}' for p in report['perplexity'])} by level; training "
        f"on {shapes['train_pairs']:,} (search, item) pairs, validating on "
        f"{shapes['valid_searches']:,} searches ({shapes['decode_searches']:,} decoded); "
        f"{config.num_workers} Ray workers"
    )
    run = train_run(
        GENERATIVE_RUN,
        config,
        shapes,
        work,
        run_name(config, shapes),
        model_dir,
        keep_work=work_dir is not None,
        ray_address=ray_address,
        job_python=job_python,
        log=log,
    )
    return GenerativeSummary(
        best_epoch=run.best_epoch,
        best=run.best,
        epochs_run=len(run.history),
        history=run.history,
        shapes=shapes,
        checkpoint=run.checkpoint,
        model_dir=str(model_dir),
    )


def semantic_id_table(report: dict[str, Any]) -> str:
    """The semantic IDs' report as HTML: collisions, then code usage and perplexity by level."""
    levels = "".join(
        f"<tr><td>{level + 1}</td><td>{size}</td><td>{usage:.1%}</td><td>{perplexity:.1f}</td></tr>"
        for level, (size, usage, perplexity) in enumerate(
            zip(report["codes_per_level"], report["code_usage"], report["perplexity"], strict=True)
        )
    )
    return f"""
<h2>Semantic IDs</h2>
<p>{report["items"]:,} items; {report["collisions"]:.1%} share their codes with another item
(the largest group: {report["max_duplicates"]}), told apart by the de-duplication code;
reconstruction error {report["reconstruction_error"]:.3f}.</p>
<table><tr><th>level</th><th>codes</th><th>code usage</th><th>perplexity</th></tr>
{levels}</table>"""


def curves_html(summary: GenerativeSummary) -> str:
    """The training curves, the per-epoch table and the semantic IDs' report as one page."""
    rows = "".join(
        f"<tr><td>{int(h['epoch'])}</td><td>{h['train_loss']:.4f}</td><td>{h[SCORE]:.4f}</td>"
        f"<td>{h['val_recall@10']:.4f}</td><td>{h['val_recall@100']:.4f}</td>"
        f"<td>{h['val_mrr']:.4f}</td><td>{h['pairs_per_s']:,.0f}</td></tr>"
        for h in summary.history
    )
    image = training_curves(summary.history, summary.best_epoch, CURVES)
    body = f"""
<p>Best validation log-likelihood <b>{summary.best[SCORE]:.4f}</b> per code at epoch
{summary.best_epoch} (Recall@100 {summary.best["val_recall@100"]:.4f} on
{summary.shapes["decode_searches"]:,} decoded searches; {summary.epochs_run} epochs run;
{summary.shapes["train_pairs"]:,} training pairs, {summary.shapes["items"]:,} items).
Checkpoint: <code>{summary.checkpoint}</code>.</p>
<img alt="training curves" src="{image}">
<table><tr><th>epoch</th><th>train loss</th><th>val log-likelihood</th><th>val Recall@10</th>
<th>val Recall@100</th><th>val MRR</th><th>pairs/s</th></tr>{rows}</table>
{semantic_id_table(summary.shapes["semantic_ids"])}"""
    return render_page("Generative retriever training", body)
