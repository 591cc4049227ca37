"""Turning training and validation splits into what the Ray Train workers read.

The training slates go to a parquet file with fixed-size list columns, which Ray Data reads and
shards across workers (locally from disk, on a cluster from shared storage); the validation
slates, small, go to one ``.npz`` file that every worker loads whole.
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


def encode(frame: pd.DataFrame, processor: FeatureProcessor, max_length: int) -> Slates:
    """Encode a split's rows and pack them into slates."""
    if frame.empty:
        raise InputError("rows", 0, "a split to train or validate on must not be empty")
    dense, codes = processor.transform(frame)
    labels = frame[S.LABEL].to_numpy(np.float32)
    return to_slates(dense, codes, labels, frame[S.SEARCH_ID].to_numpy(), max_length)


def write_train_slates(slates: Slates, path: Path) -> None:
    """One row per slate: dense (L·F floats), codes (L·C ints, when any), labels and mask."""
    _, length, width = slates.dense.shape
    columns = {
        "dense": fixed_size_list(slates.dense, length * width, pa.float32()),
        "labels": fixed_size_list(slates.labels, length, pa.float32()),
        "mask": fixed_size_list(slates.mask.astype(np.float32), length, pa.float32()),
    }
    if slates.codes.shape[2]:
        columns["codes"] = fixed_size_list(slates.codes, length * slates.codes.shape[2], pa.int64())
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
    return Slates(dense, codes, labels, mask, rows)


def read_train_slates(path: Path) -> Slates:
    """The training slates back from :func:`write_train_slates` (for a single-process loop)."""
    table = pq.read_table(path)
    return slates_from_columns(
        {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    )


def save_slates(slates: Slates, path: Path) -> None:
    np.savez(
        path,
        dense=slates.dense,
        codes=slates.codes,
        labels=slates.labels,
        mask=slates.mask,
        rows=slates.rows,
    )


def load_slates(path: Path) -> Slates:
    with np.load(path) as data:
        return Slates(data["dense"], data["codes"], data["labels"], data["mask"], data["rows"])


def prepare(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    contract: FeatureContract | None,
    max_length: int,
    folder: Path,
) -> tuple[FeatureProcessor, Shapes]:
    """Fit the feature processor on ``train`` and write both splits for the workers."""
    folder.mkdir(parents=True, exist_ok=True)
    processor = FeatureProcessor.fit(train, infer_roles(list(train.columns), contract))
    train_slates = encode(train, processor, max_length)
    valid_slates = encode(valid, processor, max_length)
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
