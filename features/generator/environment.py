"""The simulator as an environment: the ground truth behind simulated logs, and how the same
listeners would react to a different ranking of the same candidates.

Logged clicks are biased by where the old ranker showed each item. The generator knows what
the logs hide: every impression's hidden relevance and the position-biased cascade click model
that turned it into a label (:mod:`searchrank.features.generator.simulate`). It writes both
beside the logs, in the ``ground_truth`` table, which is read here for two purposes:

- **evaluation against the truth**: :func:`attach_true_grades` adds each row's true grade
  (:data:`~searchrank.core.schema.TRUE_GRADE`, the label it earns on average once looked at) to
  a training set or split, for NDCG against the truth beside NDCG against clicks;
- **online experiments without users**: :func:`respond` draws the labels that showing a new
  ranking would have produced, through the same click model. Interleaving, A/B tests and the
  validation of off-policy estimators all run on it.

The ground truth exists for synthetic data only. It is never a model input: it lives in its own
table, and :func:`~searchrank.core.schema.feature_columns` leaves its column out wherever it
appears.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.features import tables as T
from searchrank.features.generator.simulate import cascade_labels

RELEVANCE = S.HIDDEN_RELEVANCE
SAVE_SCALE = S.SAVE_SCALE
TRUTH_KEYS: tuple[str, ...] = (S.SEARCH_ID, S.ITEM_ID)


def load_ground_truth(data: Path) -> pd.DataFrame:
    """The ground truth of a generated data folder (or the ``ground_truth.parquet`` file itself).

    Returns:
        One row per impression: ``search_id``, ``item_id``, ``relevance``, ``save_scale`` and
        ``true_grade``, in the logs' order (rows of one search contiguous, in logged position
        order).

    Raises:
        InputError: there is no ground truth (real data has none; only the generator writes it).
    """
    path = data / T.file_name(T.GROUND_TRUTH) if data.is_dir() else data
    if not path.is_file():
        raise InputError(
            "ground truth",
            str(path),
            "must be the ground_truth.parquet that the synthetic generator writes beside its "
            "logs; real data has no ground truth (generate data with `searchrank generate`)",
        )
    return pd.read_parquet(path)


def attach_true_grades(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each row's true grade added as :data:`~searchrank.core.schema.TRUE_GRADE`
    (:func:`attach_ground_truth` of that one column)."""
    return attach_ground_truth(frame, truth, (S.TRUE_GRADE,))


def attach_ground_truth(
    frame: pd.DataFrame, truth: pd.DataFrame, columns: Sequence[str]
) -> pd.DataFrame:
    """``frame`` with the ground truth's ``columns`` added to each row, by search and item.

    Args:
        frame: rows with ``search_id`` and ``item_id`` (a training set, a split, a slate).
        truth: :func:`load_ground_truth`'s table, covering at least ``frame``'s rows.
        columns: the ground truth's columns to add (``true_grade``, ``relevance``, ...).

    Returns:
        A copy of ``frame`` in the same row order, with the columns added as floats.

    Raises:
        InputError: a row of ``frame`` has no ground truth (data from another generation).
    """
    indexed = truth.set_index(list(TRUTH_KEYS))[list(columns)]
    keys = pd.MultiIndex.from_frame(frame[list(TRUTH_KEYS)])
    values = indexed.reindex(keys).to_numpy(dtype=np.float64)
    missing = np.flatnonzero(np.isnan(values).any(axis=1))
    if len(missing):
        row = frame.iloc[int(missing[0])]
        raise InputError(
            "ground truth",
            {key: int(row[key]) for key in TRUTH_KEYS},
            f"{len(missing)} of {len(frame)} rows have no ground truth; the truth must come "
            "from the same generated data folder as the rows",
        )
    out = frame.copy()
    for i, column in enumerate(columns):
        out[column] = values[:, i]
    return out


def respond(searches: pd.DataFrame, positions: np.ndarray, seed: int) -> np.ndarray:
    """Simulated reactions of the logged listeners to a new ranking of their candidates.

    The same click model that wrote the logs (position-biased examination, grade chances from
    the hidden relevance, abandonment after the first stream) draws a label for every shown
    candidate; a candidate not shown gets 0.

    Args:
        searches: ground-truth rows (:func:`load_ground_truth`, or a subset of whole searches):
            ``search_id``, ``relevance`` and ``save_scale``, the rows of one search contiguous.
        positions: (n,) int, where the new ranking shows each row within its search (0 = top),
            or a negative number for a candidate it does not show. Shown positions of one search
            must be distinct.
        seed: the seed of the draws: the same inputs and seed give the same labels.

    Returns:
        (n,) int64 labels aligned with ``searches``' rows: 0 skip (or not shown), 1 click,
        2 stream of at least 30 s, 3 save.

    Raises:
        InputError: a column is missing, ``positions`` has another length, or one search shows
            two rows at the same position.
    """
    missing = [c for c in (S.SEARCH_ID, RELEVANCE, SAVE_SCALE) if c not in searches.columns]
    if missing:
        raise InputError(
            "searches columns", list(searches.columns), f"needs the ground truth's {missing}"
        )
    positions = np.asarray(positions, dtype=np.int64)
    if positions.shape != (len(searches),):
        raise InputError(
            "positions", positions.shape, f"must hold one position per row ({len(searches)})"
        )
    bounds = S.search_bounds(searches[S.SEARCH_ID].to_numpy(), field="searches search_id")
    search = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    shown = np.flatnonzero(positions >= 0)
    order = shown[np.lexsort((positions[shown], search[shown]))]
    ranked_search, ranked_position = search[order], positions[order]
    repeated = np.flatnonzero(
        (ranked_search[1:] == ranked_search[:-1]) & (ranked_position[1:] == ranked_position[:-1])
    )
    if len(repeated):
        row = int(order[repeated[0]])
        raise InputError(
            "positions",
            int(positions[row]),
            f"search {searches[S.SEARCH_ID].iloc[row]} shows two candidates at this position",
        )
    starts = np.flatnonzero(np.r_[True, ranked_search[1:] != ranked_search[:-1]])
    labels = np.zeros(len(searches), dtype=np.int64)
    if len(order):
        labels[order] = cascade_labels(
            searches[RELEVANCE].to_numpy(dtype=np.float64)[order],
            ranked_position,
            searches[SAVE_SCALE].to_numpy(dtype=np.float64)[order],
            starts,
            np.random.default_rng(seed),
        )
    return labels
