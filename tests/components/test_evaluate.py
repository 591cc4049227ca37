"""``train_lightgbm`` and ``evaluate``: baselines, metrics by slice, intervals, the decision,
and what its report draws."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from searchrank.components.evaluate import logic as evaluate_logic
from searchrank.components.evaluate import report as evaluation_report
from searchrank.components.evaluate.config import EvaluateConfig
from searchrank.components.evaluate.logic import (
    BM25,
    CANDIDATE,
    CHAMPION,
    HIGH,
    LIGHTGBM,
    LOW,
    MEAN,
    POPULARITY,
    Comparison,
    EvaluationReport,
    evaluate,
    slice_value,
    write_report_json,
)
from searchrank.components.evaluate.report import html_page, markdown
from searchrank.components.train_lightgbm.logic import train_lightgbm
from searchrank.core import schema as S
from searchrank.core.champion import resolve_champion
from searchrank.core.checkpoint import load_ranker, save_ranker
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import FeatureProcessor, infer_roles
from searchrank.core.lambdamart import LambdaMartConfig, score_lightgbm
from searchrank.core.metrics import ndcg_at_k, per_query_metrics, per_query_ndcg
from searchrank.core.model import ContextAwareRanker, RankerConfig
from searchrank.core.names import RANKER_FEATURE_SERVICE
from searchrank.core.plots import margin_markers
from searchrank.core.scoring import score_model
from searchrank.core.slates import to_slates
from searchrank.core.training import (
    loss_function,
    seed_everything,
    shuffled_batches,
    train_step,
    training_tensors,
)
from searchrank.features import tables as T
from searchrank.features.generator.environment import attach_true_grades, load_ground_truth

SMALL_GRID = LambdaMartConfig(
    num_leaves=(15,), min_data_in_leaf=(20,), feature_fraction=(1.0,), folds=2, num_threads=1
)


def train_plain_ranker(
    train: pd.DataFrame, contract: FeatureContract, folder: Path, epochs: int = 3
) -> Path:
    """A quickly trained ranker saved in the checkpoint format (no Ray needed)."""
    processor = FeatureProcessor.fit(train, infer_roles(list(train.columns), contract))
    dense, codes = processor.transform(train)
    slates = to_slates(
        dense, codes, train["label"].to_numpy(np.float32), train["search_id"].to_numpy(), 32
    )
    seed_everything(0)
    model = ContextAwareRanker(
        RankerConfig(
            n_numeric=dense.shape[1],
            cardinalities=processor.cardinalities,
            d_model=32,
            ff_dim=64,
            n_layers=1,
        )
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        for batch in shuffled_batches(training_tensors(slates), 64, 0, epoch):
            train_step(model, batch, optimizer, loss_function("listnet"), 1.0)
    save_ranker(folder, model, processor, {"history": []})
    contract.save(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    train = pd.read_parquet(splits["train"])
    contract = FeatureContract.load(splits["contract"])
    train_lightgbm(
        train, pd.read_parquet(splits["valid"]), folder / "lightgbm", SMALL_GRID, contract
    )
    return {
        "ranker": train_plain_ranker(train, contract, folder / "ranker"),
        "lightgbm": folder / "lightgbm",
    }


def test_lightgbm_baseline_is_saved_with_its_encoding(
    models: dict[str, Path], splits: dict[str, Path]
) -> None:
    test = pd.read_parquet(splits["test"])
    scores = score_lightgbm(test, models["lightgbm"])
    assert scores.shape == (len(test),) and np.isfinite(scores).all() and scores.std() > 0
    described = json.loads((models["lightgbm"] / "baseline.json").read_text())
    assert described["kind"] == "lambdamart" and described["grid_points"] == 1


def test_a_saved_ranker_scores_the_same_after_loading(
    models: dict[str, Path], splits: dict[str, Path]
) -> None:
    test = pd.read_parquet(splits["test"])
    first, second = score_model(test, models["ranker"]), score_model(test, models["ranker"])
    assert np.array_equal(first, second)
    _, processor, _ = load_ranker(models["ranker"])
    assert FeatureContract.load(models["ranker"]).feature_service == RANKER_FEATURE_SERVICE
    assert "item_catalogue__name" not in processor.numeric_names + processor.categorical


def test_evaluate_compares_every_system_by_slice(
    models: dict[str, Path], splits: dict[str, Path], tmp_path: Path
) -> None:
    report, scores = evaluate(
        splits["test"],
        models["ranker"],
        EvaluateConfig(bootstrap_samples=300),
        lightgbm=models["lightgbm"],
        train_path=splits["train"],
    )
    assert set(report.systems) == {CANDIDATE, LIGHTGBM, POPULARITY, BM25}
    for values in report.systems.values():
        assert 0.0 < values["ndcg@10"] <= 1.0 and 0.0 < values["mrr"] <= 1.0
    assert report.queries == pd.read_parquet(splits["test"])["search_id"].nunique()
    assert 0 < report.queries_without_relevant < report.queries
    assert {c.other for c in report.comparisons} == {LIGHTGBM, POPULARITY, BM25}
    for comparison in report.comparisons:
        result = comparison.result
        assert result["difference_low"] <= result["difference"] <= result["difference_high"]
    assert {"item_type", "market", "activity"} <= set(report.slices)
    per_type = report.slices["item_type"]
    assert (
        sum(v[CANDIDATE]["queries"] for v in per_type.values())
        == report.queries - report.queries_without_relevant
    )
    assert {"score_candidate", "score_lightgbm", "score_bm25", "score_popularity"} <= set(
        scores.columns
    )
    page = html_page(report)
    assert page.count("<img") >= len(report.slices) + len(report.comparisons)
    assert "by item_type" in page and "Evaluation:" in markdown(report)
    # The JSON carries each slice mean's bootstrap interval beside it.
    write_report_json(report, tmp_path / "evaluation.json")
    written = json.loads((tmp_path / "evaluation.json").read_text())
    entries = [
        entry
        for values in written["slices"].values()
        for systems in values.values()
        for entry in systems.values()
        if entry["queries"] > 0
    ]
    assert entries and all(e[LOW] <= e["ndcg@10"] <= e[HIGH] for e in entries)
    assert any(e[LOW] < e[HIGH] for e in entries)


def test_the_blessing_follows_its_thresholds(
    models: dict[str, Path], splits: dict[str, Path]
) -> None:
    lenient = EvaluateConfig(bootstrap_samples=300, min_gain_vs_baselines=-1.0)
    strict = replace(lenient, min_gain_vs_baselines=0.5)
    assert evaluate(splits["test"], models["ranker"], lenient, lightgbm=models["lightgbm"])[
        0
    ].blessed
    report = evaluate(splits["test"], models["ranker"], strict, lightgbm=models["lightgbm"])[0]
    comparisons = [r for r in report.reasons if "explicit" not in r]
    assert not report.blessed and all("FAILS" in reason for reason in comparisons)


def test_the_explicit_leak_rate_counts_what_filtered_listeners_would_see(
    models: dict[str, Path], splits: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    lenient = EvaluateConfig(bootstrap_samples=100, min_gain_vs_baselines=-1.0)
    report = evaluate(splits["test"], models["ranker"], lenient)[0]
    test = pd.read_parquet(splits["test"])
    setting = test.groupby(S.SEARCH_ID, sort=False)[T.EXPLICIT_FILTER_COLUMN].first()
    # Listeners without a stored setting are filtered too (the policy fails safe).
    filtered = int(setting.astype("boolean").fillna(True).sum())
    assert report.explicit["filtered_lists"] == filtered > 0
    assert report.explicit["leaked"] == 0 < report.explicit["withheld"]
    assert report.blessed and any("ok: explicit-leak rate 0.00%" in r for r in report.reasons)
    # A policy that let everything through would show what the ranker put in the top 10:
    # every withheld item leaks, and the candidate is refused.
    monkeypatch.setattr(evaluate_logic, "visible", lambda order, explicit, applies: order)
    broken = evaluate(splits["test"], models["ranker"], lenient)[0]
    assert broken.explicit["leaked"] == report.explicit["withheld"]
    assert not broken.blessed and any("FAILS: explicit-leak" in r for r in broken.reasons)


def test_a_candidate_that_does_not_beat_the_champion_is_not_blessed(
    models: dict[str, Path], splits: dict[str, Path]
) -> None:
    config = EvaluateConfig(bootstrap_samples=300, min_gain_vs_baselines=-1.0)
    alone = evaluate(splits["test"], models["ranker"], config, lightgbm=models["lightgbm"])[0]
    assert alone.blessed and alone.champion == "", "it beats every baseline by the margin"
    champion = resolve_champion(str(models["ranker"]), models["ranker"].parent / "champion")
    report = evaluate(
        splits["test"], models["ranker"], config, lightgbm=models["lightgbm"], champion=champion
    )[0]
    against_itself = next(c for c in report.comparisons if c.other == CHAMPION)
    assert against_itself.result["difference"] == 0.0
    assert not against_itself.passed, "a copy of the champion is not significantly better"
    assert not report.blessed and report.champion == str(models["ranker"])
    assert str(models["ranker"]) in markdown(report)
    tie = evaluate(
        splits["test"],
        models["ranker"],
        replace(config, min_gain_vs_champion=-0.01),
        champion=champion,
    )[0]
    assert tie.blessed, "a tie passes a negative margin"


@pytest.mark.parametrize(
    "reference", ["searchrank:nosuchversion", "missing/folder", "s3x://bucket/model"]
)
def test_a_champion_that_cannot_be_found_is_refused_naming_it(
    reference: str, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="champion"):
        resolve_champion(reference, tmp_path)


def test_a_folder_without_a_checkpoint_is_no_champion(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"champion.*no ranker checkpoint"):
        resolve_champion(str(tmp_path / "empty"), tmp_path / "work")


@pytest.mark.parametrize(
    ("field", "value"), [("primary", "ndcg@7"), ("bootstrap_samples", 5), ("confidence", 1.5)]
)
def test_bad_configuration_names_the_field(field: str, value: object) -> None:
    with pytest.raises(InputError, match=field):
        EvaluateConfig(**{field: value})


def test_a_slice_mean_carries_its_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0.0, 1.0, (2, 300))
    config = EvaluateConfig(bootstrap_samples=1000, confidence=0.9)
    entry = slice_value(["candidate", "bm25"], values, config)
    for k, system in enumerate(("candidate", "bm25")):
        mean, low, high = (entry[system][key] for key in ("ndcg@10", LOW, HIGH))
        assert mean == pytest.approx(values[k].mean())
        assert low < mean < high
        # The configured confidence: a 90 % interval spans about 2 × 1.645 standard errors.
        standard_error = values[k].std() / math.sqrt(values.shape[1])
        assert high - low == pytest.approx(2 * 1.645 * standard_error, rel=0.15)
        assert entry[system]["queries"] == 300
    assert slice_value(["candidate", "bm25"], values, config) == entry, "a fixed seed"
    empty = slice_value(["candidate"], np.empty((1, 0)), config)["candidate"]
    assert empty["queries"] == 0 and all(math.isnan(empty[k]) for k in ("ndcg@10", LOW, HIGH))


def _small_report() -> EvaluationReport:
    """A report as evaluate writes one: a baseline and a champion (a tie margin), one slice."""
    result = {
        "mean_a": 0.5,
        "mean_b": 0.45,
        "difference": 0.05,
        "difference_low": 0.02,
        "difference_high": 0.08,
        "ratio": 1.11,
        "ratio_low": 1.04,
        "ratio_high": 1.18,
        "p_value": 0.0,
        "samples": 1000.0,
        "confidence": 0.95,
    }
    tie = result | {"difference": 0.0, "difference_low": -0.004, "p_value": 0.046}
    means = {"ndcg@10": 0.5, "mrr": 0.4, "map": 0.3}
    return EvaluationReport(
        primary="ndcg@10",
        queries=40,
        queries_without_relevant=10,
        systems={CANDIDATE: means, LIGHTGBM: means, CHAMPION: means},
        comparisons=[
            Comparison(LIGHTGBM, "ndcg@10", 0.0, result, True),
            Comparison(CHAMPION, "ndcg@10", -0.01, tie, True),
        ],
        slices={
            "market": {
                "SE": {
                    system: {"ndcg@10": 0.5, LOW: low, HIGH: 0.6, "queries": 30.0}
                    for system, low in ((CANDIDATE, 0.4), (LIGHTGBM, 0.41), (CHAMPION, 0.42))
                }
            }
        },
        blessed=True,
        reasons=[],
        champion="searchrank:champion",
        bootstrap={LIGHTGBM: [0.05] * 20, CHAMPION: [0.0] * 20},
    )


def test_the_report_draws_slice_intervals_margins_and_bounded_p_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bars: list[dict] = []
    histograms: dict[str, dict] = {}

    def record_bars(values: dict, errors: dict | None = None, **_: object) -> str:
        bars.append({"values": values, "errors": errors})
        return "bars.png"

    def record_histogram(samples: list[float], **marks: object) -> str:
        histograms[str(marks["title"])] = marks
        return "histogram.png"

    monkeypatch.setattr(evaluation_report, "grouped_bars", record_bars)
    monkeypatch.setattr(evaluation_report, "histogram", record_histogram)
    page = html_page(_small_report())

    (chart,) = bars
    assert chart["errors"] == {
        CANDIDATE: {"SE (30)": (0.4, 0.6)},
        LIGHTGBM: {"SE (30)": (0.41, 0.6)},
        CHAMPION: {"SE (30)": (0.42, 0.6)},
    }
    baseline, champion = (histograms[f"{CANDIDATE} − {o}"] for o in (LIGHTGBM, CHAMPION))
    assert (baseline["margin"], baseline["lower"]) == (0.0, 0.02)
    assert (champion["margin"], champion["lower"]) == (-0.01, -0.004), "the champion's margin"
    assert "<td>&lt; 0.002</td>" in page, "p = 0 with 1,000 resamples"
    assert "<td>0.0460</td>" in page
    assert "95% bootstrap intervals" in page


def test_a_bootstrap_histogram_marks_the_margin_used_zero_and_the_lower_end() -> None:
    tie = margin_markers(-0.01, 0.002)
    assert [(m.x, m.label) for m in tie] == [
        (-0.01, "margin \u22120.0100"),
        (0.0, "0"),
        (0.002, "interval's lower end 0.0020"),
    ]
    assert tie[1].color != tie[0].color, "0 is a lighter reference than the margin"
    strict = margin_markers(0.0, 0.03)
    assert [m.x for m in strict] == [0.0, 0.03], "the margin is 0: no second line there"
    assert strict[0].label == "margin 0.0000"


ORACLE = "oracle"
"""A system that ranks by the true grade itself."""


@pytest.fixture(scope="module")
def graded_test(splits: dict[str, Path], dataset_dir: Path) -> pd.DataFrame:
    """The test split with each row's true grade."""
    return attach_true_grades(pd.read_parquet(splits["test"]), load_ground_truth(dataset_dir))


