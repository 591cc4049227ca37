"""Per-stage timing of a request (``serving/stages.py``): stages add up inside a timed request
and cost nothing outside one."""

from __future__ import annotations

import threading
import time

from searchrank.serving.stages import STAGES, stage, timed_request


def test_stages_add_up_within_a_request_and_only_there() -> None:
    with stage("model"):  # outside a timed request: nothing to record, no error
        pass
    with timed_request() as seconds:
        with stage("model"):
            time.sleep(0.02)
        with stage("model"):
            time.sleep(0.01)
        with stage("retrieval"):
            pass
    assert list(seconds) == list(STAGES)
    assert 0.03 <= seconds["model"] < 0.5
    assert 0 < seconds["retrieval"] < seconds["model"]
    assert seconds["intent"] == 0.0, "a stage never entered stays at zero"


def test_concurrent_requests_keep_their_own_times() -> None:
    results: dict[str, dict[str, float]] = {}

    def request(name: str, pause: float) -> None:
        with timed_request() as seconds, stage("online_features"):
            time.sleep(pause)
        results[name] = seconds

    threads = [
        threading.Thread(target=request, args=("slow", 0.2)),
        threading.Thread(target=request, args=("fast", 0.01)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["slow"]["online_features"] >= 0.2
    assert results["fast"]["online_features"] < 0.15
