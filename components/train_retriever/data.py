"""From logged searches to what the retriever trains and is validated on.

A training example is one (search, item the listener engaged with) pair: the query text, the
listener, the positive item and, when the search showed items the listener skipped, one of
them as a hard negative (drawn with a fixed seed). Each positive also carries the log of its
item's share of all positives: in-batch negatives are other rows' positives, so an item is
sampled as a negative in proportion to that share, which the loss corrects for.

The towers index listeners and items through vocabularies built here: every listener of the
training split and every catalogue item (an item that was never clicked still has text and
metadata). Validation searches keep the items they wanted
(:func:`~searchrank.core.retrieval.wanted_items` with ``label`` at least ``min_relevant_label``)
as their relevant set; the splits alone do not say which item a query named, so engagement
decides.
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
from searchrank.core.errors import InputError
from searchrank.core.raytrain.shards import fixed_size_list, list_matrix
from searchrank.core.retrieval import wanted_items
from searchrank.core.retriever import IdVocabulary, hash_tokens, two_tower_item_text

TRAIN_PAIRS = "train_pairs.parquet"
VALIDATION = "validation.npz"
ITEMS = "items.npz"
REQUIRED = (S.SEARCH_ID, S.USER_ID, S.ITEM_ID, S.QUERY, S.LABEL)


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


@dataclass(frozen=True)
class Queries:
    """Searches as the query tower takes them, with the item indices each one wanted."""

    tokens: np.ndarray
    """(n, T) hashed query tokens."""
    users: np.ndarray
    """(n,) listener indices (0: unknown)."""
    relevant: list[np.ndarray]
    """Per search, the item indices (into the item vocabulary) that count as found."""


def check_rows(rows: pd.DataFrame, field: str) -> None:
    missing = [c for c in REQUIRED if c not in rows.columns]
    if missing:
        raise InputError(f"{field} columns", list(rows.columns), f"must include {missing}")
    if rows.empty:
        raise InputError(field, 0, "must hold at least one search")


def training_pairs(
    rows: pd.DataFrame, items: IdVocabulary, min_label: int, seed: int
) -> pd.DataFrame:
    """One row per engaged (search, item): search_id, query, user_id, item (index), hard
    (index of a skipped item of the same search, 0 if none) and log_q.

    Args:
        rows: flat (search × candidate) rows with labels.
        items: the item vocabulary; rows of unknown items are dropped.
        min_label: the lowest label that makes an item a positive.
        seed: seed of the hard-negative draw.
    """
    known = rows.assign(index=items.index(rows[S.ITEM_ID].to_numpy()))
    known = known[known["index"] > 0]
    positives = known[known[S.LABEL] >= min_label]
    if positives.empty:
        raise InputError("train", 0, f"has no row with {S.LABEL} >= {min_label} to learn from")
    skipped = known[known[S.LABEL] == 0][[S.SEARCH_ID, "index"]]
    # One random skipped item per search and positive: shuffle, then take the k-th skipped
    # item of the search for its k-th positive (wrapping around).
    rng = np.random.default_rng(seed)
    skipped = skipped.iloc[rng.permutation(len(skipped))]
    by_search = skipped.groupby(S.SEARCH_ID)["index"].agg(list)
    pairs = positives[[S.SEARCH_ID, S.QUERY, S.USER_ID, "index"]].rename(columns={"index": "item"})
    turn = pairs.groupby(S.SEARCH_ID).cumcount().to_numpy()
    pools = by_search.reindex(pairs[S.SEARCH_ID]).tolist()
    pairs["hard"] = [
        pool[k % len(pool)] if isinstance(pool, list) else 0
        for pool, k in zip(pools, turn, strict=True)
    ]
    counts = pairs["item"].value_counts()
    pairs["log_q"] = np.log(pairs["item"].map(counts).to_numpy() / len(pairs)).astype(np.float32)
    return pairs.reset_index(drop=True)


def validation_queries(
    rows: pd.DataFrame,
    users: IdVocabulary,
    items: IdVocabulary,
    min_relevant_label: int,
    buckets: int,
    max_tokens: int,
) -> Queries:
    """The validation searches with at least one wanted item (:func:`wanted_items`) known to
    the item vocabulary; an item outside the catalogue cannot be retrieved and is left out."""
    wanted = wanted_items(rows, min_relevant_label).explode()
    indices = pd.Series(items.index(wanted.to_numpy(np.int64)), index=wanted.index)
    relevant = indices[indices > 0].groupby(level=0, sort=False).agg(list)
    first = rows.groupby(S.SEARCH_ID, sort=False)[[S.QUERY, S.USER_ID]].first().loc[relevant.index]
    return Queries(
        tokens=hash_tokens(first[S.QUERY].tolist(), buckets, max_tokens),
        users=users.index(first[S.USER_ID].to_numpy()),
        relevant=[np.asarray(v, dtype=np.int64) for v in relevant],
    )


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


def save_queries(queries: Queries, path: Path) -> None:
    sizes = np.array([len(r) for r in queries.relevant], dtype=np.int64)
    flat = np.concatenate(queries.relevant) if len(sizes) else np.zeros(0, dtype=np.int64)
    np.savez(path, tokens=queries.tokens, users=queries.users, relevant=flat, sizes=sizes)


def load_queries(path: Path) -> Queries:
    data = np.load(path)
    cuts = np.cumsum(data["sizes"])[:-1]
    return Queries(data["tokens"], data["users"], list(np.split(data["relevant"], cuts)))


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
) -> PairShapes:
    """Build the vocabularies and write the pairs, the validation searches and the items."""
    check_rows(train, "train")
    check_rows(valid, "valid")
    folder.mkdir(parents=True, exist_ok=True)
    item_ids, item_tokens = catalogue_tokens(catalogue, config.text_buckets, config.max_tokens)
    items, users = IdVocabulary(item_ids), IdVocabulary(train[S.USER_ID].to_numpy())
    pairs = training_pairs(train, items, config.min_label, config.seed)
    if not config.hard_negatives:
        pairs["hard"] = 0
    tokens = hash_tokens(pairs[S.QUERY].tolist(), config.text_buckets, config.max_tokens)
    write_pairs(pairs, tokens, users.index(pairs[S.USER_ID].to_numpy()), folder / TRAIN_PAIRS)
    queries = validation_queries(
        valid, users, items, config.min_relevant_label, config.text_buckets, config.max_tokens
    )
    if not queries.relevant:
        raise InputError("valid", 0, f"has no search with {S.LABEL} >= {config.min_relevant_label}")
    save_queries(queries, folder / VALIDATION)
    np.savez(folder / ITEMS, ids=item_ids, tokens=item_tokens, users=users.ids)
    return PairShapes(
        train_pairs=len(pairs),
        hard_negative_share=float((pairs["hard"] > 0).mean()),
        valid_searches=len(queries.relevant),
        items=len(items),
        users=len(users),
    )
