"""Benchmark: the query-intent model against the majority class, overall and per class.

Trained on the first 80 % of a synthetic log's searches by time, scored on the rest. The last
line is the JSON result.

Usage: python tests/benchmarks/bench_intent.py [--quick] [--searches N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import SEARCHES_PER_ROW, training_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 5,000 searches")
    parser.add_argument("--searches", type=int, default=60_000)
    args = parser.parse_args()
    searches_n = 5_000 if args.quick else args.searches

    import pandas as pd

    from searchrank.core.intent import IntentModel, intent_report
    from searchrank.features import tables as T

    folder = training_set(int(searches_n / SEARCHES_PER_ROW), seed=3).parent
    searches = pd.read_parquet(folder / "data" / T.file_name(T.SEARCHES))
    searches = searches.sort_values("event_timestamp")
    cut = int(len(searches) * 0.8)
    train, test = searches.iloc[:cut], searches.iloc[cut:]
    started = time.perf_counter()
    model = IntentModel.fit(train["raw_query"].tolist(), train["intent"].tolist())
    fit_s = time.perf_counter() - started
    majority = str(train["intent"].value_counts().idxmax())
    report = intent_report(
        test["intent"].tolist(), model.predict(test["raw_query"].tolist()).tolist(), majority
    )
    print(
        json.dumps(
            {
                "bench": "intent",
                "accuracy": round(report["accuracy"], 4),
                "majority_accuracy": round(report["majority_accuracy"], 4),
                "macro_f1": round(report["macro_f1"], 4),
                "majority_macro_f1": round(report["majority_macro_f1"], 4),
                "per_class_f1": {k: round(v["f1"], 3) for k, v in report["per_class"].items()},
                "majority": majority,
                "train_searches": len(train),
                "test_searches": len(test),
                "fit_s": round(fit_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
