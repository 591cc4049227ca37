"""The ``validate_data`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_data_op(
    training_set: Input[Dataset],
    feature_contract: Input[Artifact],
    result: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
    data_docs_site: Output[Artifact],
    reference: str = "",
    window_start: str = "",
    window_end: str = "",
    min_list_length: int = 2,
    max_list_length: int = 20,
    min_positive_share: float = 0.5,
    max_null_rate: float = 0.5,
    drift_warning: float = 0.1,
    drift_error: float = 0.25,
) -> None:
    """Check a training set against its generated data contract; fail on any error.

    Args:
        training_set: the training set (parquet) from fetch_features.
        feature_contract: its feature contract, from fetch_features.
        result: JSON with every failed expectation, the drift scores and counts.
        report: one HTML page: outcome, findings, drift chart, Great Expectations Data Docs.
        summary: the outcome in Markdown.
        data_docs_site: the Great Expectations Data Docs site (a folder).
        reference: the champion's training set (a parquet path or s3:// URI), for the drift
            check; empty to skip it.
        window_start: earliest allowed event time (ISO 8601 with zone); empty for none.
        window_end: end (exclusive) of the allowed event times; empty for none.
        min_list_length: fewest candidates a search may have.
        max_list_length: most candidates a search may have.
        min_positive_share: least share of searches with a positive label.
        max_null_rate: largest share of missing values of a feature without its own limit.
        drift_warning: PSI above which a feature's shift is reported.
        drift_error: PSI above which a feature's shift fails the step.
    """
    import tempfile
    from pathlib import Path

    from searchrank.components.validate_data.config import ValidationConfig
    from searchrank.components.validate_data.logic import (
        DataContractError,
        ReportPaths,
        validate_and_report,
    )
    from searchrank.core.contract import FeatureContract
    from searchrank.core.schema import parse_time
    from searchrank.core.storage import download

    config = ValidationConfig(
        window_start=parse_time("window_start", window_start),
        window_end=parse_time("window_end", window_end),
        min_list_length=min_list_length,
        max_list_length=max_list_length,
        min_positive_share=min_positive_share,
        max_null_rate=max_null_rate,
        drift_warning=drift_warning,
        drift_error=drift_error,
    )
    outcome = validate_and_report(
        Path(training_set.path),
        FeatureContract.load(Path(feature_contract.path)),
        config,
        ReportPaths(
            Path(result.path), Path(report.path), Path(summary.path), Path(data_docs_site.path)
        ),
        reference=download(reference, Path(tempfile.mkdtemp()) / "reference.parquet", "reference")
        if reference
        else None,
    )
    for artifact in (result, report, summary):
        artifact.metadata.update(
            {
                "passed": outcome.success,
                "errors": len(outcome.errors),
                "warnings": len(outcome.warnings),
            }
        )
    if not outcome.success:
        raise DataContractError(
            f"{len(outcome.errors)} data-contract errors: "
            + "; ".join(f.message() for f in outcome.errors[:10])
        )
