"""The Voyager ANN index against exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from searchrank.core.ann import AnnIndex, AnnParams, exact_top_k, recall_at_k
from searchrank.core.errors import InputError


def _clusters(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    return (centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "inner_product", "euclidean"])
def test_the_index_finds_what_exact_search_finds(metric: str, tmp_path: Path) -> None:
    vectors = _clusters(3_000, 16, seed=0)
    ids = np.arange(10, 3_010)
    queries = _clusters(50, 16, seed=1)
    params = AnnParams(metric=metric, exact_up_to=0)  # type: ignore[arg-type]  # the graph
    index = AnnIndex.build(ids, vectors, params)
    assert not index.exact
    found, _ = index.query(queries, 20)
    truth, _ = exact_top_k(ids, vectors, queries, 20, metric)  # type: ignore[arg-type]
    assert recall_at_k(found, truth) >= 0.95
    index.save(tmp_path)
    again = AnnIndex.load(tmp_path)
    assert again.params == index.params and len(again) == 3_000
    np.testing.assert_array_equal(again.query(queries, 20)[0], found)


@pytest.mark.parametrize("metric", ["cosine", "inner_product", "euclidean"])
def test_a_small_index_answers_exactly_with_the_graphs_distances(
    metric: str, tmp_path: Path
) -> None:
    vectors = _clusters(2_000, 16, seed=2)
    ids = np.arange(5, 2_005)
    queries = _clusters(30, 16, seed=3)
    AnnIndex.build(ids, vectors, AnnParams(metric=metric)).save(tmp_path)  # type: ignore[arg-type]
    index = AnnIndex.load(tmp_path)
    assert index.exact
    found, distances = index.query(queries, 50)
    truth, scores = exact_top_k(ids, vectors, queries, 50, metric)  # type: ignore[arg-type]
    np.testing.assert_array_equal(found, truth)
    # The same distances as the graph gives for the same items, so similarities() holds.
    graph = AnnIndex.build(ids, vectors, AnnParams(metric=metric, exact_up_to=0))  # type: ignore[arg-type]
    graph_found, graph_distances = graph.query(queries, 50)
    same = found[:, :10] == graph_found[:, :10]
    assert same.mean() > 0.9
    np.testing.assert_allclose(distances[:, :10][same], graph_distances[:, :10][same], atol=1e-4)
    if metric != "euclidean":
        np.testing.assert_allclose(index.similarities(distances), scores, atol=1e-5)


def test_exact_top_k_orders_best_first() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
    top, _ = exact_top_k(np.array([5, 6, 7]), vectors, np.array([[1.0, 0.1]]), 2, "inner_product")
    assert top.tolist() == [[5, 7]]


@pytest.mark.parametrize(
    ("field", "build"),
    [
        ("metric", lambda: AnnParams(metric="hamming")),  # type: ignore[arg-type]
        ("m", lambda: AnnParams(m=1)),
        ("exact_up_to", lambda: AnnParams(exact_up_to=-1)),
        ("item_ids", lambda: AnnIndex.build(np.array([1, 1]), np.ones((2, 3)), AnnParams())),
        ("vectors", lambda: AnnIndex.build(np.array([1]), np.array([[np.nan]]), AnnParams())),
    ],
)
def test_bad_index_input_is_refused_naming_the_field(field: str, build: object) -> None:
    with pytest.raises(InputError, match=field):
        build()  # type: ignore[operator]
