"""The BentoML service through its class, through its ASGI app, and as a real ``bentoml serve``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from serving.conftest import LoggedDay, StoredModels
from starlette.testclient import TestClient

from searchrank.core import schema as S
from searchrank.serving.api import MAX_BODY_BYTES, MAX_ITEMS
from searchrank.serving.settings import FEATURE_REPO_ENV


@pytest.fixture(scope="module")
def service_env(logged_day: LoggedDay, stored_models: StoredModels) -> Iterator[None]:
    os.environ[FEATURE_REPO_ENV] = str(logged_day.repo)
    yield
    os.environ.pop(FEATURE_REPO_ENV, None)


@pytest.fixture(scope="module")
def client(service_env: None) -> Iterator[TestClient]:
    from searchrank.serving.service import Search

    with TestClient(Search.to_asgi()) as test_client:
        yield test_client


def _request(logged_day: LoggedDay) -> dict[str, Any]:
    first = logged_day.rows[logged_day.rows[S.SEARCH_ID] == logged_day.rows[S.SEARCH_ID].iloc[0]]
    return {
        "query": str(first[S.QUERY].iloc[0]),
        "user_id": int(first[S.USER_ID].iloc[0]),
        "item_ids": [int(i) for i in first[S.ITEM_ID]],
    }


def test_the_service_class_ranks_like_the_engine(
    service_env: None, logged_day: LoggedDay, engine: Any
) -> None:
    from searchrank.serving.service import Search

    service = Search()
    request = _request(logged_day)
    served = service.rank(**request)
    direct = engine.rank(**request)
    assert [r.item_id for r in served.items] == [r.item_id for r in direct.items]
    assert (
        max(abs(a.score - b.score) for a, b in zip(served.items, direct.items, strict=True)) <= 1e-4
    )
    assert served.model.startswith("searchrank-ranker:")


def test_rank_and_search_over_http(client: TestClient, logged_day: LoggedDay) -> None:
    request = _request(logged_day)
    ranked = client.post("/rank", json=request)
    assert ranked.status_code == 200, ranked.text
    body = ranked.json()
    assert sorted(r["item_id"] for r in body["items"]) == sorted(request["item_ids"])
    found = client.post("/search", json={"query": "chill", "user_id": 1, "k": 5})
    assert found.status_code == 200, found.text
    assert 1 <= len(found.json()["results"]) <= 5
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


def test_a_worker_asks_clients_to_reconnect_every_32_responses(
    client: TestClient, logged_day: LoggedDay
) -> None:
    request = _request(logged_day)
    closing = []
    for n in range(64):
        response = client.post("/rank", json=request)
        assert response.status_code == 200
        if response.headers.get("connection") == "close":
            closing.append(n)
        assert "connection" not in client.get("/readyz").headers  # probes never
    assert len(closing) == 2 and closing[1] - closing[0] == 32, closing


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"query": "", "user_id": 1, "item_ids": [1]}, "query", "at least 1 character"),
        ({"query": "?!", "user_id": 1, "item_ids": [1]}, "query", "letter or digit"),
        (
            {"query": "a", "user_id": 1, "item_ids": list(range(MAX_ITEMS + 1))},
            "item_ids",
            f"at most {MAX_ITEMS} items",
        ),
        ({"query": "a", "user_id": "me", "item_ids": [1]}, "user_id", "valid integer"),
        ({"query": "a", "user_id": 1, "item_ids": "1,2"}, "item_ids", "valid array"),
        ({"query": "a", "user_id": -1, "item_ids": [1]}, "user_id", "greater than or equal"),
        ({"query": "a", "user_id": 1}, "item_ids", "Field required"),
    ],
)
def test_bad_requests_get_a_400_naming_the_field_and_rule(
    client: TestClient, body: dict[str, Any], field: str, rule: str
) -> None:
    response = client.post("/rank", json=body)
    assert response.status_code == 400, response.text
    assert field in response.text and rule in response.text


def test_invalid_json_and_huge_bodies_are_refused_with_4xx(client: TestClient) -> None:
    broken = client.post(
        "/rank", content=b'{"query": "a",', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and "json" in broken.text.lower()
    huge = client.post("/rank", content=b" " * (MAX_BODY_BYTES + 1))
    assert huge.status_code == 413 and "body" in huge.json()["field"]

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    streamed = client.post("/rank", content=chunks())
    assert streamed.status_code == 413
