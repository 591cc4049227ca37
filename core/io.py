"""Reading a step's parquet inputs with errors that name the input, and writing outputs so that a
failure never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrank.core.errors import InputError


def read_parquet_input(path: Path, field: str) -> pd.DataFrame:
    """The rows of the parquet file a step was given as ``field``.

    Raises:
        InputError: the file is missing or is not readable parquet.
    """
    if not path.is_file():
        raise InputError(field, str(path), "must be an existing parquet file")
    try:
        return pd.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(field, str(path), f"must be a readable parquet file ({error})") from error


def write_parquet_atomically(table: pa.Table, path: Path) -> None:
    """Write ``table`` so that ``path`` holds either its old content or the whole new table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        pq.write_table(table, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
