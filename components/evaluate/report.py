"""The evaluation report: one HTML page with the decision, the comparison table, metrics by
slice and the bootstrap distributions; and a short Markdown summary."""

from __future__ import annotations

import html
import math

from searchrank.components.evaluate.logic import CANDIDATE, EvaluationReport
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
        f"<td>{c.result['p_value']:.4f}</td><td>{'yes' if c.passed else 'no'}</td></tr>"
        for c in report.comparisons
    )
    charts = []
    for name, values in report.slices.items():
        by_system: dict[str, dict[str, float]] = {}
        for value, systems in values.items():
            for system, metrics_of in systems.items():
                by_system.setdefault(system, {})[f"{value} ({int(metrics_of['queries'])})"] = (
                    metrics_of[report.primary]
                )
        charts.append(
            f"<h3>{html.escape(report.primary)} by {html.escape(name)}</h3>"
            f'<img alt="{html.escape(name)}" '
            f'src="{grouped_bars(by_system, ylabel=report.primary)}">'
        )
    distributions = "".join(
        f'<img alt="bootstrap {html.escape(other)}" src="'
        f'{histogram(samples, 0.0, f"{CANDIDATE} − {other}", report.primary)}">'
        for other, samples in report.bootstrap.items()
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
<h2>Metrics by slice</h2>{"".join(charts)}
<h2>Bootstrap distributions of the difference</h2>{distributions}"""
    return render_page(
        "Evaluation",
        body,
        heading=f"Evaluation: {verdict}",
        passed=report.blessed,
        css="td, th { text-align: right; } td:first-child { text-align: left; }",
    )
