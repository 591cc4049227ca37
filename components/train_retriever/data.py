"""From logged searches to what the retriever trains and is validated on.

A training example is one (search, item the listener engaged with) pair
(:func:`~searchrank.core.search_pairs.training_pairs`): the query text, the listener, the
positive item and, when the search showed items the listener skipped, one of them as a hard
negative (drawn with a fixed seed). Each positive also carries the log of its item's share of
all positives: in-batch negatives are other rows' positives, so an item is sampled as a
negative in proportion to that share, which the loss corrects for.

The towers index listeners and items through vocabularies built here: every listener of the
training split and every catalogue item (an item that was never clicked still has text and
metadata). Validation searches keep the items they wanted as their relevant set
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

from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.core import schema as S
from searchrank.core.raytrain.shards import fixed_size_list, list_matrix
from searchrank.core.retriever import IdVocabulary, hash_tokens, two_tower_item_text
from searchrank.core.search_pairs import (
    check_rows,
    save_queries,
    training_pairs,
    validation_queries,
)

TRAIN_PAIRS = "train_pairs.parquet"
VALIDATION = "validation.npz"
ITEMS = "items.npz"
START_WEIGHTS = "start_weights.pt"
"""Where a run that continues a model (a catch-up) finds the weights it starts from."""


@dataclass(frozen=True)
class PairShapes:
    """Sizes the workers and the report need."""

    train_pairs: int
    hard_negative_share: float
    valid_searches: int
    items: int
    users: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def catalogue_tokens(
    catalogue: pd.DataFrame, buckets: int, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """(item ids in ascending order, their hashed tokens (m, T)): row j is item index j + 1."""
    ids, texts, extra = two_tower_item_text(catalogue)
    order = np.argsort(ids, kind="stable")
    tokens = hash_tokens([texts[j] for j in order], buckets, max_tokens, [extra[j] for j in order])
    return ids[order], tokens


def write_pairs(pairs: pd.DataFrame, tokens: np.ndarray, users: np.ndarray, path: Path) -> None:
    """The training pairs as Ray Data reads them: fixed-size token lists and index columns."""
    table = pa.table(
        {
            "tokens": fixed_size_list(tokens, tokens.shape[1], pa.int64()),
            "user": pa.array(users, type=pa.int64()),
            "item": pa.array(pairs["item"].to_numpy(np.int64)),
            "hard": pa.array(pairs["hard"].to_numpy(np.int64)),
            "log_q": pa.array(pairs["log_q"].to_numpy(np.float32)),
        }
    )
    pq.write_table(table, path)


def pairs_from_columns(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Training pairs from the columns of :func:`write_pairs` (a Ray Data batch or a table)."""
    out = {name: np.asarray(columns[name]) for name in ("user", "item", "hard", "log_q")}
    return {"tokens": list_matrix(columns["tokens"], np.int64), **out}


def prepare(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    catalogue: pd.DataFrame,
    config: TrainRetrieverConfig,
    folder: Path,
    listeners: np.ndarray | None = None,
) -> PairShapes:
    """Build the vocabularies and write the pairs, the validation searches and the items.

    Args:
        listeners: the listeners the user tower knows, for a run that continues a model (its
            vocabulary; anyone else is unknown); ``None``: the training split's.
    """
    check_rows(train, "train")
    check_rows(valid, "valid")
    folder.mkdir(parents=True, exist_ok=True)
    item_ids, item_tokens = catalogue_tokens(catalogue, config.text_buckets, config.max_tokens)
    known = train[S.USER_ID].to_numpy() if listeners is None else listeners
    items, users = IdVocabulary(item_ids), IdVocabulary(known)
    pairs = training_pairs(train, items, config.min_label, config.seed)
    if not config.hard_negatives:
        pairs["hard"] = 0
    tokens = hash_tokens(pairs[S.QUERY].tolist(), config.text_buckets, config.max_tokens)
    write_pairs(pairs, tokens, users.index(pairs[S.USER_ID].to_numpy()), folder / TRAIN_PAIRS)
    queries = validation_queries(
        valid, users, items, config.min_relevant_label, config.text_buckets, config.max_tokens
    )
    save_queries(queries, folder / VALIDATION)
    np.savez(folder / ITEMS, ids=item_ids, tokens=item_tokens, users=users.ids)
    return PairShapes(
        train_pairs=len(pairs),
        hard_negative_share=float((pairs["hard"] > 0).mean()),
        valid_searches=len(queries.relevant),
        items=len(items),
        users=len(users),
    )
