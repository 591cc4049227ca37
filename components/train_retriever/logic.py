"""``train_retriever``: the two-tower retriever, trained with Ray Train like the ranker.

Ray runs where ``ray_address`` says (a local Ray inside the step, a Ray job on a cluster, or a
KubeRay RayJob), through the ranker's runner. The outputs are the best checkpoint by validation
Recall@100 (a folder :class:`~searchrank.core.retriever.Retriever` loads), the
embeddings of every catalogue item from it (what ``build_index`` indexes), and the curves.

The served checkpoint is then a second run's (:data:`RETRAIN_RUN`, its last epoch kept) that
has seen the validation rows, the most recent searches: by default (``refit``) a run from
scratch on the training and validation rows together for as many epochs as validation chose;
otherwise a catch-up, the chosen checkpoint trained ``catch_up_epochs`` more on those rows (its
vocabularies kept, a lower learning rate). Its validation figures would be no evidence (it
trained on those searches), so the summary's metrics stay the first run's; the test split
judges it.

Last, the served model gets its popularity prior (:mod:`searchrank.core.dense_prior`): the
weight fitted on the validation searches with the chosen checkpoint (before any catch-up or
refit), the streams counted over the validation period, the most recent one.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.train_retriever.data import START_WEIGHTS, TRAIN_PAIRS, prepare
from searchrank.components.train_retriever.loop import SCORE
from searchrank.core import schema as S
from searchrank.core.ann import exact_top_k
from searchrank.core.checkpoint import WEIGHTS
from searchrank.core.dense_prior import (
    DENSE_POOL,
    DensePrior,
    fit_dense_prior,
    period_before,
    recent_log_streams,
)
from searchrank.core.html import render_page
from searchrank.core.io import read_parquet_input
from searchrank.core.plots import training_curves
from searchrank.core.raytrain.runner import RunRecipe, TrainedRun, train_run
from searchrank.core.raytrain.shards import fixed_size_list
from searchrank.core.retrieval import EMBEDDING
from searchrank.core.retriever import DESCRIPTION, Retriever, encode_in_batches
from searchrank.core.search_pairs import validation_queries

CURVES = {SCORE: "Recall@100", "val_recall@10": "Recall@10", "val_mrr": "MRR"}
RETRIEVER_RUN = RunRecipe(
    loop="searchrank.components.train_retriever.loop:train_loop_per_worker",
    train_file=TRAIN_PAIRS,
    score=SCORE,
    description=DESCRIPTION,
)
"""The retriever's Ray runs (see :mod:`searchrank.core.raytrain.runner`)."""
RETRAIN_RUN = replace(RETRIEVER_RUN, score="epoch")
"""A catch-up's or a refit's run: its checkpoint is its last epoch's (each epoch reports its
index)."""


