"""The ``fetch_features`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def fetch_features_op(
    entities: Input[Dataset],
    feature_repo: str,
    feature_service: str,
    training_set: Output[Dataset],
    feature_contract: Output[Artifact],
    summary: Output[Markdown],
) -> None:
    """Join point-in-time-correct features from Feast onto searches × candidates.

    Args:
        entities: parquet entity dataframe: search_id, user_id, item_id, query,
            event_timestamp (UTC), position, label.
        feature_repo: path of the Feast repository (a folder with feature_store.yaml).
        feature_service: the Feast feature service to fetch, e.g. ranker_v1.
        training_set: the training set (parquet): the entity columns, then the features.
        feature_contract: the training set's feature columns with their types, domains and
            roles (JSON), resolved from the registry: what every later step reads of them.
        summary: row counts, time range and missing features, as Markdown.
    """
    from pathlib import Path

    from searchrank.components.fetch_features.logic import fetch_features

    result = fetch_features(
        Path(entities.path),
        Path(feature_repo),
        feature_service,
        Path(training_set.path),
        Path(feature_contract.path),
    )
    training_set.metadata.update(result.metadata())
    feature_contract.metadata.update(
        {"feature_service": result.feature_service, "schema_hash": result.schema_hash}
    )
    Path(summary.path).write_text(result.markdown())
