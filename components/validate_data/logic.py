"""``validate_data``: the data contract between ``fetch_features`` and training.

A training set is checked by Great Expectations against suites generated from its feature
service and the ranking rules (see :mod:`.suite`), optionally for drift against a reference
dataset. Errors fail the step; warnings pass and are reported. Great Expectations is the engine
of record: every finding is one of its expectation results, and its Data Docs are kept.

No content of a training set makes the validation raise: a column of the wrong type or time zone
is a ``type`` error naming it, and rules that would compare its values skip it. Only a file that
cannot be read as a table at all (missing, not parquet, duplicate column names, an unreadable
build time) is an :class:`InputError`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrank.components.validate_data.config import ValidationConfig
from searchrank.components.validate_data.profiles import (
    reference_profiles,
)
from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError

DOCS_SITE = "searchrank"


@dataclass(frozen=True)
class Finding:
    """One failed expectation.

    Attributes:
        batch: the table it was checked on (``training_set`` or a derived one).
        rule: the data-contract rule, e.g. ``range``, ``leakage``, ``drift``.
        column: the training-set column concerned (empty for table-wide rules).
        severity: ``error`` fails the validation; ``warning`` does not.
        expectation: the Great Expectations expectation type.
        description: the rule in words.
        observed: what was found instead (a value, a count or an exception message).
    """

    batch: str
    rule: str
    column: str
    severity: str
    expectation: str
    description: str
    observed: Any

    def message(self) -> str:
        where = f"{self.column}: " if self.column else ""
        return f"{where}{self.rule}: expected {self.description}; observed {self.observed}"


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a validation: what was checked, what failed, how features drifted."""

    success: bool
    feature_service: str
    rows: int
    searches: int
    expectations: int
    errors: list[Finding]
    warnings: list[Finding]
    drift: dict[str, float] = field(default_factory=dict)
    drift_sample: int | None = None
    data_docs: str | None = None
    latest_time: str = ""
    """The latest moment any timestamp may carry, and where it comes from: the set's recorded
    build time, or the moment the validation began."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failed(self) -> list[dict[str, Any]]:
        """Each failed error-severity expectation: column, rule and observed value."""
        return [
            {
                "column": f.column,
                "rule": f.rule,
                "observed": f.observed,
                "expectation": f.expectation,
            }
            for f in self.errors
        ]


def _plain(value: Any) -> Any:
    """Make a Great Expectations result value JSON-friendly."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": JSON has no such numbers
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat() if not pd.isna(value) else None
    return value


