"""A built Bento under a real ``bentoml serve`` process on 127.0.0.1."""

from __future__ import annotations

import re
import shutil
import string
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pandas as pd
import pytest
from serving.conftest import LoggedDay, StoredModels

from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract
from searchrank.features import tables as T
from searchrank.serving.bento import RunningService, build_bento, save_ranker, serve
from searchrank.serving.stages import STAGES

pytestmark = pytest.mark.slow
KEY = "s3cret"


@pytest.fixture(scope="module")
def running(bento: str, logged_day: LoggedDay) -> Iterator[RunningService]:
    with serve(bento, logged_day.repo, env={"SEARCHRANK_API_KEY": KEY}) as service:
        yield service


def test_the_served_bento_ranks_as_the_engine_does(
    running: RunningService, logged_day: LoggedDay, engine: object
) -> None:
    rows = logged_day.rows
    first = rows[rows[S.SEARCH_ID] == rows[S.SEARCH_ID].iloc[0]]
    request = {
        "query": str(first[S.QUERY].iloc[0]),
        "user_id": int(first[S.USER_ID].iloc[0]),
        "item_ids": [int(i) for i in first[S.ITEM_ID]] + [10**13],
    }
    headers = {"x-api-key": KEY}
    response = httpx.post(f"{running.url}/rank", json=request, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    served = response.json()
    direct = engine.rank(**request)  # type: ignore[attr-defined]
    assert served["unknown_item_ids"] == [10**13]
    assert [r["item_id"] for r in served["items"]] == [r.item_id for r in direct.items]
    assert (
        max(abs(a["score"] - b.score) for a, b in zip(served["items"], direct.items, strict=True))
        <= 1e-4
    )
    found = httpx.post(
        f"{running.url}/search",
        json={"query": "chill vibes", "user_id": 3, "k": 3},
        headers=headers,
        timeout=30,
    )
    assert found.status_code == 200 and len(found.json()["results"]) == 3
    # Each answered request's stages are exported as histograms (serving/stages.py).
    exported = httpx.get(f"{running.url}/metrics", timeout=30).text
    for endpoint, stages in (
        ("rank", ("online_features", "feature_processing", "model", "response")),
        # decode runs only where the service carries the generative retriever, listener only
        # for a query typed partway whose routing favours the listener's market; neither here
        ("search", tuple(s for s in STAGES if s not in ("decode", "listener"))),
    ):
        for stage in stages:
            count = re.search(
                rf'searchrank_stage_seconds_count{{[^}}]*endpoint="{endpoint}"[^}}]*'
                rf'stage="{stage}"[^}}]*}} ([0-9.e+]+)',
                exported,
            )
            assert count and float(count.group(1)) >= 1, (endpoint, stage)


def test_the_api_key_guards_the_endpoints_but_not_probes_or_metrics(
    running: RunningService,
) -> None:
    body = {"query": "a", "user_id": 1, "item_ids": [1]}
    refused = httpx.post(f"{running.url}/rank", json=body, timeout=30)
    assert refused.status_code == 401 and "x-api-key" in refused.text
    bearer = {"authorization": f"Bearer {KEY}"}
    assert (
        httpx.post(f"{running.url}/rank", json=body, headers=bearer, timeout=30).status_code == 200
    )
    assert httpx.get(f"{running.url}/readyz").status_code == 200
    metrics = httpx.get(f"{running.url}/metrics")
    assert metrics.status_code == 200 and "bentoml_service_request_duration_seconds" in metrics.text


def test_a_model_whose_feature_service_is_missing_does_not_start(
    ranker_checkpoint: Path, stored_models: StoredModels, logged_day: LoggedDay, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(ranker_checkpoint, folder)
    contract = FeatureContract.load(folder)
    replace(contract, feature_service="ranker_v9").save(folder)
    ranker = save_ranker(folder, {"feature_service": "ranker_v9"}, {})
    broken = build_bento(ranker, stored_models.retriever, {})
    with pytest.raises(RuntimeError, match="ranker_v9"), serve(broken, logged_day.repo):
        pass


def test_searchrank_serve_checks_the_bento_and_the_feature_repository_first(
    stored_models: StoredModels, logged_day: LoggedDay, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from searchrank.pipelines.cli import app
    from searchrank.serving.bento import latest_bento, preflight

    newest = build_bento(stored_models.ranker, stored_models.retriever, {})
    assert latest_bento() == newest
    preflight(newest, logged_day.repo)
    unknown = CliRunner().invoke(app, ["serve", "--bento", "searchrank:nope"])
    assert unknown.exit_code == 2 and "bento" in unknown.output
    no_repo = CliRunner().invoke(app, ["serve", "--feature-repo", str(tmp_path)])
    assert no_repo.exit_code == 2 and "feature_repo" in no_repo.output


@pytest.mark.parametrize("path", ["/rank", "/search"])
def test_fuzzing_from_the_openapi_document_finds_no_server_error(
    running: RunningService, path: str
) -> None:
    """Schemathesis generates valid and invalid bodies from the service's own OpenAPI
    document; none may produce a 5xx. Bounded in examples and time, loopback only."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    headers = {"x-api-key": KEY}
    schema = schemathesis.openapi.from_url(f"{running.url}/docs.json", headers=headers)
    operation = schema[path]["POST"]
    server_errors: list[str] = []

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=running.url, headers=headers, timeout=30)
        if response.status_code >= 500:
            server_errors.append(f"{response.status_code} for {case.body!r}: {response.text}")

    fuzz()
    assert not server_errors, server_errors[:3]


def test_no_explicit_item_reaches_a_filtered_listener_whatever_is_asked(
    running: RunningService, logged_day: LoggedDay, catalogue: pd.DataFrame
) -> None:
    """Randomized requests of listeners whose filter applies (their stored setting, the
    request's flag, or an unknown account), to both endpoints of the real served Bento: zero
    explicit items come back, whatever the query, the candidates or k."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    explicit = catalogue.set_index(S.ITEM_ID)["explicit"]
    setting = logged_day.rows.groupby(S.USER_ID)[T.EXPLICIT_FILTER_COLUMN].first()
    setting = setting.dropna().astype(bool)
    stored_on = [int(u) for u in setting.index[setting]]
    assert stored_on, "the logged day must hold listeners whose stored filter is on"
    listeners = st.one_of(
        st.tuples(st.sampled_from(stored_on), st.sampled_from([None, False, True])),
        st.tuples(st.integers(0, 2**40), st.just(True)),
        st.tuples(st.integers(10**12, 10**13), st.none()),  # unknown accounts
    )
    words = sorted({*catalogue["genre"], *catalogue["artist_name"].head(200)})
    queries = st.one_of(
        st.sampled_from(words),
        st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=30).filter(str.strip),
    )
    candidates = st.lists(
        st.one_of(st.sampled_from(catalogue[S.ITEM_ID].tolist()), st.integers(0, 10**9)),
        min_size=1,
        max_size=200,
    )
    leaks: list[str] = []
    counts = {"requests": 0, "items": 0}

    def check(path: str, body: dict[str, object], key: str) -> None:
        response = httpx.post(
            f"{running.url}{path}", json=body, headers={"x-api-key": KEY}, timeout=30
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        shown = [int(r["item_id"]) for r in answer[key]]
        counts["requests"] += 1
        counts["items"] += len(shown)
        if not answer["explicit_filter"] or explicit.reindex(shown).fillna(True).any():
            leaks.append(f"{path} {body}: {answer}")

    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(listener=listeners, query=queries, items=candidates, k=st.integers(1, 100))
    def fuzz(listener: tuple[int, bool | None], query: str, items: list[int], k: int) -> None:
        user, requested = listener
        flag = {} if requested is None else {"explicit_filter": requested}
        check("/search", {"query": query, "user_id": user, "k": k, **flag}, "results")
        check("/rank", {"query": query, "user_id": user, "item_ids": items, **flag}, "items")

    fuzz()
    assert not leaks, leaks[:2]
    assert counts["requests"] >= 80 and counts["items"] > 0, counts
