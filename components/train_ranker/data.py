"""Turning training and validation splits into what the Ray Train workers read.

The training slates go to a parquet file with fixed-size list columns, which Ray Data reads and
shards across workers (locally from disk, on a cluster from shared storage); the validation
slates, small, go to one ``.npz`` file that every worker loads whole. With a position-bias
tower the training slates carry the logged positions too; the validation slates never do, since
validation scores as serving does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import PROCESSOR_FILE, FeatureProcessor, infer_roles
from searchrank.core.raytrain.shards import fixed_size_list, list_matrix
from searchrank.core.slates import Slates, to_slates

TRAIN_SLATES = "train_slates.parquet"
VALID_SLATES = "valid_slates.npz"


@dataclass(frozen=True)
class Shapes:
    """Sizes the workers need to rebuild tensors from flat columns."""

    list_length: int
    n_numeric: int
    n_categorical: int
    train_slates: int
    valid_slates: int
    train_candidates: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


POSITION_RULE = (
    "position_bias trains and validates on the logged position of every row: a "
    f"{S.POSITION!r} column of integers >= 0 (0 = top), never missing"
)


def logged_positions(frame: pd.DataFrame, split: str = "train") -> np.ndarray:
    """The split's logged positions, shape (n,) int64, checked.

    Raises:
        InputError: the column is missing, or holds a missing, fractional or negative value.
    """
    if S.POSITION not in frame.columns:
        raise InputError(f"{split} columns", list(frame.columns), f"{POSITION_RULE}; it is missing")
    column = frame[S.POSITION]
    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    bad = np.isnan(values) | (values < 0) | (values != np.round(values))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(f"{split} column {S.POSITION!r}", column.iloc[first], POSITION_RULE)
    return values.astype(np.int64)


def encode(
    frame: pd.DataFrame, processor: FeatureProcessor, max_length: int, positions: bool = False
) -> Slates:
    """Encode a split's rows and pack them into slates, with their logged positions when
    ``positions``."""
    if frame.empty:
        raise InputError("rows", 0, "a split to train or validate on must not be empty")
    dense, codes = processor.transform(frame)
    labels = frame[S.LABEL].to_numpy(np.float32)
    return to_slates(
        dense,
        codes,
        labels,
        frame[S.SEARCH_ID].to_numpy(),
        max_length,
        positions=logged_positions(frame) if positions else None,
    )


def write_train_slates(slates: Slates, path: Path) -> None:
    """One row per slate: dense (L·F floats), codes (L·C ints, when any), labels, mask and
    positions (L ints, when the slates carry them)."""
    _, length, width = slates.dense.shape
    columns = {
        "dense": fixed_size_list(slates.dense, length * width, pa.float32()),
        "labels": fixed_size_list(slates.labels, length, pa.float32()),
        "mask": fixed_size_list(slates.mask.astype(np.float32), length, pa.float32()),
    }
    if slates.codes.shape[2]:
        columns["codes"] = fixed_size_list(slates.codes, length * slates.codes.shape[2], pa.int64())
    if slates.positions is not None:
        columns["positions"] = fixed_size_list(slates.positions, length, pa.int64())
    pq.write_table(pa.table(columns), path)


def slates_from_columns(columns: dict[str, np.ndarray]) -> Slates:
    """Slates from the flat columns of :func:`write_train_slates` (one row per slate).

    The row indices of the result number the real candidates in order; they index nothing
    outside the slates (training needs none).
    """
    labels = list_matrix(columns["labels"], np.float32)
    n, length = labels.shape
    dense = list_matrix(columns["dense"], np.float32).reshape(n, length, -1)
    codes = (
        list_matrix(columns["codes"], np.int64).reshape(n, length, -1)
        if "codes" in columns
        else np.zeros((n, length, 0), dtype=np.int64)
    )
    mask = list_matrix(columns["mask"], np.float32) > 0.5
    rows = np.where(mask, np.cumsum(mask).reshape(mask.shape) - 1, -1)
    positions = list_matrix(columns["positions"], np.int64) if "positions" in columns else None
    return Slates(dense, codes, labels, mask, rows, positions)


def read_train_slates(path: Path) -> Slates:
    """The training slates back from :func:`write_train_slates` (for a single-process loop)."""
    table = pq.read_table(path)
    return slates_from_columns(
        {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    )


def save_slates(slates: Slates, path: Path) -> None:
    arrays = {name: getattr(slates, name) for name in Slates.FIELDS}
    if slates.positions is not None:
        arrays["positions"] = slates.positions
    np.savez(path, **arrays)


def load_slates(path: Path) -> Slates:
    with np.load(path) as data:
        positions = data["positions"] if "positions" in data.files else None
        return Slates(
            data["dense"], data["codes"], data["labels"], data["mask"], data["rows"], positions
        )


def prepare(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    contract: FeatureContract | None,
    max_length: int,
    folder: Path,
    position_bias: bool = False,
) -> tuple[FeatureProcessor, Shapes]:
    """Fit the feature processor on ``train`` and write both splits for the workers; both
    carry the logged positions when ``position_bias`` (validation scores the click model).

    Raises:
        InputError: a split is empty, or ``position_bias`` and a split's positions are
            missing or invalid (checked before anything is fitted or written).
    """
    if position_bias:
        logged_positions(train)
        logged_positions(valid, "valid")
    folder.mkdir(parents=True, exist_ok=True)
    processor = FeatureProcessor.fit(train, infer_roles(list(train.columns), contract))
    train_slates = encode(train, processor, max_length, positions=position_bias)
    valid_slates = encode(valid, processor, max_length, positions=position_bias)
    write_train_slates(train_slates, folder / TRAIN_SLATES)
    save_slates(valid_slates, folder / VALID_SLATES)
    processor.save(folder / PROCESSOR_FILE)
    shapes = Shapes(
        list_length=train_slates.mask.shape[1],
        n_numeric=train_slates.dense.shape[2],
        n_categorical=train_slates.codes.shape[2],
        train_slates=len(train_slates),
        valid_slates=len(valid_slates),
        train_candidates=int(train_slates.mask.sum()),
    )
    return processor, shapes
