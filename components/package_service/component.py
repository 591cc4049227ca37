"""The ``package_service`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.components.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def package_service_op(
    model: Input[Model],
    golden: Input[Dataset],
    catalogue: Input[Dataset],
    feature_repo: str,
    blessed: bool,
    bento: Output[Artifact],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    train: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP reads typing.Optional)
    run_id: str = "",
    golden_searches: int = 30,
    p99_budget_ms: float = 500.0,
) -> str:
    """Save the blessed ranker with its lineage, build and export the Bento, infra-validate it.

    Args:
        model: the ranker checkpoint (``train_ranker``'s Model); its Ray checkpoint URI is kept.
        golden: ``evaluate``'s scores Dataset; its last day's searches are replayed.
        catalogue: one row per item (``item_id``, ``name``, ``artist_name``) for the retriever.
        feature_repo: the Feast repository folder the service will read.
        blessed: ``evaluate``'s decision; an unblessed model is refused.
        bento: the exported ``.bento`` archive (metadata: the Bento and model tags).
        metrics: score parity and latency of the infra validation.
        summary: the same, as Markdown.
        train: the training Dataset, whose URI becomes a label of the model.
        run_id: the KFP run (pipelines pass ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
        golden_searches: how many searches to replay.
        p99_budget_ms: the p99 latency the served Bento must meet.

    Returns:
        The Bento's tag.
    """
    import json
    import tempfile
    from pathlib import Path

    from searchrank.components.package_service.logic import (
        Lineage,
        PackageConfig,
        package_service,
    )

    lineage = Lineage(
        kfp_run=run_id,
        training_dataset_uri=train.uri if train is not None else "",
        ray_checkpoint=model.uri,
    )
    result = package_service(
        Path(model.path),
        blessed,
        Path(golden.path),
        Path(catalogue.path),
        Path(feature_repo),
        Path(bento.path),
        Path(tempfile.mkdtemp(prefix="package-service-")),
        PackageConfig(golden_searches=golden_searches, p99_budget_ms=p99_budget_ms),
        lineage,
    )
    bento.metadata.update(
        {"bento": result.bento_tag, "ranker": result.ranker_tag, "retriever": result.retriever_tag}
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    Path(summary.path).write_text(result.markdown())
    if not result.validation.passed:
        raise RuntimeError("infra validation failed: " + json.dumps(result.validation.reasons))
    return result.bento_tag
