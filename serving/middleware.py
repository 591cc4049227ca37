"""ASGI middleware of the search service: a request body limit, JSON bodies only, optional
API-key checks, ``Retry-After`` on every 503, and kept-alive connections spread over the
workers.

The first two answer before the request reaches BentoML, with a JSON body that says what was
wrong.
Health, readiness and metrics endpoints stay open so that Kubernetes probes and Prometheus work
without the key.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
API_KEY_HEADER = "x-api-key"
CLOSE = (b"connection", b"close")


async def _refuse(send: Send, status: int, field: str, rule: str) -> None:
    body = json.dumps({"error": f"{field}: {rule}", "field": field, "rule": rule}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413: by Content-Length up front, or while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = f"the request body must be at most {self.max_bytes} bytes"
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _refuse(send, 413, "body", rule)
            return
        # Without a trustworthy length, read the body here and stop at the limit.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, "body", rule)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


class ApiKey:
    """Require the header ``x-api-key`` (or ``Authorization: Bearer …``) to equal the key in
    the environment variable ``env_var``, read when the app is built; no key, no check."""

    def __init__(self, app: ASGIApp, env_var: str) -> None:
        self.app = app
        self.key = os.environ.get(env_var, "").encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.key or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        given = headers.get(API_KEY_HEADER.encode(), b"")
        bearer = headers.get(b"authorization", b"")
        if not given and bearer.lower().startswith(b"bearer "):
            given = bearer[7:].strip()
        if not hmac.compare_digest(given, self.key):
            await _refuse(send, 401, API_KEY_HEADER, "a valid API key is required")
            return
        await self.app(scope, receive, send)


def _adding_header(
    send: Send, header: tuple[bytes, bytes], when: Callable[[Message], bool]
) -> Send:
    """``send`` that adds ``header`` to a response's start message for which ``when`` holds."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and when(message):
            message["headers"] = [*message.get("headers", []), header]
        await send(message)

    return sending


class RetryAfter:
    """Add ``Retry-After: seconds`` to every 503 that lacks it: BentoML's own (overload, a
    dependency not ready at ``/readyz``) as well as the service's."""

    def __init__(self, app: ASGIApp, seconds: int) -> None:
        self.app = app
        self.header = (b"retry-after", str(seconds).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def lacks_it(start: Message) -> bool:
            names = (name.lower() for name, _ in start.get("headers", []))
            return start["status"] == 503 and b"retry-after" not in names

        await self.app(scope, receive, _adding_header(send, self.header, lacks_it))


class JsonOnly:
    """Refuse, with 415, a request to the API whose body is declared as anything but one
    ``application/json`` (no Content-Type is fine: BentoML reads the body as JSON).

    BentoML would otherwise parse ``multipart/form-data`` as a form and answer 500 to a
    malformed one, or unpickle ``application/vnd.bentoml+pickle``, the format it uses between
    its own services.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        declared = [
            value.split(b";", 1)[0].strip().lower()
            for name, value in scope.get("headers", [])
            if name.lower() == b"content-type"
        ]
        if len(declared) > 1 or any(media != b"application/json" for media in declared):
            await _refuse(send, 415, "content-type", "must be application/json, given once")
            return
        await self.app(scope, receive, send)


class SpreadConnections:
    """Ask a client to reconnect (``Connection: close``) after every ``every`` responses of this
    worker, so that kept-alive connections spread over the workers.

    BentoML's workers share one listening socket, and a worker's event loop accepts every
    pending connection at once: a client that opens a few kept-alive connections together (a
    load balancer's upstream pool, a benchmark's threads) can have all of them land on one
    worker, which then does all the work while the others idle. ``bench_serve`` saw half the
    throughput in such runs (16 connections on 2 workers: 62-66 requests/s against 123-133 with
    this middleware, every 32). A closed connection is opened again by the client, most likely on
    the worker that is free to accept it. Paths in :data:`OPEN_PATHS` are never closed.
    """

    def __init__(self, app: ASGIApp, every: int) -> None:
        self.app = app
        self.every = every
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        self.served += 1
        if self.served % self.every:
            await self.app(scope, receive, send)
            return

        await self.app(scope, receive, _adding_header(send, CLOSE, lambda _: True))
