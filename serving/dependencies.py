"""The service's dependencies failing or slow: a bounded wait, and one error that names them.

A search request needs the Feast online store (Redis on a cluster, SQLite on the embedded
default) and the ranker model's worker. When either is down or slow, the request must still
answer within a bounded time, with 503 and ``Retry-After``, saying which dependency failed;
never a 500 or a hang. :class:`Deadline` runs a dependency's call in a small thread pool and
stops waiting after its timeout; :class:`DependencyUnavailableError` is what every such failure
becomes, and the service turns it into the 503 (:mod:`searchrank.serving.service`).

A call that timed out keeps its thread until the client library gives up on its own (Redis
clients should carry a socket timeout in the connection string, as the cluster's
``feature_store.yaml`` does), so the pool is sized for a few stuck calls at once; when all its
threads are stuck, new calls time out waiting for one, which is still a bounded 503.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitTimeout
from contextlib import contextmanager
from typing import TypeVar

import redis.exceptions

T = TypeVar("T")

STORE_DEPENDENCY = "online store"
MODEL_DEPENDENCY = "ranker model"
RETRY_AFTER_SECONDS = 1
"""What a 503 tells a client to wait before retrying."""

STORE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    sqlite3.Error,
    redis.exceptions.RedisError,
)
"""What the online store's clients raise when the store is unreachable or failing."""


class DependencyUnavailableError(RuntimeError):
    """A dependency failed or did not answer in time; the service answers 503 naming it.

    Attributes:
        dependency: which one (:data:`STORE_DEPENDENCY`, :data:`MODEL_DEPENDENCY`).
        reason: what happened, in words.
    """

    def __init__(self, dependency: str, reason: str) -> None:
        self.dependency = dependency
        self.reason = reason
        super().__init__(f"{dependency} unavailable: {reason}")


class Deadline:
    """Calls to the online store, waited for at most ``timeout_s`` in all per request.

    Inside :meth:`budget` (the service opens one per request) every call waits only for what
    is left of the request's ``timeout_s``, so a request that needs two lookups still answers
    within one budget; outside it, each call gets the whole ``timeout_s``.

    Args:
        dependency: the name errors carry.
        timeout_s: the longest a request waits for one call.
        threads: calls that may be in flight at once.
    """

    def __init__(
        self,
        dependency: str,
        timeout_s: float,
        threads: int = 8,
    ) -> None:
        self.dependency = dependency
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"{dependency} call")
        self._request = threading.local()

    @contextmanager
    def budget(self) -> Iterator[None]:
        """One request's budget: the calls this thread makes inside share ``timeout_s``."""
        self._request.ends = time.monotonic() + self.timeout_s
        try:
            yield
        finally:
            self._request.ends = None

    def call(self, function: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``function(*args, **kwargs)``, or :class:`DependencyUnavailableError` when it fails with
        one of :data:`STORE_ERRORS` (anything else is a bug and propagates) or takes longer than
        the time left."""
        ends = getattr(self._request, "ends", None)
        left = self.timeout_s if ends is None else min(self.timeout_s, ends - time.monotonic())
        budget = f"{self.timeout_s * 1000:.0f} ms"
        if left <= 0:
            raise DependencyUnavailableError(self.dependency, f"the request's {budget} are spent")
        future = self._pool.submit(function, *args, **kwargs)
        try:
            return future.result(timeout=left)
        except WaitTimeout as error:
            future.cancel()
            reason = f"no answer within {budget}"
            raise DependencyUnavailableError(self.dependency, reason) from error
        except STORE_ERRORS as error:
            reason = f"{type(error).__name__}: {error}"
            raise DependencyUnavailableError(self.dependency, reason) from error
