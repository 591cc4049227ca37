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

``--engine ray`` measures instead ``fetch_features`` through the Ray offline store
(``features/ray_offline_store.py``, local Ray on this machine) against the DuckDB store on the
same data, each in a fresh process: rows per second, the ratio, peak RSS of the step's process and
of the largest Ray process, and the join strategy each view got. Its results are checked equal.
``--quick`` is then 1,000,000 rows and the default 10,000,000. Above a million rows the entity
table repeats the generated impressions, one second later per copy, over the same feature data
(the generator's time grows faster than its size).

Usage: python tests/benchmarks/bench_fetch.py [--engine duckdb|ray] [--quick] [--rows N]
    [--repeats K] [--broadcast-mb MB]
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


GENERATED_ROWS_MAX = 1_000_000
"""Impressions generated at most: the generator's time grows faster than its size (10 M rows did
not finish in 12 minutes). Larger entity tables repeat these rows (see :func:`entity_rows`)."""
RAY_CPUS = 2
"""Logical CPUs of the benchmark's local Ray: this machine's cores."""
RAY_OBJECT_STORE = 6 * 1024**3
"""Bytes of Ray's object store: the 10-million-row entity table and its blocks fit."""


def _paths(workdir: Path) -> dict[str, Path]:
    return {
        "data": workdir / "data",
        "repo": workdir / "repo",
        "ray_repo": workdir / "ray_repo",
        "stock_repo": workdir / "stock_repo",
        "entities": workdir / "entities.parquet",
        "out": workdir / "out",
    }


def prepare(workdir: Path, rows: int, broadcast_mb: int) -> None:
    """Generate enough searches for ``rows`` impressions, then apply the Feast repositories."""
    import pyarrow.parquet as pq
    import yaml
    from feast import FeatureService

    from searchrank.features import definitions, tables
    from searchrank.features.generator.config import GeneratorConfig
    from searchrank.features.generator.generate import generate
    from searchrank.features.store import apply_definitions, create_repo, open_store, template

    paths = _paths(workdir)
    generated = min(rows, GENERATED_ROWS_MAX)
    searches = generated // 19 + 1_000
    impressions = paths["data"] / tables.file_name(tables.IMPRESSIONS)
    if not impressions.exists() or pq.read_metadata(impressions).num_rows < generated:
        generate(
            GeneratorConfig(searches=searches, seed=1, end_date=date(2026, 11, 1)), paths["data"]
        )
    entity_rows(pq.read_table(impressions).slice(0, generated), rows, paths["entities"])
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

    # The Ray store: the embedded repository with feature_store.ray.yaml's offline store and
    # engine, on a local Ray.
    ray_repo = create_repo(paths["ray_repo"], paths["data"])
    config = yaml.safe_load((ray_repo / "feature_store.yaml").read_text())
    offline = {**template("ray")["offline_store"], "data_root": str(paths["data"].resolve())}
    del offline["ray_address"]
    offline["broadcast_join_threshold_mb"] = broadcast_mb
    offline["ray_conf"] = {"num_cpus": RAY_CPUS, "object_store_memory": RAY_OBJECT_STORE}
    config["offline_store"] = offline
    (ray_repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    ray_store = open_store(ray_repo)
    apply_definitions(ray_store)
    ray_store.apply([service])
    paths["out"].mkdir(exist_ok=True)


def entity_rows(impressions: Any, rows: int, out: Path) -> None:
    """Write ``rows`` entity rows: the impressions, then copies of them each a second later
    than the last (copy k at +k s), so that every copy is a distinct, valid point-in-time
    lookup against the same feature data."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with pq.ParquetWriter(out, impressions.schema) as writer:
        written, copy = 0, 0
        while written < rows:
            part = impressions.slice(0, rows - written)
            if copy:
                ts = part.column("event_timestamp")
                shifted = pc.add(ts, pa.scalar(copy * 1_000_000, pa.duration("us")))
                part = part.set_column(
                    part.schema.get_field_index("event_timestamp"),
                    part.schema.field("event_timestamp"),
                    shifted.cast(ts.type),
                )
            writer.write_table(part)
            written += part.num_rows
            copy += 1


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
    extra: dict[str, Any] = {}
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
    elif method == "searchrank_ray":
        from searchrank.components.fetch_features.logic import fetch_features

        with RayProcessMemory() as ray_memory:
            for _ in range(repeats):
                start = time.perf_counter()
                fetch_features(paths["entities"], paths["ray_repo"], SERVICE, out)
                seconds.append(time.perf_counter() - start)
        extra = {"ray_peak_rss_mb": ray_memory.peak_mb, "strategies": join_strategies(paths)}
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
        **extra,
    }


class RayProcessMemory:
    """The largest peak RSS of any Ray process (workers, raylet, GCS) while the block runs,
    sampled every 0.2 s: Ray's processes are not this process's children."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RayProcessMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            for process in psutil.process_iter(["name", "cmdline", "memory_info"]):
                line = " ".join(process.info["cmdline"] or [])
                if process.info["name"].startswith("ray::") or "ray/_private" in line:
                    rss = process.info["memory_info"].rss / 1024**2
                    self.peak_mb = max(self.peak_mb, rss)


def join_strategies(paths: dict[str, Path]) -> dict[str, str]:
    """The strategy the Ray store chose for each view (module docstring of ray_offline_store)."""
    from searchrank.features import definitions
    from searchrank.features.offline_store import view_join
    from searchrank.features.ray_join import Sizing, plan_join
    from searchrank.features.store import open_store

    store = open_store(paths["ray_repo"])
    settings = store.config.offline_store
    sizing = Sizing(
        settings.broadcast_join_threshold_mb,
        settings.target_partition_size_mb,
        settings.max_parallelism_multiplier,
        RAY_CPUS,
    )
    refs = [f"{v.name}:{f.name}" for v in definitions.FEATURE_VIEWS for f in v.features]
    plans = {}
    for view in definitions.FEATURE_VIEWS:
        joined = view_join(store.config, store.get_feature_view(view.name), refs, True)
        plan = plan_join(joined, sizing)
        plans[view.name] = f"{plan.strategy} ({plan.size_bytes / 1024**2:.0f} MB)"
    return plans


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
    parser.add_argument("--engine", choices=["duckdb", "ray"], default="duckdb")
    parser.add_argument("--quick", action="store_true", help="duckdb: 100,000 rows; ray: 1 M")
    parser.add_argument("--rows", type=int, help="default: duckdb 1 M, ray 10 M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--broadcast-mb",
        type=int,
        help="the Ray store's broadcast_join_threshold_mb (default: feature_store.ray.yaml's)",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".searchrank" / "bench" / "fetch")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_method(args.worker, args.workdir, args.repeats)))
        return
    ray = args.engine == "ray"
    quick_rows, full_rows = (1_000_000, 10_000_000) if ray else (100_000, 1_000_000)
    rows = quick_rows if args.quick else (args.rows or full_rows)
    repeats = 1 if args.quick or ray else args.repeats
    from searchrank.features.store import template

    broadcast_mb = args.broadcast_mb
    if broadcast_mb is None:
        broadcast_mb = template("ray")["offline_store"]["broadcast_join_threshold_mb"]
    workdir = args.workdir / str(rows)
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(workdir, rows, broadcast_mb)
    if ray:
        report_ray(workdir, rows, broadcast_mb)
    else:
        report_duckdb(workdir, rows, repeats)


