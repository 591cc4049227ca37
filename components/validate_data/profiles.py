"""The pieces of data validation that need no Great Expectations: the Arrow types each Feast type
may arrive as, what the reference dataset looked like, and how far a feature's distribution moved
(population stability index). What each column should hold comes from the feature contract
(:mod:`searchrank.core.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrank.core import schema as S
from searchrank.core.contract import ContractColumn
from searchrank.core.errors import InputError

_TIMESTAMPS = tuple(f"timestamp[{unit}, tz=UTC]" for unit in ("us", "ns", "ms"))
_TEXT = ("string", "large_string")
ARROW_TYPES: dict[str, tuple[str, ...]] = {
    # An integer column with missing values that went through pandas comes back as doubles.
    "Int64": ("int64", "int32", "double"),
    "Int32": ("int32", "int64", "double"),
    "Float32": ("float", "double"),
    "Float64": ("double", "float"),
    "String": _TEXT,
    "Bool": ("bool",),
    "UnixTimestamp": _TIMESTAMPS,
}
"""Arrow type names a column of each Feast type may have in a training-set file."""
ENTITY_TYPES: dict[str, tuple[str, ...]] = {
    S.SEARCH_ID: ("int64",),
    S.USER_ID: ("int64",),
    S.ITEM_ID: ("int64",),
    S.QUERY: _TEXT,
    S.EVENT_TIMESTAMP: _TIMESTAMPS,
    S.POSITION: ("int32", "int64"),
    S.LABEL: ("int32", "int64"),
}
MAX_PROFILED_CATEGORIES = 50
PSI_BINS = 10
PSI_FLOOR = 1e-4
"""Empty bins get this share, so that the index stays finite."""


@dataclass(frozen=True)
class ColumnProfile:
    """What a column looked like in the reference dataset.

    Numeric columns keep their range and PSI bin edges (the reference's deciles); categorical
    ones their values and frequencies. Shares are over all rows, missing values included.
    """

    column: str
    numeric: bool
    null_share: float
    low: float | None = None
    high: float | None = None
    edges: tuple[float, ...] = ()
    shares: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()


def sample(frame: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """At most ``rows`` rows, drawn uniformly without replacement (all of them when fewer)."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def _numeric_bins(values: pd.Series, edges: tuple[float, ...]) -> np.ndarray:
    """Shares of values per bin: (-inf, e0], (e0, e1], ..., (e_k, inf), then missing."""
    present = values.dropna().to_numpy(dtype=np.float64)
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), present, side="left"), minlength=len(edges) + 1
    )
    return np.append(counts, values.isna().sum()) / max(len(values), 1)


def _category_bins(values: pd.Series, categories: tuple[str, ...]) -> np.ndarray:
    """Shares of values per category, then any other value, then missing."""
    text = values.dropna().astype(str)
    known = text.value_counts().reindex(list(categories), fill_value=0).to_numpy()
    return np.append(known, [len(text) - known.sum(), values.isna().sum()]) / max(len(values), 1)


def _finite(values: pd.Series) -> np.ndarray:
    """The finite values of a numeric column: a reference's ±inf is no range to compare with
    (and is an error of its own when validated)."""
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return array[np.isfinite(array)]


def profile_column(column: str, values: pd.Series, numeric: bool) -> ColumnProfile:
    """Profile one reference column (from a sample, see :func:`sample`); a numeric column's range
    and bins over its finite values."""
    null_share = float(values.isna().mean()) if len(values) else 0.0
    if numeric:
        present = _finite(values)
        if not present.size:
            return ColumnProfile(column, True, null_share)
        quantiles = np.quantile(present, np.linspace(0, 1, PSI_BINS + 1)[1:-1])
        edges = tuple(float(q) for q in np.unique(quantiles))
        return ColumnProfile(
            column,
            True,
            null_share,
            float(present.min()),
            float(present.max()),
            edges,
            tuple(_numeric_bins(values, edges)),
        )
    counts = values.dropna().astype(str).value_counts()
    if len(counts) > MAX_PROFILED_CATEGORIES:
        # Free text (names, queries): neither a value set nor a distribution to compare.
        return ColumnProfile(column, False, null_share)
    categories = tuple(counts.index)
    return ColumnProfile(
        column,
        False,
        null_share,
        categories=categories,
        shares=tuple(_category_bins(values, categories)),
    )


def profiled(spec: ContractColumn) -> bool:
    """Whether a reference profile and a drift score make sense for a feature: numbers and closed
    categories do; audit timestamps and free text (names without a value set) do not."""
    return not spec.domain.audit and (
        spec.numeric or spec.domain.values is not None or spec.dtype == "Bool"
    )


def reference_profiles(
    path: Path, specs: list[ContractColumn], sample_rows: int
) -> dict[str, ColumnProfile]:
    """Profile the reference dataset's features: ranges over all rows, distribution bins over a
    uniform sample of ``sample_rows`` rows.

    Only the profiled columns are read: free-text columns would cost most of the reading time
    and have no distribution to compare.
    """
    try:
        names = pq.read_schema(path).names
        wanted = [s for s in specs if profiled(s) and s.column in names]
        frame = pq.read_table(path, columns=[s.column for s in wanted]).to_pandas()
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(
            "reference", str(path), f"must be a readable parquet file ({error})"
        ) from error
    rows = sample(frame, sample_rows)
    profiles = {}
    for spec in wanted:
        numeric = spec.numeric and pd.api.types.is_numeric_dtype(frame[spec.column])
        profile = profile_column(spec.column, rows[spec.column], numeric)
        if numeric and profile.low is not None:
            full = _finite(frame[spec.column])
            profile = replace(profile, low=float(full.min()), high=float(full.max()))
        profiles[spec.column] = profile
    return profiles


def population_stability(reference: ColumnProfile, values: pd.Series) -> float:
    """The population stability index of ``values`` against the reference's bins.

    PSI = sum over bins of (current − reference) · ln(current / reference). Rules of thumb: under
    0.1 no real shift, 0.1–0.25 a moderate one, above 0.25 a large one.
    """
    if reference.numeric:
        current = _numeric_bins(values, reference.edges)
    else:
        current = _category_bins(values, reference.categories)
    expected = np.maximum(np.asarray(reference.shares), PSI_FLOOR)
    actual = np.maximum(current, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
