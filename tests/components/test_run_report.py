"""The run report: built from the steps' own pages and checked in a real browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

from browser import render

from searchrank.components.run_report.logic import SECTIONS, RunInputs, build_report
from searchrank.core.plots import training_curves


def _inputs(folder: Path, serving: bool) -> RunInputs:
    history = [
        {"epoch": e, "train_loss": 1 / (e + 1), "val_ndcg@10": 0.5 + e / 20, "val_ndcg@5": 0.4}
        for e in range(4)
    ]
    (folder / "curves.html").write_text(
        f'<html><body><h1>Training</h1><img src="{training_curves(history, 3)}"></body></html>'
    )
    (folder / "validation.md").write_text(
        "### Data contract: PASSED\n\n| rule | failed |\n| --- | --- |\n| nulls | 0 |\n"
    )
    (folder / "evaluation.json").write_text(
        json.dumps(
            {
                "blessed": serving,
                "primary": "ndcg@10",
                "reasons": ["candidate beats lightgbm"],
                "systems": {"candidate": {"ndcg@10": 0.8}, "lightgbm": {"ndcg@10": 0.78}},
            }
        )
    )
    (folder / "evaluation.html").write_text(
        "<html><body><h1>Evaluation</h1><table></table></body></html>"
    )
    summary = folder / "serving.md"
    summary.write_text("### Bento `searchrank:abc`: infra validation PASSED\n")
    return RunInputs(
        validation_summary=folder / "validation.md",
        curves=folder / "curves.html",
        evaluation=folder / "evaluation.json",
        evaluation_report=folder / "evaluation.html",
        serving_summary=summary if serving else None,
        lineage={
            "run": "run-1",
            "feature service": "ranker_v1",
            "Bento": "searchrank:abc" if serving else "",
        },
    )


def test_the_report_has_every_section_and_renders_its_plots_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(build_report(_inputs(tmp_path, serving=True)))
    dom = render(page, tmp_path / "report.png")
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert "BLESSED" in dom and "searchrank:abc" in dom and "<h3>Data contract: PASSED</h3>" in dom
    plots = re.search(r'data-plots="(\d+)" data-plots-rendered="(\d+)"', dom)
    assert plots and int(plots.group(1)) >= 1 and plots.group(1) == plots.group(2)
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_an_unblessed_run_says_no_bento_was_packaged(tmp_path: Path) -> None:
    text = build_report(_inputs(tmp_path, serving=False))
    assert "NOT BLESSED" in text and "No Bento was packaged" in text
