"""The served Bento when its dependencies fail: the online store slow or down, the model's
worker killed. Real ``bentoml serve``, real ``redis-server`` (stopped and started again by the
test), a delaying TCP proxy in between, bounded load from a few client threads.

What must hold: every request answers within a bounded time, with 200 or with 503 +
``Retry-After`` naming the dependency (never another 5xx, never a hang); ``/readyz`` says
not-ready while the store is down; everything recovers without restarting the service.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from services import DelayProxy, RedisServer, command_line
from serving.conftest import LoggedDay

from searchrank.core import schema as S
from searchrank.serving.bento import RunningService, serve

pytestmark = [pytest.mark.slow, pytest.mark.services]
TIMEOUT_MS = 500
"""The service's online-store budget per request in these tests (healthy lookups take tens of
milliseconds; a loaded machine can stretch a few past a shorter budget)."""
MODEL_TIMEOUT_MS = 2000
"""The service's budget for the model's scores in these tests."""
SLACK_S = 1.0
"""What a request may take beyond the budget and the healthy p99: scoring, and a busy machine
(CI runs these beside another test process training models; it measured a request 0.88 s past
the budget and the healthy p99 there). Each fault below lasts longer than budget plus slack, so a
request that waited for the fault instead of its budget still fails the bound."""
STORE_DELAY_S = 3.0
"""How slow the slow online store answers at least (twice the budget plus the healthy p99 and
the slack, where that is more)."""


@dataclass(frozen=True)
class Outcome:
    path: str
    started: float
    seconds: float
    status: int
    retry_after: str | None
    body: Any


class Load:
    """``clients`` threads sending the given requests in turn until the block ends."""

    def __init__(self, url: str, requests: list[tuple[str, dict[str, Any]]], clients: int = 4):
        self.url, self.requests, self.clients = url, requests, clients
        self.outcomes: list[Outcome] = []
        self._lock, self._stop = threading.Lock(), threading.Event()

    def _client(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            k = offset
            while not self._stop.is_set():
                path, body = self.requests[k % len(self.requests)]
                started = time.monotonic()
                response = client.post(path, json=body)
                try:
                    payload: Any = response.json()
                except ValueError:
                    payload = response.text
                outcome = Outcome(
                    path,
                    started,
                    time.monotonic() - started,
                    response.status_code,
                    response.headers.get("retry-after"),
                    payload,
                )
                with self._lock:
                    self.outcomes.append(outcome)
                k += 1

    def __enter__(self) -> Load:
        self._threads = [
            threading.Thread(target=self._client, args=(k,), daemon=True)
            for k in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def between(self, start: float, end: float = float("inf")) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.started < end]


def p99(outcomes: list[Outcome]) -> float:
    return float(np.quantile([o.seconds for o in outcomes], 0.99))


def wait_for(condition: Any, timeout_s: float) -> float:
    """Seconds until ``condition()`` holds; fails after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, "did not happen in time"
        time.sleep(0.1)
    return time.monotonic() - started


