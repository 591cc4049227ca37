"""From logged searches and item embeddings to what the generative retriever trains on.

Every catalogue item with a two-tower embedding gets a semantic ID
(:func:`~searchrank.core.semantic_ids.fit_semantic_ids` over the embeddings), and the item
vocabulary is those items in ascending id order, so item index ``j + 1`` has row ``j`` of the
IDs. A catalogue item without an embedding has no ID and cannot be decoded; the shapes count
them.

A training example is one (search, item the listener engaged with) pair, as the two-tower
retriever's (:func:`~searchrank.core.search_pairs.training_pairs`), whose target is the item's
semantic ID. Listeners are indexed by the training split's vocabulary (0: unknown). Validation
searches keep the items they wanted
(:func:`~searchrank.core.search_pairs.validation_queries`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.raytrain.loop import Columns
from searchrank.core.raytrain.shards import fixed_size_list, list_matrix
from searchrank.core.retrieval import EMBEDDING
from searchrank.core.retriever import IdVocabulary, hash_tokens
from searchrank.core.search_pairs import (
    Queries,
    check_rows,
    save_queries,
    training_pairs,
    validation_queries,
)
from searchrank.core.semantic_ids import fit_semantic_ids

TRAIN_PAIRS = "train_pairs.parquet"
VALIDATION = "validation.npz"
USERS = "users.npy"
SEMANTIC_IDS = "semantic_ids"


@dataclass(frozen=True)
class GenerativeShapes:
    """Sizes the workers and the report need, and the semantic IDs' report."""

    train_pairs: int
    valid_searches: int
    decode_searches: int
    items: int
    items_without_embedding: int
    users: int
    semantic_ids: dict[str, Any]
    """:meth:`~searchrank.core.semantic_ids.SemanticIds.report` of the fitted IDs."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_vectors(
    embeddings: pd.DataFrame, catalogue: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(item ids (n,) ascending, their vectors (n, d)) of the catalogue items with an embedding.

    Raises:
        InputError: ``catalogue`` lacks ``item_id``; ``embeddings`` lacks ``item_id`` or
            ``embedding``, or covers fewer than two catalogue items.
    """
    if S.ITEM_ID not in catalogue.columns:
        raise InputError("catalogue columns", list(catalogue.columns), f"must include {S.ITEM_ID}")
    if S.ITEM_ID not in embeddings.columns or EMBEDDING not in embeddings.columns:
        raise InputError(
            "embeddings columns", list(embeddings.columns), f"must include {[S.ITEM_ID, EMBEDDING]}"
        )
    known = embeddings.drop_duplicates(S.ITEM_ID)
    known = known[known[S.ITEM_ID].isin(catalogue[S.ITEM_ID])].sort_values(S.ITEM_ID)
    if len(known) < 2:
        raise InputError("embeddings", len(known), "must cover at least two catalogue items")
    return known[S.ITEM_ID].to_numpy(np.int64), list_matrix(known[EMBEDDING].to_numpy(), np.float32)


def write_pairs(tokens: np.ndarray, users: np.ndarray, codes: np.ndarray, path: Path) -> None:
    """The training pairs as Ray Data reads them: query tokens (n, T), listener indices (n,)
    and the wanted items' semantic IDs (n, depth)."""
    table = pa.table(
        {
            "tokens": fixed_size_list(tokens, tokens.shape[1], pa.int64()),
            "user": pa.array(users, type=pa.int64()),
            "codes": fixed_size_list(codes, codes.shape[1], pa.int64()),
        }
    )
    pq.write_table(table, path)


def pairs_from_columns(columns: Columns) -> Columns:
    """Training pairs from the columns of :func:`write_pairs` (a Ray Data batch or a table)."""
    return {
        "tokens": list_matrix(columns["tokens"], np.int64),
        "user": np.asarray(columns["user"], dtype=np.int64),
        "codes": list_matrix(columns["codes"], np.int64),
    }


def wanted_pairs(queries: Queries, codes: np.ndarray) -> Columns:
    """One (search, wanted item) pair per item each validation search wanted, as
    :func:`pairs_from_columns` gives them: what the validation log-likelihood is taken over.

    Args:
        queries: validation searches; their relevant items are indices (row ``i - 1`` of codes).
        codes: (items, depth) the semantic IDs in item-index order.
    """
    rows = np.repeat(np.arange(len(queries.relevant)), [len(r) for r in queries.relevant])
    return {
        "tokens": queries.tokens[rows],
        "user": queries.users[rows],
        "codes": codes[np.concatenate(queries.relevant) - 1],
    }


def decode_sample(searches: int, size: int, seed: int) -> np.ndarray:
    """The positions, ascending, of the at most ``size`` validation searches (of ``searches``)
    that are decoded every epoch; the same for every worker and epoch of a run."""
    rng = np.random.default_rng([seed, searches])
    return np.sort(rng.choice(searches, min(size, searches), replace=False))


def prepare(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    catalogue: pd.DataFrame,
    embeddings: pd.DataFrame,
    config: TrainGenerativeConfig,
    folder: Path,
) -> GenerativeShapes:
    """Fit the semantic IDs, build the listener vocabulary and write the pairs, the validation
    searches, the listeners and the IDs into ``folder``."""
    check_rows(train, "train")
    check_rows(valid, "valid")
    folder.mkdir(parents=True, exist_ok=True)
    item_ids, vectors = item_vectors(embeddings, catalogue)
    semantic = fit_semantic_ids(item_ids, vectors, config.semantic_ids())
    semantic.save(folder / SEMANTIC_IDS)
    items, users = IdVocabulary(item_ids), IdVocabulary(train[S.USER_ID].to_numpy())
    pairs = training_pairs(train, items, config.min_label, config.seed)
    write_pairs(
        hash_tokens(pairs[S.QUERY].tolist(), config.text_buckets, config.max_tokens),
        users.index(pairs[S.USER_ID].to_numpy()),
        semantic.codes[pairs["item"].to_numpy() - 1],
        folder / TRAIN_PAIRS,
    )
    queries = validation_queries(
        valid, users, items, config.min_relevant_label, config.text_buckets, config.max_tokens
    )
    save_queries(queries, folder / VALIDATION)
    np.save(folder / USERS, users.ids)
    return GenerativeShapes(
        train_pairs=len(pairs),
        valid_searches=len(queries.relevant),
        decode_searches=min(config.decode_searches, len(queries.relevant)),
        items=len(items),
        items_without_embedding=int(catalogue[S.ITEM_ID].nunique() - len(items)),
        users=len(users),
        semantic_ids=semantic.report(),
    )
