"""The feature contract: what a training set's feature columns are, written once and carried along.

``fetch_features`` resolves the feature service from the registry the run was given
(:func:`searchrank.features.contract.resolve_contract`, the one place that reads a service's
definition) and writes the result beside the training set as ``feature_contract.json``. Every
later step reads that file and nothing else for columns, types, domains and roles: validation
builds its expectations from it, the trainers encode features by it, the checkpoint and the Bento
carry it, and the search service compares it with the registry it serves from before it starts.

A column's **role** says how it is produced and used:

- ``feature``: a stored feature view's value, point-in-time joined offline and read from the
  online store when serving (``entities`` are its view's entities);
- ``audit``: a view's ``feature_timestamp`` bookkeeping column: never a model input, but it says
  whether the view had a value for the row;
- ``request_time``: computed from the request and other features (an on-demand view), the same
  function offline and online.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from searchrank.core.domain import Domain
from searchrank.core.errors import InputError

CONTRACT_FILE = "feature_contract.json"
NUMERIC_TYPES = frozenset({"Int64", "Int32", "Float32", "Float64"})
"""Feast number types (Bool is a closed set of two values, not a number to profile)."""


def contract_beside(data: Path) -> Path:
    """Where a training set's (or split's) contract lies outside Kubeflow, which passes it as an
    artifact of its own: ``train.parquet`` → ``train.feature_contract.json``."""
    return data.with_name(f"{data.stem}.{CONTRACT_FILE}")


def feature_column(view: str, feature: str) -> str:
    """A feature's training-set column: ``<view>__<feature>``, as Feast's full feature names."""
    return f"{view}__{feature}"


class Role(StrEnum):
    """How a feature column is produced and used (see the module docstring)."""

    FEATURE = "feature"
    AUDIT = "audit"
    REQUEST_TIME = "request_time"


@dataclass(frozen=True)
class ContractColumn:
    """One feature column of a training set.

    Attributes:
        column: the training-set column, ``<view>__<feature>``.
        view: the feature view (or on-demand view) it comes from.
        feature: the feature's name in that view.
        dtype: the Feast type name, such as ``Float32``.
        domain: the values it may take (from the Feast field's or view's tags).
        role: how it is produced and used.
        entities: the entities its view is keyed by (empty for request-time columns).
    """

    column: str
    view: str
    feature: str
    dtype: str
    domain: Domain
    role: Role = Role.FEATURE
    entities: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return self.dtype in NUMERIC_TYPES

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "view": self.view,
            "feature": self.feature,
            "dtype": self.dtype,
            "role": self.role.value,
            "entities": list(self.entities),
            "domain": self.domain.to_tags(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContractColumn:
        return cls(
            column=str(data["column"]),
            view=str(data["view"]),
            feature=str(data["feature"]),
            dtype=str(data["dtype"]),
            domain=Domain.from_tags(data.get("domain") or {}),
            role=Role(data["role"]),
            entities=tuple(data.get("entities") or ()),
        )


class ContractMismatchError(InputError):
    """A feature store, or data, that breaks a model's feature contract.

    Attributes:
        problems: ``(column, rule)`` for every broken rule; the message lists them all.
    """

    def __init__(self, feature_service: str, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        column, _ = self.problems[0]
        rules = "; ".join(f"{c}: {rule}" for c, rule in self.problems)
        super().__init__(
            column, feature_service, f"breaks the feature contract of this service ({rules})"
        )


@dataclass(frozen=True)
class FeatureContract:
    """The feature columns of one feature service, in the order a training set has them."""

    feature_service: str
    columns: tuple[ContractColumn, ...]

    @property
    def schema_hash(self) -> str:
        """A short hash of every column's name, type, role and domain: it changes whenever the
        service's schema does."""
        text = json.dumps([c.as_dict() for c in self.columns], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def names(self) -> list[str]:
        return [c.column for c in self.columns]

    def by_column(self) -> dict[str, ContractColumn]:
        return {c.column: c for c in self.columns}

    def to_json(self) -> str:
        return json.dumps(
            {
                "feature_service": self.feature_service,
                "schema_hash": self.schema_hash,
                "columns": [c.as_dict() for c in self.columns],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: str = CONTRACT_FILE) -> FeatureContract:
        """Parse a contract file.

        Raises:
            InputError: not a contract, or its hash does not match its columns (edited by hand).
        """
        try:
            data = json.loads(text)
            contract = cls(
                str(data["feature_service"]),
                tuple(ContractColumn.from_dict(c) for c in data["columns"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(
                "feature contract", where, f"must be a {CONTRACT_FILE} ({error})"
            ) from error
        if data.get("schema_hash") != contract.schema_hash:
            raise InputError(
                "feature contract",
                where,
                f"its schema_hash {data.get('schema_hash')!r} must match its columns "
                f"({contract.schema_hash}); write contracts with fetch_features, not by hand",
            )
        return contract

    def save(self, path: Path) -> None:
        """Write the contract to ``path``: a file, or a folder that gets a contract file."""
        target = path / CONTRACT_FILE if path.is_dir() else path
        target.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> FeatureContract:
        """The contract in ``path`` (a contract file, or a folder holding one).

        Raises:
            InputError: no contract there, or not a valid one.
        """
        target = path / CONTRACT_FILE if path.is_dir() else path
        if not target.is_file():
            raise InputError(
                "feature contract",
                str(path),
                f"must exist: a contract file, or a folder (a model) holding {CONTRACT_FILE}; "
                "fetch_features writes one beside every training set",
            )
        return cls.from_json(target.read_text(), str(target))

    def check_served(self, served: FeatureContract, needed: Iterable[str] | None = None) -> None:
        """Check that a feature store's current contract (``served``, resolved from its registry)
        still provides the columns of this one that a model reads.

        Args:
            served: the registry's contract of the same service.
            needed: the columns that matter (a model's inputs); None for all of this contract's.

        Raises:
            ContractMismatchError: a needed column is gone, or changed type or role.
        """
        mine, theirs = self.by_column(), served.by_column()
        problems: list[tuple[str, str]] = []
        if served.feature_service != self.feature_service:
            problems.append(("feature_service", f"must be {self.feature_service!r}"))
        for column in self.names if needed is None else needed:
            if column not in mine:
                continue
            expected, actual = mine[column], theirs.get(column)
            if actual is None:
                problems.append((column, "the model reads it, the feature service lacks it"))
            elif actual.dtype != expected.dtype:
                problems.append(
                    (
                        column,
                        f"must be {expected.dtype} as in training, the service has {actual.dtype}",
                    )
                )
            elif actual.role != expected.role:
                problems.append(
                    (column, f"must be a {expected.role} column, the service has a {actual.role}")
                )
        if problems:
            raise ContractMismatchError(self.feature_service, problems)