def assert_unavailable_answers(outcomes: list[Outcome], *dependencies: str) -> list[Outcome]:
    """Every outcome is a 200 or a 503 with Retry-After naming one of ``dependencies``; the
    503s."""
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, statuses
    refused = [o for o in outcomes if o.status == 503]
    for o in refused:
        assert o.retry_after is not None and int(o.retry_after) > 0
        assert isinstance(o.body, dict) and o.body["dependency"] in dependencies, o.body
    return refused


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def proxy(redis: RedisServer) -> Iterator[DelayProxy]:
    proxy = DelayProxy(redis.address)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def running(
    bento: str,
    proxy: DelayProxy,
    feature_repo: Path,
    logged_day: LoggedDay,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    """The Bento over a Redis online store reached through the proxy, with the socket
    timeouts the cluster's ``feature_store.yaml`` sets."""
    from searchrank.components.package_service.logic import staging_repo

    redis = {
        "type": "redis",
        "connection_string": f"{proxy.address},socket_timeout=1,socket_connect_timeout=1",
    }
    until = logged_day.rows[S.EVENT_TIMESTAMP].max()
    repo = staging_repo(feature_repo, tmp_path_factory.mktemp("faults"), until, online_store=redis)
    env = {
        "SEARCHRANK_ONLINE_TIMEOUT_MS": str(TIMEOUT_MS),
        "SEARCHRANK_MODEL_TIMEOUT_MS": str(MODEL_TIMEOUT_MS),
        # The ranker model in a worker of its own (it runs in-process by default), so that the
        # killed-worker test has a separate model to lose.
        "SEARCHRANK_MODEL_SERVICE": "1",
    }
    with serve(bento, repo, env=env) as service:
        yield service


@pytest.fixture(scope="module")
def requests(logged_day: LoggedDay) -> list[tuple[str, dict[str, Any]]]:
    """Logged searches, as /rank and /search requests."""
    out: list[tuple[str, dict[str, Any]]] = []
    rows = logged_day.rows
    for search_id in rows[S.SEARCH_ID].drop_duplicates().head(10):
        search = rows[rows[S.SEARCH_ID] == search_id]
        query, user = str(search[S.QUERY].iloc[0]), int(search[S.USER_ID].iloc[0])
        out.append(("/rank", {"query": query, "user_id": user, "item_ids": [*search[S.ITEM_ID]]}))
        out.append(("/search", {"query": query, "user_id": user, "k": 10}))
    return out


def ready(running: RunningService) -> bool:
    return httpx.get(f"{running.url}/readyz", timeout=10).status_code == 200


def test_a_slow_online_store_costs_a_bounded_503_within_the_budget(
    running: RunningService, proxy: DelayProxy, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    with Load(running.url, requests) as load:
        time.sleep(3)
        healthy = load.between(0)
        # What a request may take when the service bounds its wait for the store: a store
        # twice as slow tells a bounded wait from waiting for the store, however loaded the
        # machine (a healthy p99 of 1.7 s once made a fixed 3 s delay too short to tell).
        budget = TIMEOUT_MS / 1000 + p99(healthy) + SLACK_S
        slow_from = time.monotonic()
        proxy.delay_s = max(STORE_DELAY_S, 2 * budget)
        time.sleep(4)
        slow_until = time.monotonic()
        proxy.delay_s = 0.0
        recovery = wait_for(
            lambda: [o.status for o in load.between(time.monotonic() - 1)][-4:] == [200] * 4,
            timeout_s=60,
        )
    assert_unavailable_answers(healthy, "online store")
    assert sum(o.status == 200 for o in healthy) >= 0.9 * len(healthy), "a healthy store serves"
    slow = load.between(slow_from + 0.1, slow_until)
    refused = assert_unavailable_answers(slow, "online store")
    assert len(refused) >= len(slow) // 2, "a store slower than the budget must cost 503s"
    worst = sorted(slow, key=lambda o: -o.seconds)[:6]
    assert p99(slow) <= budget, (
        p99(slow),
        budget,
        [(o.path, o.seconds, o.started - slow_from, o.status) for o in worst],
        [(o.path, o.seconds) for o in healthy],
    )
    print(
        f"slow store: {len(slow)} requests, {len(refused)} 503, p99 {p99(slow) * 1000:.0f} ms "
        f"(healthy {p99(healthy) * 1000:.0f} ms), recovered in {recovery:.1f} s"
    )


def test_the_online_store_down_answers_503_and_recovers_without_a_restart(
    running: RunningService, redis: RedisServer, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    pid = running.process.pid
    with Load(running.url, requests) as load:
        time.sleep(3)
        healthy = load.between(0)
        redis.stop()
        down_from = time.monotonic()
        time.sleep(4)
        not_ready = httpx.get(f"{running.url}/readyz", timeout=10)
        down_until = time.monotonic()
        redis.start()
        back = time.monotonic()
        recovery = wait_for(
            lambda: [o.status for o in load.between(back)][-4:] == [200] * 4, timeout_s=60
        )
    # Requests answered while Redis was down (one still waiting when it came back may succeed).
    down = [o for o in load.between(down_from, down_until) if o.started + o.seconds < down_until]
    refused = assert_unavailable_answers(down, "online store")
    assert down and len(refused) == len(down), "no request succeeds without the store"
    worst = sorted(down, key=lambda o: -o.seconds)[:6]
    assert max(o.seconds for o in down) <= TIMEOUT_MS / 1000 + p99(healthy) + SLACK_S, (
        p99(healthy),
        [(o.path, o.seconds, o.started - down_from) for o in worst],
    )
    assert not_ready.status_code == 503 and not_ready.headers.get("retry-after")
    assert ready(running) and running.process.pid == pid and running.process.poll() is None
    every = load.between(0)
    print(
        f"store down: {len(every)} requests, {len(refused)} 503 while down, "
        f"max {max(o.seconds for o in down) * 1000:.0f} ms, recovered {recovery:.1f} s "
        "after Redis returned"
    )


def model_worker(running: RunningService) -> psutil.Process:
    """The worker process of the ranker model's service (``RankerModel``)."""
    workers = [
        p
        for p in psutil.Process(running.process.pid).children(recursive=True)
        if "RankerModel" in command_line(p) or "ranker-model" in command_line(p)
    ]
    assert len(workers) == 1, [command_line(p) for p in workers]
    return workers[0]


def test_a_killed_model_worker_costs_503s_until_bentoml_restarts_it(
    running: RunningService, requests: list[tuple[str, dict[str, Any]]]
) -> None:
    assert wait_for(lambda: ready(running), timeout_s=60) >= 0
    worker = model_worker(running)
    with Load(running.url, requests) as load:
        time.sleep(2)
        killed = time.monotonic()
        # Frozen first, so that requests are surely in flight on the dying worker (a kill
        # alone can fall between two requests, and the client's one retry may then reach the
        # new worker in time); then killed, for BentoML to restart it.
        os.kill(worker.pid, signal.SIGSTOP)
        time.sleep(MODEL_TIMEOUT_MS / 1000 + 2 * SLACK_S)
        os.kill(worker.pid, signal.SIGKILL)
        recovery = wait_for(
            lambda: [o.status for o in load.between(killed + 0.5)][-4:] == [200] * 4,
            timeout_s=120,
        )
    after = load.between(killed)
    # On a loaded machine a request may also run out of its online-store budget.
    refused = assert_unavailable_answers(after, "ranker model", "online store")
    model = [o for o in refused if o.body["dependency"] == "ranker model"]
    assert model, "requests caught by the restart are answered 503, not held"
    assert max(o.seconds for o in after) <= MODEL_TIMEOUT_MS / 1000 + SLACK_S
    assert model_worker(running).pid != worker.pid, "BentoML started a new model worker"
    print(
        f"model worker killed: {len(after)} requests after, {len(model)} 503 naming the model, "
        f"200 again after {recovery:.1f} s"
    )
