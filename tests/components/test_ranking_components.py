"""The ranking components as KFP steps: split → LightGBM and transformer → evaluate → dsl.If.

No ``from __future__ import annotations`` here: KFP reads the test components' annotations.
"""

import json
from pathlib import Path

import pytest
from kfp import dsl
from kfp_ops import file_artifact_op, file_dataset_op

from searchrank.components.evaluate import evaluate_op
from searchrank.components.split_dataset import split_dataset_op
from searchrank.components.train_lightgbm import train_lightgbm_op
from searchrank.components.train_ranker import train_ranker_op
from searchrank.core.names import COMPONENT_IMAGE
from searchrank.features import tables as T


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def _mark_op(marker: str) -> None:
    from pathlib import Path

    Path(marker).write_text("blessed")


@dsl.pipeline(name="rank-and-evaluate")
def _rank_and_evaluate(
    source: str, contract_source: str, truth_source: str, marker: str, min_gain: float
) -> None:
    data = file_dataset_op(source=source)
    truth = file_dataset_op(source=truth_source)
    contract = file_artifact_op(source=contract_source).outputs["artifact"]
    parts = split_dataset_op(training_set=data.outputs["data"])
    baseline = train_lightgbm_op(
        train=parts.outputs["train"],
        valid=parts.outputs["valid"],
        feature_contract=contract,
        folds=2,
        num_threads=1,
    )
    ranker = train_ranker_op(
        train=parts.outputs["train"],
        valid=parts.outputs["valid"],
        feature_contract=contract,
        epochs=2,
        d_model=32,
        num_workers=2,
    )
    verdict = evaluate_op(
        test=parts.outputs["test"],
        candidate=ranker.outputs["model"],
        lightgbm=baseline.outputs["model"],
        train=parts.outputs["train"],
        ground_truth=truth.outputs["data"],
        min_gain_vs_baselines=min_gain,
        bootstrap_samples=200,
    )
    with dsl.If(verdict.outputs["Output"] == True):  # noqa: E712 (a KFP condition, not Python)
        _mark_op(marker=marker)


@pytest.mark.slow
def test_the_ranking_steps_run_in_kfp_local_and_branch_on_the_blessing(
    kfp_local: Path, splits: dict[str, Path], dataset_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "blessed"
    _rank_and_evaluate(
        source=str(splits["full"]),
        contract_source=str(splits["contract"]),
        truth_source=str(dataset_dir / T.file_name(T.GROUND_TRUTH)),
        marker=str(marker),
        min_gain=-1.0,
    )
    assert marker.read_text() == "blessed"
    reports = list(kfp_local.rglob("report"))
    assert any("Evaluation: BLESSED" in r.read_text() for r in reports if r.is_file())
    # The ground truth adds NDCG against the true grades to the report and the metrics.
    assert any("Against the true relevance" in r.read_text() for r in reports if r.is_file())
    logged = [json.loads(m.read_text()) for m in kfp_local.rglob("metrics") if m.is_file()]
    assert any(0.0 < values.get("candidate_true_ndcg@10", 0.0) <= 1.0 for values in logged)
    curves = [c for c in kfp_local.rglob("curves") if c.is_file()]
    assert curves and "<img" in curves[0].read_text()
    models = [m for m in kfp_local.rglob("model") if (m / "ranker.json").exists()]
    assert models, "the transformer checkpoint is the Model artifact"
