"""Model inputs from a training set: which columns a ranker reads, and how they are encoded.

The same :class:`FeatureProcessor` serves the transformer, the LightGBM baseline and the BentoML
service, so that every model sees exactly the same features. It is fitted on the training split
only and saved beside the model as JSON:

- numeric features (Feast Int64, Float32, Bool): ``log1p`` for unbounded non-negative counts
  (their domain has a minimum of 0 and no maximum), then standardized with the training split's
  mean and standard deviation; missing values become 0 (the mean) after standardization;
- one presence flag per feature view (1 when the view had a value for the row; its audit
  ``feature_timestamp`` column tells), so "no history" is distinguishable from "average";
- categorical features (Feast String with a closed value set): a vocabulary from the training
  split, index 0 for missing or unseen values;
- free text (names) is left out: the text-match features carry what it says about the query;
- the query-intent model's class probabilities (``query_intent__<class>``, added to the splits by
  ``train_intent`` and by the service per request) are numeric features beside Feast's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.intent import is_intent_column
from searchrank.core.query_rewrite import is_rewrite_column

PRESENCE_SUFFIX = "__present"
Values = Sequence[object] | np.ndarray | pd.Series
"""One column's values: a frame's column, an array or a list (None or NaN when missing)."""
PROCESSOR_FILE = "feature_processor.json"
"""The fitted :class:`FeatureProcessor`'s file name in a model folder."""


@dataclass(frozen=True)
class ColumnRole:
    """How one training-set column enters a model."""

    column: str
    kind: str
    """``numeric``, ``categorical`` or ``presence``."""
    log1p: bool = False

    @property
    def source(self) -> str:
        """The training-set column the role reads: a presence flag reads its view's audit
        ``feature_timestamp`` column, every other role its own column."""
        if self.kind == "presence":
            return self.column.removesuffix(PRESENCE_SUFFIX) + S.AUDIT_SUFFIX
        return self.column


def is_query_column(column: str) -> bool:
    """Whether a feature column is computed from the query at request time (the intent model's
    probabilities, the rewriter's features), not read from Feast."""
    return is_intent_column(column) or is_rewrite_column(column)


def infer_roles(
    columns: Sequence[str], contract: FeatureContract | None = None
) -> list[ColumnRole]:
    """Decide each feature column's role.

    Args:
        columns: the training set's columns.
        contract: the training set's feature contract, when the data came through Feast;
            without one every feature column is numeric (LETOR-style data).
    """
    features = S.feature_columns(list(columns))
    if contract is None:
        return [ColumnRole(c, "numeric") for c in features if not c.endswith(S.AUDIT_SUFFIX)]
    by_column = contract.by_column()
    roles: list[ColumnRole] = []
    for column in features:
        spec = by_column.get(column)
        if spec is None:
            if is_query_column(column):
                roles.append(ColumnRole(column, "numeric"))
            continue
        domain = spec.domain
        if domain.audit:
            roles.append(ColumnRole(f"{spec.view}{PRESENCE_SUFFIX}", "presence"))
        elif spec.dtype == "String":
            if domain.values is not None:
                roles.append(ColumnRole(column, "categorical"))
        else:
            heavy = domain.min == 0.0 and domain.max is None
            roles.append(ColumnRole(column, "numeric", log1p=heavy))
    return roles


