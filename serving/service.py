"""The BentoML search service: ``POST /rank`` and ``POST /search`` over Feast and the ranker.

:class:`Search`, the entry point, validates requests, reads and encodes online features, scores
the candidates and orders the results; its logic lives in :mod:`searchrank.serving.engine`. By
default it runs the ranker in its own process, in the request's thread (PyTorch releases the
GIL while it computes), traced and frozen by TorchScript
(:class:`~searchrank.core.model.InferenceRanker`) on one thread per worker: on CPU the hop to a
separate model process cost more than the model itself (``bench_serve``: 100 candidates, about
8 ms of latency and 18 ms of CPU per request for a 5 ms forward pass). :class:`RankerModel`
holds the same model behind BentoML's adaptive batcher in a worker of its own;
``SEARCHRANK_MODEL_SERVICE=1`` sends scoring there, where
batching pays (a GPU node) or where the model must be isolated from the request path.

Configuration comes from environment variables (:mod:`searchrank.serving.settings` lists
them). A Bento's entry module pins the model tags, which this module reads when it is imported:
BentoML declares a service's models in its class body.

When the online store or the ranker model's worker is down or slower than that, a request gets
503 with ``Retry-After`` and a body naming the dependency (:mod:`searchrank.serving.dependencies`),
and ``/readyz`` answers 503 while the store does not answer; both recover by themselves when
the dependency does.

At start-up ``Search`` checks that the feature service named in the model's labels serves every
input of the model and refuses to start otherwise (:mod:`searchrank.serving.checks`).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import anyio
import bentoml
import httpx
import numpy as np
from bentoml.exceptions import BentoMLException, InvalidArgument
from starlette.responses import JSONResponse
from threadpoolctl import threadpool_limits

from searchrank.core.errors import InputError
from searchrank.core.model import Encoded
from searchrank.core.names import RANKER_MODEL_NAME, RETRIEVER_MODEL_NAME
from searchrank.serving.api import (
    MAX_BODY_BYTES,
    ExplicitFilter,
    ItemIds,
    K,
    Query,
    RankResponse,
    SearchResponse,
    UserId,
)
from searchrank.serving.dependencies import (
    MODEL_DEPENDENCY,
    RETRY_AFTER_SECONDS,
    DependencyUnavailableError,
)
from searchrank.serving.engine import RankerBundle
from searchrank.serving.middleware import ApiKey, BodyLimit, JsonOnly, RetryAfter, SpreadConnections
from searchrank.serving.settings import (
    API_KEY_ENV,
    FEATURE_REPO_ENV,
    MODEL_SERVICE_ENV,
    MODEL_TIMEOUT_ENV,
    RANKER_MODEL_ENV,
    RECONNECT_ENV,
    REFRESH_ENV,
    RETRIEVER_MODEL_ENV,
    TIMEOUT_ENV,
    count,
    flag,
    positive_number,
    seconds_from_ms,
)
from searchrank.serving.stages import timed_request

if TYPE_CHECKING:
    from prometheus_client import Histogram

log = logging.getLogger(__name__)
MODEL_ERRORS = (httpx.HTTPError, aiohttp.ClientError, BentoMLException, OSError)
"""What calling the model's service raises when its worker is gone or restarting."""

RANKER_MODEL = os.environ.get(RANKER_MODEL_ENV, f"{RANKER_MODEL_NAME}:latest")
RETRIEVER_MODEL = os.environ.get(RETRIEVER_MODEL_ENV, f"{RETRIEVER_MODEL_NAME}:latest")
SEARCH_THREADS = 8
"""Requests one ``Search`` worker handles at once."""
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@cache
def stage_seconds() -> Histogram:
    """The ``searchrank_stage_seconds`` histogram, made on a worker's first request.

    ``prometheus_client`` decides when it is first imported whether values go to the files in
    ``PROMETHEUS_MULTIPROC_DIR``, which ``/metrics`` sums over all workers. Importing it on
    first use, as BentoML's deprecated ``bentoml.metrics`` did, keeps that decision inside a
    serving worker, whose environment BentoML has set, whatever imported this module before.
    """
    from prometheus_client import Histogram

    return Histogram(
        name="searchrank_stage_seconds",
        documentation="Seconds a request spent in each stage (searchrank.serving.stages)",
        labelnames=["endpoint", "stage"],
        buckets=STAGE_BUCKETS,
    )


