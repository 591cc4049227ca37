"""From logged searches to what a retriever learns from and is validated on.

Both retrievers, the two-tower one (``train_retriever``) and the generative one
(``train_generative_retriever``), learn from the same examples: one (search, item the listener
engaged with) pair per engaged item, with the query text and the listener. :func:`training_pairs`
adds what the two-tower's in-batch softmax needs besides (a hard negative and the log of the
item's share of positives); the generative retriever ignores those columns.

Both are validated on the same searches: those of the validation split that wanted an item
(:func:`~searchrank.core.retrieval.wanted_items` with ``label`` at least ``min_relevant_label``)
known to the item vocabulary, as :class:`Queries`. The splits alone do not say which item a
query named, so engagement decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.errors import InputError, require_columns
from searchrank.core.retrieval import wanted_items
from searchrank.core.retriever import IdVocabulary, hash_tokens

REQUIRED = (S.SEARCH_ID, S.USER_ID, S.ITEM_ID, S.QUERY, S.LABEL)
"""The columns a split must have for retrieval training."""


@dataclass(frozen=True)
class Queries:
    """Searches as a query encoder takes them, with the item indices each one wanted."""

    tokens: np.ndarray
    """(n, T) hashed query tokens."""
    users: np.ndarray
    """(n,) listener indices (0: unknown)."""
    relevant: list[np.ndarray]
    """Per search, the item indices (into the item vocabulary) that count as found."""

    def subset(self, rows: np.ndarray) -> Queries:
        """The searches at positions ``rows``, in that order."""
        return Queries(self.tokens[rows], self.users[rows], [self.relevant[i] for i in rows])


def check_rows(rows: pd.DataFrame, field: str) -> None:
    """Raise :class:`InputError` naming ``field`` unless ``rows`` has searches and
    :data:`REQUIRED` columns."""
    require_columns(rows.columns, field, REQUIRED)
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
    the item vocabulary; an item outside the catalogue cannot be retrieved and is left out.

    Raises:
        InputError: no search of ``rows`` wanted a known item.
    """
    wanted = wanted_items(rows, min_relevant_label).explode()
    indices = pd.Series(items.index(wanted.to_numpy(np.int64)), index=wanted.index)
    relevant = indices[indices > 0].groupby(level=0, sort=False).agg(list)
    if relevant.empty:
        raise InputError("valid", 0, f"has no search with {S.LABEL} >= {min_relevant_label}")
    first = rows.groupby(S.SEARCH_ID, sort=False)[[S.QUERY, S.USER_ID]].first().loc[relevant.index]
    return Queries(
        tokens=hash_tokens(first[S.QUERY].tolist(), buckets, max_tokens),
        users=users.index(first[S.USER_ID].to_numpy()),
        relevant=[np.asarray(v, dtype=np.int64) for v in relevant],
    )


def save_queries(queries: Queries, path: Path) -> None:
    """Write ``queries`` to one ``.npz`` file (:func:`load_queries` reads it back)."""
    sizes = np.array([len(r) for r in queries.relevant], dtype=np.int64)
    flat = np.concatenate(queries.relevant) if len(sizes) else np.zeros(0, dtype=np.int64)
    np.savez(path, tokens=queries.tokens, users=queries.users, relevant=flat, sizes=sizes)


def load_queries(path: Path) -> Queries:
    """The queries :func:`save_queries` wrote to ``path``."""
    with np.load(path) as data:
        cuts = np.cumsum(data["sizes"])[:-1]
        return Queries(data["tokens"], data["users"], list(np.split(data["relevant"], cuts)))
