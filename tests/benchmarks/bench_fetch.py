"""Benchmark: point-in-time join of a 1,000,000-row entity dataframe through ``fetch_features``.

Compared, in the same run and on the same parquet files:
- ``searchrank``: the ``fetch_features`` logic (Feast API, searchrank's ASOF DuckDB offline
  store), entity parquet in, training-set parquet out;
- ``duckdb_asof`` (the baseline, the practical limit): one hand-written DuckDB query that
  ASOF-joins the same five feature views with the same TTLs and writes parquet;
- ``feast_duckdb`` (context): Feast's own DuckDB offline store on the same definitions.

The feature service is the five batch feature views of ``ranker_v1`` (its request-time text
match is left out: the hand-written baseline has nothing like it; its cost is reported apart).
Each method runs in a fresh process so that its peak RSS is its own. The searchrank output is
checked against the baseline's, value for value. The last line is the JSON result.

Usage: python tests/benchmarks/bench_fetch.py [--quick] [--rows N] [--repeats K]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "pit_benchmark"
TARGET_RATIO = 0.5
TARGET_RSS_MB = 4096


def _paths(workdir: Path) -> dict[str, Path]:
    return {
        "data": workdir / "data",
        "repo": workdir / "repo",
        "stock_repo": workdir / "stock_repo",
        "entities": workdir / "entities.parquet",
        "out": workdir / "out",
    }


def prepare(workdir: Path, rows: int) -> None:
    """Generate enough searches for ``rows`` impressions, then apply the Feast repositories."""
    import pyarrow.parquet as pq
    import yaml
    from feast import FeatureService

    from searchrank.features import definitions, tables
    from searchrank.features.generator.config import GeneratorConfig
    from searchrank.features.generator.generate import generate
    from searchrank.features.store import apply_definitions, create_repo, open_store

    paths = _paths(workdir)
    searches = rows // 19 + 1_000
    impressions = paths["data"] / tables.file_name(tables.IMPRESSIONS)
    if not impressions.exists() or pq.read_metadata(impressions).num_rows < rows:
        generate(
            GeneratorConfig(searches=searches, seed=1, end_date=date(2026, 11, 1)), paths["data"]
        )
    pq.write_table(pq.read_table(impressions).slice(0, rows), paths["entities"])
    service = FeatureService(name=SERVICE, features=definitions.FEATURE_VIEWS)

    store = open_store(create_repo(paths["repo"], paths["data"]))
    apply_definitions(store)
    store.apply([service])

    # Feast's stock DuckDB store resolves relative source paths against the working directory:
    # it runs from the data folder.
    stock = create_repo(paths["stock_repo"], paths["data"])
    config = yaml.safe_load((stock / "feature_store.yaml").read_text())
    config["offline_store"] = {"type": "duckdb"}
    config["registry"] = str((stock / "data" / "registry.db").resolve())
    (stock / "feature_store.yaml").write_text(yaml.safe_dump(config))
    stock_store = open_store(stock)
    stock_store.apply([*definitions.ENTITIES, *definitions.FEATURE_VIEWS, service])
    paths["out"].mkdir(exist_ok=True)


def baseline_sql(repo: Path, entities: Path, data: Path, out: Path) -> str:
    """The hand-written DuckDB ASOF JOIN of the five batch views, with the same TTLs.

    Only names and TTLs come from the registered feature views; the query is written out here.
    """
    from searchrank.features import definitions
    from searchrank.features.store import open_store

    store = open_store(repo)
    views = [store.get_feature_view(v.name) for v in definitions.FEATURE_VIEWS]
    joins, selected = [], []
    for n, view in enumerate(views):
        alias = f"v{n}"
        source = view.batch_source
        keys = [c.name for c in view.entity_columns]
        on = " AND ".join(f"e.{k} = {alias}.{k}" for k in keys)
        ts = source.timestamp_field
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{data / source.path}') {alias} "
            f"ON {on} AND e.event_timestamp >= {alias}.{ts}"
        )
        ttl = view.ttl.total_seconds() if view.ttl else 0
        for feature in view.features:
            value = f"{alias}.{feature.name}"
            if ttl:
                value = (
                    f"CASE WHEN {alias}.{ts} >= e.event_timestamp - INTERVAL {int(ttl)} SECOND "
                    f"THEN {value} END"
                )
            selected.append(f'{value} AS "{view.name}__{feature.name}"')
    return (
        f"COPY (SELECT e.*, {', '.join(selected)} FROM read_parquet('{entities}') e "
        f"{' '.join(joins)}) TO '{out}' (FORMAT parquet)"
    )


def run_method(method: str, workdir: Path, repeats: int) -> dict[str, Any]:
    """Run one method ``repeats`` times in this process; report times and peak RSS."""
    paths = _paths(workdir)
    out = paths["out"] / f"{method}.parquet"
    seconds = []
    # Imports are a fixed cost per process, not throughput: load them before the clock starts.
    import duckdb
    import feast  # noqa: F401

    import searchrank.features.offline_store  # noqa: F401

    if method == "searchrank":
        from searchrank.components.fetch_features.logic import fetch_features

        for _ in range(repeats):
            start = time.perf_counter()
            fetch_features(paths["entities"], paths["repo"], SERVICE, out)
            seconds.append(time.perf_counter() - start)
    elif method == "duckdb_asof":
        import duckdb

        sql = baseline_sql(paths["repo"], paths["entities"], paths["data"], out)
        for _ in range(repeats):
            start = time.perf_counter()
            con = duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
            con.execute(sql)
            con.close()
            seconds.append(time.perf_counter() - start)
    elif method == "feast_duckdb":
        import os

        import pyarrow.parquet as pq

        from searchrank.features.store import open_store

        store = open_store(paths["stock_repo"].resolve())
        os.chdir(paths["data"])
        for _ in range(1 if repeats > 1 else repeats):
            start = time.perf_counter()
            entities = pq.read_table(paths["entities"]).to_pandas()
            result = store.get_historical_features(
                entity_df=entities,
                features=store.get_feature_service(SERVICE),
                full_feature_names=True,
            ).to_arrow()
            pq.write_table(result, out)
            seconds.append(time.perf_counter() - start)
    elif method == "searchrank_with_text_match":
        from searchrank.components.fetch_features.logic import fetch_features
        from searchrank.core.names import RANKER_FEATURE_SERVICE

        start = time.perf_counter()
        fetch_features(paths["entities"], paths["repo"], RANKER_FEATURE_SERVICE, out)
        seconds.append(time.perf_counter() - start)
    else:
        raise SystemExit(f"unknown method {method!r}")
    import pyarrow.parquet as pq

    return {
        "method": method,
        "seconds": seconds,
        "rows_out": pq.read_metadata(out).num_rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(method: str, workdir: Path, repeats: int) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--workdir",
            str(workdir),
            "--repeats",
            str(repeats),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_same_result(workdir: Path) -> None:
    """The searchrank training set equals the baseline's, row for row and value for value."""
    import pandas as pd

    out = _paths(workdir)["out"]
    ours = pd.read_parquet(out / "searchrank.parquet")
    theirs = pd.read_parquet(out / "duckdb_asof.parquet")
    keys = ["search_id", "position"]
    ours = ours.sort_values(keys).reset_index(drop=True)
    theirs = theirs.sort_values(keys).reset_index(drop=True)[ours.columns]
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, one repeat")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".searchrank" / "bench" / "fetch")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_method(args.worker, args.workdir, args.repeats)))
        return
    rows, repeats = (100_000, 1) if args.quick else (args.rows, args.repeats)
    workdir = args.workdir / str(rows)
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(workdir, rows)
    ours = measure("searchrank", workdir, repeats)
    baseline = measure("duckdb_asof", workdir, repeats)
    check_same_result(workdir)
    stock = measure("feast_duckdb", workdir, 1)
    with_text = measure("searchrank_with_text_match", workdir, 1)
    ours_s, base_s = statistics.median(ours["seconds"]), statistics.median(baseline["seconds"])
    for result in (ours, baseline, stock, with_text):
        print(
            f"{result['method']:>28}: {statistics.median(result['seconds']):6.2f} s, "
            f"{result['rows_out']:,} rows, peak RSS {result['peak_rss_mb']:,.0f} MB",
            file=sys.stderr,
        )
    ratio = base_s / ours_s
    print(
        json.dumps(
            {
                "bench": "fetch",
                "rows": rows,
                "rows_per_s": round(rows / ours_s),
                "duckdb_rows_per_s": round(rows / base_s),
                "ratio": round(ratio, 3),
                "target": TARGET_RATIO,
                "peak_rss_mb": round(ours["peak_rss_mb"]),
                "rss_target_mb": TARGET_RSS_MB,
                "met": ratio >= TARGET_RATIO and ours["peak_rss_mb"] <= TARGET_RSS_MB,
                "feature_views": 5,
                "feast_duckdb_rows_per_s": round(rows / statistics.median(stock["seconds"])),
                "feast_duckdb_rows_out": stock["rows_out"],
                "with_text_match_rows_per_s": round(rows / with_text["seconds"][0]),
                "repeats": repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
