"""Reading a step's parquet inputs with errors that name the input, and writing outputs so that a
failure never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

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


class MetricsOutput(Protocol):
    """A KFP ``Output[Metrics]`` as a step's function sees it."""

    @property
    def path(self) -> str: ...

    def log_metric(self, metric: str, value: float) -> None: ...


def log_metrics(metrics: MetricsOutput, values: Mapping[str, float]) -> None:
    """Log ``values`` on a step's metrics output, and write them to its file as JSON.

    KFP keeps logged metrics in the artifact's metadata and leaves its file unwritten, and
    ``kfp.local``'s step cache takes an output without its file for a lost one: the step and
    every step after it would run again on a rerun. The file also lets anyone read the metrics
    from the artifact store.
    """
    for name, value in values.items():
        metrics.log_metric(name, float(value))
    path = Path(metrics.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: float(v) for k, v in values.items()}, indent=2, sort_keys=True))
