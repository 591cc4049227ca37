"""Array columns in the parquet files that Ray Data shards across training workers.

A trainer writes one row per training example (a slate, a query–item pair) with its arrays
flattened into fixed-size list columns; each worker reads its shard back as numpy batches, in
which such a column may arrive as an object array of rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def fixed_size_list(values: np.ndarray, width: int, kind: pa.DataType) -> pa.FixedSizeListArray:
    """``values`` (any shape) as a list column of ``width`` elements per row."""
    flat = pa.array(values.reshape(-1), type=kind)
    return pa.FixedSizeListArray.from_arrays(flat, width)


def list_matrix(values: np.ndarray, dtype: type) -> np.ndarray:
    """A 2-D array of a list column (which may arrive as an object array of rows)."""
    return np.stack(list(values)).astype(dtype) if values.dtype == object else values.astype(dtype)