def test_ndcg_takes_real_grades_by_name_and_the_true_order_scores_one(
    graded_test: pd.DataFrame,
) -> None:
    grades = graded_test[S.TRUE_GRADE].to_numpy()
    groups = graded_test[S.SEARCH_ID].to_numpy()
    assert (grades != np.floor(grades)).any(), "the true grade is fractional"
    with pytest.raises(InputError) as caught:
        ndcg_at_k(grades, grades, groups, 10)
    assert caught.value.field == "labels", "integer labels stay the default"
    best = per_query_ndcg(grades, grades, groups, ks=(1, 10), grades="real")
    counted = best[best["has_relevant"]]
    assert len(counted) > 0.9 * len(best)
    assert np.allclose(counted[["ndcg@1", "ndcg@10"]].to_numpy(), 1.0)
    assert ndcg_at_k(grades, grades, groups, 10, grades="real") == pytest.approx(1.0)
    assert ndcg_at_k(grades, -grades, groups, 10, grades="real") < 0.9
    # On integer labels it is per_query_metrics' NDCG, and an integer grade scores as its label.
    labels, scores = graded_test[S.LABEL].to_numpy(), -grades
    per_label = per_query_ndcg(labels, scores, groups, ks=(5, 10))
    reference = per_query_metrics(labels, scores, groups, ks=(5, 10))
    pd.testing.assert_frame_equal(per_label, reference[per_label.columns])
    as_real = per_query_ndcg(labels.astype(float), scores, groups, ks=(5, 10), grades="real")
    pd.testing.assert_frame_equal(as_real, per_label)
    with pytest.raises(InputError, match="grades"):
        per_query_ndcg(labels, scores, groups, grades="fractional")  # type: ignore[arg-type]


