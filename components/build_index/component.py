"""The ``build_index`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def build_index_op(
    embeddings: Input[Dataset],
    index: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    metric: str = "cosine",
    m: int = 32,
    ef_construction: int = 400,
    query_ef: int = 1000,
    exact_up_to: int = 50_000,
    recall_k: int = 100,
) -> None:
    """Index item embeddings with Voyager and measure recall@k against exact search.

    Args:
        embeddings: parquet with ``item_id`` and ``embedding`` (a fixed-size list of floats).
        index: the index folder (``items.voyager`` and ``ann.json`` with its parameters).
        metrics: items, dimensions, recall@k.
        summary: the same, as Markdown.
        metric: ``cosine``, ``inner_product`` or ``euclidean``.
        m, ef_construction, query_ef: Voyager's HNSW parameters (see ``core/ann.py``).
        exact_up_to: a catalogue of at most this many items is searched exactly (faster than
            the graph at that size); 0 always walks the graph.
        recall_k: the k of the recall measurement.
    """
    from pathlib import Path

    from searchrank.components.build_index.logic import build_index
    from searchrank.core.ann import AnnParams
    from searchrank.core.io import log_metrics

    params = AnnParams(
        metric=metric,  # type: ignore[arg-type]  # AnnParams checks it and names the rule
        m=m,
        ef_construction=ef_construction,
        query_ef=query_ef,
        exact_up_to=exact_up_to,
    )
    result = build_index(Path(embeddings.path), Path(index.path), params, k=recall_k)
    log_metrics(metrics, result.metrics())
    index.metadata.update(result.params)
    Path(summary.path).write_text(result.markdown())
