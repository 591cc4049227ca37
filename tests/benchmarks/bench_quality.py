"""Benchmark: ranking quality of the transformer against tuned LightGBM on the same features.

1. Synthetic music search, split by time (70 % train, 10 % validation, 20 % test): the
   transformer trained with Ray Train (two CPU workers) and LightGBM LambdaMART tuned by grouped
   cross-validation, both selected on the validation split only; NDCG@10 on the test split, with
   the paired-bootstrap interval of the ratio. Target ≥ 1.02.
2. The Yahoo LTR sample (``../shared/datasets/lightgbm-lambdarank``, rank.train → rank.test)
   through ``searchrank ltr``. Target ≥ 0.97, goal ≥ 1.00.

The last line is the JSON result.

Usage: python tests/benchmarks/bench_quality.py [--quick] [--searches N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _data import SEARCHES_PER_ROW, training_set
from shared_data import SHARED_DATASETS

SYNTHETIC_TARGET, LETOR_TARGET, LETOR_GOAL = 1.02, 0.97, 1.0


def time_split_files(data: Path, folder: Path) -> dict[str, Path]:
    """``data`` split by time into 70 % train, 10 % validation and 20 % test, each written to
    ``folder`` (created) as ``<split>.parquet``: {split: path}."""
    import pandas as pd

    from searchrank.core.split import split_by_time

    folder.mkdir(parents=True, exist_ok=True)
    frames = split_by_time(pd.read_parquet(data), 0.1, 0.2)
    paths = {name: folder / f"{name}.parquet" for name in ("train", "valid", "test")}
    for path, frame in zip(paths.values(), frames, strict=True):
        frame.to_parquet(path, index=False)
    return paths


def synthetic(searches: int, quick: bool) -> dict[str, Any]:
    import pandas as pd

    from searchrank.components.evaluate.config import EvaluateConfig
    from searchrank.components.evaluate.logic import CANDIDATE, LIGHTGBM, evaluate
    from searchrank.components.train_lightgbm.logic import train_lightgbm
    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core.contract import FeatureContract, contract_beside
    from searchrank.core.lambdamart import LambdaMartConfig

    data = training_set(int(searches / SEARCHES_PER_ROW), seed=21)
    contract = FeatureContract.load(contract_beside(data))
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    paths = time_split_files(data, work)
    parts = {name: pd.read_parquet(path) for name, path in paths.items()}
    grid = LambdaMartConfig(
        num_leaves=(31, 63, 127), min_data_in_leaf=(50, 200), feature_fraction=(0.8,), folds=2
    )
    if quick:
        grid = replace(grid, num_leaves=(31,), min_data_in_leaf=(50,))
    train_lightgbm(
        parts["train"],
        parts["valid"],
        work / "lightgbm",
        grid,
        contract,
    )
    config = TrainRankerConfig(epochs=3 if quick else 15, patience=4)
    summary = train_ranker(
        paths["train"],
        paths["valid"],
        work / "ranker",
        config,
        contract=contract,
        work_dir=work / "ray",
        log=lambda _: None,
    )
    report, _ = evaluate(
        paths["test"],
        work / "ranker",
        EvaluateConfig(),
        lightgbm=work / "lightgbm",
        train_path=paths["train"],
    )
    ours, theirs = report.systems[CANDIDATE], report.systems[LIGHTGBM]
    interval = next(c.result for c in report.comparisons if c.other == LIGHTGBM)
    return {
        "searches": searches,
        "test_queries": report.queries,
        "ndcg10_transformer": round(ours["ndcg@10"], 5),
        "ndcg10_lightgbm": round(theirs["ndcg@10"], 5),
        "ratio": round(ours["ndcg@10"] / theirs["ndcg@10"], 4),
        "ratio_ci": [round(interval["ratio_low"], 4), round(interval["ratio_high"], 4)],
        "ndcg10_bm25": round(report.systems["bm25"]["ndcg@10"], 5),
        "ndcg10_popularity": round(report.systems["popularity"]["ndcg@10"], 5),
        "best_epoch": summary.best_epoch,
    }


def letor(quick: bool) -> dict[str, Any]:
    from searchrank.pipelines.ltr import LTR_RANKER, run_ltr

    folder = SHARED_DATASETS / "lightgbm-lambdarank"
    ranker = replace(LTR_RANKER, epochs=5) if quick else LTR_RANKER
    return run_ltr(folder / "rank.train", folder / "rank.test", ranker=ranker, log=lambda _: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    parser.add_argument("--searches", type=int, default=60_000)
    args = parser.parse_args()
    searches = 3_000 if args.quick else args.searches
    ours = synthetic(searches, args.quick)
    theirs = letor(args.quick)
    print(
        json.dumps(
            {
                "bench": "quality",
                "ratio": ours["ratio"],
                "target": SYNTHETIC_TARGET,
                "met": ours["ratio"] >= SYNTHETIC_TARGET,
                "letor_ratio": theirs["ratio"],
                "letor_target": LETOR_TARGET,
                "letor_goal": LETOR_GOAL,
                "letor_met": theirs["ratio"] >= LETOR_TARGET,
                "synthetic": ours,
                "letor": theirs,
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
