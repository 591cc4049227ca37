"""The Redis online store (the cluster's) serves what the SQLite one (the embedded default) does.

Starts Debian's ``redis-server`` on a free 127.0.0.1 port (``tests/services.py``); skipped when
it is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from services import redis_server
from serving.conftest import LoggedDay

from searchrank.core import schema as S
from searchrank.serving.engine import SearchEngine


@pytest.fixture(scope="module")
def redis_address() -> Iterator[str]:
    with redis_server() as address:
        yield address


def test_redis_serves_the_same_features_and_scores_as_sqlite(
    redis_address: str,
    logged_day: LoggedDay,
    feature_repo: Path,
    engine: SearchEngine,
    tmp_path: Path,
) -> None:
    from searchrank.components.package_service.logic import staging_repo
    from searchrank.features.store import open_store

    redis = {"type": "redis", "connection_string": redis_address}
    until = logged_day.rows[S.EVENT_TIMESTAMP].max()
    repo = staging_repo(feature_repo, tmp_path / "repo", until, online_store=redis)
    on_redis = SearchEngine.open(open_store(repo), engine.ranker, engine.retriever)
    rows = logged_day.rows
    for search_id in rows[S.SEARCH_ID].drop_duplicates().head(10):
        search = rows[rows[S.SEARCH_ID] == search_id]
        args = (
            str(search[S.QUERY].iloc[0]),
            int(search[S.USER_ID].iloc[0]),
            search[S.ITEM_ID].tolist(),
        )
        redis_rows, redis_scores = on_redis.scored_rows(*args)
        sqlite_rows, sqlite_scores = engine.scored_rows(*args)
        features = S.model_feature_columns(list(search.columns))
        for column in features:
            a = redis_rows[column].astype(object).where(redis_rows[column].notna(), None)
            b = sqlite_rows[column].astype(object).where(sqlite_rows[column].notna(), None)
            assert a.tolist() == b.tolist(), column
        np.testing.assert_allclose(redis_scores, sqlite_scores, atol=1e-5)
    # Feast's Redis store appends to the feature list it is handed: the reader's must not grow.
    assert sorted(on_redis.features.reader.references) == sorted(
        on_redis.features.layout.request_features
    )
