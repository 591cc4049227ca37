"""The ``evaluate_retrieval`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_retrieval_op(
    train: Input[Dataset],
    valid: Input[Dataset],
    test: Input[Dataset],
    catalogue: Input[Dataset],
    searches: Input[Dataset],
    retriever: Input[Model],
    index: Input[Model],
    intent: Input[Model],
    routing: Output[Artifact],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
    generative: Optional[Input[Model]] = None,  # noqa: UP045 (KFP reads typing.Optional)
    k: int = 100,
    min_retrieval_gain: float = 0.0,
    min_intent_gain: float = 0.0,
) -> NamedTuple(  # type: ignore[valid-type]
    "Outputs",
    [("retriever_blessed", bool), ("intent_blessed", bool), ("generative_blessed", bool)],
):
    """Route the fusion on the validation searches, then measure and bless retrieval and the
    intent model on the test searches.

    Args:
        train: the training split: the items' streams (the rewriter's and BM25's popularity)
            and the listeners and window that the cold-start slices are new to.
        valid: the validation split: fits BM25's popularity prior and each predicted intent's
            fusion weights.
        test: the test split: every reported number.
        catalogue: one row per item, for the service's BM25.
        searches: the searches table (``search_id``, ``intent``).
        retriever: train_retriever's checkpoint.
        index: build_index's Voyager index of that checkpoint's item vectors.
        intent: train_intent's model.
        generative: train_generative_retriever's model: a third source, measured alone and
            fused (``None``: two sources).
        routing: the fusion weight of the dense list per predicted intent (JSON).
        evaluation: everything below as JSON.
        metrics: Recall@10, Recall@k and MRR of BM25, the index, the generative retriever,
            the even and routed fusions; intent accuracy and the majority class's.
        report: the same with Recall@k by true intent, by intent × typing form and by cold
            start, and intent metrics per class, as HTML.
        summary: the decision and the table, as Markdown.
        k: the Recall cut-off that blessing uses (candidates ``/search`` ranks).
        min_retrieval_gain: the routed fusion's Recall@k must be at least (1 + this) × BM25's.
        min_intent_gain: intent accuracy must beat the majority class's by more than this.

    Returns:
        Whether the retriever (with its index), the intent routing and the generative retriever
        are blessed.
    """
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from searchrank.components.evaluate_retrieval.config import RetrievalConfig
    from searchrank.components.evaluate_retrieval.logic import (
        evaluate_retrieval,
        write_evaluation,
    )
    from searchrank.core import schema as S
    from searchrank.core.ann import AnnIndex
    from searchrank.core.candidates import CandidateGenerator, DenseRetriever
    from searchrank.core.generative import GenerativeSource
    from searchrank.core.intent import IntentModel
    from searchrank.core.io import log_metrics
    from searchrank.core.retrieval import item_streams, listener_streams
    from searchrank.core.retriever import Retriever

    items = pd.read_parquet(catalogue.path)
    trained = pd.read_parquet(
        train.path, columns=[S.USER_ID, S.ITEM_ID, S.LABEL, S.EVENT_TIMESTAMP]
    )
    generator = CandidateGenerator.from_catalogue(
        items,
        DenseRetriever(Retriever.load(Path(retriever.path)), AnnIndex.load(Path(index.path))),
        IntentModel.load(Path(intent.path)),
        item_streams(trained),
        GenerativeSource.load(Path(generative.path)) if generative is not None else None,
        listener_streams(trained),
    )
    result, fitted = evaluate_retrieval(
        pd.read_parquet(valid.path),
        pd.read_parquet(test.path),
        pd.read_parquet(searches.path),
        generator,
        RetrievalConfig(
            k=k, min_retrieval_gain=min_retrieval_gain, min_intent_gain=min_intent_gain
        ),
        trained,
        items,
    )
    fitted.save(Path(routing.path))
    write_evaluation(result, Path(evaluation.path))
    log_metrics(metrics, result.metrics())
    Path(report.path).write_text(result.html())
    Path(summary.path).write_text(result.markdown())
    blessings = namedtuple(
        "blessings", ["retriever_blessed", "intent_blessed", "generative_blessed"]
    )
    return blessings(result.retriever_blessed, result.intent_blessed, result.generative_blessed)
