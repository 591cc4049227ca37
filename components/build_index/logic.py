"""Item embeddings (``item_id`` and a fixed-size ``embedding`` list column) into a Voyager
index, and the index's recall@k against exact search on a sample of the items as queries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex, AnnParams, exact_top_k, recall_at_k
from searchrank.core.errors import require_columns
from searchrank.core.retrieval import EMBEDDING


@dataclass(frozen=True)
class IndexSummary:
    items: int
    dimensions: int
    params: dict[str, Any]
    recall_at_k: float
    k: int
    sample_queries: int
    exact: bool = False
    """Whether the index answers by exact search (``params["exact_up_to"]``)."""

    def metrics(self) -> dict[str, float]:
        return {
            "items": self.items,
            "dimensions": self.dimensions,
            f"recall_at_{self.k}": self.recall_at_k,
        }

    def markdown(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        answered = (
            f"- answered by exact search over the {self.items:,} vectors "
            f"(`exact_up_to` is {self.params['exact_up_to']:,})\n"
            if self.exact
            else ""
        )
        return (
            f"### Voyager index of {self.items:,} items ({self.dimensions} dimensions)\n\n"
            f"- parameters: {params}\n{answered}"
            f"- recall@{self.k} against exact search on {self.sample_queries} sampled items: "
            f"**{self.recall_at_k:.4f}**\n"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(item ids (n,), vectors (n, d)) from a parquet file."""
    table = pq.read_table(path)
    require_columns(table.column_names, "embeddings", (S.ITEM_ID, EMBEDDING))
    vectors = np.stack(table.column(EMBEDDING).to_numpy(zero_copy_only=False)).astype(np.float32)
    return table.column(S.ITEM_ID).to_numpy(), vectors


def build_index(
    embeddings: Path,
    output: Path,
    params: AnnParams,
    k: int = 100,
    sample: int = 500,
    seed: int = 0,
) -> IndexSummary:
    """Build, measure and save the index of ``embeddings`` into the folder ``output``."""
    ids, vectors = read_embeddings(embeddings)
    index = AnnIndex.build(ids, vectors, params)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(ids), size=min(sample, len(ids)), replace=False)
    queries = vectors[chosen]
    found, _ = index.query(queries, k)
    truth, _ = exact_top_k(ids, vectors, queries, k, params.metric)
    index.save(output)
    return IndexSummary(
        items=len(ids),
        dimensions=vectors.shape[1],
        params=asdict(params),
        recall_at_k=recall_at_k(found, truth),
        k=min(k, len(ids)),
        sample_queries=len(chosen),
        exact=index.exact,
    )
