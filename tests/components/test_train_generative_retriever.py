"""``train_generative_retriever``: a real Ray Train run, killed and rerun, then decoded.

The module's run goes through the component's own function: a first run in a process of its
own is killed once an epoch's checkpoint is in ``work_dir``, and the step is run again with the
same ``work_dir``, as a retried pod would be. The rerun must continue from that checkpoint; the
model it selects must decode only catalogue items and find more wanted items than the same
model untrained.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kfp.dsl import HTML, Dataset, Metrics, Model

from searchrank.components.train_generative_retriever.component import (
    train_generative_retriever_op,
)
from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.components.train_generative_retriever.data import item_vectors
from searchrank.components.train_generative_retriever.logic import (
    GenerativeSummary,
    curves_html,
)
from searchrank.components.train_generative_retriever.loop import SCORE, TRAINING
from searchrank.components.train_retriever.logic import RetrieverSummary
from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.generative import GenerativeRetriever, GenerativeSource
from searchrank.core.retrieval import retrieval_metrics
from searchrank.core.retriever import IdVocabulary
from searchrank.core.search_pairs import validation_queries
from searchrank.features import tables as T

TINY = {
    "epochs": 6,
    "patience": 6,
    "num_workers": 1,
    "batch_size": 128,
    "learning_rate": 0.003,
    "id_levels": 2,
    "id_codes": 32,
    "d_model": 64,
    "n_heads": 4,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "ff_dim": 128,
    "dropout": 0.0,
    "decode_searches": 100,
}
"""Component parameters of a run that fits two CPU cores in well under a minute."""
STEP = "generative_retriever"
"""The folder of ``work_dir`` the step works in (see the component)."""
FIRST_RUN = """
import json, sys
from pathlib import Path
from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.components.train_generative_retriever.logic import train_generative_retriever

