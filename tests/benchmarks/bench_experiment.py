"""Benchmark: from biased click logs to an online decision, on simulated listeners.

The generator knows what logs hide: every impression's true grade and the click model that
drew its label (``features/generator/environment.py``). On its data this measures:

1. **Unbiased learning to rank.** LightGBM and the transformer trained on the clicks as logged
   and with position-bias correction (LightGBM's unbiased lambdarank; the transformer's PAL
   bias tower), all on the same time split. NDCG@10 against the true grades on the test split,
   with the paired-bootstrap interval of the debiased/biased ratio. Goal: a lower bound > 1.
2. **Off-policy evaluation.** The position bias estimated by regression EM on the training
   logs (a LightGBM relevance model on the features); IPS, SNIPS, DM and DR estimates of the
   clicks per search (top 10) of several rankings of the test searches, against the clicks
   that showing those rankings to the simulated listeners produces. Bias and interval
   coverage per estimator, with the true propensities as a reference.
3. **The online experiment.** The debiased transformer (challenger) against LightGBM
   (champion), the demo's pair: interleaving, A/B with CUPED and guardrails, the decision;
   and the searches each method needs to detect the transformer against LightGBM and
   against BM25.

The last line is the JSON result.

Usage: python tests/benchmarks/bench_experiment.py [--quick] [--searches N]
       [--old-ranker-popularity W]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import SEARCHES_PER_ROW, training_set

from searchrank.core import schema as S
from searchrank.features.generator.retriever import POPULARITY_WEIGHT

OPE_CUTOFF = 10
TRUTH_SEEDS = 5
"""Showings of each ranking whose clicks are averaged for the truth the estimators meet."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def positions_by_score(frame: pd.DataFrame, scores: np.ndarray) -> np.ndarray:
    """Each row's position when its search is ordered by descending score (stable)."""
    ranks = (
        pd.DataFrame({"search": frame[S.SEARCH_ID].to_numpy(), "score": -scores})
        .groupby("search", sort=False)["score"]
        .rank(method="first")
    )
    return ranks.to_numpy(dtype=np.int64) - 1


