"""Benchmark: what the query rewrite's features (``query_rewrite__*``) are worth to the ranker.

Synthetic music search, split by time as ``bench_quality`` splits it (70 % train, 10 %
validation, 20 % test). ``train_intent`` writes the splits twice, as the pipeline does: with the
intent features only, and with the rewriter's features too (given the catalogue). Two rankers are
trained alike (same configuration and seed), one on each; on the test split, the one that reads
the rewrite is the candidate and the other the champion: NDCG@10 of both, the paired-bootstrap
interval of the difference, and NDCG@10 per typing form (``exact``, ``prefix``,
``misspelled``, ``descriptive``), where a feature saying "this query was corrected or
completed" could matter most.

No target: the issue asks for the feature and its measured effect. The last line is the JSON
result.

Usage: python tests/benchmarks/bench_rewrite_features.py [--quick] [--searches N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import SEARCHES_PER_ROW, training_set
from bench_quality import time_split_files

READS, IGNORES = "reads_rewrite", "ignores_rewrite"


def per_form_ndcg(
    scores: pd.DataFrame, test: pd.DataFrame, searches: pd.DataFrame
) -> dict[str, dict[str, float]]:
    """NDCG@10 of both rankers per typing form: {form: {READS, IGNORES, "searches"}}."""
    from searchrank.components.evaluate.logic import CANDIDATE, CHAMPION
    from searchrank.components.evaluate_retrieval.logic import QUERY_FORM
    from searchrank.core import schema as S
    from searchrank.core.metrics import per_query_ndcg

    labels, groups = test[S.LABEL].to_numpy(), test[S.SEARCH_ID].to_numpy()
    tables = {
        name: per_query_ndcg(labels, scores[f"score_{system}"].to_numpy(), groups, (10,))
        for name, system in ((READS, CANDIDATE), (IGNORES, CHAMPION))
    }
    form = searches.drop_duplicates(S.SEARCH_ID).set_index(S.SEARCH_ID)[QUERY_FORM]
    by_form = form.reindex(tables[READS].index)
    out: dict[str, dict[str, float]] = {}
    for value in sorted(by_form.dropna().unique()):
        rows = by_form == value
        means = {name: round(float(t["ndcg@10"][rows].mean()), 5) for name, t in tables.items()}
        out[str(value)] = {**means, "searches": int(rows.sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    parser.add_argument("--searches", type=int, default=60_000)
    args = parser.parse_args()
    searches_n = 3_000 if args.quick else args.searches

    import pandas as pd

    from searchrank.components.evaluate.config import EvaluateConfig
    from searchrank.components.evaluate.logic import CANDIDATE, CHAMPION, evaluate
    from searchrank.components.train_intent.logic import train_intent
    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core.champion import Champion
    from searchrank.core.contract import FeatureContract, contract_beside
    from searchrank.features import tables as T

    data = training_set(int(searches_n / SEARCHES_PER_ROW), seed=21)
    contract = FeatureContract.load(contract_beside(data))
    generated = data.parent / "data"
    searches_path = generated / T.file_name(T.SEARCHES)
    work = Path(tempfile.mkdtemp(prefix="bench-rewrite-"))
    splits = time_split_files(data, work / "splits")
    config = TrainRankerConfig(epochs=3 if args.quick else 15, patience=4)
    rankers: dict[str, Path] = {}
    featured: dict[str, dict[str, Path]] = {}
    for name, catalogue in ((IGNORES, None), (READS, generated / T.file_name(T.CATALOGUE))):
        featured[name] = {split: work / name / f"{split}.parquet" for split in splits}
        (work / name).mkdir(parents=True)
        train_intent(splits, searches_path, work / name / "intent", featured[name], None, catalogue)
        rankers[name] = work / name / "ranker"
        train_ranker(
            featured[name]["train"],
            featured[name]["valid"],
            rankers[name],
            config,
            contract=contract,
            work_dir=work / name / "ray",
            log=lambda _: None,
        )
    test_path = featured[READS]["test"]
    report, scores = evaluate(
        test_path,
        rankers[READS],
        EvaluateConfig(),
        champion=Champion(IGNORES, rankers[IGNORES]),
        train_path=featured[READS]["train"],
    )
    difference = next(c.result for c in report.comparisons if c.other == CHAMPION)
    test = pd.read_parquet(test_path)
    forms = per_form_ndcg(scores, test, pd.read_parquet(searches_path))
    print(
        json.dumps(
            {
                "bench": "rewrite_features",
                "searches": searches_n,
                "test_queries": report.queries,
                f"ndcg10_{READS}": round(report.systems[CANDIDATE]["ndcg@10"], 5),
                f"ndcg10_{IGNORES}": round(report.systems[CHAMPION]["ndcg@10"], 5),
                "difference": round(difference["difference"], 5),
                "difference_ci": [
                    round(difference["difference_low"], 5),
                    round(difference["difference_high"], 5),
                ],
                "by_form": forms,
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
