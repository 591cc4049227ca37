"""Benchmark: ``validate_data`` on a 1,000,000-row training set against reading it into pandas.

The training set is the later half of a synthetic ``ranker_v1`` training set (about 60 columns)
and the reference, for the drift check, its earlier half: the same world two weeks before, as
the last blessed run's data would be. Timed, in one fresh
process after imports: ``pd.read_parquet`` of the file (the baseline), and the whole
validation (reading, the generated suites on every batch, the drift check on a sample of
``drift_sample`` rows per dataset, and the Data Docs site). The clean data must pass.
The last line is the JSON result.

Usage: python tests/benchmarks/bench_validate.py [--quick] [--rows N] [--repeats K]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import time_split, training_set

TARGET_RATIO = 10.0


def run_worker(data: Path, reference: Path, repeats: int) -> dict[str, Any]:
    import pandas as pd

    from searchrank.components.validate_data.config import ValidationConfig
    from searchrank.components.validate_data.logic import validate
    from searchrank.core.contract import FeatureContract, contract_beside

    config = ValidationConfig()
    contract = FeatureContract.load(contract_beside(data))
    import great_expectations  # noqa: F401

    read, checks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        frame = pd.read_parquet(data)
        read.append(time.perf_counter() - start)
        del frame
        with tempfile.TemporaryDirectory() as docs:
            start = time.perf_counter()
            report = validate(data, contract, config, reference=reference, docs_dir=Path(docs))
            checks.append(time.perf_counter() - start)
        if not report.success:
            raise SystemExit(f"the clean training set failed validation: {report.failed()}")
    return {
        "read_s": read,
        "validate_s": checks,
        "rows": report.rows,
        "expectations": report.expectations,
        "warnings": len(report.warnings),
        "max_psi": max(report.drift.values()) if report.drift else None,
        "drift_sample": report.drift_sample,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, one repeat")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker[0], args.worker[1], args.repeats)))
        return
    rows, repeats = (100_000, 1) if args.quick else (args.rows, args.repeats)
    reference, data = time_split(training_set(2 * rows, seed=1))
    worker = [sys.executable, __file__, "--worker", str(data), str(reference)]
    done = subprocess.run(
        [*worker, "--repeats", str(repeats)], check=True, capture_output=True, text=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    import pyarrow.parquet as pq

    read_s = statistics.median(result["read_s"])
    validate_s = statistics.median(result["validate_s"])
    ratio = validate_s / read_s
    print(
        json.dumps(
            {
                "bench": "validate",
                "rows": result["rows"],
                "columns": len(pq.read_schema(data).names),
                "validate_s": round(validate_s, 3),
                "read_s": round(read_s, 3),
                "ratio": round(ratio, 2),
                "target": TARGET_RATIO,
                "met": ratio <= TARGET_RATIO,
                "peak_rss_mb": round(result["peak_rss_mb"]),
                "expectations": result["expectations"],
                "warnings": result["warnings"],
                "max_psi": result["max_psi"],
                "drift_sample": result["drift_sample"],
                "repeats": repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
