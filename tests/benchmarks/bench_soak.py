"""Benchmark: the served Bento under bounded load for 10 minutes: no memory or descriptor leak.

The Bento of ``bench_serve`` (ranker, two-tower retriever, Voyager index, intent model, SQLite
online store) under ``bentoml serve``, loaded by ``--concurrency`` client threads sending
``/rank`` (100 items) and ``/search`` (top 10) requests in turn for ``--minutes``. Every
``SAMPLE_S`` seconds the resident memory and the open file descriptors of the whole process tree
(the server and its workers) are recorded. The baseline is the tree after the same load has
sent every request body once, and for at least ``--warmup`` seconds: by then the bounded caches
a first pass fills (item features, text normalisation, the batcher's buffers) are full, so the
growth measured is what repeating the load adds, not start-up or first sight of the data.
Targets: RSS at the end at most 10 % above the baseline, no more open descriptors than at the
baseline (the issue's two), and no failed request: no 500 and no request left unanswered. A
503 is counted and reported apart (``shed``): it is the service keeping its online-store budget
on a saturated machine, the bounded answer ``tests/serving/test_faults.py`` requires, not a
failure. The last line is the JSON result.

Usage: python tests/benchmarks/bench_soak.py [--quick] [--minutes M] [--concurrency C]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import prepare

RSS_GROWTH_TARGET = 0.10
SAMPLE_S = 5.0


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def footprint(pid: int) -> tuple[float, int]:
    """Resident memory (MiB) and open file descriptors of a process and its descendants."""
    rss, fds = 0, 0
    for process in tree(pid):
        try:
            rss += process.memory_info().rss
            fds += process.num_fds()
        except psutil.NoSuchProcess:
            continue
    return rss / 2**20, fds


class Soak:
    """Client threads cycling through the bodies until stopped; status counts and latencies."""

    def __init__(self, url: str, bodies: list[tuple[str, dict[str, Any]]], clients: int):
        self.url, self.bodies, self.clients = url, bodies, clients
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(clients)
        ]

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            k = offset
            while not self._stop.is_set():
                path, body = self.bodies[k % len(self.bodies)]
                started = time.perf_counter()
                try:
                    status = client.post(path, json=body).status_code
                except httpx.TransportError:
                    status = 0  # no answer at all: counted, never hidden
                with self._lock:
                    self.statuses[status] += 1
                    self.latencies.append((time.perf_counter() - started) * 1000)
                k += self.clients

    def sent(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="200 searches, 1 minute after a 20 s warm-up"
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="least seconds before the baseline"
    )
    args = parser.parse_args()
    minutes, warmup = (1.0, 20.0) if args.quick else (args.minutes, args.warmup)

    from searchrank.serving.bento import serve

    setup = prepare(2_000)
    bodies: list[tuple[str, dict[str, Any]]] = []
    for body in setup.bodies[:200] if args.quick else setup.bodies:
        bodies.append(("/rank", body))
        bodies.append(("/search", {"query": body["query"], "user_id": body["user_id"], "k": 10}))

    samples: list[dict[str, float]] = []
    with serve(setup.bento, setup.repo) as running:
        pid = running.process.pid
        soak = Soak(running.url, bodies, args.concurrency)
        soak.start()
        warming = time.monotonic()
        while time.monotonic() - warming < warmup or soak.sent() < len(bodies):
            time.sleep(1)
        warmed_s = time.monotonic() - warming
        started = time.monotonic()
        baseline_requests = sum(soak.statuses.values())
        while time.monotonic() - started < minutes * 60:
            rss, fds = footprint(pid)
            samples.append({"s": round(time.monotonic() - started, 1), "rss_mib": rss, "fds": fds})
            print(f"{samples[-1]['s']:7.1f} s  rss {rss:8.1f} MiB  fds {fds}", flush=True)
            time.sleep(SAMPLE_S)
        rss, fds = footprint(pid)
        samples.append({"s": round(time.monotonic() - started, 1), "rss_mib": rss, "fds": fds})
        soak.stop()
        processes = len(tree(pid))

    first, last = samples[0], samples[-1]
    growth = last["rss_mib"] / first["rss_mib"] - 1
    shed = soak.statuses.get(503, 0)
    server_errors = sum(
        n for status, n in soak.statuses.items() if (status >= 500 and status != 503) or status == 0
    )
    latencies = np.asarray(soak.latencies)
    print(
        json.dumps(
            {
                "bench": "soak",
                "minutes": minutes,
                "warmup_s": round(warmed_s, 1),
                "bodies": len(bodies),
                "concurrency": args.concurrency,
                "requests": int(sum(soak.statuses.values())),
                "requests_measured": int(sum(soak.statuses.values()) - baseline_requests),
                "statuses": {str(k): v for k, v in sorted(soak.statuses.items())},
                "server_errors": server_errors,
                "shed": shed,
                "p50_ms": round(float(np.percentile(latencies, 50)), 1),
                "p99_ms": round(float(np.percentile(latencies, 99)), 1),
                "rss_baseline_mib": round(first["rss_mib"], 1),
                "rss_end_mib": round(last["rss_mib"], 1),
                "rss_max_mib": round(max(s["rss_mib"] for s in samples), 1),
                "rss_growth": round(growth, 4),
                "rss_growth_target": RSS_GROWTH_TARGET,
                "fds_baseline": first["fds"],
                "fds_end": last["fds"],
                "processes": processes,
                "met": growth <= RSS_GROWTH_TARGET
                and last["fds"] <= first["fds"]
                and server_errors == 0,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
