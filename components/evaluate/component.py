"""The ``evaluate`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.components.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_op(
    test: Input[Dataset],
    candidate: Input[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
    evaluation: Output[Artifact],
    scores: Output[Dataset],
    lightgbm: Optional[Input[Model]] = None,  # noqa: UP045 (KFP reads typing.Optional)
    blessed_model: Optional[Input[Model]] = None,  # noqa: UP045
    train: Optional[Input[Dataset]] = None,  # noqa: UP045
    searches: Optional[Input[Dataset]] = None,  # noqa: UP045
    min_gain_vs_baselines: float = 0.0,
    min_gain_vs_blessed: float = -0.005,
    bootstrap_samples: int = 2000,
) -> bool:
    """Evaluate a candidate ranker on the test split and decide whether to bless it.

    Args:
        test: the test split (never used in training or selection).
        candidate: the trained ranker.
        metrics: every system's NDCG@k, MRR and MAP.
        report: the decision, metrics by slice and bootstrap distributions, as HTML.
        summary: the decision and the metrics, as Markdown.
        evaluation: everything as JSON (for the run report).
        scores: the test rows with every system's score (golden searches for serving checks).
        lightgbm: the LambdaMART baseline.
        blessed_model: the currently blessed ranker, if any.
        train: the train split, whose item texts join the BM25 corpus.
        searches: the searches table, for the query-intent slice.
        min_gain_vs_baselines: lower interval bound of (candidate − baseline) NDCG@10 needed.
        min_gain_vs_blessed: lower interval bound of (candidate − blessed) NDCG@10 needed.
        bootstrap_samples: paired bootstrap resamples.

    Returns:
        Whether the candidate is blessed.
    """
    from pathlib import Path

    import pyarrow as pa

    from searchrank.components.core.io import write_parquet_atomically
    from searchrank.components.evaluate.config import EvaluateConfig
    from searchrank.components.evaluate.logic import evaluate, write_report_json
    from searchrank.components.evaluate.report import html_page, markdown

    def optional(artifact: object) -> Optional[Path]:  # noqa: UP045
        return Path(artifact.path) if artifact is not None else None  # type: ignore[attr-defined]

    config = EvaluateConfig(
        min_gain_vs_baselines=min_gain_vs_baselines,
        min_gain_vs_blessed=min_gain_vs_blessed,
        bootstrap_samples=bootstrap_samples,
    )
    outcome, table = evaluate(
        Path(test.path),
        Path(candidate.path),
        config,
        lightgbm=optional(lightgbm),
        blessed=optional(blessed_model),
        train_path=optional(train),
        searches_path=optional(searches),
    )
    for system, values in outcome.systems.items():
        for name in ("ndcg@1", "ndcg@5", "ndcg@10", "mrr", "map"):
            metrics.log_metric(f"{system}_{name}", values[name])
    metrics.log_metric("blessed", float(outcome.blessed))
    Path(report.path).write_text(html_page(outcome))
    Path(summary.path).write_text(markdown(outcome))
    write_report_json(outcome, Path(evaluation.path))
    write_parquet_atomically(pa.Table.from_pandas(table, preserve_index=False), Path(scores.path))
    return outcome.blessed
