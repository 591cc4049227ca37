"""The run report: built from the steps' own pages and checked in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser import render
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

from searchrank.components.package_service import logic as package_logic
from searchrank.components.package_service.component import package_service_op
from searchrank.components.run_report.component import run_report_op
from searchrank.components.run_report.logic import SECTIONS, RunInputs, build_report
from searchrank.components.train_ranker.component import train_ranker_op
from searchrank.components.train_retriever import logic as retriever_logic
from searchrank.components.train_retriever.component import train_retriever_op
from searchrank.core.plots import training_curves
from searchrank.core.raytrain import runner
from searchrank.features import tables as T


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


# Lineage: what a run records must outlive its steps. A step's scratch folders come from
# tempfile (Ray's storage when no work_dir is given); on a pod they vanish with it.


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where tempfile makes folders during the test: apart from the run's artifacts (under
    ``tmp_path / "root"``), as a pod's /tmp is apart from the pipeline root."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _temporary(value: str) -> bool:
    return Path(value).is_relative_to(tempfile.gettempdir())


def _ray_without_ray(
    history: list[dict[str, float]], storages: list[Path]
) -> Callable[..., tuple[str, list[dict[str, float]]]]:
    """``train_anywhere`` as Ray runs it, without Ray: the best checkpoint kept in Ray's
    storage (recorded in ``storages``) and copied to ``model_dir``, replacing what was there."""

    def train_anywhere(
        spec: dict[str, Any],
        storage: Path,
        _config: object,
        _address: str,
        model_dir: Path,
        *_: Any,
    ) -> tuple[str, list[dict[str, float]]]:
        storages.append(storage)
        best = storage / spec["run_name"] / "checkpoint_000000"
        best.mkdir(parents=True)
        shutil.rmtree(model_dir, ignore_errors=True)
        shutil.copytree(best, model_dir)
        return str(best), history

    return train_anywhere


def _artifact(kind: type[Artifact], root: Path, name: str) -> Any:
    """An artifact as kfp.local makes one: a URI under the pipeline root, its folder made."""
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    return kind(uri=str(root / name))


def test_a_run_without_work_dir_records_no_temporary_folder_in_its_lineage(
    scratch: Path,
    splits: dict[str, Path],
    dataset_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """train_ranker → package_service → run_report, each step as a pipeline runs it (Ray and
    the Bento build replaced): the model's metadata, the Bento's lineage and the report's
    lineage table and embedded pages name the run's artifacts, never Ray's temporary storage."""
    root, storages = tmp_path / "root", []
    history = [
        {
            "epoch": 0,
            "train_loss": 0.7,
            "val_ndcg@10": 0.5,
            "val_ndcg@5": 0.4,
            "val_mrr": 0.4,
            "candidates_per_s": 1e4,
        }
    ]
    monkeypatch.setattr(runner, "train_anywhere", _ray_without_ray(history, storages))
    model = _artifact(Model, root, "train-ranker/model")
    curves = _artifact(HTML, root, "train-ranker/curves")
    train_ranker_op.python_func(
        train=Dataset(uri=str(splits["train"])),
        valid=Dataset(uri=str(splits["valid"])),
        feature_contract=Artifact(uri=str(splits["contract"])),
        model=model,
        metrics=_artifact(Metrics, root, "train-ranker/metrics"),
        curves=curves,
    )
    assert storages and _temporary(str(storages[0])), "Ray's storage was a temporary folder"

    recorded: list[package_logic.Lineage] = []

    def package_without_bento(*args: Any) -> package_logic.PackageResult:
        recorded.append(args[8])
        validation = package_logic.InfraValidation(1, 1, 0.0, 1.0, 1.0, 1.0, passed=True)
        return package_logic.PackageResult(
            "searchrank-ranker:a",
            "searchrank-retriever:a",
            "searchrank:a",
            "ranker_v1",
            "0",
            validation,
        )

    monkeypatch.setattr(package_logic, "package_service", package_without_bento)
    bento = _artifact(Artifact, root, "package-service/bento")
    serving = _artifact(Markdown, root, "package-service/summary")
    package_service_op.python_func(
        model=model,
        golden=Dataset(uri=str(root / "evaluate/scores")),
        catalogue=Dataset(uri=str(dataset_dir / T.file_name(T.CATALOGUE))),
        feature_repo=str(tmp_path / "feature_repo"),
        blessed=True,
        bento=bento,
        metrics=_artifact(Metrics, root, "package-service/metrics"),
        summary=serving,
        train=Dataset(uri=str(splits["train"])),
        run_id="run-1",
    )

    steps = _inputs(tmp_path, serving=True)
    report = _artifact(HTML, root, "run-report/report")
    run_report_op.python_func(
        validation_summary=Markdown(uri=str(steps.validation_summary)),
        curves=curves,
        evaluation=Artifact(uri=str(steps.evaluation)),
        evaluation_report=HTML(uri=str(steps.evaluation_report)),
        model=model,
        feature_service="ranker_v1",
        report=report,
        serving_summary=serving,
        bento=bento,
        run_id="run-1",
        training_data="s3://bucket/entities",
    )

    assert not _temporary(model.metadata["checkpoint"]), model.metadata["checkpoint"]
    (lineage,) = recorded
    assert not any(_temporary(value) for value in vars(lineage).values()), lineage
    assert lineage.checkpoint_uri == model.uri
    page = Path(report.path).read_text()
    assert model.uri in page, "the lineage names the checkpoint's Model"
    assert str(scratch) not in page, "nothing in the report points into a temporary folder"


def test_a_retriever_trained_without_work_dir_records_its_model_not_rays_storage(
    scratch: Path,
    splits: dict[str, Path],
    dataset_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, storages = tmp_path / "root", []
    history = [
        {
            "epoch": 0,
            "train_loss": 0.7,
            "val_recall@100": 0.5,
            "val_recall@10": 0.3,
            "val_mrr": 0.2,
            "pairs_per_s": 1e4,
        }
    ]
    monkeypatch.setattr(runner, "train_anywhere", _ray_without_ray(history, storages))
    # No weights in the faked checkpoint: nothing to load, fit a prior for, or embed.
    monkeypatch.setattr(retriever_logic.Retriever, "load", staticmethod(lambda _folder: None))
    monkeypatch.setattr(retriever_logic, "fit_prior_weight", lambda *_: (0.0, {0.0: 0.5}))
    monkeypatch.setattr(retriever_logic, "save_prior", lambda *_: None)
    monkeypatch.setattr(retriever_logic, "write_item_embeddings", lambda _model, _path: 0)
    model = _artifact(Model, root, "train-retriever/model")
    curves = _artifact(HTML, root, "train-retriever/curves")
    train_retriever_op.python_func(
        train=Dataset(uri=str(splits["train"])),
        valid=Dataset(uri=str(splits["valid"])),
        catalogue=Dataset(uri=str(dataset_dir / T.file_name(T.CATALOGUE))),
        model=model,
        embeddings=_artifact(Dataset, root, "train-retriever/embeddings"),
        metrics=_artifact(Metrics, root, "train-retriever/metrics"),
        curves=curves,
    )
    assert len(storages) == 2, "the first run and its refit"
    assert all(_temporary(str(s)) for s in storages), "Ray's storage was a temporary folder"
    assert model.metadata["checkpoint"] == model.path
    assert str(scratch) not in Path(curves.path).read_text()
