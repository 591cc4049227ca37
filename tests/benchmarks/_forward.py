"""The ranker's forward pass alone, timed: what ``bench_serve`` (model-only cost on CPU) and
``bench_model_gpu`` (the model stage on a card) both measure, on random candidate lists."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from searchrank.core.model import Encoded, InferenceRanker


def random_candidates(items: int, n_numeric: int, cardinalities: Sequence[int]) -> Encoded:
    """One list of ``items`` candidates with random inputs of the model's shape."""
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, c, items) for c in cardinalities]
    return {
        "dense": rng.normal(size=(items, n_numeric)).astype(np.float32),
        "codes": np.stack(codes, axis=1) if codes else np.zeros((items, 0), dtype=np.int64),
    }


def forward_ms(model: InferenceRanker, request: Encoded, calls: int, warm_up: int) -> list[float]:
    """Milliseconds of each of ``calls`` scorings of ``request``, after ``warm_up`` unmeasured
    ones (the scores' copy back to the host waits for a card to finish)."""
    times = []
    for _ in range(warm_up + calls):
        started = time.perf_counter()
        model.score([request])
        times.append((time.perf_counter() - started) * 1000)
    return times[warm_up:]
