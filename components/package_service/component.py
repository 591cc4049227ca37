"""The ``package_service`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


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
    retriever: Optional[Input[Model]] = None,  # noqa: UP045
    index: Optional[Input[Model]] = None,  # noqa: UP045
    intent: Optional[Input[Model]] = None,  # noqa: UP045
    routing: Optional[Input[Artifact]] = None,  # noqa: UP045
    generative: Optional[Input[Model]] = None,  # noqa: UP045
    retriever_blessed: bool = False,
    intent_blessed: bool = False,
    generative_blessed: bool = False,
    run_id: str = "",
    golden_searches: int = 30,
    p99_budget_ms: float = 500.0,
) -> str:
    """Save the blessed ranker with its lineage, build and export the Bento, infra-validate it.

    Args:
        model: the ranker checkpoint (``train_ranker``'s Model); its URI is kept as lineage.
        golden: ``evaluate``'s scores Dataset; its last day's searches are replayed.
        catalogue: one row per item (``item_id``, ``name``, ``artist_name``, ``explicit``) for
            the retriever and the explicit-leak check.
        feature_repo: the Feast repository folder the service will read.
        blessed: ``evaluate``'s decision; an unblessed model is refused.
        bento: the exported ``.bento`` archive (metadata: the Bento and model tags).
        metrics: score parity, latency and explicit-leak rate of the infra validation.
        summary: the same, as Markdown.
        train: the training Dataset, whose URI becomes a label of the model and whose streams
            weigh the query rewriter's and BM25's popularity.
        retriever: train_retriever's checkpoint; served beside BM25 when retriever_blessed.
        index: build_index's Voyager index of its item vectors.
        intent: train_intent's model: shipped whenever given (the ranker may read it).
        routing: evaluate_retrieval's fusion weights by intent, used when both are blessed.
        generative: train_generative_retriever's model; a third source when blessed and routed.
        retriever_blessed: evaluate_retrieval's decision on the retriever and its index.
        intent_blessed: evaluate_retrieval's decision on routing by intent.
        generative_blessed: evaluate_retrieval's decision on the generative retriever.
        run_id: the KFP run (pipelines pass ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
        golden_searches: how many searches to replay.
        p99_budget_ms: the p99 latency the served Bento must meet.

    Returns:
        The Bento's tag.
    """
    import json
    import tempfile
    from pathlib import Path

    from searchrank.components.package_service.config import PackageConfig
    from searchrank.components.package_service.logic import (
        Lineage,
        package_service,
        retriever_parts,
    )
    from searchrank.core.io import log_metrics

    def optional(artifact: object) -> Optional[Path]:  # noqa: UP045
        return Path(artifact.path) if artifact is not None else None  # type: ignore[attr-defined]

    lineage = Lineage(
        kfp_run=run_id,
        training_dataset_uri=train.uri if train is not None else "",
        checkpoint_uri=model.uri,
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
        retriever_parts(
            optional(retriever),
            optional(index),
            optional(intent),
            optional(routing),
            retriever_blessed,
            intent_blessed,
            optional(generative),
            generative_blessed,
            optional(train),
        ),
    )
    bento.metadata.update(
        {"bento": result.bento_tag, "ranker": result.ranker_tag, "retriever": result.retriever_tag}
    )
    log_metrics(metrics, result.metrics())
    Path(summary.path).write_text(result.markdown())
    if not result.validation.passed:
        raise RuntimeError("infra validation failed: " + json.dumps(result.validation.reasons))
    return result.bento_tag
