"""The ``experiment`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def experiment_op(
    test: Input[Dataset],
    pre_period: Input[Dataset],
    ground_truth: Input[Dataset],
    champion: Input[Model],
    challenger: Input[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
    experiment: Output[Artifact],
    champion_reference: str = "",
    champion_name: str = "champion",
    challenger_name: str = "challenger",
    cutoff: int = 10,
    treatment_share: float = 0.5,
    minimum_detectable_effect: float = 0.05,
    power: float = 0.8,
    zero_result_margin: float = 0.005,
    latency_margin_ms: float = 5.0,
    seed: int = 0,
) -> bool:
    """Run champion against challenger on the simulator's traffic and decide whether to ship.

    Args:
        test: the test split: held-out searches, shown again to the same simulated listeners.
        pre_period: rows before the experiment (the train split), for CUPED.
        ground_truth: the generator's ``ground_truth.parquet`` (simulated data only).
        champion: the model in production (a ranker checkpoint or the LambdaMART baseline).
        champion_reference: when not empty, the champion instead: an exported Bento (a path
            or s3:// URI), a Bento or model tag in the step's BentoML store, or a ranker
            checkpoint folder, as ``evaluate`` takes it.
        challenger: the model that wants to replace it; it must read the same features.
        metrics: the interleaving preference, the A/B effect, the sessions each method needs
            and the decision (1 ship, 0 not).
        report: the decision, tables and pictures, as HTML.
        summary: the same tables, as Markdown.
        experiment: everything as JSON (for the run report and later analysis).
        champion_name: the champion's name in the report.
        challenger_name: the challenger's name in the report.
        cutoff: the length of the list listeners are shown.
        treatment_share: the share of listeners the A/B test sends to the challenger.
        minimum_detectable_effect: the smallest relative change of streams per search worth
            detecting; with fewer listeners than ``power`` needs for it, the step fails.
        power: the A/B test's wanted chance of detecting that change.
        zero_result_margin: the largest allowed growth of the zero-result rate.
        latency_margin_ms: the largest allowed growth of the model stage's p99 latency.
        seed: of the simulated reactions and the interleaving's coin flips.

    Returns:
        Whether the challenger ships.
    """
    import tempfile
    from pathlib import Path

    from searchrank.components.experiment.config import ExperimentConfig
    from searchrank.components.experiment.logic import run_experiment, write_report_json
    from searchrank.components.experiment.report import html_page, markdown
    from searchrank.core.champion import resolve_champion
    from searchrank.core.io import log_metrics

    config = ExperimentConfig(
        cutoff=cutoff,
        treatment_share=treatment_share,
        minimum_detectable_effect=minimum_detectable_effect,
        power=power,
        zero_result_margin=zero_result_margin,
        latency_margin_ms=latency_margin_ms,
        seed=seed,
    )
    champion_dir = (
        resolve_champion(champion_reference, Path(tempfile.mkdtemp(prefix="champion-"))).model_dir
        if champion_reference
        else Path(champion.path)
    )
    outcome = run_experiment(
        Path(test.path),
        Path(ground_truth.path),
        champion_dir,
        Path(challenger.path),
        config,
        pre_period_path=Path(pre_period.path),
        names=(champion_name, challenger_name),
    )
    log_metrics(metrics, outcome.metrics())
    experiment.metadata.update({"ship": outcome.decision["ship"]})
    Path(report.path).write_text(html_page(outcome))
    Path(summary.path).write_text(markdown(outcome))
    write_report_json(outcome, Path(experiment.path))
    return bool(outcome.decision["ship"])
