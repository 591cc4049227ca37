"""Catalogue-wide retrieval helpers: item texts, exact top-k, recall and MRR, fusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from searchrank.components.core.errors import InputError
from searchrank.components.core.retrieval import (
    exact_top_k,
    item_texts,
    reciprocal_rank_fusion,
    retrieval_metrics,
)


def test_recall_and_mrr_by_hand() -> None:
    retrieved = [[5, 1, 2], [9, 8, 7], [3, 4, 6]]
    relevant = [[1, 2], [4], [6, 3], []]  # the empty one does not count
    metrics = retrieval_metrics([*retrieved, [1]], relevant, ks=(1, 3))
    assert metrics["recall@1"] == pytest.approx((0 + 0 + 0.5) / 3)
    assert metrics["recall@3"] == pytest.approx((1.0 + 0 + 1.0) / 3)
    assert metrics["mrr"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert metrics["searches"] == 3


def test_one_list_per_search_is_required() -> None:
    with pytest.raises(InputError, match="retrieved"):
        retrieval_metrics([[1]], [[1], [2]])


def test_reciprocal_rank_fusion_by_hand() -> None:
    # 1: 1/61 + 1/63; 2: 1/62 + 1/61; 3: 1/63; 4: 1/62
    assert reciprocal_rank_fusion([[1, 2, 3], [2, 4, 1]], k=4) == [2, 1, 4, 3]
    assert reciprocal_rank_fusion([[7, 5, 6]], k=2) == [7, 5], "one list comes back as it was"
    assert reciprocal_rank_fusion([[1], [2]], k=2, weights=[1.0, 2.0]) == [2, 1]
    with pytest.raises(InputError, match="weights"):
        reciprocal_rank_fusion([[1]], k=1, weights=[1.0, 1.0])


def test_exact_top_k_equals_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    items, queries = rng.normal(size=(300, 8)), rng.normal(size=(20, 8))
    top = exact_top_k(queries.astype(np.float32), items.astype(np.float32), 10, batch_size=7)
    expected = np.argsort(-(queries @ items.T), axis=1)[:, :10]
    assert (top == expected).all()


def test_item_texts_join_text_columns_and_name_metadata() -> None:
    catalogue = pd.DataFrame(
        {
            "item_id": [2, 1, 2],
            "name": ["Halo", "Hey Jude", "Halo"],
            "artist_name": ["Beyoncé", None, "Beyoncé"],
            "item_type": ["track", "track", "track"],
        }
    )
    ids, texts, extra = item_texts(catalogue)
    assert ids.tolist() == [2, 1]
    assert texts == ["Halo Beyoncé", "Hey Jude "]
    assert extra == [["item_type track"], ["item_type track"]]
    with pytest.raises(InputError, match="catalogue columns"):
        item_texts(pd.DataFrame({"item_id": [1]}))
