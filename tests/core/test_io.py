"""A step's outputs: metrics logged on the KFP artifact and written to its file (kfp.local's step
cache takes an output without its file for a lost one), parquet written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from kfp.dsl import Metrics

from searchrank.core.errors import InputError
from searchrank.core.io import log_metrics, read_parquet_input, write_parquet_atomically


def test_metrics_are_logged_on_the_artifact_and_written_to_its_file(tmp_path: Path) -> None:
    metrics = Metrics(uri=str(tmp_path / "step" / "metrics"))
    log_metrics(metrics, {"ndcg@10": 0.75, "rounds": 60})
    assert metrics.metadata == {"ndcg@10": 0.75, "rounds": 60.0}
    assert json.loads(Path(metrics.path).read_text()) == {"ndcg@10": 0.75, "rounds": 60.0}


def test_a_parquet_file_is_replaced_whole_and_a_missing_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "part.parquet"
    write_parquet_atomically(pa.table({"a": [1, 2]}), path)
    write_parquet_atomically(pa.table({"a": [3]}), path)
    assert read_parquet_input(path, "train").equals(pd.DataFrame({"a": [3]}))
    assert [p.name for p in tmp_path.iterdir()] == ["part.parquet"], "no temporary file is left"
    with pytest.raises(InputError, match="train"):
        read_parquet_input(tmp_path / "missing.parquet", "train")
