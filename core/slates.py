"""Flat (search × candidate) rows to padded slates and back.

A slate is one search's candidate list. Models take slates as tensors of shape (B, L, ·) with a
mask of shape (B, L) that is True for real candidates; searches longer than L are cut at L
(the first L rows in their stored order), shorter ones padded. Slates carry the logged positions
only when asked to (training with a position-bias tower); nothing that scores reads them.
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
        positions: int64 (B, L), the logged position of each slot (0 = top, 0 in padding), or
            None when the slates were built without them.
    """

    dense: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    rows: np.ndarray
    positions: np.ndarray | None = None

    FIELDS: ClassVar[tuple[str, ...]] = ("dense", "codes", "labels", "mask", "rows")
    """The fields every slate has; ``positions`` is optional."""

    def __len__(self) -> int:
        return len(self.mask)

    def take(self, index: np.ndarray) -> Slates:
        return Slates(
            self.dense[index],
            self.codes[index],
            self.labels[index],
            self.mask[index],
            self.rows[index],
            None if self.positions is None else self.positions[index],
        )


def concat_slates(parts: list[Slates]) -> Slates:
    """Slates of equal length one after the other, with positions when the parts have them.

    Raises:
        ValueError: some parts have positions and others not.
    """
    known = [p.positions for p in parts if p.positions is not None]
    if known and len(known) < len(parts):
        raise ValueError("either every part of the slates has positions or none has")
    dense, codes, labels, mask, rows = (
        np.concatenate([getattr(p, name) for p in parts]) for name in Slates.FIELDS
    )
    return Slates(dense, codes, labels, mask, rows, np.concatenate(known) if known else None)


def to_slates(
    dense: np.ndarray,
    codes: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    max_length: int,
    positions: np.ndarray | None = None,
) -> Slates:
    """Pack flat rows into slates of length ``min(max_length, longest list)``.

    Args:
        dense: (n, F) numeric features.
        codes: (n, C) categorical codes.
        labels: (n,) graded labels.
        groups: (n,) search ids, each search's rows contiguous.
        max_length: the longest slate; longer searches keep their first rows.
        positions: (n,) logged positions, carried into the slates when given.

    Raises:
        InputError: the arrays differ in length, or a search's rows are not contiguous.
    """
    lengths = [len(dense), len(codes), len(labels), len(groups)]
    if positions is not None:
        lengths.append(len(positions))
    if len(set(lengths)) > 1:
        raise InputError(
            "rows",
            tuple(lengths),
            "features, codes, labels, groups (and positions) must have the same length",
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
        positions=None
        if positions is None
        else np.where(mask, np.asarray(positions)[safe], 0).astype(np.int64),
    )


def scores_to_rows(
    scores: np.ndarray, slates: Slates, n_rows: int, fill: float = -1e9
) -> np.ndarray:
    """Scores of shape (B, L) back to the flat rows, shape (n_rows,); rows cut off get ``fill``."""
    out = np.full(n_rows, fill, dtype=np.float64)
    out[slates.rows[slates.mask]] = scores[slates.mask]
    return out
