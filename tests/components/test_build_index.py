"""``build_index``: from an embeddings Dataset to a saved Voyager index with its recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from searchrank.components.build_index.logic import build_index
from searchrank.core.ann import AnnIndex, AnnParams
from searchrank.core.errors import InputError


def _embeddings(path: Path, n: int = 2_000, d: int = 16) -> np.ndarray:
    vectors = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d)
    pq.write_table(pa.table({"item_id": np.arange(100, 100 + n), "embedding": flat}), path)
    return vectors


@pytest.mark.parametrize("exact_up_to", [0, 2_000])
def test_build_index_saves_an_index_that_finds_the_items(tmp_path: Path, exact_up_to: int) -> None:
    vectors = _embeddings(tmp_path / "embeddings.parquet")
    params = AnnParams(exact_up_to=exact_up_to)
    summary = build_index(tmp_path / "embeddings.parquet", tmp_path / "index", params, k=10)
    assert summary.items == 2_000 and summary.dimensions == 16
    assert summary.recall_at_k >= 0.95
    assert "recall@10" in summary.markdown()
    assert summary.exact == (exact_up_to == 2_000)
    assert ("answered by exact search" in summary.markdown()) == summary.exact
    index = AnnIndex.load(tmp_path / "index")
    ids, _ = index.query(vectors[:3], 1)
    assert ids[:, 0].tolist() == [100, 101, 102], "each item is its own nearest neighbour"


def test_embeddings_without_the_columns_are_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="embeddings columns"):
        build_index(tmp_path / "bad.parquet", tmp_path / "index", AnnParams())
