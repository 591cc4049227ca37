"""Flat (search × candidate) rows to padded slates and back.

A slate is one search's candidate list. Models take slates as tensors of shape (B, L, ·) with a
mask of shape (B, L) that is True for real candidates; searches longer than L are cut at L
(the first L rows in their stored order), shorter ones padded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from searchrank.core.errors import InputError
from searchrank.core.schema import search_bounds


@dataclass(frozen=True)
class Slates:
    """Padded slates.

    Attributes:
        dense: float32 (B, L, F) numeric features.
        codes: int64 (B, L, C) categorical codes.
        labels: float32 (B, L) graded labels (0 in padding).
        mask: bool (B, L), True for real candidates.
        rows: int64 (B, L), the flat row index of each slot (−1 in padding).
    """

    dense: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    rows: np.ndarray

    FIELDS: ClassVar[tuple[str, ...]] = ("dense", "codes", "labels", "mask", "rows")

    def __len__(self) -> int:
        return len(self.mask)

    def take(self, index: np.ndarray) -> Slates:
        return Slates(*(getattr(self, name)[index] for name in self.FIELDS))


def to_slates(
    dense: np.ndarray, codes: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_length: int
) -> Slates:
    """Pack flat rows into slates of length ``min(max_length, longest list)``.

    Raises:
        InputError: the arrays differ in length, or a search's rows are not contiguous.
    """
    if not len(dense) == len(codes) == len(labels) == len(groups):
        raise InputError(
            "rows",
            (len(dense), len(codes), len(labels), len(groups)),
            "features, codes, labels and groups must have the same length",
        )
    bounds = search_bounds(groups, field="groups")
    sizes = np.diff(bounds)
    length = int(min(max_length, sizes.max())) if len(sizes) else 1
    n_slates = len(sizes)
    within = np.arange(len(groups)) - np.repeat(bounds[:-1], sizes)
    slate = np.repeat(np.arange(n_slates), sizes)
    keep = within < length
    rows = np.full((n_slates, length), -1, dtype=np.int64)
    rows[slate[keep], within[keep]] = np.flatnonzero(keep)
    mask = rows >= 0
    safe = np.where(mask, rows, 0)
    return Slates(
        dense=np.where(mask[..., None], dense[safe], 0.0).astype(np.float32),
        codes=np.where(mask[..., None], codes[safe], 0).astype(np.int64),
        labels=np.where(mask, labels[safe], 0.0).astype(np.float32),
        mask=mask,
        rows=rows,
    )


def scores_to_rows(
    scores: np.ndarray, slates: Slates, n_rows: int, fill: float = -1e9
) -> np.ndarray:
    """Scores of shape (B, L) back to the flat rows, shape (n_rows,); rows cut off get ``fill``."""
    out = np.full(n_rows, fill, dtype=np.float64)
    out[slates.rows[slates.mask]] = scores[slates.mask]
    return out
