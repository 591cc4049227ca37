"""The run report: one self-contained HTML page per pipeline run.

Sections, each with a stable ``id`` that tests and links use: ``decision`` (blessed or not, and
why), ``lineage`` (feature service, run, training data, checkpoint, Bento and models),
``validation`` (the data contract's summary), ``training`` (the training curves), ``evaluation``
(metrics against the baselines with confidence intervals, by slice, bootstrap distributions),
``retrieval`` (the retriever and the query-intent model against their baselines, when the run
trained them), ``serving`` (infra validation of the Bento, when one was packaged) and
``experiment`` (the simulated online test of the packaged ranker against the champion: the
interleaving preference, the A/B table with intervals, the guardrails and the decision, when the
run had a ground truth to simulate listeners with). The pages
the steps wrote are reused rather than redrawn: their bodies are embedded, plots included (as
data URIs), so the report opens anywhere without the pipeline root.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchrank.core.html import markdown_html, render_page

SECTIONS = (
    "decision",
    "lineage",
    "validation",
    "training",
    "evaluation",
    "retrieval",
    "serving",
    "experiment",
)
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)


@dataclass
class RunInputs:
    """The artifacts a report is made of (paths) and the run's lineage (strings)."""

    validation_summary: Path
    curves: Path
    evaluation: Path
    evaluation_report: Path
    serving_summary: Path | None = None
    retrieval_report: Path | None = None
    """``evaluate_retrieval``'s HTML page."""
    intent_summary: Path | None = None
    """``train_intent``'s Markdown (validation accuracy per class)."""
    experiment_report: Path | None = None
    """``experiment``'s HTML page."""
    lineage: dict[str, str] = field(default_factory=dict)


def body_of(page: str) -> str:
    """The inside of an HTML page's ``<body>``, headings demoted so they nest in a section."""
    match = _BODY.search(page)
    inner = match.group(1) if match else page
    for level in (3, 2, 1):
        inner = re.sub(rf"<(/?)h{level}\b", rf"<\1h{level + 1}", inner)
    return inner


def _section(name: str, title: str, content: str) -> str:
    return f'<section id="{name}"><h2>{html.escape(title)}</h2>{content}</section>'


def build_report(inputs: RunInputs) -> str:
    """The report page (see the module docstring)."""
    evaluation: dict[str, Any] = json.loads(inputs.evaluation.read_text())
    blessed = bool(evaluation.get("blessed"))
    verdict = "BLESSED" if blessed else "NOT BLESSED"
    reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in evaluation.get("reasons", []))
    champion = str(evaluation.get("champion") or "")
    against = (
        f"Judged against the baselines and the champion <code>{html.escape(champion)}</code>."
        if champion
        else "No champion was given: judged against the baselines only."
    )
    primary = evaluation.get("primary", "ndcg@10")
    systems = evaluation.get("systems", {})
    headline = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{v.get(primary, float('nan')):.4f}</td></tr>"
        for s, v in systems.items()
    )
    lineage = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v or '–')}</code></td></tr>"
        for k, v in inputs.lineage.items()
    )
    serving = (
        markdown_html(inputs.serving_summary.read_text())
        if inputs.serving_summary is not None and inputs.serving_summary.is_file()
        else "<p>No Bento was packaged: the candidate was not blessed.</p>"
    )
    retrieval = "".join(
        render(path.read_text())
        for path, render in (
            (inputs.retrieval_report, body_of),
            (inputs.intent_summary, markdown_html),
        )
        if path is not None and path.is_file()
    )
    sections = [
        _section(
            "decision",
            f"Decision: {verdict}",
            f"<p>{against}</p><ul>{reasons}</ul>"
            f"<table><tr><th>system</th><th>{html.escape(primary)}</th></tr>"
            f"{headline}</table>",
        ),
        _section("lineage", "Lineage", f"<table>{lineage}</table>"),
        _section(
            "validation", "Data validation", markdown_html(inputs.validation_summary.read_text())
        ),
        _section("training", "Training", body_of(inputs.curves.read_text())),
        _section("evaluation", "Evaluation", body_of(inputs.evaluation_report.read_text())),
        _section(
            "retrieval",
            "Retrieval and query intent",
            retrieval or "<p>This run trained no retriever or intent model.</p>",
        ),
        _section("serving", "Serving: infra validation", serving),
        _section(
            "experiment",
            "Online experiment (simulated listeners)",
            body_of(inputs.experiment_report.read_text())
            if inputs.experiment_report is not None and inputs.experiment_report.is_file()
            else "<p>No experiment ran: it needs a packaged ranker and the simulator's ground "
            "truth (the pipeline's <code>ground_truth_uri</code>).</p>",
        ),
    ]
    nav = " · ".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    return render_page(
        f"searchrank run {inputs.lineage.get('run', '')}",
        f"<nav>{nav}</nav>\n{''.join(sections)}",
        heading=f"searchrank run report: {verdict}",
        passed=blessed,
        css="td, th { text-align: left; }\n"
        "section { border-top: 2px solid #eee; margin-top: 24px; }",
        script=PLOT_COUNTER,
    )


PLOT_COUNTER = """<script>
// Marks how many plots rendered, for the browser test and for anyone checking the page.
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.plots = images.length;
  document.body.dataset.plotsRendered = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""
"""Marks on the page's body how many plots it has and how many rendered."""
