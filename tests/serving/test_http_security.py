"""HTTP-level security of a real ``bentoml serve`` of a built Bento with an API key.

The key is never written to the server's log; the body limit holds for chunked bodies (no
Content-Length to trust); probes and metrics answer without the key while the endpoints need
it; and a fuzz of methods, request targets, headers and framing beyond the OpenAPI document
never gets a 5xx, nor a success without the key on a guarded path.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import string
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from serving.conftest import LoggedDay

from searchrank.core import schema as S
from searchrank.serving.api import MAX_BODY_BYTES
from searchrank.serving.bento import RunningService, serve
from searchrank.serving.middleware import API_KEY_HEADER, OPEN_PATHS

pytestmark = pytest.mark.slow
KEY = f"sk-test-{secrets.token_hex(16)}"
"""Random per run, so that finding it in the log can only mean it was logged."""
WRONG_KEY = f"sk-wrong-{secrets.token_hex(16)}"
GUARDED = ("/rank", "/search")
FUZZ_EXAMPLES = int(os.environ.get("SEARCHRANK_FUZZ_EXAMPLES", "150"))
FORM_CONTENT_TYPE = "multipart/form-data"
"""Examples of the fuzz, two requests each; more for a deeper search."""


@pytest.fixture(scope="module")
def running(bento: str, logged_day: LoggedDay) -> Iterator[RunningService]:
    with serve(bento, logged_day.repo, env={"SEARCHRANK_API_KEY": KEY}) as service:
        yield service


@pytest.fixture(scope="module")
def rank_body(logged_day: LoggedDay) -> dict[str, Any]:
    rows = logged_day.rows
    first = rows[rows[S.SEARCH_ID] == rows[S.SEARCH_ID].iloc[0]]
    return {
        "query": str(first[S.QUERY].iloc[0]),
        "user_id": int(first[S.USER_ID].iloc[0]),
        "item_ids": [int(i) for i in first[S.ITEM_ID]],
    }


def _control_path(key: str) -> str:
    """A path holding ``key``, requested on purpose: BentoML's access log and its traffic
    metrics (``/metrics``, labelled by the raw path) record it, and the tests that look for a
    leaked key take it out first."""
    return f"/control/{key}"


def test_the_api_key_is_never_logged(running: RunningService, rank_body: dict[str, Any]) -> None:
    """Right and wrong keys, in ``x-api-key``, as a bearer token and in a bogus scheme, on both
    endpoints, answered 200, 400 and 401: neither key appears in the server's log nor in an
    answer. A control request carries each key in its path, which the access log does record:
    so the search below would find a key that was logged."""
    statuses = []
    with httpx.Client(base_url=running.url, timeout=30) as client:
        for key in (KEY, WRONG_KEY):
            for headers in (
                {API_KEY_HEADER: key},
                {"authorization": f"Bearer {key}"},
                {"authorization": f"Basic {key}"},
            ):
                for path, body in (
                    ("/rank", rank_body),
                    ("/search", {"query": "chill", "user_id": 1, "k": 2}),
                    ("/rank", {"query": 1}),  # a 400 whose message names the fields
                ):
                    answer = client.post(path, json=body, headers=headers)
                    statuses.append(answer.status_code)
                    assert key not in answer.text
            client.get(_control_path(key))
    assert {200, 400, 401} <= set(statuses), statuses
    # The access log, outside the middleware, is written as each request ends: wait until it
    # shows the last one, so that the log read below covers every request sent.
    deadline = time.monotonic() + 30
    while _control_path(WRONG_KEY) not in (log := running.log_path.read_text(errors="replace")):
        if time.monotonic() > deadline:
            pytest.fail(f"the access log does not show the requests:\n{log[-3_000:]}")
        time.sleep(0.5)
    assert _control_path(KEY) in log
    assert log.count("path=/rank") >= 12 and log.count("path=/search") >= 6, log[-3_000:]
    rest = log.replace(_control_path(KEY), "").replace(_control_path(WRONG_KEY), "")
    leaks = [line for line in rest.splitlines() if KEY in line or WRONG_KEY in line]
    assert not leaks, leaks[:3]


def _chunks(size: int, chunk: int = 4_096) -> Iterator[bytes]:
    """``size`` bytes of a JSON-looking body in ``chunk``-byte pieces; a generator makes httpx
    send ``Transfer-Encoding: chunked`` and no Content-Length."""
    sent = 0
    while sent < size:
        piece = min(chunk, size - sent)
        yield b" " * piece
        sent += piece


def test_the_body_limit_covers_chunked_bodies(
    running: RunningService, rank_body: dict[str, Any]
) -> None:
    headers = {API_KEY_HEADER: KEY, "content-type": "application/json"}
    with httpx.Client(base_url=running.url, timeout=30) as client:
        big = client.build_request(
            "POST", "/rank", content=_chunks(MAX_BODY_BYTES + 1), headers=headers
        )
        assert big.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in big.headers
        refused = client.send(big)
        assert refused.status_code == 413, refused.text
        assert refused.json()["field"] == "body"

        body = json.dumps(rank_body).encode()

        def small() -> Iterator[bytes]:
            yield from (body[i : i + 7] for i in range(0, len(body), 7))

        request = client.build_request("POST", "/rank", content=small(), headers=headers)
        assert request.headers.get("transfer-encoding") == "chunked"
        answered = client.send(request)
        assert answered.status_code == 200, answered.text
        assert [r["item_id"] for r in answered.json()["items"]]

        # Just at the limit still passes the middleware (spaces before the JSON are valid).
        padding = MAX_BODY_BYTES - len(body)
        exact = client.post("/rank", content=iter([b" " * padding, body]), headers=headers)
        assert exact.status_code == 200, exact.text


def test_probes_and_metrics_are_open_while_the_endpoints_need_the_key(
    running: RunningService, rank_body: dict[str, Any]
) -> None:
    bodies = {"/rank": rank_body, "/search": {"query": "chill", "user_id": 1, "k": 2}}
    with httpx.Client(base_url=running.url, timeout=30) as client:
        for path in ("/livez", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200, path
        for path, body in bodies.items():
            refused = client.post(path, json=body)
            assert refused.status_code == 401 and API_KEY_HEADER in refused.text, path
            wrong = client.post(path, json=body, headers={API_KEY_HEADER: WRONG_KEY})
            assert wrong.status_code == 401, path
            almost = client.post(path, json=body, headers={API_KEY_HEADER: KEY[:-1]})
            assert almost.status_code == 401, path
            for headers in ({API_KEY_HEADER: KEY}, {"authorization": f"Bearer {KEY}"}):
                assert client.post(path, json=body, headers=headers).status_code == 200, path


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (FORM_CONTENT_TYPE, b'{"query": "chill", "user_id": 1, "k": 3}'),
        (f"{FORM_CONTENT_TYPE}; boundary=x", b'{"query": "chill", "user_id": 1, "k": 3}'),
        (f"{FORM_CONTENT_TYPE}; boundary=x", b"--x\r\nnot a part\r\n"),
    ],
    ids=["no-boundary", "json-under-a-boundary", "broken-part"],
)
def test_a_malformed_form_body_gets_a_4xx_not_a_500(
    running: RunningService, content_type: str, body: bytes
) -> None:
    """BentoML would parse a form body and answer 500 to a malformed one; the service refuses
    every body that is not JSON first (415, :class:`~searchrank.serving.middleware.JsonOnly`)."""
    for path in GUARDED:
        answer = httpx.post(
            f"{running.url}{path}",
            content=body,
            headers={API_KEY_HEADER: KEY, "content-type": content_type},
            timeout=30,
        )
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)


def test_a_pickled_body_is_refused_by_the_entry_service(running: RunningService) -> None:
    """BentoML reads ``application/vnd.bentoml+pickle`` bodies between its own services; the
    entry service must refuse them (415) rather than unpickle what a client sent."""
    import pickle

    harmless = pickle.dumps({"query": "chill", "user_id": 1, "k": 3})
    for path in GUARDED:
        answer = httpx.post(
            f"{running.url}{path}",
            content=harmless,
            headers={API_KEY_HEADER: KEY, "content-type": "application/vnd.bentoml+pickle"},
            timeout=30,
        )
        assert answer.status_code == 415, (path, answer.status_code, answer.text)


# --- the fuzz -------------------------------------------------------------------------------

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
"""The characters of an HTTP token (RFC 9110): method and header names."""
PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%/"
REAL_PATHS = ("/rank", "/search", "/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/")
SUFFIXES = (
    "/", "//", "/.", "/..", "/../rank", "/../../etc/passwd", "?x=1", "?x=%00", ";x", "%00", "%2F",
    "%2e%2e%2f", ".json", "/x", "%20", "\\..\\", "?" + "q" * 3_000, "#frag",
)  # fmt: skip
ODD_TARGETS = (
    "*", "//rank", "/./rank", "/%72ank", "/RANK", "/rank%20", "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2fetc%2fpasswd", "/livez/../rank", "/readyz%2f..%2frank", "/metrics/../search",
    "http://127.0.0.1/rank", "/" + "a" * 8_000, "/" + "%41" * 3_000, "/%ff%fe", "/%",
    "/\u00e9".encode().decode("latin-1"),
)  # fmt: skip
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})
"""Left to the client in the httpx requests; the raw ones below lie about them on purpose."""
SPECIAL_HEADERS = (
    ("content-type", "application/json"), ("content-type", "text/plain"),
    ("content-type", "multipart/form-data"), ("content-type", "multipart/form-data; boundary=x"),
    ("content-type", "application/x-www-form-urlencoded"), ("content-type", "image/png"),
    ("content-type", "application/json; charset=utf-32"), ("content-type", ""),
    ("content-type", ";;;="), ("content-type", "application/octet-stream"),
    ("content-type", "application/vnd.bentoml+pickle"),
    ("content-encoding", "gzip"), ("accept", "application/xml"), ("accept-encoding", "br, zstd"),
    ("expect", "100-continue"), ("range", "bytes=0-1"), ("origin", "http://evil.invalid"),
    ("x-forwarded-for", "127.0.0.1, 10.0.0.1"), ("cookie", "a=b; c"), ("upgrade", "websocket"),
    ("authorization", "Basic Zm9vOmJhcg=="), ("authorization", "Bearer"),
    ("authorization", "Bearer "), ("authorization", "Digest username=x"),
    ("authorization", f"bearer {WRONG_KEY}"), ("authorization", "Negotiate " + "A" * 4_000),
    (API_KEY_HEADER, ""), (API_KEY_HEADER, WRONG_KEY), (API_KEY_HEADER, KEY[:-1]),
    ("x-api-key ", "x"), ("X-API-KEY", WRONG_KEY),
)  # fmt: skip
KEY_PLACEMENTS = (
    [(API_KEY_HEADER, KEY)],
    [("authorization", f"Bearer {KEY}")],
    [(API_KEY_HEADER, WRONG_KEY), (API_KEY_HEADER, KEY)],
    [(API_KEY_HEADER, KEY), (API_KEY_HEADER, WRONG_KEY)],
    [(API_KEY_HEADER, KEY), ("authorization", f"Bearer {WRONG_KEY}")],
)
FRAMINGS = (
    "content-length: 99999999999999999999",
    f"content-length: {MAX_BODY_BYTES + 1}",
    "content-length: -1",
    "content-length: 12abc",
    "content-length: 2\r\ncontent-length: 3",
    "content-length: 2\r\ntransfer-encoding: chunked",
    "transfer-encoding: gzip",
    "transfer-encoding: chunked, identity",
    "transfer-encoding: chunked\r\ntransfer-encoding: chunked",
)
"""Framing headers a client library refuses to send, so these go over a raw socket."""


def _path_strategy() -> Any:
    from hypothesis import strategies as st

    segment = st.text(alphabet=PATH_CHARS, max_size=30)
    return st.one_of(
        st.sampled_from(GUARDED),
        st.sampled_from(REAL_PATHS),
        st.tuples(st.sampled_from(REAL_PATHS), st.sampled_from(SUFFIXES)).map("".join),
        st.lists(segment, max_size=6).map(lambda parts: "/" + "/".join(parts)),
        st.binary(max_size=40).map(lambda raw: "/" + quote(raw, safe="/")),
        st.sampled_from(ODD_TARGETS),
    )


def _header_strategy() -> Any:
    from hypothesis import strategies as st

    name = st.text(alphabet=TOKEN, min_size=1, max_size=30).filter(
        lambda n: n.lower() not in FRAMING_HEADERS
    )
    printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    value = st.one_of(
        st.text(alphabet=printable, max_size=200).map(str.strip),
        st.integers(1, 12_000).map(lambda n: "v" * n),
        st.binary(max_size=50).map(lambda b: bytes(c for c in b if c >= 0x80 or c in b"\t ")),
    )
    return st.lists(st.one_of(st.tuples(name, value), st.sampled_from(SPECIAL_HEADERS)), max_size=8)


def _body_strategy(rank_body: dict[str, Any]) -> Any:
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=20)
    )
    json_values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )
    valid = st.sampled_from(
        [json.dumps(rank_body).encode(), b'{"query": "chill", "user_id": 1, "k": 3}']
    )
    return st.one_of(
        valid,
        valid,  # twice as likely: the endpoints' own code behind odd methods, paths, headers
        st.just(b""),
        st.binary(max_size=2_000),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.just(b"--x\r\nContent-Disposition: form-data; name=query\r\n\r\na\r\n--x--\r\n"),
    )


def _method_strategy() -> Any:
    from hypothesis import strategies as st

    return st.one_of(
        st.just("POST"),
        st.sampled_from(
            ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST", "TRACE", "PROPFIND"]
        ),
        st.sampled_from(["get", "Post", "M-SEARCH", "BREW", "X" * 200, "CONNECT"]),
        st.text(alphabet=TOKEN, min_size=1, max_size=12),
    )


def _is_open(target: str) -> bool:
    """Whether the server may answer ``target`` without the key: its decoded path is (or, to
    stay on the safe side, starts with) one of the open paths."""
    path = urlsplit(target).path if "://" in target else target
    path = unquote(path.partition("?")[0].partition("#")[0])
    return any(path.startswith(p) for p in OPEN_PATHS)


def _raw_status(
    url: str, method: str, target: str, headers: list[tuple[str, Any]], framing: str, body: bytes
) -> int | None:
    """Send one request as bytes, with the framing headers ``framing``, and read the status of
    the final answer (past any ``100 Continue``); None when the server closed the connection
    without one, -1 when it gave none within 15 s."""
    address = urlsplit(url)
    lines = [f"{method} {target} HTTP/1.1", f"host: {address.netloc}", "connection: close"]
    lines += [f"{n}: {v.decode('latin-1') if isinstance(v, bytes) else v}" for n, v in headers]
    head = "\r\n".join([*lines, framing, "", ""]).encode("latin-1")
    # A chunked body as promised (one last chunk); any other body as it is, cut short.
    payload = b"0\r\n\r\n" if "chunked" in framing else body[:64]
    with socket.create_connection((str(address.hostname), int(address.port or 80)), 15) as conn:
        received = b""
        try:
            conn.sendall(head + payload)
            while True:
                head, complete, rest = received.partition(b"\r\n\r\n")
                if complete:
                    status = int(head.split(b" ", 2)[1])
                    if status >= 200:
                        return status
                    received = rest  # an informational answer: the final one follows
                    continue
                chunk = conn.recv(4_096)
                if not chunk:
                    return None
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            return None
        except TimeoutError:
            return -1


def _send(
    url: str,
    method: str,
    target: str,
    headers: list[tuple[str, Any]],
    framing: str | None,
    body: bytes,
) -> tuple[int | None, str, bool]:
    """One fuzzed request: the status (None: no answer; -1: none in time), the answer's text
    and whether it went over a raw socket (lying framing, or what h11 refuses to send)."""
    if framing is not None:
        return _raw_status(url, method, target, headers, framing, body), "", True
    try:
        with httpx.Client(timeout=30) as client:
            answer = client.request(
                method,
                f"{url}/",
                content=body,
                headers=headers,
                extensions={"target": target.encode("latin-1")},
            )
    except httpx.LocalProtocolError:
        # h11 will not send it (a non-ASCII target or header value): send it raw.
        honest = f"content-length: {len(body[:64])}"
        return _raw_status(url, method, target, headers, honest, body), "", True
    except httpx.RemoteProtocolError as error:
        return None, str(error), False
    return answer.status_code, answer.text, False


def test_a_fuzz_of_methods_targets_and_headers_gets_no_server_error(
    running: RunningService, rank_body: dict[str, Any]
) -> None:
    """Each example is sent twice, without the key and with it (in one of several places,
    duplicates included); those with lying framing headers go over a raw socket. No answer may
    be a 5xx, be missing, or hold the key, and none without the key may succeed on a path that
    is not open. The count of requests and of each status is printed."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    statuses: Counter[int | None] = Counter()
    raws: Counter[bool] = Counter()
    failures: list[str] = []

    def check(
        description: str,
        status: int | None,
        keyed: bool,
        target: str,
        text: str,
        headers: list[tuple[str, Any]],
    ) -> None:
        statuses[status] += 1
        if status is None or status == -1 or status >= 500:
            failures.append(f"{status} for {description}: {text[:300]}")
        elif not keyed and status < 400 and not _is_open(target):
            failures.append(f"{status} without the key for {description}")
        if KEY in text:
            failures.append(f"the key in the answer to {description}")

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        # Half the examples: an endpoint's own request line, so that the fuzzed headers and
        # bodies reach its code as well as the server's and the middleware's.
        line=st.one_of(
            st.tuples(_method_strategy(), _path_strategy()),
            st.tuples(st.just("POST"), st.sampled_from(GUARDED)),
        ),
        headers=_header_strategy(),
        body=_body_strategy(rank_body),
        key=st.sampled_from(KEY_PLACEMENTS),
        framing=st.one_of(st.none(), st.none(), st.none(), st.sampled_from(FRAMINGS)),
    )
    def fuzz(
        line: tuple[str, str],
        headers: list[tuple[str, Any]],
        body: bytes,
        key: list[tuple[str, str]],
        framing: str | None,
    ) -> None:
        method, target = line
        for keyed, extra in ((False, []), (True, key)):
            sent = [*headers, *extra]
            shown = [(n, str(v)[:40]) for n, v in sent]
            description = f"{method[:20]} {target[:120]!r} {framing or ''} {shown} {body[:80]!r}"
            status, text, over_raw = _send(running.url, method, target, sent, framing, body)
            raws[over_raw] += 1
            check(description, status, keyed, target, text, sent)

    fuzz()
    sent = sum(statuses.values())
    shown = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items(), key=str))
    print(f"\nfuzz: {sent} requests ({raws[True]} over a raw socket); statuses {shown}")
    assert not failures, failures[:5]
    assert sent >= FUZZ_EXAMPLES * 5 // 3, statuses
    assert statuses[200] >= 5 and statuses[401] >= 5, "the fuzz must reach the endpoints"
    assert httpx.get(f"{running.url}/readyz", timeout=10).status_code == 200