args = json.loads(sys.argv[1])
paths = [Path(p) for p in args["paths"]]
config = TrainGenerativeConfig(**args["config"])
train_generative_retriever(*paths, config, work_dir=Path(args["work_dir"]), log=lambda _: None)
"""


@dataclass(frozen=True)
class Run:
    """The killed run's checkpointed history and the rerun's outputs."""

    killed_history: list[dict[str, float]]
    history: list[dict[str, float]]
    model: Model
    metrics: dict[str, float]
    curves: str


def _kill_after_first_checkpoint(paths: list[Path], work_dir: Path) -> list[dict[str, float]]:
    """Start the step's logic on ``paths`` (train, valid, catalogue, embeddings) in a process of
    its own, kill it once Ray has recorded an epoch's checkpoint, and return the history of the
    latest checkpoint it left."""
    config = TrainGenerativeConfig(**TINY).as_dict()
    model_dir = work_dir.parent / "killed_model"
    args = {
        "paths": [*map(str, paths), str(model_dir)],
        "config": config,
        "work_dir": str(work_dir),
    }
    run = subprocess.Popen(
        [sys.executable, "-c", FIRST_RUN, json.dumps(args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    try:
        while not list(work_dir.glob("ray/*/checkpoint_manager_snapshot.json")):
            assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
    finally:
        run.kill()  # Ray's head processes share the driver's fate and go with it
        run.wait(timeout=60)
    snapshot = next(work_dir.glob("ray/*/checkpoint_manager_snapshot.json"))
    # The latest checkpoint Ray's snapshot records: what a rerun resumes from.
    latest = json.loads(snapshot.read_text())["latest_checkpoint_result"]["checkpoint_dir_name"]
    history: list[dict[str, float]] = json.loads((snapshot.parent / latest / TRAINING).read_text())[
        "history"
    ]
    return history


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
    splits: dict[str, Path],
    dataset_dir: Path,
    retriever_model: RetrieverSummary,
) -> Run:
    folder = tmp_path_factory.mktemp("generative")
    inputs = {
        "train": splits["train"],
        "valid": splits["valid"],
        "catalogue": dataset_dir / T.file_name(T.CATALOGUE),
        "embeddings": Path(retriever_model.model_dir).parent / "embeddings.parquet",
    }
    killed = _kill_after_first_checkpoint(list(inputs.values()), folder / "work" / STEP)
    model, metrics = Model(uri=str(folder / "model")), Metrics(uri=str(folder / "metrics"))
    curves = HTML(uri=str(folder / "curves"))
    train_generative_retriever_op.python_func(
        **{name: Dataset(uri=str(path)) for name, path in inputs.items()},
        model=model,
        metrics=metrics,
        curves=curves,
        work_dir=str(folder / "work"),
        **TINY,
    )
    history = json.loads((Path(model.path) / TRAINING).read_text())["history"]
    return Run(
        killed,
        history,
        model,
        json.loads(Path(metrics.path).read_text()),
        Path(curves.path).read_text(),
    )


def test_a_rerun_continues_from_the_checkpoint_and_the_loss_falls(run: Run) -> None:
    assert 1 <= len(run.killed_history) < TINY["epochs"], "the first run was not interrupted"
    assert [h["epoch"] for h in run.history] == list(range(TINY["epochs"]))
    # Resumed epochs are the killed run's own records (their timings included), not reruns.
    assert run.history[: len(run.killed_history)] == run.killed_history
    losses = [h["train_loss"] for h in run.history]
    assert losses[-1] < 0.7 * losses[0], losses
    likelihoods = [h[SCORE] for h in run.history]
    assert max(likelihoods) > likelihoods[0], likelihoods


def test_the_step_records_its_metrics_curves_and_checkpoint(run: Run) -> None:
    best = max(run.history, key=lambda h: h[SCORE])
    assert run.metrics["best_val_log_likelihood"] == pytest.approx(best[SCORE])
    assert run.metrics["best_val_recall@100"] == pytest.approx(best["val_recall@100"])
    assert 0.0 <= run.metrics["semantic_id_collisions"] <= 1.0
    assert Path(run.model.metadata["checkpoint"]).is_dir(), "the checkpoint lasts in work_dir"
    assert "<img" in run.curves and "Semantic IDs" in run.curves and "perplexity" in run.curves


Validation = tuple[np.ndarray, np.ndarray, list[np.ndarray]]


def _validation(source: GenerativeSource, splits: dict[str, Path], size: int) -> Validation:
    """(tokens, listener indices, wanted item ids) of ``size`` validation searches."""
    items = IdVocabulary(source.semantic_ids.item_ids)
    queries = validation_queries(
        pd.read_parquet(splits["valid"]),
        source.users,
        items,
        int(S.Grade.STREAM),
        source.model.config.text_buckets,
        source.max_tokens,
    ).subset(np.arange(size))
    wanted = [source.semantic_ids.item_ids[r - 1] for r in queries.relevant]
    return queries.tokens, queries.users, wanted


def _recall(
    source: GenerativeSource, validation: Validation
) -> tuple[dict[str, float], list[list[int]]]:
    """Recall@{10,100} and MRR of the first 100 items ``source`` decodes, and those items."""
    tokens, users, wanted = validation
    found = source.decode(tokens, users, 100)
    return retrieval_metrics(found, wanted), found


def test_decoding_returns_catalogue_items_only_and_beats_the_untrained_model(
    run: Run, splits: dict[str, Path], dataset_dir: Path
) -> None:
    trained = GenerativeSource.load(Path(run.model.path))
    torch.manual_seed(1)
    untrained = GenerativeSource(
        GenerativeRetriever(trained.model.config),
        trained.users,
        trained.semantic_ids,
        trained.max_tokens,
    )
    validation = _validation(trained, splits, 150)
    metrics, found = _recall(trained, validation)
    baseline, _ = _recall(untrained, validation)

    catalogue = set(pd.read_parquet(dataset_dir / T.file_name(T.CATALOGUE))[S.ITEM_ID].tolist())
    decoded = [item for items in found for item in items]
    assert decoded and all(item in catalogue for item in decoded), "an invalid ID was decoded"
    assert all(len(items) == len(set(items)) == 100 for items in found)
    assert metrics["recall@100"] > baseline["recall@100"] + 0.1, (metrics, baseline)
    assert metrics["recall@10"] > 2 * baseline["recall@10"], (metrics, baseline)
    chance = 100 / len(trained.semantic_ids.item_ids)
    assert metrics["recall@100"] > 3 * chance


def test_a_saved_source_loads_and_retrieves_the_same(run: Run, tmp_path: Path) -> None:
    source = GenerativeSource.load(Path(run.model.path))
    source.save(tmp_path / "served")
    assert not (tmp_path / "served" / TRAINING).exists(), "serving needs no training record"
    again = GenerativeSource.load(tmp_path / "served")
    queries, listeners = ["halo beyonce", "chill evening jazz", "podcast news"], [1, -5, 10**9]
    found = source.retrieve(queries, listeners, 20, beam_size=40)
    assert again.retrieve(queries, listeners, 20, beam_size=40) == found
    assert all(len(items) == 20 for items in found)
    assert source.retrieve([], [], 20) == []

    left_out = set(found[0][:5])
    narrowed = again.without(left_out).retrieve(queries[:1], listeners[:1], 20)
    assert not left_out & set(narrowed[0])
    with pytest.raises(InputError, match="beam_size"):
        source.retrieve(queries, listeners, 20, beam_size=10)


def test_items_without_an_embedding_have_no_id(dataset_dir: Path) -> None:
    catalogue = pd.read_parquet(dataset_dir / T.file_name(T.CATALOGUE))
    ids = catalogue[S.ITEM_ID].to_numpy()[:3]
    embeddings = pd.DataFrame({S.ITEM_ID: [ids[1], ids[0], 10**12], "embedding": [[0.0, 1.0]] * 3})
    found, vectors = item_vectors(embeddings, catalogue)
    assert found.tolist() == sorted(ids[:2].tolist()) and vectors.shape == (2, 2)
    with pytest.raises(InputError, match="embeddings columns"):
        item_vectors(embeddings.drop(columns=["embedding"]), catalogue)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("id_codes", 1),
        ("id_levels", 0),
        ("n_heads", 5),
        ("dropout", 1.0),
        ("user_dropout", -0.1),
        ("decode_searches", 0),
        ("min_label", 9),
    ],
)
def test_bad_config_values_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(InputError, match=field) as raised:
        TrainGenerativeConfig(**{field: value})
    assert raised.value.field == field


def test_the_summary_page_reports_the_semantic_ids() -> None:
    record = {"epoch": 0, "train_loss": 3.0, SCORE: -2.5, "pairs_per_s": 1e3}
    record |= {"val_recall@10": 0.1, "val_recall@100": 0.3, "val_mrr": 0.05}
    report = {
        "items": 10,
        "levels": 1,
        "codes_per_level": [4],
        "code_usage": [1.0],
        "perplexity": [3.5],
        "collisions": 0.4,
        "max_duplicates": 3,
        "reconstruction_error": 0.2,
    }
    shapes = {"train_pairs": 50, "items": 10, "decode_searches": 5, "semantic_ids": report}
    summary = GenerativeSummary(0, record, 1, [record], shapes, "ckpt", "model")
    page = curves_html(summary)
    assert "40.0%" in page and "3.5" in page
    assert summary.metrics()["semantic_id_collisions"] == 0.4
