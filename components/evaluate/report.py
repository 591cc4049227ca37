"""The evaluation report: one HTML page with the decision, the comparison table, metrics by
slice and the bootstrap distributions; and a short Markdown summary."""

from __future__ import annotations

import html
import math

from searchrank.components.evaluate.logic import (
    CANDIDATE,
    HIGH,
    LOW,
    Comparison,
    EvaluationReport,
)
from searchrank.core.bootstrap import format_p
from searchrank.core.html import render_page
from searchrank.core.plots import grouped_bars, histogram


def _fmt(value: float) -> str:
    return (
        "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    )


def champion_line(report: EvaluationReport) -> str:
    """Which production model the candidate had to beat, if any."""
    if report.champion:
        return f"Champion (the ranker in production): {report.champion}."
    return "No champion was given: the candidate was judged against the baselines only."


def markdown(report: EvaluationReport) -> str:
    verdict = "BLESSED" if report.blessed else "NOT BLESSED"
    metrics = [report.primary, "mrr", "map"]
    lines = [
        f"### Evaluation: {verdict}",
        "",
        f"{report.queries:,} test searches; {report.queries_without_relevant:,} without any "
        "relevant candidate are excluded from every mean (and counted here).",
        champion_line(report),
        "",
        "| system | " + " | ".join(metrics) + " |",
        "| --- | " + " | ".join("---:" for _ in metrics) + " |",
    ]
    for system, values in report.systems.items():
        lines.append(
            f"| {system} | " + " | ".join(_fmt(values.get(m, float("nan"))) for m in metrics) + " |"
        )
    lines += ["", *(f"- {reason}" for reason in report.reasons)]
    return "\n".join(lines) + "\n"


def distribution(report: EvaluationReport, comparison: Comparison) -> str:
    """The bootstrap histogram of (candidate − other) with the margin that the interval's
    lower end had to clear for this comparison, and that lower end, marked."""
    return histogram(
        report.bootstrap[comparison.other],
        margin=comparison.required_low,
        lower=comparison.result["difference_low"],
        title=f"{CANDIDATE} − {comparison.other}",
        xlabel=report.primary,
    )


def html_page(report: EvaluationReport) -> str:
    verdict = "BLESSED" if report.blessed else "NOT BLESSED"
    metrics = [m for m in next(iter(report.systems.values())) if "@" in m or m in ("mrr", "map")]
    header = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = "".join(
        f"<tr><td>{html.escape(system)}</td>"
        + "".join(f"<td>{_fmt(values.get(m, float('nan')))}</td>" for m in metrics)
        + "</tr>"
        for system, values in report.systems.items()
    )
    comparison_rows = "".join(
        f"<tr><td>{html.escape(c.other)}</td><td>{c.result['mean_a']:.4f}</td>"
        f"<td>{c.result['mean_b']:.4f}</td><td>{c.result['difference']:+.4f}</td>"
        f"<td>[{c.result['difference_low']:+.4f}, {c.result['difference_high']:+.4f}]</td>"
        f"<td>{c.result['ratio']:.4f} "
        f"[{c.result['ratio_low']:.4f}, {c.result['ratio_high']:.4f}]</td>"
        f"<td>{html.escape(format_p(c.result['p_value'], int(c.result['samples'])))}</td>"
        f"<td>{'yes' if c.passed else 'no'}</td></tr>"
        for c in report.comparisons
    )
    charts = []
    for name, values in report.slices.items():
        means: dict[str, dict[str, float]] = {}
        intervals: dict[str, dict[str, tuple[float, float]]] = {}
        for value, systems in values.items():
            for system, metrics_of in systems.items():
                label = f"{value} ({int(metrics_of['queries'])})"
                means.setdefault(system, {})[label] = metrics_of[report.primary]
                intervals.setdefault(system, {})[label] = (metrics_of[LOW], metrics_of[HIGH])
        chart = grouped_bars(means, intervals, ylabel=report.primary)
        charts.append(
            f"<h3>{html.escape(report.primary)} by {html.escape(name)}</h3>"
            f'<img alt="{html.escape(name)}" src="{chart}">'
        )
    distributions = "".join(
        f'<img alt="bootstrap {html.escape(c.other)}" src="{distribution(report, c)}">'
        for c in report.comparisons
        if c.other in report.bootstrap
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons)
    body = f"""
<p>{report.queries:,} test searches; {report.queries_without_relevant:,} without any relevant
candidate are excluded from every mean and counted.</p>
<p>{html.escape(champion_line(report))}</p>
<ul>{reasons}</ul>
<h2>Metrics</h2><table><tr><th>system</th>{header}</tr>{rows}</table>
<h2>Candidate against each system ({html.escape(report.primary)},
paired bootstrap over searches)</h2>
<table><tr><th>other</th><th>candidate</th><th>other</th><th>difference</th><th>interval</th>
<th>ratio [interval]</th><th>p</th><th>passes</th></tr>{comparison_rows}</table>
<h2>Metrics by slice</h2>
<p>Error bars: {report.confidence:.0%} bootstrap intervals of each mean (searches resampled
as in the comparisons).</p>{"".join(charts)}
<h2>Bootstrap distributions of the difference</h2>{distributions}"""
    return render_page(
        "Evaluation",
        body,
        heading=f"Evaluation: {verdict}",
        passed=report.blessed,
        css="td, th { text-align: right; } td:first-child { text-align: left; }",
    )
