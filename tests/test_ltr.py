"""``searchrank ltr`` on the LightGBM LambdaRank sample (research use; read from ../shared)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from shared_data import SHARED_DATASETS

from searchrank.core.lambdamart import LambdaMartConfig
from searchrank.pipelines.ltr import LTR_RANKER, run_ltr

DATA = SHARED_DATASETS / "lightgbm-lambdarank"


@pytest.mark.slow
def test_ltr_trains_both_models_and_reports_the_documented_fields(tmp_path: Path) -> None:
    if not DATA.exists():
        pytest.skip("shared datasets are not present")
    grid = LambdaMartConfig(
        num_leaves=(15,), min_data_in_leaf=(20,), feature_fraction=(1.0,), folds=2, num_threads=1
    )
    result = run_ltr(
        DATA / "rank.train",
        DATA / "rank.test",
        ranker=replace(LTR_RANKER, epochs=3),
        lightgbm=grid,
        work_dir=tmp_path,
        log=lambda _: None,
    )
    assert result["bench"] == "ltr" and result["queries"] == 50
    for field in ("ndcg10_transformer", "ndcg10_lightgbm", "ndcg5_transformer", "ndcg5_lightgbm"):
        assert 0.3 < result[field] < 1.0, field
    assert result["ratio"] == pytest.approx(
        result["ndcg10_transformer"] / result["ndcg10_lightgbm"], abs=1e-3
    )
    assert result["ratio_ci"][0] <= result["ratio"] <= result["ratio_ci"][1]
    assert result["queries_without_relevant"] == 0
    assert (tmp_path / "ranker" / "ranker.json").exists()
