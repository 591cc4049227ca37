"""The start-up check: the online feature service still provides what the model was trained on.

A ranker reads features by column name. If the feature service it names was renamed, lost a
feature or changed a feature's type since training, the model would silently score garbage, so
the service refuses to start and says which column broke which rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from searchrank.core import schema as S
from searchrank.core.features import PRESENCE_SUFFIX, FeatureProcessor
from searchrank.core.intent import is_intent_column

if TYPE_CHECKING:
    from feast import FeatureStore


class SchemaMismatchError(RuntimeError):
    """The feature store cannot serve the model; the message lists every reason."""


def served_types(store: FeatureStore, feature_service: str) -> dict[str, str]:
    """``view__feature`` → Feast type name of every feature the registered service provides.

    Raises:
        SchemaMismatchError: the feature service is not registered.
    """
    registered = sorted(s.name for s in store.list_feature_services())
    if feature_service not in registered:
        raise SchemaMismatchError(
            f"the model was trained on feature service {feature_service!r}, which the feature "
            f"store does not have (registered: {registered})"
        )
    service = store.get_feature_service(feature_service)
    return {
        f"{p.name_to_use()}__{f.name}": str(f.dtype)
        for p in service.feature_view_projections
        for f in p.features
    }


def model_problems(processor: FeatureProcessor, types: dict[str, str]) -> list[str]:
    """Every way in which ``types`` (from :func:`served_types`) fails the model's inputs.

    The query-intent columns are not Feast's: the service computes them with the intent model
    (:class:`searchrank.serving.engine.SearchEngine` checks that it has one)."""
    problems = []
    for role in processor.numeric:
        column = role.column
        if is_intent_column(column):
            continue
        if role.kind == "presence":
            column = role.column.removesuffix(PRESENCE_SUFFIX) + S.AUDIT_SUFFIX
        if column not in types:
            problems.append(f"{column}: the model reads it, the feature service lacks it")
        elif role.kind == "numeric" and types[column] == "String":
            problems.append(f"{column}: the model reads a number, the feature service a String")
    for column in processor.categorical:
        if column not in types:
            problems.append(f"{column}: the model reads it, the feature service lacks it")
        elif types[column] != "String":
            problems.append(
                f"{column}: the model reads a category (String), the feature service a "
                f"{types[column]}"
            )
    return problems


def check_feature_service(
    store: FeatureStore, feature_service: str, processor: FeatureProcessor
) -> None:
    """Raise :class:`SchemaMismatchError` unless the store serves every input of the model."""
    problems = model_problems(processor, served_types(store, feature_service))
    if problems:
        raise SchemaMismatchError(
            f"feature service {feature_service!r} does not match the model's inputs: "
            + "; ".join(problems)
        )