@contextmanager
def observed(endpoint: str) -> Iterator[None]:
    """Time the request's stages (:mod:`searchrank.serving.stages`) and export them as
    ``searchrank_stage_seconds{endpoint, stage}``; a stage the request never reached is left
    out."""
    with timed_request() as seconds:
        yield
    for name, value in seconds.items():
        if value > 0:
            stage_seconds().labels(endpoint=endpoint, stage=name).observe(value)


@contextmanager
def as_bad_request() -> Iterator[None]:
    """Report an :class:`InputError` as a 400 response naming the field, value and rule."""
    try:
        yield
    except InputError as error:
        raise InvalidArgument(str(error)) from error


def unavailable(error: DependencyUnavailableError) -> Any:
    """The 503 answer to a failed dependency: its name and what happened (the
    :class:`~searchrank.serving.middleware.RetryAfter` middleware adds ``Retry-After``).

    Returned, not raised: BentoML replaces the message of a raised 5xx error with a generic
    text, and passes a returned response through unchanged.
    """
    log.warning("answering 503: %s", error)
    return JSONResponse(
        {"error": str(error), "dependency": error.dependency, "reason": error.reason},
        status_code=503,
    )


@bentoml.service(name="searchrank-ranker-model", workers=1, traffic={"timeout": 30})
class RankerModel:
    """The transformer ranker behind an adaptive batcher."""

    ranker = bentoml.models.BentoModel(RANKER_MODEL)

    def __init__(self) -> None:
        self.bundle = RankerBundle.load(Path(self.ranker.path))

    # A generous max_latency_ms: a tight one makes the batcher shed load with 503s.
    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=32, max_latency_ms=2_000)
    def score(self, requests: list[Encoded]) -> list[np.ndarray]:
        """Scores of each request's candidates (dense (n, F) and codes (n, C) per request)."""
        return self.bundle.inference.score(requests)


