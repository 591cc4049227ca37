"""Benchmark: which run ``train_retriever`` should serve after its chosen checkpoint, chosen
without the test split.

The chosen checkpoint never trained on the validation rows, the most recent searches, so the
served model is a second run that has: a catch-up (the checkpoint trains a few more epochs on
the training and validation rows) or a refit (from scratch on them, as many epochs as
validation chose). Validation cannot judge those runs, since they trained on it, and judging
them on the test split would leave ``bench_retrieval``'s figures no evidence. So this benchmark
cuts the validation searches in two by time: the first run selects its checkpoint on the
earlier half, each retraining runs on the training rows and that half (through
``train_retriever``'s own code), and the later half, which nothing trained on, judges every
epoch. It stands in for the test period as the later half stands in for the validation one.

Datasets as ``bench_retrieval``'s (its splits, the synthetic one at ``--searches``); settings
"EPOCHS@RATE" (a catch-up) or "refit". Prints a log line per run and, last, one JSON line: per
dataset, the later half's Recall@100 of the chosen checkpoint (``none``) and of each setting
after each of its epochs, and the best setting by its last epoch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_retrieval import Splits, lastfm_splits, synthetic_splits

from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.train_retriever.data import ITEMS, VALIDATION, prepare
from searchrank.components.train_retriever.logic import retraining, train_retriever
from searchrank.components.train_retriever.loop import SCORE, validation_metrics
from searchrank.core import schema as S
from searchrank.core.retriever import Retriever
from searchrank.core.search_pairs import load_queries

SETTINGS = ("1@3e-4", "1@6e-4", "1@1.2e-3", "2@6e-4", "2@1.2e-3", "3@6e-4", "refit")


def halves(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validation rows cut in two at the median of their (time-ordered) search ids."""
    ids = np.sort(valid[S.SEARCH_ID].unique())
    cut = ids[len(ids) // 2]
    return valid[valid[S.SEARCH_ID] < cut], valid[valid[S.SEARCH_ID] >= cut]


def setting_config(base: TrainRetrieverConfig, setting: str) -> TrainRetrieverConfig:
    """``base`` with a setting's retraining: "refit", or a catch-up's "EPOCHS@RATE"."""
    if setting == "refit":
        return replace(base, refit=True)
    epochs, rate = setting.split("@")
    return replace(
        base, refit=False, catch_up_epochs=int(epochs), catch_up_learning_rate=float(rate)
    )


def compare(
    name: str, splits: Splits, base: TrainRetrieverConfig, settings: list[str]
) -> dict[str, Any]:
    """Select on the earlier half of validation, then judge no retraining and each setting on
    the later half."""
    train, valid, _, catalogue = splits
    earlier, later = halves(valid)
    both = pd.concat([train, earlier], ignore_index=True)
    folder = Path(tempfile.mkdtemp(prefix=f"bench-retrain-{name}-"))
    try:
        for part, frame in (("train", train), ("earlier", earlier), ("catalogue", catalogue)):
            frame.to_parquet(folder / f"{part}.parquet", index=False)
        summary = train_retriever(
            folder / "train.parquet",
            folder / "earlier.parquet",
            folder / "catalogue.parquet",
            folder / "chosen",
            folder / "embeddings.parquet",
            replace(base, refit=False, catch_up_epochs=0),
            log=lambda line: print(f"[{name}] {line}", flush=True),
        )
        chosen = Retriever.load(folder / "chosen")
        judge = folder / "judge"
        prepare(both, later, catalogue, base, judge, chosen.users.ids)
        with np.load(judge / ITEMS) as arrays:
            item_tokens = arrays["tokens"]
        unchanged = validation_metrics(chosen.model, item_tokens, load_queries(judge / VALIDATION))
        recall: dict[str, list[float]] = {"none": [round(unchanged["recall@100"], 4)]}
        for setting in settings:
            config = setting_config(base, setting)
            recall[setting] = retrain_and_judge(
                config, summary.best_epoch, folder, chosen, both, later, catalogue
            )
            print(
                f"[{name}] {setting}: later-half Recall@100 by epoch {recall[setting]}", flush=True
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "best_epoch": summary.best_epoch,
        "earlier_searches": int(earlier[S.SEARCH_ID].nunique()),
        "later_searches": int(later[S.SEARCH_ID].nunique()),
        "later_recall@100": recall,
        "best": max(recall, key=lambda setting: recall[setting][-1]),
    }


def retrain_and_judge(
    config: TrainRetrieverConfig,
    best_epoch: int,
    folder: Path,
    chosen: Retriever,
    both: pd.DataFrame,
    later: pd.DataFrame,
    catalogue: pd.DataFrame,
) -> list[float]:
    """``train_retriever``'s retraining of ``chosen`` (saved in ``folder``) on ``both`` (the
    training rows and the earlier half), validating each epoch on ``later``: that Recall@100
    per epoch."""
    retrain = retraining(config, best_epoch)
    assert retrain is not None, "every setting retrains"
    work = folder / f"retrain-{uuid.uuid4().hex[:8]}"
    run = retrain.train(
        both,
        later,
        catalogue,
        chosen,
        folder / "chosen",
        work,
        work / "model",
        keep_work=False,
        log=lambda _: None,
    )
    return [round(epoch[SCORE], 4) for epoch in run.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 searches, 3 epochs")
    parser.add_argument("--searches", type=int, default=60_000)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated")
    args = parser.parse_args()
    base, searches = TrainRetrieverConfig(), args.searches
    if args.quick:
        base, searches = replace(base, epochs=3), 10_000
    settings = args.settings.split(",")
    started = time.perf_counter()
    result = {
        "bench": "retrain",
        "synthetic": compare("synthetic", synthetic_splits(searches), base, settings),
        "lastfm": compare("lastfm", lastfm_splits(), base, settings),
    }
    result["seconds"] = round(time.perf_counter() - started)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
