"""Read LETOR / SVMlight ranking files into the ranking-dataset format.

Each line of such a file is one (query, document) row::

    <label> [qid:<id>] <index>:<value> <index>:<value> ... [# comment]

Labels are graded relevance integers >= 0. The rows of one query are consecutive, and the query of
each row comes either from its ``qid:`` field (the LETOR / MSLR / Yahoo convention) or from a group
file whose line i is the number of consecutive rows of query i (the LightGBM convention: a
``rank.train.query`` beside ``rank.train``). Features may be sparse: a missing index means 0.0, as
LightGBM and XGBoost read it.

The output is one Arrow table with ``search_id`` (int64), ``item_id`` (int64, the row's position
within its query), ``label`` (int32) and one float32 column ``f<index>`` per feature index, so the
trainer reads LETOR benchmarks exactly as it reads the synthetic search logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.io import write_parquet_atomically

GROUP_FILE_SUFFIX = ".query"
"""The LightGBM group file of ``rank.train`` is ``rank.train.query``."""

MAX_FEATURE_INDEX = 100_000
"""Largest accepted feature index; the output is dense, so a typo like ``1000000:0.5`` would
otherwise allocate a column per index up to it. Public LETOR sets stop below 1,000."""

_MAX_LABEL = int(np.iinfo(np.int32).max)


@dataclass
class _Rows:
    """What the parser collects: labels and qids per row, sparse features as coordinate lists."""

    labels: list[int] = field(default_factory=list)
    qids: list[str] = field(default_factory=list)
    """One per row when the file has ``qid:`` fields, else empty."""
    line_numbers: list[int] = field(default_factory=list)
    feature_rows: list[int] = field(default_factory=list)
    feature_indices: list[int] = field(default_factory=list)
    feature_values: list[float] = field(default_factory=list)


def read_letor(path: Path, query_file: Path | None = None) -> pa.Table:
    """Read a LETOR / SVMlight file and its query grouping into a ranking dataset.

    Args:
        path: the data file.
        query_file: a LightGBM group file (one group size per line). When ``None``, the file
            ``<path>.query`` is used if it exists; otherwise the rows' ``qid:`` fields group them.

    Returns:
        A table with ``search_id`` (the integer qid when every qid is an integer, else
        0..n_groups-1 in order of appearance), ``item_id`` (0-based position within the search),
        ``label`` (int32) and float32 columns ``f<index>`` for every index from 1 (0 when index 0
        occurs) to the largest index seen.

    Raises:
        InputError: a file is missing or empty, a line is malformed, qids are mixed with
            qid-less rows or not contiguous, there is no grouping at all, the group sizes do not
            sum to the number of rows, or qids and group file disagree.
    """
    _require_file(path)
    if query_file is None:
        default = path.with_name(path.name + GROUP_FILE_SUFFIX)
        query_file = default if default.is_file() else None
    else:
        _require_file(query_file)
    rows = _parse_file(path)
    if not rows.labels:
        raise InputError(str(path), 0, "a LETOR file needs at least one row")
    search_ids, sizes = _group(rows, path, query_file)
    starts = np.cumsum(sizes) - sizes
    item_ids = np.arange(len(rows.labels), dtype=np.int64) - np.repeat(starts, sizes)
    columns: dict[str, pa.Array] = {
        S.SEARCH_ID: pa.array(np.repeat(search_ids, sizes), pa.int64()),
        S.ITEM_ID: pa.array(item_ids, pa.int64()),
        S.LABEL: pa.array(np.asarray(rows.labels, dtype=np.int32), pa.int32()),
    }
    columns.update(_dense_features(rows))
    return pa.table(columns)


def write_ranking_dataset(table: pa.Table, path: Path) -> None:
    """Write a ranking dataset to parquet, all or nothing.

    Args:
        table: a table in the ranking-dataset format.
        path: the parquet file to write.

    Raises:
        InputError: a column of :data:`~searchrank.core.schema.RANKING_REQUIRED_COLUMNS`
            is missing.
    """
    missing = [c for c in S.RANKING_REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(
            "ranking dataset columns",
            table.column_names,
            f"a ranking dataset needs the columns {list(S.RANKING_REQUIRED_COLUMNS)}; "
            f"missing {missing}",
        )
    write_parquet_atomically(table, path)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(str(path), str(path), "the file does not exist")


def _parse_file(path: Path) -> _Rows:
    rows = _Rows()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            tokens = line.partition("#")[0].split()
            if tokens:
                _parse_row(tokens, f"{path}:{number}", number, rows)
    return rows


def _parse_row(tokens: list[str], where: str, number: int, rows: _Rows) -> None:
    row = len(rows.labels)
    rows.labels.append(_parse_label(tokens[0], where))
    rows.line_numbers.append(number)
    features = tokens[1:]
    has_qid = bool(features) and features[0].startswith("qid:")
    # Half-grouped files are ambiguous: a qid-less row could belong to either neighbour.
    if row and has_qid != bool(rows.qids):
        raise InputError(
            where,
            features[0] if features else tokens[0],
            "either every row has a qid: field or none has",
        )
    if has_qid:
        qid = features[0][len("qid:") :]
        if not qid:
            raise InputError(where, features[0], "a qid: field needs an id after the colon")
        rows.qids.append(qid)
        features = features[1:]
    seen: set[int] = set()
    for token in features:
        index, value = _parse_feature(token, where)
        if index in seen:
            raise InputError(where, token, "a feature index may appear only once per line")
        seen.add(index)
        rows.feature_rows.append(row)
        rows.feature_indices.append(index)
        rows.feature_values.append(value)


def _parse_label(token: str, where: str) -> int:
    try:
        label = int(token)
    except ValueError:
        label = -1
    if not 0 <= label <= _MAX_LABEL:
        raise InputError(where, token, "the label (first token) must be an integer grade >= 0")
    return label


def _parse_feature(token: str, where: str) -> tuple[int, float]:
    index_text, colon, value_text = token.partition(":")
    if not colon:
        raise InputError(where, token, "features must be written <index>:<value>")
    try:
        index = int(index_text)
    except ValueError:
        raise InputError(where, token, "feature indices must be integers") from None
    if not 0 <= index <= MAX_FEATURE_INDEX:
        raise InputError(where, token, f"feature indices must lie in 0..{MAX_FEATURE_INDEX}")
    try:
        value = float(value_text)
    except ValueError:
        raise InputError(where, token, "feature values must be numbers") from None
    if not math.isfinite(value):
        raise InputError(where, token, "feature values must be finite")
    return index, value


def _group(rows: _Rows, path: Path, query_file: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the search id and row count of each group, in file order."""
    n_rows = len(rows.labels)
    group_sizes = None
    if query_file is not None:
        group_sizes = _read_group_sizes(query_file)
        total = int(group_sizes.sum())
        if total != n_rows:
            raise InputError(
                str(query_file),
                total,
                f"the group sizes must sum to the number of rows of {path} ({n_rows}), not {total}",
            )
    if not rows.qids:
        if group_sizes is None:
            raise InputError(
                str(path),
                f"no qid: fields and no {path.name}{GROUP_FILE_SUFFIX}",
                "rows must be grouped into queries by qid: fields or by a group file",
            )
        return np.arange(len(group_sizes), dtype=np.int64), group_sizes
    qids, sizes = _qid_runs(rows, path)
    if group_sizes is not None and not np.array_equal(sizes, group_sizes):
        raise InputError(
            str(query_file),
            f"{len(group_sizes)} groups",
            f"the group file must agree with the qid: fields of {path}, which make "
            f"{len(sizes)} queries; {_first_difference(sizes, group_sizes)}",
        )
    return _search_ids(qids), sizes