@dataclass(frozen=True)
class RetrieverSummary:
    """What a retriever training run produced."""

    best_epoch: int
    best: dict[str, float]
    epochs_run: int
    history: list[dict[str, float]]
    shapes: dict[str, Any]
    checkpoint: str
    """Where the best checkpoint lasts: Ray's own in ``work_dir`` when one was given (shared
    storage that a rerun resumes from), else ``model_dir``: Ray then wrote to a temporary
    folder, which lineage must never name."""
    model_dir: str
    refit_epochs: int = 0
    """Epochs of the refit on training and validation rows whose last is served; 0: none."""
    catch_up_epochs: int = 0
    """Epochs the chosen checkpoint caught up on training and validation rows; 0: none."""
    prior_weight: float = 0.0
    """The served popularity prior's weight, fitted on validation."""
    prior_recall: dict[float, float] = field(default_factory=dict)
    """Validation Recall@100 of the chosen checkpoint at each prior weight tried."""

    def metrics(self) -> dict[str, float]:
        return {
            "best_val_recall@100": self.best[SCORE],
            "best_val_recall@10": self.best["val_recall@10"],
            "best_val_mrr": self.best["val_mrr"],
            "best_epoch": float(self.best_epoch),
            "epochs_run": float(self.epochs_run),
            "train_pairs": float(self.shapes["train_pairs"]),
            "pairs_per_s": float(self.history[-1]["pairs_per_s"]),
            "refit_epochs": float(self.refit_epochs),
            "catch_up_epochs": float(self.catch_up_epochs),
            "dense_prior_weight": self.prior_weight,
            "best_val_recall@100_with_prior": self.prior_recall.get(
                self.prior_weight, self.best[SCORE]
            ),
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_item_embeddings(retriever: Retriever, path: Path) -> int:
    """Every catalogue item's vector as (``item_id``, ``embedding``) rows; returns the count."""
    vectors = retriever.embed_items()
    table = pa.table(
        {
            S.ITEM_ID: pa.array(retriever.item_ids, type=pa.int64()),
            EMBEDDING: fixed_size_list(vectors, vectors.shape[1], pa.float32()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return len(vectors)


def fit_prior_weight(
    retriever: Retriever, train: pd.DataFrame, valid: pd.DataFrame, min_relevant_label: int
) -> tuple[float, dict[float, float]]:
    """The popularity prior's weight for ``retriever``, fitted on the validation searches (their
    nearest items by exact search) with the streams of the training rows in the period just
    before validation, as long as it; and the validation Recall@100 of each weight tried."""
    model = retriever.model
    queries = validation_queries(
        valid,
        retriever.users,
        retriever.items,
        min_relevant_label,
        model.config.text_buckets,
        model.config.max_tokens,
    )
    asked = encode_in_batches(model.encode_queries, queries.tokens, queries.users)
    indices = retriever.items.index(retriever.item_ids)
    pools = exact_top_k(indices, retriever.embed_items(), asked, DENSE_POOL, "inner_product")
    start, end = valid[S.EVENT_TIMESTAMP].min(), valid[S.EVENT_TIMESTAMP].max()
    before = recent_log_streams(period_before(train, start, end - start), retriever.items.ids)
    return fit_dense_prior(pools, queries.relevant, before, model.config.temperature)


def save_prior(served: Retriever, weight: float, valid: pd.DataFrame, model_dir: Path) -> None:
    """Save the popularity prior of the model in ``model_dir``: ``weight`` over the streams of
    the validation period, the most recent one."""
    recent = recent_log_streams(valid, served.items.ids)
    DensePrior(weight, recent, served.model.config.temperature).save(model_dir)


@dataclass(frozen=True)
class Retraining:
    """The run whose last epoch is served after the chosen checkpoint: it has seen the
    validation rows, the most recent searches."""

    config: TrainRetrieverConfig
    """The run's own configuration."""
    continues: bool
    """A catch-up: the run starts from the chosen checkpoint's weights and keeps its
    vocabularies. Otherwise a refit, from scratch."""

    @property
    def catch_up_epochs(self) -> int:
        return self.config.epochs if self.continues else 0

    @property
    def refit_epochs(self) -> int:
        return 0 if self.continues else self.config.epochs

    def served_line(self, best_epoch: int, epochs: int, best_score: float) -> str:
        """The log line after the run: what is served, and the figure validation chose by.
        It ends as an epoch line (``pipelines.console.EPOCH_LINE``), so that a pipeline's
        console shows the chosen epoch's validation figure, not the last line of this run,
        whose validation rows it trained on."""
        run = "catch-up" if self.continues else "refit"
        return (
            f"served: the {run}'s last epoch; validation chose "
            f"epoch {best_epoch + 1}/{epochs} {SCORE} {best_score:.4f}"
        )

    def train(
        self,
        rows: pd.DataFrame,
        valid: pd.DataFrame,
        catalogue: pd.DataFrame,
        chosen: Retriever,
        chosen_dir: Path,
        work: Path,
        model_dir: Path,
        **where: Any,
    ) -> TrainedRun:
        """Train this run with Ray on ``rows``, validating each epoch on ``valid``, in
        ``work``; its last epoch goes to ``model_dir``. A catch-up continues ``chosen``
        (its weights read from ``chosen_dir``). ``where``: :func:`train_run`'s keywords."""
        listeners = chosen.users.ids if self.continues else None
        shapes = prepare(rows, valid, catalogue, self.config, work / "data", listeners)
        if self.continues:
            shutil.copy(chosen_dir / WEIGHTS, work / "data" / START_WEIGHTS)
        name = f"retriever-retrain-{uuid.uuid4().hex[:8]}"
        return train_run(RETRAIN_RUN, self.config, shapes.as_dict(), work, name, model_dir, **where)

    def line(self) -> str:
        """The log line that announces the run."""
        if self.continues:
            return (
                f"catching up: the chosen checkpoint trains {self.config.epochs} more epoch(s) "
                "on the training and validation rows (peak learning rate "
                f"{self.config.learning_rate:g}); its last is served"
            )
        return (
            f"refitting on the training and validation rows for {self.config.epochs} epoch(s) "
            "(the best count on validation); its last epoch is served"
        )


def retraining(config: TrainRetrieverConfig, best_epoch: int) -> Retraining | None:
    """The run that serves the most recent searches after the chosen checkpoint (epoch
    ``best_epoch``, from 0), or ``None`` when that checkpoint is served: a refit (from scratch,
    as many epochs as validation chose) or else a catch-up."""
    if config.refit:
        epochs, rate = best_epoch + 1, config.learning_rate
    elif config.catch_up_epochs:
        epochs, rate = config.catch_up_epochs, config.catch_up_learning_rate
    else:
        return None
    run = replace(
        config, epochs=epochs, patience=epochs, learning_rate=rate, refit=False, catch_up_epochs=0
    )
    return Retraining(run, continues=not config.refit)


def train_retriever(
    train_path: Path,
    valid_path: Path,
    catalogue_path: Path,
    model_dir: Path,
    embeddings_path: Path,
    config: TrainRetrieverConfig,
    *,
    ray_address: str = "",
    work_dir: Path | None = None,
    job_python: str = "python",
    log: Callable[[str], None] = print,
) -> RetrieverSummary:
    """Train the retriever, select it on ``valid_path``, and embed the catalogue with it.

    Args:
        train_path: training split: logged (search × candidate) rows with labels.
        valid_path: validation split, for early stopping and selection.
        catalogue_path: one row per item with ``item_id`` and its texts and metadata.
        model_dir: where the best checkpoint is copied (created).
        embeddings_path: where the item embeddings are written (parquet).
        config: model, optimisation and scaling.
        ray_address: empty, a dashboard URL or ``kuberay://NAMESPACE`` (as ``train_ranker``).
        work_dir: where encoded data and Ray checkpoints go; on a cluster, shared storage.
            None: a temporary folder, which the summary never names (see ``checkpoint``).
        job_python: the cluster's Python with searchrank installed (Ray job mode only).
        log: where progress lines go.
    """
    train, valid = read_parquet_input(train_path, "train"), read_parquet_input(valid_path, "valid")
    catalogue = read_parquet_input(catalogue_path, "catalogue")
    work = work_dir or Path(tempfile.mkdtemp(prefix="searchrank-retriever-"))
    shapes = prepare(train, valid, catalogue, config, work / "data").as_dict()
    log(
        f"training on {shapes['train_pairs']:,} (search, item) pairs "
        f"({shapes['hard_negative_share']:.0%} with a hard negative), {shapes['items']:,} items, "
        f"validating on {shapes['valid_searches']:,} searches; {config.num_workers} Ray workers"
    )
    run = train_run(
        RETRIEVER_RUN,
        config,
        shapes,
        work,
        f"retriever-{uuid.uuid4().hex[:8]}",
        model_dir,
        keep_work=work_dir is not None,
        ray_address=ray_address,
        job_python=job_python,
        log=log,
    )
    chosen = Retriever.load(model_dir)
    prior_weight, prior_recall = fit_prior_weight(chosen, train, valid, config.min_relevant_label)
    log(
        f"popularity prior: weight {prior_weight:g} (validation Recall@100 "
        f"{prior_recall[prior_weight]:.4f}, {prior_recall[0.0]:.4f} without)"
    )
    checkpoint, retrain = run.checkpoint, retraining(config, run.best_epoch)
    if retrain is not None:
        log(retrain.line())
        checkpoint = retrain.train(
            pd.concat([train, valid], ignore_index=True),
            valid,
            catalogue,
            chosen,
            model_dir,
            work / "retrain",
            model_dir,
            keep_work=work_dir is not None,
            ray_address=ray_address,
            job_python=job_python,
            log=log,
        ).checkpoint
        log(retrain.served_line(run.best_epoch, config.epochs, run.best[SCORE]))
        if work_dir is None:  # the temporary folder both runs worked in
            shutil.rmtree(work, ignore_errors=True)
    served = chosen if retrain is None else Retriever.load(model_dir)
    save_prior(served, prior_weight, valid, model_dir)
    written = write_item_embeddings(served, embeddings_path)
    log(f"embedded {written:,} items into {embeddings_path}")
    return RetrieverSummary(
        best_epoch=run.best_epoch,
        best=run.best,
        epochs_run=len(run.history),
        history=run.history,
        shapes=shapes,
        checkpoint=checkpoint,
        model_dir=str(model_dir),
        refit_epochs=retrain.refit_epochs if retrain is not None else 0,
        catch_up_epochs=retrain.catch_up_epochs if retrain is not None else 0,
        prior_weight=prior_weight,
        prior_recall=prior_recall,
    )


def served_from(summary: RetrieverSummary) -> str:
    """One sentence on which run the served model comes from."""
    if summary.refit_epochs:
        return (
            f"Served: a refit, {summary.refit_epochs} epochs from scratch on the training and "
            "validation rows."
        )
    if summary.catch_up_epochs:
        return (
            f"Served: the best checkpoint after {summary.catch_up_epochs} more epoch(s) on the "
            "training and validation rows (a catch-up)."
        )
    return "Served: the best checkpoint."


def curves_html(summary: RetrieverSummary) -> str:
    """The training curves and per-epoch table as one HTML page."""
    rows = "".join(
        f"<tr><td>{int(h['epoch'])}</td><td>{h['train_loss']:.4f}</td><td>{h[SCORE]:.4f}</td>"
        f"<td>{h['val_recall@10']:.4f}</td><td>{h['val_mrr']:.4f}</td>"
        f"<td>{h['pairs_per_s']:,.0f}</td></tr>"
        for h in summary.history
    )
    image = training_curves(summary.history, summary.best_epoch, CURVES)
    prior_rows = "".join(
        f"<tr><td>{weight:g}</td><td>{recall:.4f}</td></tr>"
        for weight, recall in summary.prior_recall.items()
    )
    body = f"""
<p>Best validation Recall@100 <b>{summary.best[SCORE]:.4f}</b> at epoch {summary.best_epoch}
({summary.epochs_run} epochs run; {summary.shapes["train_pairs"]:,} training pairs,
{summary.shapes["items"]:,} items). {served_from(summary)} Checkpoint:
<code>{summary.checkpoint}</code>.</p>
<img alt="training curves" src="{image}">
<table><tr><th>epoch</th><th>train loss</th><th>val Recall@100</th><th>val Recall@10</th>
<th>val MRR</th><th>pairs/s</th></tr>{rows}</table>
<h2>Popularity prior</h2>
<p>Served weight <b>{summary.prior_weight:g}</b> (logits per log streams of the validation
period); validation Recall@100 of the best checkpoint at each weight, streams counted over the
period before validation:</p>
<table><tr><th>weight</th><th>val Recall@100</th></tr>{prior_rows}</table>"""
    return render_page("Retriever training", body)
