"""Splitting a training set by time, whole searches at a time.

Models are selected on the validation split and judged on the test split, which is later than
anything they trained on, as the next week's traffic would be. Searches are never cut in two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.errors import InputError


@dataclass(frozen=True)
class SplitConfig:
    """The shares of searches ``split_dataset`` cuts off (the latest for the test, the ones
    before them for validation): the one definition of its defaults."""

    valid_fraction: float = 0.1
    test_fraction: float = 0.2


def split_by_time(
    frame: pd.DataFrame,
    valid_fraction: float = SplitConfig.valid_fraction,
    test_fraction: float = SplitConfig.test_fraction,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cut ``frame`` into (train, valid, test) by the time of each search.

    Args:
        frame: rows of searches × candidates with ``search_id``; ordered by ``event_timestamp``
            when present, else by the order of the searches in the frame (LETOR files).
        valid_fraction: share of searches, just before the test ones, for validation.
        test_fraction: share of the latest searches for the test.
    """
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise InputError(name, value, "must lie in [0, 1)")
    if valid_fraction + test_fraction >= 1.0:
        raise InputError(
            "valid_fraction + test_fraction",
            valid_fraction + test_fraction,
            "must leave searches to train on (below 1)",
        )
    if S.EVENT_TIMESTAMP in frame.columns:
        first = frame.groupby(S.SEARCH_ID, sort=False)[S.EVENT_TIMESTAMP].min()
        order = first.sort_values(kind="stable").index.to_numpy()
    else:
        order = frame[S.SEARCH_ID].drop_duplicates().to_numpy()
    n = len(order)
    test_start = n - round(n * test_fraction)
    valid_start = test_start - round(n * valid_fraction)
    part = pd.Series(np.zeros(n, dtype=np.int8), index=order)
    part.iloc[valid_start:test_start] = 1
    part.iloc[test_start:] = 2
    which = frame[S.SEARCH_ID].map(part).to_numpy()
    train, valid, test = (frame[which == k].reset_index(drop=True) for k in range(3))
    return train, valid, test


def hold_out_searches(
    frame: pd.DataFrame, fraction: float, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random ``fraction`` of whole searches held out for validation (for data without time,
    such as LETOR files); returns (rest, held out), both in their original order."""
    if not 0.0 < fraction < 1.0:
        raise InputError("fraction", fraction, "must lie in (0, 1)")
    searches = frame[S.SEARCH_ID].drop_duplicates().to_numpy()
    count = max(1, round(len(searches) * fraction))
    held = np.random.default_rng(seed).choice(searches, count, replace=False)
    mask = frame[S.SEARCH_ID].isin(held).to_numpy()
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
