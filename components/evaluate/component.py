"""The ``evaluate`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


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
    train: Optional[Input[Dataset]] = None,  # noqa: UP045
    searches: Optional[Input[Dataset]] = None,  # noqa: UP045
    ground_truth: Optional[Input[Dataset]] = None,  # noqa: UP045
    champion: str = "",
    min_gain_vs_baselines: float = 0.0,
    min_gain_vs_champion: float = 0.0,
    bootstrap_samples: int = 2000,
) -> bool:
    """Evaluate a candidate ranker on the test split and decide whether to bless it.

    Args:
        test: the test split (never used in training or selection).
        candidate: the trained ranker.
        metrics: every system's NDCG@k, MRR and MAP (and ``true_ndcg@k`` with a ground
            truth), and the candidate's explicit-leak rate.
        report: the decision, metrics by slice and bootstrap distributions, as HTML.
        summary: the decision and the metrics, as Markdown.
        evaluation: everything as JSON (for the run report).
        scores: the test rows with every system's score (golden searches for serving checks).
        lightgbm: the LambdaMART baseline.
        train: the train split, whose item texts join the BM25 corpus.
        searches: the searches table, for the query-intent slice.
        ground_truth: simulated data only: the generator's ``ground_truth.parquet``, covering
            every test row. Every system then also gets NDCG@k against the true grades, with
            intervals, and the candidate is compared with each system on it: information
            only, never part of the blessing.
        min_gain_vs_baselines: lower interval bound of (candidate − baseline) NDCG@10 needed.
        champion: the ranker in production, to beat: an exported Bento (a path or s3:// URI),
            a Bento or model tag in the step's BentoML store, or a ranker checkpoint folder
            (a path or s3:// URI); empty when there is none.
        min_gain_vs_champion: lower interval bound of (candidate − champion) NDCG@10 needed.
        bootstrap_samples: paired bootstrap resamples.

    Returns:
        Whether the candidate is blessed.
    """
    import tempfile
    from pathlib import Path

    import pyarrow as pa

    from searchrank.components.evaluate.config import EvaluateConfig
    from searchrank.components.evaluate.logic import evaluate, write_report_json
    from searchrank.components.evaluate.report import html_page, markdown
    from searchrank.core.champion import resolve_champion
    from searchrank.core.io import log_metrics, write_parquet_atomically

    def optional(artifact: object) -> Optional[Path]:  # noqa: UP045
        return Path(artifact.path) if artifact is not None else None  # type: ignore[attr-defined]

    config = EvaluateConfig(
        min_gain_vs_baselines=min_gain_vs_baselines,
        min_gain_vs_champion=min_gain_vs_champion,
        bootstrap_samples=bootstrap_samples,
    )
    found = (
        resolve_champion(champion, Path(tempfile.mkdtemp(prefix="champion-"))) if champion else None
    )
    outcome, table = evaluate(
        Path(test.path),
        Path(candidate.path),
        config,
        lightgbm=optional(lightgbm),
        champion=found,
        train_path=optional(train),
        searches_path=optional(searches),
        ground_truth_path=optional(ground_truth),
    )
    log_metrics(metrics, outcome.metrics())
    evaluation.metadata.update({"blessed": outcome.blessed, "champion": outcome.champion})
    Path(report.path).write_text(html_page(outcome))
    Path(summary.path).write_text(markdown(outcome))
    write_report_json(outcome, Path(evaluation.path))
    write_parquet_atomically(pa.Table.from_pandas(table, preserve_index=False), Path(scores.path))
    return outcome.blessed
