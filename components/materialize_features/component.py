"""The ``materialize_features`` KFP component: a thin wrapper over
:mod:`searchrank.features.materialize` (which ``package_service`` shares to stage a store)."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def materialize_features_op(feature_repo: str, end: str, summary: Output[Markdown]) -> str:
    """Incrementally load every online feature view into the online store.

    Args:
        feature_repo: path of the Feast repository (a folder with feature_store.yaml).
        end: materialize up to this ISO 8601 time with zone; empty for now.
        summary: which views were loaded over which interval, as Markdown.

    Returns:
        The time the online store is now materialized until (ISO 8601).
    """
    from pathlib import Path

    from searchrank.core.schema import parse_time
    from searchrank.features.materialize import materialize_features

    result = materialize_features(Path(feature_repo), parse_time("end", end))
    summary.metadata.update(result.metadata())
    Path(summary.path).write_text(result.markdown())
    return result.end.isoformat()