def read_training_set(path: Path) -> tuple[pd.DataFrame, pa.Schema]:
    """Read a training set for validation: the frame and the file's own Arrow schema.

    The frame has exactly the file's columns, in a fresh range index: pandas metadata that would
    turn a column into the index is ignored.

    Raises:
        InputError: missing or unreadable, or two columns of one name.
    """
    if not path.is_file():
        raise InputError("data", str(path), "must be an existing parquet file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError("data", str(path), f"must be a readable parquet file ({error})") from error
    names = table.schema.names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError("data", str(path), f"must name each column once; repeated: {repeated}")
    try:
        frame = table.to_pandas(ignore_metadata=True)
    except (pa.ArrowException, ValueError, TypeError) as error:
        raise InputError(
            "data", str(path), f"must convert to a table of values ({error})"
        ) from error
    return frame, table.schema


def _observed(result: Any) -> Any:
    if result.exception_info and result.exception_info.get("raised_exception"):
        return result.exception_info.get("exception_message")
    details = result.result or {}
    if details.get("observed_value") is not None:
        return _plain(details["observed_value"])
    if "unexpected_count" in details:
        return {
            "unexpected_count": _plain(details["unexpected_count"]),
            "unexpected_percent": _plain(details.get("unexpected_percent")),
            "examples": _plain(details.get("partial_unexpected_list", [])[:5]),
        }
    return _plain(details)


def _finding(batch: str, result: Any) -> Finding:
    config = result.expectation_config
    severity = getattr(config.severity, "value", str(config.severity))
    meta = config.meta or {}
    return Finding(
        batch=batch,
        rule=str(meta.get("rule", config.type)),
        column=str(meta.get("column", "")),
        severity="warning" if severity == "warning" else "error",
        expectation=config.type,
        description=config.description or config.type,
        observed=_observed(result),
    )


def run_suites(batches: list[Any], docs_dir: Path | None) -> tuple[list[Finding], int, str | None]:
    """Validate every batch with Great Expectations; build Data Docs into ``docs_dir``.

    Returns:
        (the failed expectations, how many expectations ran, the Data Docs index or None).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # Great Expectations 1.24 logs a traceback while rendering distinct-value results, whose
    # summary lacks an "unexpected_percent"; the page still renders, so the noise is silenced.
    logging.getLogger(
        "great_expectations.render.renderer.content_block.validation_results_table_content_block"
    ).setLevel(logging.CRITICAL)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    source = context.data_sources.add_pandas("searchrank")
    findings: list[Finding] = []
    ran = 0
    for batch in batches:
        if not batch.expectations:
            continue
        definition = source.add_dataframe_asset(batch.name).add_batch_definition_whole_dataframe(
            "all"
        )
        # One suite built whole: adding expectations one by one re-serializes it every time.
        suite = context.suites.add(
            gx.ExpectationSuite(name=batch.name, expectations=batch.expectations)
        )
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=batch.name, data=definition, suite=suite)
        )
        # A checkpoint per table: each table is its own dataframe, and a checkpoint hands the
        # same batch parameters to all of its validation definitions.
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=batch.name,
                validation_definitions=[validation],
                result_format={"result_format": "SUMMARY"},
            )
        )
        outcome = checkpoint.run(batch_parameters={"dataframe": batch.frame})
        for result in outcome.run_results.values():
            ran += len(result.results)
            findings += [_finding(batch.name, r) for r in result.results if not r.success]
    index = None
    if docs_dir is not None:
        urls = context.build_data_docs(site_names=[DOCS_SITE])
        index = urls[DOCS_SITE].removeprefix("file://")
    return findings, ran, index


def validate(
    data: Path,
    contract: FeatureContract,
    config: ValidationConfig,
    reference: Path | None = None,
    docs_dir: Path | None = None,
) -> ValidationReport:
    """Check a training set against the expectations generated from its feature contract.

    Args:
        data: the training set (parquet), as ``fetch_features`` writes it.
        contract: the feature contract ``fetch_features`` wrote beside it.
        config: the ranking rules' thresholds and the requested event window.
        reference: a training set to compare distributions with (the last blessed one).
        docs_dir: where Great Expectations writes its Data Docs site; none when None.

    No timestamp may lie after the set's build time, which ``fetch_features`` records in the
    file (:data:`searchrank.core.schema.BUILT_AT`); a file without one (rewritten by another
    tool) is held to the moment this validation began instead (:class:`.suite.Horizon`).

    Raises:
        InputError: unreadable files, or an unreadable recorded build time. A training set that
            breaks the contract does not raise: the report says so.
    """
    from searchrank.components.validate_data import suite as rules

    specs = list(contract.columns)
    frame, schema = read_training_set(data)
    horizon = rules.Horizon.of(S.built_at(schema), datetime.now(UTC))
    typed = rules.typed_columns(schema, specs)
    profiles = reference_profiles(reference, specs, config.drift_sample) if reference else {}
    profiles = {column: p for column, p in profiles.items() if column in typed}
    drift = rules.drift_scores(frame, profiles, config) if profiles else {}
    batches = [
        rules.schema_batch(schema, specs),
        rules.training_set_batch(frame, specs, config, profiles, typed, horizon),
        rules.searches_batch(frame, config, typed),
        rules.row_counts_batch(frame, specs, typed),
        rules.feature_time_batch(frame, specs, typed),
    ]
    if drift:
        batches.append(rules.drift_batch(drift, config))
    findings, ran, index = run_suites(batches, docs_dir)
    errors = [f for f in findings if f.severity == "error"]
    return ValidationReport(
        success=not errors,
        feature_service=contract.feature_service,
        rows=len(frame),
        searches=int(frame[S.SEARCH_ID].nunique()) if S.SEARCH_ID in typed else 0,
        expectations=ran,
        errors=errors,
        warnings=[f for f in findings if f.severity == "warning"],
        drift={k: round(v, 6) for k, v in drift.items()},
        drift_sample=min(config.drift_sample, len(frame)) if drift else None,
        data_docs=index,
        latest_time=horizon.describe(),
    )


def write_result(report: ValidationReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(report.as_dict()), indent=2) + "\n")


class DataContractError(RuntimeError):
    """Raised by the pipeline step when a training set breaks an error-severity rule, after the
    report has been written, so the pipeline stops before training."""


@dataclass(frozen=True)
class ReportPaths:
    """Where a validation writes its outputs."""

    result: Path
    """JSON: the findings, drift scores and counts."""
    html: Path
    """One self-contained HTML page, Data Docs included."""
    markdown: Path
    docs_dir: Path
    """Great Expectations' Data Docs site."""


def validate_and_report(
    data: Path,
    contract: FeatureContract,
    config: ValidationConfig,
    paths: ReportPaths,
    reference: Path | None = None,
) -> ValidationReport:
    """Validate and write every report; the caller decides what a failure means."""
    from searchrank.components.validate_data.report import html_page, markdown

    report = validate(data, contract, config, reference, paths.docs_dir)
    write_result(report, paths.result)
    paths.html.parent.mkdir(parents=True, exist_ok=True)
    paths.html.write_text(html_page(report, config, paths.docs_dir))
    paths.markdown.parent.mkdir(parents=True, exist_ok=True)
    paths.markdown.write_text(markdown(report, config))
    return report