def test_evaluate_reports_ndcg_against_the_truth_without_changing_the_blessing(
    models: dict[str, Path],
    splits: dict[str, Path],
    dataset_dir: Path,
    graded_test: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    scored = evaluate_logic.score_systems

    def with_oracle(test: pd.DataFrame, *args: Any) -> dict[str, np.ndarray]:
        return scored(test, *args) | {ORACLE: graded_test[S.TRUE_GRADE].to_numpy()}

    monkeypatch.setattr(evaluate_logic, "score_systems", with_oracle)

    def run(ground_truth: Path | None) -> tuple[EvaluationReport, pd.DataFrame]:
        return evaluate(
            splits["test"],
            models["ranker"],
            EvaluateConfig(bootstrap_samples=300),
            lightgbm=models["lightgbm"],
            train_path=splits["train"],
            ground_truth_path=ground_truth,
        )

    plain, plain_scores = run(None)
    report, scores = run(dataset_dir / T.file_name(T.GROUND_TRUTH))
    truth = report.truth
    assert truth is not None and truth.metric == "true_ndcg@10"
    assert (
        set(truth.systems) == set(report.systems) == {CANDIDATE, LIGHTGBM, POPULARITY, BM25, ORACLE}
    )
    assert report.queries - report.queries_without_relevant < truth.queries <= report.queries
    for system, metrics in truth.systems.items():
        assert set(metrics) == {"true_ndcg@1", "true_ndcg@5", "true_ndcg@10"}
        for values in metrics.values():
            assert 0.0 < values[LOW] <= values[MEAN] <= values[HIGH] <= 1.0
            assert values[LOW] < values[HIGH] or system == ORACLE
    assert all(v[MEAN] == pytest.approx(1.0) for v in truth.systems[ORACLE].values())
    assert set(truth.comparisons) == set(report.systems) - {CANDIDATE}
    for result in truth.comparisons.values():
        assert result["difference_low"] <= result["difference"] <= result["difference_high"]
        assert result["mean_a"] == pytest.approx(truth.systems[CANDIDATE]["true_ndcg@10"][MEAN])
    assert truth.comparisons[ORACLE]["difference_high"] < 0.0, "nothing beats the truth"
    # Information only: the decision, its comparisons and the scores are those without truth.
    assert report.blessed == plain.blessed and report.reasons == plain.reasons
    assert report.comparisons == plain.comparisons and report.systems == plain.systems
    pd.testing.assert_frame_equal(scores, plain_scores)
    # The metrics, the JSON and both pages carry it; without a ground truth, none of them does.
    logged = report.metrics()
    assert logged[f"{CANDIDATE}_true_ndcg@10"] == truth.systems[CANDIDATE]["true_ndcg@10"][MEAN]
    assert {f"{s}_true_ndcg@{k}" for s in report.systems for k in (1, 5, 10)} <= set(logged)
    assert logged.keys() - plain.metrics().keys() == {k for k in logged if "_true_ndcg@" in k}
    assert not any("true" in key for key in plain.metrics())
    write_report_json(report, tmp_path / "with.json")
    write_report_json(plain, tmp_path / "without.json")
    written = json.loads((tmp_path / "with.json").read_text())
    assert written["truth"]["systems"][ORACLE]["true_ndcg@10"][MEAN] == pytest.approx(1.0)
    assert "truth" not in json.loads((tmp_path / "without.json").read_text())
    heading = "Against the true relevance (simulated data)"
    for page in (html_page(report), markdown(report)):
        assert heading in page and "never enters the blessing" in page
    for page in (html_page(plain), markdown(plain)):
        assert heading not in page and "true_ndcg" not in page


@pytest.mark.parametrize("kind", ["foreign", "missing", "not parquet", "no true grade"])
def test_a_ground_truth_of_other_data_is_refused_naming_it(
    kind: str, models: dict[str, Path], splits: dict[str, Path], dataset_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ground_truth.parquet"
    if kind == "foreign":
        truth = load_ground_truth(dataset_dir)
        truth[S.SEARCH_ID] += truth[S.SEARCH_ID].max() + 1
        truth.to_parquet(path)
    elif kind == "no true grade":
        load_ground_truth(dataset_dir).drop(columns=S.TRUE_GRADE).to_parquet(path)
    elif kind == "not parquet":
        path.write_text("search_id,item_id,true_grade\n")
    with pytest.raises(InputError) as caught:
        evaluate(
            splits["test"],
            models["ranker"],
            EvaluateConfig(bootstrap_samples=100),
            ground_truth_path=path,
        )
    assert caught.value.field == "ground_truth"
    assert str(caught.value).startswith("ground_truth:")
