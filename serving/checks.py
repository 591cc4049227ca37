"""The start-up check: the feature store still serves what the model was trained on.

A ranker reads features by column name. If the feature service its contract names was renamed,
lost a feature or changed a feature's type since training, the model would silently score
garbage, so the service refuses to start and says which column broke which rule. The model's
side of the comparison is the feature contract its checkpoint carries; the store's side is the
same service resolved from the store's registry now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from searchrank.core.contract import FeatureContract
from searchrank.core.features import FeatureProcessor, is_query_column

if TYPE_CHECKING:
    from feast import FeatureStore


def model_inputs(processor: FeatureProcessor) -> list[str]:
    """The feature-store columns a model reads: its numeric and categorical columns, with each
    view's presence flag read from the view's audit column. The query's columns are not the
    store's: the service computes them with the intent model and the rewriter
    (:class:`searchrank.serving.engine.SearchEngine` checks that it has them)."""
    numeric = [r.source for r in processor.numeric if not is_query_column(r.column)]
    return [*numeric, *processor.categorical]


def check_feature_service(
    store: FeatureStore, contract: FeatureContract, processor: FeatureProcessor
) -> None:
    """Check that ``store`` serves every input of the model as its contract describes it.

    Raises:
        InputError: the contract's feature service is not registered.
        ContractMismatchError: an input the model reads, or a column the explicit-content
            policy reads, is gone, or changed type or role.
    """
    from searchrank.features.contract import resolve_contract
    from searchrank.serving.online import POLICY_COLUMNS

    served = resolve_contract(store, contract.feature_service)
    contract.check_served(served, [*model_inputs(processor), *POLICY_COLUMNS])
