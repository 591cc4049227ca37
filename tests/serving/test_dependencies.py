"""The deadline on online-store calls, alone: the budget a request's calls share, and which
failures become "unavailable"."""

from __future__ import annotations

import sqlite3
import time

import pytest
import redis.exceptions

from searchrank.serving.dependencies import Deadline, DependencyUnavailableError


def test_a_slow_call_is_given_up_after_the_timeout_naming_the_dependency() -> None:
    deadline = Deadline("online store", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailableError, match=r"online store.*200 ms") as error:
        deadline.call(time.sleep, 3)
    assert time.monotonic() - started < 2 and error.value.dependency == "online store"
    assert deadline.call(lambda: 42) == 42


def test_calls_inside_one_budget_share_it() -> None:
    deadline = Deadline("online store", timeout_s=0.4)
    with deadline.budget(), pytest.raises(DependencyUnavailableError):
        deadline.call(time.sleep, 0.3)
        deadline.call(time.sleep, 0.3)  # only 0.1 s of the budget is left
    with deadline.budget():
        time.sleep(0.45)
        with pytest.raises(DependencyUnavailableError, match="spent"):
            deadline.call(lambda: 1)
    assert deadline.call(time.sleep, 0.3) is None, "outside a budget each call gets it all"


@pytest.mark.parametrize(
    "failure",
    [
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        sqlite3.OperationalError("database is locked"),
        ConnectionRefusedError(111, "refused"),
    ],
)
def test_a_store_client_failure_is_unavailable(failure: Exception) -> None:
    def fail() -> None:
        raise failure

    with pytest.raises(DependencyUnavailableError, match=type(failure).__name__):
        Deadline("online store", timeout_s=1).call(fail)


def test_a_bug_is_not_disguised_as_an_unavailable_store() -> None:
    with pytest.raises(KeyError):
        Deadline("online store", timeout_s=1).call(lambda: {}["missing"])