def true_ndcg(test: pd.DataFrame, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-search NDCG@10 against the true grades, for searches with a positive grade."""
    from searchrank.core.metrics import per_query_ndcg

    groups = test[S.SEARCH_ID].to_numpy()
    grades = test[S.TRUE_GRADE].to_numpy()
    return {
        name: per_query_ndcg(grades, values, groups, (10,), grades="real")["ndcg@10"].to_numpy()
        for name, values in scores.items()
    }


def train_models(
    parts: dict[str, pd.DataFrame], paths: dict[str, Path], work: Path, quick: bool
) -> dict[str, Path]:
    """The four models: LightGBM and the transformer, each biased and debiased."""
    from searchrank.components.train_lightgbm.logic import train_lightgbm
    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core.contract import FeatureContract, contract_beside
    from searchrank.core.lambdamart import LambdaMartConfig

    contract = FeatureContract.load(contract_beside(paths["train"]))
    grid = LambdaMartConfig(
        num_leaves=(31,) if quick else (31, 63),
        min_data_in_leaf=(50,),
        feature_fraction=(0.8,),
        folds=2,
    )
    ranker = TrainRankerConfig(epochs=3 if quick else 15, patience=4)
    models: dict[str, Path] = {}
    for name, bias in (("lightgbm", None), ("lightgbm_debiased", 0.0)):
        log(f"train {name}")
        models[name] = work / name
        train_lightgbm(
            parts["train"],
            parts["valid"],
            models[name],
            replace(grid, position_bias_regularization=bias),
            contract,
        )
    for name, bias in (("transformer", False), ("transformer_debiased", True)):
        log(f"train {name}")
        models[name] = work / name
        train_ranker(
            paths["train"],
            paths["valid"],
            models[name],
            replace(ranker, position_bias=bias),
            contract=contract,
            work_dir=work / f"ray-{name}",
            log=lambda _: None,
        )
    return models


def unbiased_ltr(test: pd.DataFrame, scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """True NDCG@10 of biased against debiased training, with the ratio's interval."""
    from searchrank.core.bootstrap import paired_bootstrap

    per_query = true_ndcg(test, scores)
    out: dict[str, Any] = {"click_ndcg10": {}}
    for family in ("lightgbm", "transformer"):
        biased, debiased = per_query[family], per_query[f"{family}_debiased"]
        keep = ~(np.isnan(biased) | np.isnan(debiased))
        result = paired_bootstrap(debiased[keep], biased[keep], samples=2000, seed=0)
        out[family] = {
            "true_ndcg10_biased": round(float(np.nanmean(biased)), 5),
            "true_ndcg10_debiased": round(float(np.nanmean(debiased)), 5),
            "debiased_ratio": round(result.ratio, 4),
            "debiased_ratio_ci": [round(result.ratio_low, 4), round(result.ratio_high, 4)],
        }
    for name in ("popularity", "bm25"):
        if name in per_query:
            out[f"true_ndcg10_{name}"] = round(float(np.nanmean(per_query[name])), 5)
    return out


class RelevanceModel:
    """Gradient-boosted trees on soft labels (cross-entropy): the EM's relevance model
    (:data:`~searchrank.core.propensity.RelevanceFitter`), which keeps its last fit to predict
    P(click | looked at) of other rows afterwards."""

    def __init__(self, features: np.ndarray, seed: int, rounds: int = 60) -> None:
        self.features, self.seed, self.rounds = features, seed, rounds
        self.booster: Any = None

    def fit(self, rows: np.ndarray, labels: np.ndarray, features: np.ndarray | None = None) -> Any:
        import lightgbm as lgb

        params = {
            "objective": "cross_entropy",
            "num_leaves": 31,
            "min_data_in_leaf": 100,
            "learning_rate": 0.1,
            "verbosity": -1,
            "seed": self.seed,
            "deterministic": True,
        }
        matrix = self.features if features is None else features
        data = lgb.Dataset(matrix[rows], labels)
        return lgb.train(params, data, num_boost_round=self.rounds)

    def __call__(self, rows: np.ndarray, soft: np.ndarray) -> np.ndarray:
        self.booster = self.fit(rows, soft)
        return np.asarray(self.booster.predict(self.features))


def in_list_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each search contiguous and in logged position order (searches kept in order)."""
    search_order = pd.factorize(frame[S.SEARCH_ID])[0]
    order = np.lexsort((frame[S.POSITION].to_numpy(), search_order))
    return frame.iloc[order].reset_index(drop=True)


def off_policy(
    train: pd.DataFrame,
    test: pd.DataFrame,
    rankings: dict[str, np.ndarray],
    processor_dir: Path,
    quick: bool,
) -> dict[str, Any]:
    """Estimate each ranking's clicks per search from the test logs; compare with respond()."""
    from searchrank.core.features import PROCESSOR_FILE, FeatureProcessor
    from searchrank.core.ope import ESTIMATORS, LoggedLists, RewardModel, estimate_policy
    from searchrank.core.propensity import (
        PositionBias,
        estimate_position_bias,
        stream_above,
    )
    from searchrank.features.generator.environment import respond
    from searchrank.features.generator.simulate import ABANDON_AFTER_SATISFIED, examination

    processor = FeatureProcessor.load(processor_dir / PROCESSOR_FILE)
    log("estimate the position bias (regression EM on the training logs)")
    train_features = processor.raw_matrix(train)[0]
    clicked = train[S.LABEL].to_numpy() >= int(S.Grade.CLICK)
    streamed = train[S.LABEL].to_numpy() >= int(S.Grade.STREAM)
    starts = S.search_bounds(train[S.SEARCH_ID].to_numpy())[:-1]
    above = stream_above(streamed, starts)
    relevance = RelevanceModel(train_features, seed=0)
    bias = estimate_position_bias(
        train[S.POSITION].to_numpy(),
        clicked,
        above,
        relevance,
        iterations=6 if quick else 12,
        tolerance=1e-3,
    )
    positions = len(bias.examination)
    true_bias = PositionBias(examination(np.arange(positions)), 1 - ABANDON_AFTER_SATISFIED, 0)
    # The reward model: P(click | looked at) from the EM's last relevance fit, and
    # P(stream | looked at) as that times P(stream | click), fitted on the clicked rows (once
    # clicked, where the item was shown no longer matters).
    test_features = processor.raw_matrix(test)[0]
    gamma = np.clip(relevance.booster.predict(test_features), 1e-4, 1.0)
    clicks = np.flatnonzero(clicked)
    then_streamed = relevance.fit(clicks, streamed[clicks].astype(float))
    model = RewardModel(gamma, np.clip(gamma * then_streamed.predict(test_features), 0.0, 1.0))
    labels = test[S.LABEL].to_numpy()
    logs = LoggedLists(
        test[S.SEARCH_ID].to_numpy(),
        test[S.POSITION].to_numpy(),
        labels >= int(S.Grade.CLICK),
        labels >= int(S.Grade.STREAM),
    )
    searches = len(S.search_bounds(logs.list_id)) - 1
    rows: dict[str, Any] = {}
    for name, position in rankings.items():
        shown = np.where(position < OPE_CUTOFF, position, -1)
        truth = float(
            np.mean(
                [
                    (respond(test, shown, seed) >= int(S.Grade.CLICK)).sum() / searches
                    for seed in range(TRUTH_SEEDS)
                ]
            )
        )
        estimated = estimate_policy(logs, position, bias, model, cutoff=OPE_CUTOFF, samples=500)
        reference = estimate_policy(
            logs, position, true_bias, model, cutoff=OPE_CUTOFF, samples=500
        )
        rows[name] = {
            "truth": round(truth, 4),
            **{
                e: [round(v.value, 4), round(v.low, 4), round(v.high, 4), v.covers(truth)]
                for e, v in estimated.items()
            },
            "ips_true_propensity": [
                round(reference["ips"].value, 4),
                reference["ips"].covers(truth),
            ],
        }
    summary = {}
    for estimator in ESTIMATORS:
        errors = [(r[estimator][0] - r["truth"]) / r["truth"] for r in rows.values()]
        summary[estimator] = {
            "mean_relative_bias": round(float(np.mean(errors)), 4),
            "mean_abs_relative_error": round(float(np.mean(np.abs(errors))), 4),
            "coverage": round(float(np.mean([r[estimator][3] for r in rows.values()])), 3),
        }
    true_errors = [(r["ips_true_propensity"][0] - r["truth"]) / r["truth"] for r in rows.values()]
    summary["ips_true_propensity"] = {
        "mean_abs_relative_error": round(float(np.mean(np.abs(true_errors))), 4),
        "coverage": round(float(np.mean([r["ips_true_propensity"][1] for r in rows.values()])), 3),
    }
    return {
        "estimated_examination": [round(float(v), 3) for v in bias.examination[:10]],
        "true_examination": [round(float(v), 3) for v in true_bias.examination[:10]],
        "estimated_keep": round(bias.keep, 3),
        "true_keep": round(true_bias.keep, 3),
        "rankings": rows,
        "estimators": summary,
    }


def online(
    test: pd.DataFrame,
    train: pd.DataFrame,
    truth: pd.DataFrame,
    models: dict[str, Path],
    bm25: Any,
    quick: bool,
) -> dict[str, Any]:
    """The demo's pair in an experiment, and sensitivity against LightGBM and BM25."""
    from searchrank.components.experiment.config import ExperimentConfig
    from searchrank.components.experiment.logic import (
        check_power,
        prepare_traffic,
        simulate_experiment,
    )
    from searchrank.core.errors import InputError
    from searchrank.core.scoring import load_scorer

    config = ExperimentConfig(latency_searches=100 if quick else 300)
    traffic = prepare_traffic(test, truth)
    try:
        needed = check_power(traffic, config)
        power_note = f"{needed} listeners needed, {len(np.unique(traffic.user))} available"
    except InputError as error:
        power_note = str(error)
    challenger = load_scorer(models["transformer_debiased"])
    out: dict[str, Any] = {"power_check": power_note}
    pairs = {
        "vs_lightgbm": (load_scorer(models["lightgbm"]), "LightGBM"),
        "vs_bm25": (bm25, "BM25"),
    }
    for key, (champion, name) in pairs.items():
        log(f"experiment: debiased transformer {key}")
        report = simulate_experiment(
            traffic, (champion, challenger), config, train, (name, "transformer")
        )
        out[key] = {
            "decision": report.decision["verdict"],
            "reasons": report.decision["reasons"],
            "interleaving": {
                k: report.interleaving[k]
                for k in ("preference", "preference_low", "preference_high", "p_value")
            },
            "ab": {
                k: report.ab[k] for k in ("relative", "relative_low", "relative_high", "p_value")
            }
            | {"variance_reduction": report.ab["variance_reduction"]},
            "sensitivity": report.sensitivity,
            "searches": report.searches,
        }
    return out


def copy_contract(data: Path, paths: dict[str, Path]) -> None:
    """Each split gets the training set's feature contract beside it."""
    import shutil

    from searchrank.core.contract import contract_beside

    for path in paths.values():
        shutil.copyfile(contract_beside(data), contract_beside(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    parser.add_argument("--searches", type=int, default=60_000)
    parser.add_argument(
        "--old-ranker-popularity",
        type=float,
        default=POPULARITY_WEIGHT,
        help="the generator's old_ranker_popularity: large values log a popularity-heavy old "
        "ranker, whose positions say less about relevance",
    )
    args = parser.parse_args()
    searches = 6_000 if args.quick else args.searches

    from searchrank.core.candidates import lexical_retriever
    from searchrank.core.scoring import load_scorer
    from searchrank.core.split import split_by_time
    from searchrank.features import tables as T
    from searchrank.features.generator.environment import attach_ground_truth, load_ground_truth

    started = time.perf_counter()
    log(f"data: {searches} searches")
    data = training_set(
        int(searches / SEARCHES_PER_ROW), seed=21, old_ranker_popularity=args.old_ranker_popularity
    )
    truth = load_ground_truth(data.parent / "data")
    frame = in_list_order(pd.read_parquet(data))
    parts = dict(zip(("train", "valid", "test"), split_by_time(frame, 0.1, 0.2), strict=True))
    work = Path(tempfile.mkdtemp(prefix="bench-experiment-"))
    paths = {name: work / f"{name}.parquet" for name in parts}
    for name, part in parts.items():
        part.to_parquet(paths[name], index=False)
    copy_contract(data, paths)
    models = train_models(parts, paths, work, args.quick)

    # The ground truth joins the test rows only now, after training, for measuring.
    columns = (S.TRUE_GRADE, S.HIDDEN_RELEVANCE, S.SAVE_SCALE)
    test = attach_ground_truth(parts["test"], truth, columns)
    scores = {name: load_scorer(folder)(test) for name, folder in models.items()}
    catalogue = pd.read_parquet(data.parent / "data" / T.file_name(T.CATALOGUE))
    retriever = lexical_retriever(catalogue)

    def bm25(rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            retriever.score(rows[S.QUERY].tolist(), rows[S.ITEM_ID].to_numpy()), dtype=float
        )

    scores["bm25"] = bm25(test)
    scores["popularity"] = test[T.POPULARITY_COLUMN].fillna(0.0).to_numpy(dtype=float)
    log("true NDCG of biased and debiased training")
    ltr = unbiased_ltr(test, scores)
    rankings = {"logged": test[S.POSITION].to_numpy(dtype=np.int64)} | {
        name: positions_by_score(test, values) for name, values in scores.items()
    }
    rng = np.random.default_rng(0)
    rankings["random"] = positions_by_score(test, rng.random(len(test)))
    ope = off_policy(parts["train"], test, rankings, models["lightgbm"], args.quick)
    experiment = online(test, parts["train"], truth, models, bm25, args.quick)
    transformer = ltr["transformer"]
    dr = ope["estimators"]["dr"]
    pair = experiment["vs_lightgbm"]
    result = {
        "bench": "experiment",
        "searches": searches,
        "old_ranker_popularity": args.old_ranker_popularity,
        "test_searches": int(test[S.SEARCH_ID].nunique()),
        "true_ndcg10_biased": transformer["true_ndcg10_biased"],
        "true_ndcg10_debiased": transformer["true_ndcg10_debiased"],
        "debiased_ratio_ci": transformer["debiased_ratio_ci"],
        "ratio": transformer["debiased_ratio"],
        "target": 1.0,
        "target_met": transformer["debiased_ratio_ci"][0] > 1.0,
        "ope_bias": dr["mean_relative_bias"],
        "ope_coverage": dr["coverage"],
        "sessions_interleaving": pair["sensitivity"]["sessions_interleaving"],
        "sessions_ab": pair["sensitivity"]["sessions_ab"],
        "sessions_vs_bm25": {
            "interleaving": experiment["vs_bm25"]["sensitivity"]["sessions_interleaving"],
            "ab": experiment["vs_bm25"]["sensitivity"]["sessions_ab"],
        },
        "decision": pair["decision"],
        "unbiased_ltr": ltr,
        "ope": ope,
        "online": experiment,
        "seconds": round(time.perf_counter() - started),
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
