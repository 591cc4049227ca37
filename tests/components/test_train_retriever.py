"""``train_retriever``: pairs and hard negatives from the logs, and a real Ray Train run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.train_retriever.data import prepare
from searchrank.components.train_retriever.logic import RetrieverSummary, curves_html
from searchrank.core import schema as S
from searchrank.core.ann import exact_top_k
from searchrank.core.dense_prior import DENSE_PRIOR_WEIGHTS, recent_log_streams
from searchrank.core.errors import InputError
from searchrank.core.retrieval import EMBEDDING, retrieval_metrics, wanted_items
from searchrank.core.retriever import IdVocabulary, Retriever
from searchrank.core.search_pairs import training_pairs
from searchrank.pipelines.console import EPOCH_LINE


def _rows(records: list[tuple[int, int, int, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(records, columns=[S.SEARCH_ID, S.USER_ID, S.ITEM_ID, S.QUERY, S.LABEL])


def test_pairs_take_positives_and_skipped_items_of_the_same_search() -> None:
    rows = _rows(
        [
            (1, 7, 10, "halo", 2),
            (1, 7, 11, "halo", 0),
            (1, 7, 12, "halo", 0),
            (2, 8, 10, "hal", 1),
            (2, 8, 13, "hal", 3),
            (3, 9, 11, "jude", 0),  # no positive: no pair
            (4, 9, 99, "x", 2),  # unknown item: dropped
        ]
    )
    items = IdVocabulary(np.array([10, 11, 12, 13]))
    pairs = training_pairs(rows, items, min_label=1, seed=0)
    assert sorted(zip(pairs[S.SEARCH_ID], pairs["item"], strict=True)) == [(1, 1), (2, 1), (2, 4)]
    first = pairs[pairs[S.SEARCH_ID] == 1]
    assert first["hard"].iloc[0] in (2, 3), "a hard negative is a skipped item of its search"
    assert (pairs.loc[pairs[S.SEARCH_ID] == 2, "hard"] == 0).all(), "nothing was skipped there"
    # item index 1 is 2 of the 3 positives: in-batch it is a negative twice as often.
    assert np.allclose(np.exp(pairs["log_q"]), [2 / 3, 2 / 3, 1 / 3])


def test_inputs_without_what_training_needs_are_refused(
    tmp_path: Path, catalogue: pd.DataFrame
) -> None:
    rows = _rows([(1, 7, int(catalogue[S.ITEM_ID].iloc[0]), "halo", 0)])
    config = TrainRetrieverConfig()
    with pytest.raises(InputError, match=f"{S.LABEL} >= 1"):
        prepare(rows, rows, catalogue, config, tmp_path)
    with pytest.raises(InputError, match="valid columns"):
        prepare(rows, rows.drop(columns=[S.QUERY]), catalogue, config, tmp_path)
    with pytest.raises(InputError, match="min_label"):
        TrainRetrieverConfig(min_label=3, min_relevant_label=2)


def test_trained_retriever_finds_wanted_items_and_embeds_the_catalogue(
    retriever_model: RetrieverSummary, splits: dict[str, Path], catalogue: pd.DataFrame
) -> None:
    summary = retriever_model
    assert summary.epochs_run == 3 and len(summary.history) == 3
    retriever = Retriever.load(Path(summary.model_dir))
    table = pq.read_table(Path(summary.model_dir).parent / "embeddings.parquet")
    assert table.num_rows == catalogue[S.ITEM_ID].nunique()
    vectors = np.stack(table.column(EMBEDDING).to_numpy(zero_copy_only=False))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    # Recall on the held-out test split, by the loaded checkpoint, against a random ranking.
    test = pd.read_parquet(splits["test"])
    wanted = wanted_items(test, 2)
    first = test.groupby(S.SEARCH_ID)[[S.QUERY, S.USER_ID]].first().loc[wanted.index]
    asked = retriever.embed_queries(first[S.QUERY].tolist(), first[S.USER_ID])
    found, _ = exact_top_k(retriever.item_ids, vectors, asked, 100, "inner_product")
    metrics = retrieval_metrics(found, wanted.tolist())
    chance = 100 / len(vectors)
    assert metrics["recall@100"] > 5 * chance, metrics
    assert summary.best["val_recall@100"] == max(h["val_recall@100"] for h in summary.history)
    assert "Recall@100" in curves_html(summary)

    # The popularity prior: fitted on validation, serving the validation period's streams.
    assert retriever.prior is not None and retriever.prior.weight == summary.prior_weight
    valid = pd.read_parquet(splits["valid"])
    recent = recent_log_streams(valid, retriever.items.ids)
    np.testing.assert_allclose(retriever.prior.log_streams, recent)
    assert set(summary.prior_recall) == set(DENSE_PRIOR_WEIGHTS)
    assert summary.prior_recall[summary.prior_weight] == max(summary.prior_recall.values())
    assert summary.metrics()["dense_prior_weight"] == summary.prior_weight
    assert "Popularity prior" in curves_html(summary)

    # By default a refit on train and valid, as many epochs as validation chose, is served.
    assert summary.refit_epochs == summary.best_epoch + 1 == summary.metrics()["refit_epochs"]
    assert summary.catch_up_epochs == 0, "a refit needs no catch-up"
    assert len(summary.history) == summary.epochs_run, "the history is the selecting run's"
    assert retriever.description["epoch"] == summary.refit_epochs - 1, "its last epoch is served"
    assert retriever.description["train_config"]["epochs"] == summary.refit_epochs
    train = pd.read_parquet(splits["train"])
    only_valid = np.setdiff1d(valid[S.USER_ID].unique(), train[S.USER_ID].unique())
    assert len(only_valid) > 0
    assert (retriever.users.index(only_valid) > 0).all(), "listeners first seen in valid are known"
    assert "a refit" in curves_html(summary)


def train_tiny(
    tmp_path: Path,
    splits: dict[str, Path],
    dataset_dir: Path,
    tiny: TrainRetrieverConfig,
    **changes: object,
) -> tuple[RetrieverSummary, list[str]]:
    """``train_retriever`` on the fixture's splits with the tests' ``tiny`` model, two epochs
    and ``changes``; its summary and log lines."""
    from dataclasses import replace

    from searchrank.components.train_retriever.logic import train_retriever
    from searchrank.features import tables as T

    config = replace(tiny, **{"epochs": 2, **changes})
    lines: list[str] = []
    summary = train_retriever(
        splits["train"],
        splits["valid"],
        dataset_dir / T.file_name(T.CATALOGUE),
        tmp_path / "model",
        tmp_path / "embeddings.parquet",
        config,
        log=lines.append,
    )
    return summary, lines


def test_a_catch_up_continues_the_chosen_checkpoint_on_train_and_valid(
    tmp_path: Path,
    splits: dict[str, Path],
    dataset_dir: Path,
    tiny_retriever_config: TrainRetrieverConfig,
) -> None:
    """At a learning rate too small to move the weights, the caught-up model validates as the
    chosen checkpoint did: it started from that checkpoint's weights, not from scratch, and
    kept its vocabularies."""
    summary, lines = train_tiny(
        tmp_path,
        splits,
        dataset_dir,
        tiny_retriever_config,
        refit=False,
        catch_up_epochs=1,
        catch_up_learning_rate=1e-12,
    )
    served = Retriever.load(tmp_path / "model")
    assert summary.catch_up_epochs == 1 and summary.refit_epochs == 0
    assert served.description["epoch"] == 0, "the catch-up's one epoch is served"
    assert served.description["train_config"]["learning_rate"] == 1e-12
    caught_up = served.description["metrics"]["val_recall@100"]
    assert caught_up == pytest.approx(summary.best["val_recall@100"], abs=1e-6)
    train, valid = pd.read_parquet(splits["train"]), pd.read_parquet(splits["valid"])
    only_valid = np.setdiff1d(valid[S.USER_ID].unique(), train[S.USER_ID].unique())
    assert len(only_valid) > 0
    assert (served.users.index(only_valid) == 0).all(), "the chosen model's listeners are kept"
    assert served.prior is not None and served.prior.weight == summary.prior_weight
    assert any("catching up" in line for line in lines)
    # A pipeline's console shows the last epoch line: the chosen epoch's validation figure.
    shown = [EPOCH_LINE.search(line) for line in lines]
    assert [m.group(0) for m in shown if m][-1].startswith(
        f"epoch {summary.best_epoch + 1}/2 val_recall@100 {summary.best['val_recall@100']:.4f}"
    )
    assert summary.checkpoint == str(tmp_path / "model"), "no temporary folder is named"
