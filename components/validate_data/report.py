"""The validation report for people: a Markdown summary and one self-contained HTML page.

The HTML page opens with the outcome, the failed rules and a bar chart of each feature's drift,
then carries Great Expectations' own Data Docs pages for every checked table. Data Docs link
their styles and scripts from public CDNs; the KFP UI (and an offline laptop) cannot load those,
so the pages are inlined with Great Expectations' bundled stylesheet and without scripts.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from searchrank.components.validate_data.config import ValidationConfig
from searchrank.components.validate_data.logic import Finding, ValidationReport
from searchrank.core.html import render_page

MAX_LISTED = 25
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)
_EXTERNAL = re.compile(r"<link\b[^>]*>", re.I)


def _observed(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def drift_status(score: float, config: ValidationConfig) -> str:
    if score > config.drift_error:
        return "error"
    return "warning" if score > config.drift_warning else "ok"


def markdown(report: ValidationReport, config: ValidationConfig) -> str:
    """A short summary for the KFP UI and the command line."""
    verdict = "PASSED" if report.success else "FAILED"
    lines = [
        f"### Data validation {verdict} (feature service `{report.feature_service}`)",
        "",
        f"- rows: **{report.rows:,}**, searches: **{report.searches:,}**, "
        f"expectations evaluated: **{report.expectations}**",
        f"- errors: **{len(report.errors)}**, warnings: **{len(report.warnings)}**",
    ]
    if report.latest_time:
        lines.append(f"- timestamps may not lie after {report.latest_time}")
    if not report.drift:
        lines.append("- drift: not checked (no reference training set was given)")
    for title, findings in (("Errors", report.errors), ("Warnings", report.warnings)):
        if findings:
            lines += [
                "",
                f"#### {title}",
                "",
                "| column | rule | expected | observed |",
                "| --- | --- | --- | --- |",
            ]
            lines += [_row(f) for f in findings[:MAX_LISTED]]
            if len(findings) > MAX_LISTED:
                lines.append(f"| … | {len(findings) - MAX_LISTED} more | | |")
    if report.drift:
        lines += [
            "",
            f"#### Drift against the reference (PSI on {report.drift_sample:,} sampled rows; "
            f"warning above {config.drift_warning:g}, error above {config.drift_error:g})",
            "",
            "| feature | PSI | status |",
            "| --- | ---: | --- |",
        ]
        for column, score in sorted(report.drift.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {column} | {score:.4f} | {drift_status(score, config)} |")
    return "\n".join(lines) + "\n"


def _row(finding: Finding) -> str:
    observed = _observed(finding.observed).replace("|", "\\|")
    return (
        f"| {finding.column or '(table)'} | {finding.rule} | {finding.description} | {observed} |"
    )


def _drift_chart(report: ValidationReport, config: ValidationConfig) -> str:
    """Horizontal bars of PSI per feature, with the two thresholds drawn in."""
    if not report.drift:
        return "<p>No reference dataset: drift not checked.</p>"
    items = sorted(report.drift.items(), key=lambda kv: -kv[1])
    width, label, bar_h = 760, 300, 16
    top = max(*(v for _, v in items), config.drift_error) * 1.1
    scale = (width - label - 60) / top
    colour = {"ok": "#4c9f70", "warning": "#e0a030", "error": "#c8453a"}
    rows = []
    for k, (column, score) in enumerate(items):
        y = 20 + k * (bar_h + 4)
        status = drift_status(score, config)
        end = label + score * scale
        rows.append(
            f'<text x="{label - 6}" y="{y + 12}" text-anchor="end" font-size="11">'
            f"{html.escape(column)}</text>"
            f'<rect x="{label}" y="{y}" width="{max(score * scale, 1):.1f}" height="{bar_h}" '
            f'fill="{colour[status]}"><title>{score:.4f}</title></rect>'
            f'<text x="{end + 4:.1f}" y="{y + 12}" font-size="10">{score:.3f}</text>'
        )
    height = 30 + len(items) * (bar_h + 4)
    lines = "".join(
        f'<line x1="{label + t * scale:.1f}" x2="{label + t * scale:.1f}" y1="10" y2="{height}" '
        f'stroke="#555" stroke-dasharray="4 3"/><text x="{label + t * scale + 3:.1f}" y="10" '
        f'font-size="10">{name} {t:g}</text>'
        for name, t in (("warn", config.drift_warning), ("error", config.drift_error))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="drift by feature">{"".join(rows)}{lines}</svg>'
    )


def _findings_table(findings: list[Finding]) -> str:
    if not findings:
        return "<p>None.</p>"
    body = "".join(
        f"<tr><td>{html.escape(f.column or '(table)')}</td><td>{html.escape(f.rule)}</td>"
        f"<td>{html.escape(f.description)}</td><td><code>{html.escape(_observed(f.observed))}</code>"
        f"</td><td>{html.escape(f.batch)}</td></tr>"
        for f in findings
    )
    return (
        "<table class='sr'><tr><th>column</th><th>rule</th><th>expected</th><th>observed</th>"
        f"<th>table</th></tr>{body}</table>"
    )


def _data_docs_pages(docs_dir: Path | None) -> str:
    if docs_dir is None:
        return ""
    style_file = docs_dir / "static" / "styles" / "data_docs_default_styles.css"
    styles = style_file.read_text() if style_file.exists() else ""
    pages = []
    for page in sorted((docs_dir / "validations").rglob("*.html")):
        match = _BODY.search(page.read_text())
        if match:
            body = _EXTERNAL.sub("", _SCRIPT.sub("", match.group(1)))
            title = f"<h2>Great Expectations: {html.escape(page.stem)}</h2>"
            pages.append(f'<section class="gx-page">{title}{body}</section>')
    return f"<style>{styles}</style>{''.join(pages)}"


def html_page(report: ValidationReport, config: ValidationConfig, docs_dir: Path | None) -> str:
    """The whole report as one HTML file with no external references."""
    verdict = "PASSED" if report.success else "FAILED"
    body = f"""
<p>Feature service <b>{html.escape(report.feature_service)}</b>: {report.rows:,} rows,
{report.searches:,} searches, {report.expectations} expectations evaluated,
{len(report.errors)} errors, {len(report.warnings)} warnings.</p>
<h2>Errors</h2>{_findings_table(report.errors)}
<h2>Warnings</h2>{_findings_table(report.warnings)}
<h2>Drift by feature (population stability index)</h2>{_drift_chart(report, config)}
{_data_docs_pages(docs_dir)}"""
    return render_page(
        f"Data validation {verdict}",
        body,
        passed=report.success,
        css="table.sr { margin: 8px 0 20px; } table.sr td, table.sr th { text-align: left; }\n"
        "section.gx-page { border-top: 2px solid #ddd; margin-top: 32px; }",
    )
