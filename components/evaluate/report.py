"""The evaluation report: one HTML page with the decision, the comparison table, metrics by
slice and the bootstrap distributions, and with a ground truth (simulated data) the table
against the true relevance; and a short Markdown summary with the same tables."""

from __future__ import annotations

import html
import math

from searchrank.components.evaluate.logic import (
    CANDIDATE,
    HIGH,
    LOW,
    MEAN,
    TRUE_PREFIX,
    Comparison,
    EvaluationReport,
    TruthEvaluation,
)
from searchrank.core.bootstrap import format_p
from searchrank.core.html import render_page
from searchrank.core.plots import grouped_bars, histogram


def _fmt(value: float) -> str:
    return (
        "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    )


TRUTH_HEADING = "Against the true relevance (simulated data)"


def truth_note(report: EvaluationReport, truth: TruthEvaluation) -> str:
    """What the true-relevance table measures, and that it decides nothing."""
    return (
        "NDCG against each row's true grade, from the simulator's ground truth: the label the "
        "item earns on average once looked at, free of position bias. Information only: it "
        "never enters the blessing. On clicks: over the "
        f"{report.queries - report.queries_without_relevant:,} searches with a relevant "
        f"candidate; on truth: over the {truth.queries:,} searches with a candidate of positive "
        f"true grade; {report.confidence:.0%} bootstrap intervals over searches, and "
        f"(candidate − system) on {truth.metric} by the paired bootstrap."
    )


def truth_rows(report: EvaluationReport, truth: TruthEvaluation) -> list[list[str]]:
    """One row per system: its name, NDCG on clicks, on truth [interval], and the candidate's
    difference from it on truth [interval] (empty for the candidate)."""
    click = truth.metric.removeprefix(TRUE_PREFIX)
    rows = []
    for system, metrics in truth.systems.items():
        true = metrics[truth.metric]
        compared = truth.comparisons.get(system)
        rows.append(
            [
                system,
                _fmt(report.systems[system].get(click, float("nan"))),
                f"{_fmt(true[MEAN])} [{_fmt(true[LOW])}, {_fmt(true[HIGH])}]",
                (
                    f"{compared['difference']:+.4f} [{compared['difference_low']:+.4f}, "
                    f"{compared['difference_high']:+.4f}]"
                    if compared is not None
                    else ""
                ),
            ]
        )
    return rows


def truth_header(truth: TruthEvaluation) -> list[str]:
    name = truth.metric.removeprefix(TRUE_PREFIX).replace("ndcg", "NDCG")
    return [
        "system",
        f"{name} on clicks",
        f"{name} on truth [interval]",
        "candidate − system on truth [interval]",
    ]


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
    if report.truth is not None:
        header = truth_header(report.truth)
        lines += [
            "",
            f"#### {TRUTH_HEADING}",
            "",
            truth_note(report, report.truth),
            "",
            "| " + " | ".join(header) + " |",
            "| --- | " + " | ".join("---:" for _ in header[1:]) + " |",
            *("| " + " | ".join(row) + " |" for row in truth_rows(report, report.truth)),
        ]
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


def truth_html(report: EvaluationReport) -> str:
    """The section against the true relevance; empty without a ground truth."""
    if report.truth is None:
        return ""
    truth = report.truth
    header = "".join(f"<th>{html.escape(h)}</th>" for h in truth_header(truth))
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in truth_rows(report, truth)
    )
    comparison_rows = "".join(
        f"<tr><td>{html.escape(other)}</td><td>{r['mean_a']:.4f}</td><td>{r['mean_b']:.4f}</td>"
        f"<td>{r['difference']:+.4f}</td>"
        f"<td>[{r['difference_low']:+.4f}, {r['difference_high']:+.4f}]</td>"
        f"<td>{r['ratio']:.4f} [{r['ratio_low']:.4f}, {r['ratio_high']:.4f}]</td>"
        f"<td>{html.escape(format_p(r['p_value'], int(r['samples'])))}</td></tr>"
        for other, r in truth.comparisons.items()
    )
    return f"""
<h2>{html.escape(TRUTH_HEADING)}</h2>
<p>{html.escape(truth_note(report, truth))}</p>
<table><tr>{header}</tr>{rows}</table>
<h3>Candidate against each system ({html.escape(truth.metric)}, paired bootstrap over
searches; not part of the blessing)</h3>
<table><tr><th>other</th><th>candidate</th><th>other</th><th>difference</th><th>interval</th>
<th>ratio [interval]</th><th>p</th></tr>{comparison_rows}</table>"""


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
<th>ratio [interval]</th><th>p</th><th>passes</th></tr>{comparison_rows}</table>{truth_html(report)}
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