@dataclass(frozen=True)
class FeatureProcessor:
    """Fitted encoding of a training set's features (see the module docstring)."""

    numeric: list[ColumnRole]
    categorical: list[str]
    mean: list[float]
    std: list[float]
    vocabularies: dict[str, list[str]] = field(default_factory=dict)

    @property
    def numeric_names(self) -> list[str]:
        return [r.column for r in self.numeric]

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes: the vocabulary plus index 0 for missing or unseen."""
        return [len(self.vocabularies[c]) + 1 for c in self.categorical]

    @classmethod
    def fit(cls, frame: pd.DataFrame, roles: Sequence[ColumnRole]) -> FeatureProcessor:
        """Learn statistics and vocabularies from the training split."""
        numeric = [r for r in roles if r.kind in ("numeric", "presence")]
        categorical = [r.column for r in roles if r.kind == "categorical"]
        raw = _raw_numeric(frame, numeric)
        mean = np.nanmean(raw, axis=0) if len(raw) else np.zeros(raw.shape[1])
        std = np.nanstd(raw, axis=0) if len(raw) else np.ones(raw.shape[1])
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
        vocabularies = {
            c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical
        }
        return cls(list(numeric), categorical, mean.tolist(), std.tolist(), vocabularies)

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Encode rows.

        Returns:
            (dense float32 array of shape (n, len(numeric)), int64 codes of shape
            (n, len(categorical))).
        """
        numeric = range(len(self.numeric))
        sources = [_source(frame, role) for role in self.numeric]
        dense = self.dense_columns(numeric, sources, len(frame))
        codes = np.empty((len(frame), len(self.categorical)), dtype=np.int64)
        for j, column in enumerate(self.categorical):
            codes[:, j] = self.code_column(j, frame[column])
        return dense, codes

    def dense_columns(
        self, indices: Sequence[int], sources: Sequence[Values], rows: int
    ) -> np.ndarray:
        """Dense inputs ``indices`` (float32, one column each) from their source columns'
        values: what :meth:`transform` puts in those columns. The service encodes with it in
        parts (item columns once per cache load, request columns per request), so online and
        offline inputs come from one piece of code."""
        raw = np.empty((rows, len(indices)), dtype=np.float64)
        for k, (j, values) in enumerate(zip(indices, sources, strict=True)):
            raw[:, k] = _raw_column(self.numeric[j], values)
        chosen = list(indices)
        standardized = (raw - np.asarray(self.mean)[chosen]) / np.asarray(self.std)[chosen]
        return np.nan_to_num(standardized, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def code_column(self, j: int, values: Values) -> np.ndarray:
        """The ``j``-th categorical input's codes (int64): 0 for a missing or unseen value."""
        index = self._code_index[j]
        return np.fromiter((index.get(v, 0) for v in values), dtype=np.int64, count=len(values))

    @cached_property
    def _code_index(self) -> list[dict[object, int]]:
        return [
            {value: k + 1 for k, value in enumerate(self.vocabularies[column])}
            for column in self.categorical
        ]

    def raw_matrix(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """The same features for tree models: numbers as they are and categories as integer
        codes from 0, both NaN when missing (or unseen), with their names."""
        raw = _raw_numeric(frame, self.numeric)
        _, codes = self.transform(frame)
        categories = np.where(codes > 0, codes - 1.0, np.nan)
        return np.hstack([raw, categories]), [*self.numeric_names, *self.categorical]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureProcessor:
        data = json.loads(text)
        data["numeric"] = [ColumnRole(**r) for r in data["numeric"]]
        return cls(**data)

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> FeatureProcessor:
        return cls.from_json(path.read_text())


def _source(frame: pd.DataFrame, role: ColumnRole) -> pd.Series:
    """The frame's column that ``role`` reads, or an error naming it."""
    if role.source not in frame.columns:
        rule = (
            f"is needed for the presence flag {role.column}"
            if role.kind == "presence"
            else "is a model feature missing from the data"
        )
        raise InputError("columns", role.source, rule)
    return frame[role.source]


def _raw_column(role: ColumnRole, values: Values) -> np.ndarray:
    """One numeric feature before standardization (float64, NaN when missing): 1/0 presence
    for a presence flag, the value (``log1p`` of it for heavy counts) otherwise."""
    if role.kind == "presence":
        present = values.notna() if isinstance(values, pd.Series) else pd.notna(list(values))
        return np.asarray(present, dtype=np.float64)
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # pandas' NA, or text where a number belongs
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
            np.float64
        )
    return np.log1p(np.maximum(numbers, 0.0)) if role.log1p else numbers


def _raw_numeric(frame: pd.DataFrame, roles: Sequence[ColumnRole]) -> np.ndarray:
    """Numeric features before standardization, shape (n, len(roles)); NaN when missing."""
    out = np.empty((len(frame), len(roles)), dtype=np.float64)
    for j, role in enumerate(roles):
        out[:, j] = _raw_column(role, _source(frame, role))
    return out
