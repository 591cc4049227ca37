"""The ``run_report`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def run_report_op(
    validation_summary: Input[Markdown],
    curves: Input[HTML],
    evaluation: Input[Artifact],
    evaluation_report: Input[HTML],
    model: Input[Model],
    feature_service: str,
    report: Output[HTML],
    serving_summary: Optional[Input[Markdown]] = None,  # noqa: UP045 (KFP reads typing.Optional)
    bento: Optional[Input[Artifact]] = None,  # noqa: UP045
    retrieval_report: Optional[Input[HTML]] = None,  # noqa: UP045
    intent_summary: Optional[Input[Markdown]] = None,  # noqa: UP045
    experiment_report: Optional[Input[HTML]] = None,  # noqa: UP045
    run_id: str = "",
    training_data: str = "",
    reference_training_set: str = "",
) -> None:
    """Write the run's one-page HTML report.

    Args:
        validation_summary: validate_data's summary.
        curves: train_ranker's training curves.
        evaluation: evaluate's JSON.
        evaluation_report: evaluate's HTML page.
        model: the candidate checkpoint (its URI is the lineage's checkpoint).
        feature_service: the Feast feature service of the run.
        report: the page.
        serving_summary: package_service's infra validation, when a Bento was packaged.
        bento: package_service's exported Bento (its metadata holds the tags).
        retrieval_report: evaluate_retrieval's page, when the run trained a retriever.
        intent_summary: train_intent's summary, when the run trained an intent model.
        experiment_report: experiment's page, when the run simulated an online test.
        run_id: the KFP run (pipelines pass ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
        training_data: the training Dataset's URI.
        reference_training_set: the training set validate_data checked drift against.
    """
    from pathlib import Path

    from searchrank.components.run_report.logic import RunInputs, build_report

    tags = dict(bento.metadata) if bento is not None else {}
    inputs = RunInputs(
        validation_summary=Path(validation_summary.path),
        curves=Path(curves.path),
        evaluation=Path(evaluation.path),
        evaluation_report=Path(evaluation_report.path),
        serving_summary=Path(serving_summary.path) if serving_summary is not None else None,
        retrieval_report=Path(retrieval_report.path) if retrieval_report is not None else None,
        intent_summary=Path(intent_summary.path) if intent_summary is not None else None,
        experiment_report=(Path(experiment_report.path) if experiment_report is not None else None),
        lineage={
            "run": run_id,
            "feature service": feature_service,
            "training data": training_data,
            "drift reference": reference_training_set or "(none: drift not checked)",
            "checkpoint": model.uri,
            "Bento": str(tags.get("bento", "")),
            "ranker model": str(tags.get("ranker", "")),
            "retriever model": str(tags.get("retriever", "")),
        },
    )
    Path(report.path).write_text(build_report(inputs))