# threads: BentoML runs a synchronous endpoint in one thread per worker unless told otherwise,
# which would answer one request at a time: a store lookup that waits would queue every other
# request behind it, and the model's adaptive batcher would never see two requests together.
# workers: one process per CPU the pod may use (BentoML reads the container's limit), because a
# request's Python work holds the GIL: one process tops out at one core.
@bentoml.service(
    name="searchrank", workers="cpu_count", threads=SEARCH_THREADS, traffic={"timeout": 30}
)
class Search:
    """Search and ranking over Feast online features (see the module docstring)."""

    model = bentoml.depends(RankerModel)
    ranker = bentoml.models.BentoModel(RANKER_MODEL)
    retriever = bentoml.models.BentoModel(RETRIEVER_MODEL)

    def __init__(self) -> None:
        from searchrank.core.candidates import CandidateGenerator
        from searchrank.features.store import check_connections, open_store
        from searchrank.serving.checks import check_feature_service
        from searchrank.serving.engine import SearchEngine

        repo = os.environ.get(FEATURE_REPO_ENV)
        if not repo:
            raise RuntimeError(f"{FEATURE_REPO_ENV} must name the Feast repository folder")
        bundle = RankerBundle.load(Path(self.ranker.path))
        remote = flag(MODEL_SERVICE_ENV)
        # There is one worker per CPU already: a forward pass or a matrix product spread over
        # every CPU as well would have the workers' threads take turns on the same cores. With
        # OpenBLAS's default two threads for the ANN index's exact search, /search's p99 at
        # concurrency 1 on this repository's 2-core machine was 29-33 ms; with one, 16-20 ms.
        threadpool_limits(1)
        if not remote:
            import torch

            torch.set_num_threads(1)
        self.model_timeout_s = seconds_from_ms(MODEL_TIMEOUT_ENV, 5000)
        store = open_store(repo)
        # A serving pod holds no object-store credentials: it reads the online store only.
        check_connections(store, offline=False)
        check_feature_service(store, bundle.contract, bundle.processor)
        retriever = CandidateGenerator.load(Path(self.retriever.path))
        self.engine = SearchEngine.open(
            store,
            bundle,
            retriever,
            score=self._score if remote else None,
            model_tag=str(self.ranker.tag),
            online_timeout_s=seconds_from_ms(TIMEOUT_ENV, 1000),
        )
        items = self.engine.features.items
        items.start_refreshing(positive_number(REFRESH_ENV, 300, "seconds"))
        log.info("item feature cache: %d items", len(items))
        # What start-up loaded (PyTorch, Feast's registry, the models, the caches) lives as long
        # as the worker: frozen out of the garbage collector's sight, a full collection walks
        # only what requests made since. Unfrozen, one walked half a million objects in the
        # middle of a request: 240 ms (in-process /search, 400 requests on bench_serve's Bento).
        gc.collect()
        gc.freeze()

    def _score(self, requests: list[Encoded]) -> list[np.ndarray]:
        # Looked up per call: a served dependency's client gains its methods once connected.
        from _bentoml_impl.client import RemoteProxy

        if not isinstance(self.model, RemoteProxy):  # the class called in-process: an object
            scores: list[np.ndarray] = self.model.score(requests)
            return scores
        try:
            return anyio.from_thread.run(self._score_remote, self.model.to_async, requests)
        except TimeoutError as error:
            # While the model's worker restarts, its client waits for it: answer 503 instead.
            within = f"no answer within {self.model_timeout_s * 1000:.0f} ms"
            raise DependencyUnavailableError(MODEL_DEPENDENCY, within) from error
        except MODEL_ERRORS as error:
            reason = f"{type(error).__name__}: {error}"
            raise DependencyUnavailableError(MODEL_DEPENDENCY, reason) from error

    async def _score_remote(self, remote: Any, requests: list[Encoded]) -> list[np.ndarray]:
        """The model service's scores, waited for at most ``model_timeout_s`` (on the event
        loop: BentoML's clients only run from its threads)."""
        with anyio.fail_after(self.model_timeout_s):
            try:
                scores: list[np.ndarray] = await remote.score(requests)
            except aiohttp.ClientConnectionError:
                # The model server closed a kept-alive connection as the request went out on
                # it (about 4 % of requests at 8 at once, "Server disconnected" or "Can not
                # write request body"): scoring is idempotent, so once more.
                scores = await remote.score(requests)
            return scores

    def __is_ready__(self) -> bool:
        """Ready while the online store answers (``/readyz``); BentoML checks the model's."""
        return self.engine.features.ping()

    @bentoml.api
    def rank(
        self,
        query: Query,
        user_id: UserId,
        item_ids: ItemIds,
        explicit_filter: ExplicitFilter = None,
    ) -> RankResponse:
        """Order the given candidates for the query and user, best first; explicit items are
        withheld from a listener whose explicit-content filter applies."""
        try:
            with as_bad_request(), self.engine.features.deadline.budget(), observed("rank"):
                return self.engine.rank(query, user_id, item_ids, explicit_filter=explicit_filter)
        except DependencyUnavailableError as error:
            return unavailable(error)

    @bentoml.api
    def search(
        self, query: Query, user_id: UserId, k: K = 10, explicit_filter: ExplicitFilter = None
    ) -> SearchResponse:
        """Retrieve candidates for the query, rank them for the user, and return the top k;
        never an explicit item for a listener whose explicit-content filter applies."""
        try:
            with as_bad_request(), self.engine.features.deadline.budget(), observed("search"):
                return self.engine.search(query, user_id, k, explicit_filter)
        except DependencyUnavailableError as error:
            return unavailable(error)


# ``@bentoml.service`` returns a ``bentoml.Service`` wrapping the class; its stubs say otherwise.
_service = cast("bentoml.Service[Search]", Search)
_service.add_asgi_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
_service.add_asgi_middleware(ApiKey, env_var=API_KEY_ENV)
_service.add_asgi_middleware(JsonOnly)
_service.add_asgi_middleware(RetryAfter, seconds=RETRY_AFTER_SECONDS)
_service.add_asgi_middleware(SpreadConnections, every=count(RECONNECT_ENV, 32))
