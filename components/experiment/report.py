"""The experiment's page: the decision first, then the interleaving preference, the A/B table
with intervals, the guardrails and the sensitivity of both methods, with their pictures; and a
Markdown summary with the same tables (for the KFP UI and the run report)."""

from __future__ import annotations

from typing import Any

from searchrank.components.experiment.logic import ExperimentReport
from searchrank.core.html import markdown_html, render_page
from searchrank.core.plots import forest, overlaid_histograms


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "< 0.0001"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "–"


def markdown(report: ExperimentReport) -> str:
    """The decision and every table, as Markdown."""
    a, b = report.champion, report.challenger
    i, ab, sens = report.interleaving, report.ab, report.sensitivity
    verdict = report.decision["verdict"]
    lines = [
        f"### Experiment: {b} (challenger) against {a} (champion): **{verdict}**",
        "",
        f"Simulated traffic: {report.searches:,} held-out searches by {report.users:,} listeners, "
        "each reacting through the generator's click model.",
        "",
        *[f"- {reason}" for reason in report.decision["reasons"]],
        "",
        "#### NDCG@10 against the true grades (these searches, the full lists)",
        "",
        "| model | NDCG@10 | interval |",
        "| --- | ---: | --- |",
        *[
            f"| {name} | {v['mean']:.4f} | [{v['low']:.4f}, {v['high']:.4f}] |"
            for name, v in report.true_ndcg.items()
        ],
        "",
        "#### Interleaving (team-draft)",
        "",
        "| searches | wins "
        + a
        + " | wins "
        + b
        + " | ties | preference for "
        + b
        + " | interval | p |",
        "| ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        f"| {i['queries']:,} | {i['wins_a']:,} | {i['wins_b']:,} | {i['ties']:,} | "
        f"{i['preference']:+.3f} | [{i['preference_low']:+.3f}, {i['preference_high']:+.3f}] | "
        f"{_p(i['p_value'])} |",
        "",
        "Preference: the mean per-search credit, +1 when the challenger's items got more clicks, "
        "−1 when the champion's did.",
        "",
        f"#### A/B test ({ab['metric']})",
        "",
        "| arm | listeners | mean |",
        "| --- | ---: | ---: |",
        f"| {a} (control) | {ab['users_control']:,} | {ab['mean_control']:.4f} |",
        f"| {b} (treatment) | {ab['users_treatment']:,} | {ab['mean_treatment']:.4f} |",
        "",
        f"Difference {ab['difference']:+.4f} [{ab['difference_low']:+.4f}, "
        f"{ab['difference_high']:+.4f}], relative {ab['relative']:+.1%} "
        f"[{ab['relative_low']:+.1%}, {ab['relative_high']:+.1%}], p = {_p(ab['p_value'])}; "
        f"CUPED removed {ab['variance_reduction']:.1%} of the variance. Sample ratio: "
        f"{report.srm['observed_share']:.1%} treated against {report.srm['expected_share']:.0%} "
        f"planned (p = {_p(report.srm['p_value'])}).",
        "",
        "#### Guardrails (non-inferiority)",
        "",
        "| guardrail | control | treatment | difference | bound | margin | passed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *[
            f"| {g['name']} | {g['control']:.4g} | {g['treatment']:.4g} | {g['difference']:+.4g} "
            f"| {g['bound']:+.4g} | {g['margin']:.4g} | {'yes' if g['passed'] else '**no**'} |"
            for g in report.guardrails
        ],
        "",
        "#### Sensitivity: searches needed to detect this difference",
        "",
        "| method | searches | |",
        "| --- | ---: | --- |",
        f"| interleaving | {_count(sens['sessions_interleaving'])} | one-sample test of the "
        "per-search credit |",
        f"| A/B test | {_count(sens['sessions_ab'])} | true effect "
        f"{sens['true_relative_effect']:+.1%}, {sens['searches_per_listener']:.1f} searches per "
        "listener |",
        "",
    ]
    if sens.get("ab_over_interleaving"):
        lines.append(
            f"The A/B test needs {sens['ab_over_interleaving']:.1f}× the searches interleaving "
            "needs (published industry figures: 10–100×)."
        )
    return "\n".join(lines) + "\n"


def html_page(report: ExperimentReport) -> str:
    """The whole page: the Markdown's tables with the effect and latency pictures."""
    i, ab = report.interleaving, report.ab
    effects = forest(
        [
            ("interleaving preference", i["preference"], i["preference_low"], i["preference_high"]),
            ("A/B relative effect", ab["relative"], ab["relative_low"], ab["relative_high"]),
        ],
        title=f"Challenger against champion ({ab['confidence']:.0%} intervals)",
    )
    pictures = [f'<img alt="effects" src="{effects}">']
    if report.latency_ms:
        latency = overlaid_histograms(
            report.latency_ms,
            title="Model stage, ms per search",
            xlabel="milliseconds",
        )
        pictures.append(f'<img alt="latency" src="{latency}">')
    body = markdown_html(markdown(report)) + "\n".join(pictures)
    return render_page(
        f"Experiment: {report.challenger} against {report.champion}",
        body,
        passed=bool(report.decision["ship"]),
    )