def _first_difference(by_qid: np.ndarray, by_file: np.ndarray) -> str:
    # Both sum to the row count, so they differ within their common length.
    common = min(len(by_qid), len(by_file))
    i = int(np.flatnonzero(by_qid[:common] != by_file[:common])[0])
    return f"group {i} has {by_qid[i]} rows by qid and {by_file[i]} by the group file"


def _read_group_sizes(path: Path) -> np.ndarray:
    sizes: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            size = int(text)
        except ValueError:
            size = 0
        if size < 1:
            raise InputError(
                f"{path}:{number}",
                text,
                "each line of a group file is a positive integer: the rows of one query",
            )
        sizes.append(size)
    return np.asarray(sizes, dtype=np.int64)


def _qid_runs(rows: _Rows, path: Path) -> tuple[list[str], np.ndarray]:
    """Split the rows into runs of equal qid; a qid that comes back later is an error."""
    qids = np.asarray(rows.qids)
    bounds = S.search_bounds(qids, where=lambda row: f"{path}:{rows.line_numbers[row]}")
    return qids[bounds[:-1]].tolist(), np.diff(bounds)


def _search_ids(qids: list[str]) -> np.ndarray:
    """Integer qids are kept (they join with other data); other ids are numbered in order."""
    try:
        return np.asarray([int(q) for q in qids], dtype=np.int64)
    except (ValueError, OverflowError):
        return np.arange(len(qids), dtype=np.int64)


def _dense_features(rows: _Rows) -> dict[str, pa.Array]:
    if not rows.feature_indices:
        return {}
    indices = np.asarray(rows.feature_indices, dtype=np.int64)
    first = 0 if int(indices.min()) == 0 else 1
    # One contiguous float32 array per feature column: fill feature-major, then slice rows.
    dense = np.zeros((int(indices.max()) - first + 1, len(rows.labels)), dtype=np.float32)
    dense[indices - first, np.asarray(rows.feature_rows)] = rows.feature_values
    return {f"f{first + j}": pa.array(dense[j], pa.float32()) for j in range(len(dense))}
