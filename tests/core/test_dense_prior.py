"""The two-tower's popularity prior: re-ordering, fitting, the recent period, save/load, and
the dense retriever that serves it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex, AnnParams, exact_top_k
from searchrank.core.candidates import DenseRetriever
from searchrank.core.dense_prior import (
    DensePrior,
    fit_dense_prior,
    period_before,
    recent_log_streams,
)
from searchrank.core.errors import InputError
from searchrank.core.retriever import IdVocabulary, Retriever, TwoTower, TwoTowerConfig, hash_tokens


def test_the_prior_lifts_a_popular_item_over_a_slightly_closer_one() -> None:
    log_streams = np.log1p(np.array([0.0, 0.0, 0.0, 1000.0]))  # vocabulary index 3 is popular
    pool = np.array([[1, 2, 3]])
    similarities = np.array([[0.90, 0.85, 0.80]])
    none = DensePrior(0.0, log_streams, temperature=0.05)
    assert none.reorder(pool, pool + 100, similarities, 3) == [[101, 102, 103]], "ids, in order"
    # 0.1 of similarity is 2 logits at this temperature; log1p(1000) ≈ 6.9 logits at weight 1.
    assert DensePrior(1.0, log_streams, 0.05).reorder(pool, pool, similarities, 2) == [[3, 1]]
    assert DensePrior(0.1, log_streams, 0.05).reorder(pool, pool, similarities, 2) == [[1, 2]]


def _pools_where_the_wanted_item_is_popular_and_fourth() -> tuple[
    tuple[np.ndarray, np.ndarray], list[np.ndarray], np.ndarray
]:
    """Twenty searches, each with a pool of 6 items of its own; each wants the 4th nearest,
    the only one of its pool that was streamed."""
    indices = np.arange(1, 121).reshape(20, 6)
    similarities = np.tile(np.array([0.9, 0.89, 0.88, 0.87, 0.5, 0.4]), (20, 1))
    streams = np.zeros(121)
    streams[indices[:, 3]] = 50.0
    return (indices, similarities), [row[3:4] for row in indices], np.log1p(streams)


def test_fitting_finds_a_weight_where_streams_tell_the_wanted_item_and_none_where_not() -> None:
    pools, wanted, log_streams = _pools_where_the_wanted_item_is_popular_and_fourth()
    weight, recall = fit_dense_prior(pools, wanted, log_streams, 0.05, k=1)
    assert weight > 0 and recall[weight] == 1.0 and recall[0.0] == 0.0
    weight, recall = fit_dense_prior(pools, wanted, np.zeros_like(log_streams), 0.05, k=1)
    assert weight == 0.0, "without evidence, no prior"


def test_the_recent_period_is_as_long_as_asked_and_ends_before_its_start() -> None:
    day = pd.Timestamp("2026-01-10", tz="UTC")
    rows = pd.DataFrame(
        {
            S.EVENT_TIMESTAMP: [day - pd.Timedelta(days=d) for d in (0, 1, 3, 6)],
            S.ITEM_ID: [5, 5, 7, 9],
            S.LABEL: [2, 2, 2, 2],
        }
    )
    recent = period_before(rows, day, pd.Timedelta(days=5))
    assert recent[S.ITEM_ID].tolist() == [5, 7], "the start itself and day −6 are outside"
    counts = recent_log_streams(recent, np.array([5, 7, 9]))
    np.testing.assert_allclose(counts, np.log1p([0.0, 1.0, 1.0, 0.0]))


def test_a_bad_prior_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError, match="dense prior weight"):
        DensePrior(-1.0, np.zeros(3), 0.05)
    with pytest.raises(InputError, match="dense prior temperature"):
        DensePrior(1.0, np.zeros(3), 0.0)


@pytest.mark.parametrize("metric", ["cosine", "inner_product", "euclidean"])
def test_the_index_turns_its_distances_back_into_inner_products(metric: str) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:5] + 0.1 * vectors[5:10]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = AnnIndex.build(np.arange(200), vectors, AnnParams(metric=metric))  # type: ignore[arg-type]
    ids, distances = index.query(queries, 10)
    expected = np.take_along_axis(queries @ vectors.T, ids, axis=1)
    np.testing.assert_allclose(index.similarities(distances), expected, atol=1e-5)
    exact_ids, scores = exact_top_k(np.arange(200), vectors, queries, 10, "inner_product")
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, exact_ids, 1))


def _retriever_with_a_popular_item(prior_weight: float) -> tuple[Retriever, AnnIndex]:
    """Ten named items; item 10's name is nothing like the query, but it is streamed a lot.
    The prior's temperature is 1, so no two unit vectors' scores differ by more than 2 logits,
    and a million streams are 13.8 at weight 1."""
    torch.manual_seed(0)
    names = ["midnight city", "midnight sun", "midnight train", "midnight rain", "halo"]
    names += ["hey jude", "bad guy", "take on me", "levitating", "shape of you"]
    config = TwoTowerConfig(text_buckets=1 << 12, hidden=16, n_users=1, n_items=10)
    ids = np.arange(1, 11)
    tokens = hash_tokens(names, config.text_buckets, config.max_tokens)
    retriever = Retriever(
        TwoTower(config).eval(), IdVocabulary(np.array([1])), IdVocabulary(ids), ids, tokens, {}
    )
    streams = np.zeros(11)
    streams[10] = 1e6
    retriever = replace(
        retriever, prior=DensePrior(prior_weight, np.log1p(streams), temperature=1.0)
    )
    index = AnnIndex.build(ids, retriever.embed_items(), AnnParams())
    return retriever, index


def test_the_dense_retriever_serves_the_models_prior(tmp_path: Path) -> None:
    plain, index = _retriever_with_a_popular_item(0.0)
    assert DenseRetriever(plain, index).retrieve(["midnight"], [1], 3)[0][-1] != 10
    popular, index = _retriever_with_a_popular_item(1.0)
    assert DenseRetriever(popular, index).retrieve(["midnight"], [1], 3)[0][0] == 10
    popular.save(tmp_path)
    loaded = Retriever.load(tmp_path)
    assert loaded.prior is not None and loaded.prior.weight == 1.0
    assert DenseRetriever(loaded, index).retrieve(["midnight"], [1], 3)[0][0] == 10
    (tmp_path / "popularity_prior.npz").unlink()
    assert Retriever.load(tmp_path).prior is None, "a model saved before the prior has none"
