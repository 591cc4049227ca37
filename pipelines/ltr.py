"""``searchrank ltr``: the transformer and tuned LightGBM on any LETOR / SVMlight dataset.

Both models train on the training file, select on a validation split (the given one, or 15 % of
the training searches held out at random), and are scored once on the test file. The transformer
trains through the same Ray Train path as the pipeline; small datasets get a small, strongly
regularized model (:data:`LTR_RANKER`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.core.lambdamart import LambdaMartConfig

LTR_RANKER = TrainRankerConfig(
    d_model=32,
    n_layers=1,
    n_heads=4,
    ff_dim=64,
    dropout=0.3,
    weight_decay=0.01,
    learning_rate=1e-3,
    batch_size=16,
    epochs=30,
    patience=8,
    num_workers=1,
)
"""Defaults for datasets of a few thousand rows, where a larger model overfits in a few epochs."""
VALID_FRACTION = 0.15


def run_ltr(
    train_file: Path,
    test_file: Path,
    valid_file: Path | None = None,
    ranker: TrainRankerConfig = LTR_RANKER,
    lightgbm: LambdaMartConfig | None = None,
    work_dir: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train both models and compare them on the test file; returns the result line's fields."""

    from searchrank.components.evaluate.config import EvaluateConfig
    from searchrank.components.evaluate.logic import CANDIDATE, LIGHTGBM, evaluate
    from searchrank.components.train_lightgbm.logic import train_lightgbm
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core.split import hold_out_searches
    from searchrank.features.adapters.letor import read_letor

    work = work_dir or Path(tempfile.mkdtemp(prefix="searchrank-ltr-"))
    train = read_letor(train_file).to_pandas()
    if valid_file is not None:
        valid = read_letor(valid_file).to_pandas()
    else:
        train, valid = hold_out_searches(train, VALID_FRACTION, seed=ranker.seed)
    paths = {name: work / f"{name}.parquet" for name in ("train", "valid", "test")}
    for name, frame in (
        ("train", train),
        ("valid", valid),
        ("test", read_letor(test_file).to_pandas()),
    ):
        frame.to_parquet(paths[name], index=False)
    log(f"tuning LightGBM on {train['search_id'].nunique():,} training searches")
    train_lightgbm(train, valid, work / "lightgbm", lightgbm or LambdaMartConfig())
    log("training the transformer")
    train_ranker(
        paths["train"], paths["valid"], work / "ranker", ranker, work_dir=work / "ray", log=log
    )
    report, _ = evaluate(
        paths["test"], work / "ranker", EvaluateConfig(), lightgbm=work / "lightgbm"
    )
    ours, theirs = report.systems[CANDIDATE], report.systems[LIGHTGBM]
    interval = next(c.result for c in report.comparisons if c.other == LIGHTGBM)
    return {
        "bench": "ltr",
        "ndcg10_transformer": round(ours["ndcg@10"], 5),
        "ndcg10_lightgbm": round(theirs["ndcg@10"], 5),
        "ratio": round(ours["ndcg@10"] / theirs["ndcg@10"], 4),
        "ratio_ci": [round(interval["ratio_low"], 4), round(interval["ratio_high"], 4)],
        "ndcg5_transformer": round(ours["ndcg@5"], 5),
        "ndcg5_lightgbm": round(theirs["ndcg@5"], 5),
        "queries": report.queries,
        "queries_without_relevant": report.queries_without_relevant,
    }