def _log(result: dict[str, Any]) -> None:
    print(
        f"{result['method']:>28}: {statistics.median(result['seconds']):6.2f} s, "
        f"{result['rows_out']:,} rows, peak RSS {result['peak_rss_mb']:,.0f} MB",
        file=sys.stderr,
    )


def report_ray(workdir: Path, rows: int, broadcast_mb: int) -> None:
    """``--engine ray``: the Ray store against the DuckDB store on the same data."""
    import pandas as pd

    # Twice in one process: the first fetch starts Ray and its workers (as a pipeline step does),
    # the second finds them warm (as on a long-running cluster).
    ray = measure("searchrank_ray", workdir, 2)
    duck = measure("searchrank", workdir, 1)
    for result in (ray, duck):
        _log(result)
    out = _paths(workdir)["out"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "searchrank_ray.parquet"), pd.read_parquet(out / "searchrank.parquet")
    )
    (ray_s, warm_s), duck_s = ray["seconds"], duck["seconds"][0]
    print(
        json.dumps(
            {
                "bench": "fetch",
                "engine": "ray",
                "rows": rows,
                "rows_per_s": round(rows / ray_s),
                "duckdb_rows_per_s": round(rows / duck_s),
                "ratio": round(duck_s / ray_s, 3),
                "warm_rows_per_s": round(rows / warm_s),
                "warm_ratio": round(duck_s / warm_s, 3),
                "target": None,
                "peak_rss_mb": round(ray["peak_rss_mb"]),
                "ray_process_peak_rss_mb": round(ray["ray_peak_rss_mb"]),
                "duckdb_peak_rss_mb": round(duck["peak_rss_mb"]),
                "ray_cpus": RAY_CPUS,
                "warm_rows_per_s_per_cpu": round(rows / warm_s / RAY_CPUS),
                "broadcast_join_threshold_mb": broadcast_mb,
                "strategies": ray["strategies"],
                "same_result": True,
            }
        )
    )


def report_duckdb(workdir: Path, rows: int, repeats: int) -> None:
    """The default: searchrank's DuckDB store against the hand-written ASOF join."""
    ours = measure("searchrank", workdir, repeats)
    baseline = measure("duckdb_asof", workdir, repeats)
    check_same_result(workdir)
    stock = measure("feast_duckdb", workdir, 1)
    with_text = measure("searchrank_with_text_match", workdir, 1)
    ours_s, base_s = statistics.median(ours["seconds"]), statistics.median(baseline["seconds"])
    for result in (ours, baseline, stock, with_text):
        _log(result)
    ratio = base_s / ours_s
    print(
        json.dumps(
            {
                "bench": "fetch",
                "engine": "duckdb",
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
