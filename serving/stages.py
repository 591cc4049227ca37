"""Where a request's time goes: seconds per stage of ``/rank`` and ``/search``.

A request is timed in these stages:

``rewrite``
    the query rewriter's spelling correction or completion (``/search``);
``intent``
    the query-intent model's class probabilities (``/search``, and ``/rank`` for a ranker that
    reads them);
``retrieval``
    BM25 fused with the two-tower index and the generative retriever, topped up with popular
    items (``/search``);
``decode``
    the generative retriever's constrained beam search: a part of ``retrieval``, not added to
    it (``/search``, where the service has that retriever);
``listener``
    the listener's market from the online store, for a query typed partway whose completions
    favour it: a part of ``retrieval`` too (``/search``);
``online_features``
    the Feast online store and the item cache: the candidates' feature rows;
``feature_processing``
    encoding the rows for the model (the feature processor saved with it);
``model``
    the ranker's scores, the hop to the model's worker and its batcher included;
``response``
    ordering, the explicit-content filter and the response's fields.

The engine marks stages with :func:`stage`; the service opens one :func:`timed_request` per
request and exports the totals as Prometheus histograms (``searchrank_stage_seconds``), which
``bench_serve`` reads back for its breakdown. Outside a timed request :func:`stage` costs one
context-variable lookup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

STAGES = (
    "rewrite",
    "intent",
    "retrieval",
    "decode",
    "listener",
    "online_features",
    "feature_processing",
    "model",
    "response",
)

_current: ContextVar[dict[str, float] | None] = ContextVar("searchrank_stages", default=None)


@contextmanager
def timed_request() -> Iterator[dict[str, float]]:
    """Time the stages run inside the block; yields their seconds by stage (filled as they
    end: read it after the block)."""
    seconds = dict.fromkeys(STAGES, 0.0)
    token = _current.set(seconds)
    try:
        yield seconds
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the block's wall time to stage ``name`` of the current timed request, if any. A stage
    may run several times in one request (``/search`` ranks twice when the explicit-content
    filter must fill the list); its times add up."""
    seconds = _current.get()
    if seconds is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] += time.perf_counter() - started
