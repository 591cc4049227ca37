"""The service's logic against training: the same features and scores for logged searches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serving.conftest import LoggedDay

from searchrank.components.train_retriever.logic import RetrieverSummary
from searchrank.core import schema as S
from searchrank.core.candidates import CandidateGenerator
from searchrank.core.checkpoint import load_ranker
from searchrank.core.contract import ContractMismatchError, FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import ColumnRole
from searchrank.core.intent import IntentModel
from searchrank.core.query_rewrite import Rewrite
from searchrank.core.scoring import score_model
from searchrank.core.text import normalize_text
from searchrank.features import tables as T
from searchrank.serving.api import SEARCH_CANDIDATES
from searchrank.serving.checks import check_feature_service
from searchrank.serving.engine import SearchEngine

SEARCHES = 25


def _same(served: pd.Series, trained: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(trained):
        a, b = pd.to_datetime(served, utc=True), trained
        return bool(((a == b) | (a.isna() & b.isna())).all())
    if pd.api.types.is_numeric_dtype(trained) or pd.api.types.is_bool_dtype(trained):
        a = pd.to_numeric(served, errors="coerce").to_numpy(np.float64)
        b = pd.to_numeric(trained, errors="coerce").to_numpy(np.float64)
        return bool(np.allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True))
    return served.astype(object).where(served.notna(), None).tolist() == (
        trained.astype(object).where(trained.notna(), None).tolist()
    )


def test_served_features_and_scores_equal_training_for_logged_searches(
    engine: SearchEngine, logged_day: LoggedDay, ranker_checkpoint: Path
) -> None:
    rows = logged_day.rows
    chosen = rows[S.SEARCH_ID].drop_duplicates().head(SEARCHES)
    assert len(chosen) >= 10, "the last day must hold enough searches to compare"
    worst = 0.0
    for search_id in chosen:
        trained = rows[rows[S.SEARCH_ID] == search_id].reset_index(drop=True)
        served, scores = engine.scored_rows(
            trained[S.QUERY].iloc[0], int(trained[S.USER_ID].iloc[0]), trained[S.ITEM_ID].tolist()
        )
        features = S.feature_columns(list(trained.columns))
        assert set(features) <= set(served.columns)
        different = [c for c in features if not _same(served[c], trained[c])]
        assert not different, f"search {search_id}: online differs from training in {different}"
        offline = score_model(trained, ranker_checkpoint)
        worst = max(worst, float(np.abs(scores - offline).max()))
    assert worst <= 1e-4


def test_rank_drops_unknown_items_and_serves_unknown_users_cold(
    engine: SearchEngine, logged_day: LoggedDay
) -> None:
    first = logged_day.rows.iloc[:1]
    items = logged_day.rows[S.ITEM_ID].drop_duplicates().head(12).tolist()
    # An unknown listener is filtered unless the request says otherwise (explicit content).
    response = engine.rank("Halo!", 10**12, [*items, 10**13, items[0]], explicit_filter=False)
    assert response.unknown_item_ids == [10**13]
    assert sorted(r.item_id for r in response.items) == sorted(items)
    scores = [r.score for r in response.items]
    assert scores == sorted(scores, reverse=True)
    assert response.cold_start
    known = engine.rank(first[S.QUERY].iloc[0], int(first[S.USER_ID].iloc[0]), items)
    assert not known.cold_start
    with pytest.raises(InputError, match="query"):
        engine.rank("?!", 1, items)


def test_search_retrieves_misspelled_names_and_returns_metadata(
    engine: SearchEngine, catalogue: pd.DataFrame
) -> None:
    target = catalogue[catalogue["item_type"] == "track"].iloc[0]
    name = str(target["name"]).lower()
    misspelled = name[:-1] + ("x" if name[-1] != "x" else "y")
    response = engine.search(misspelled, 1, 10)
    assert 1 <= len(response.results) <= 10 and response.retrieved >= len(response.results)
    assert all(r.name and r.item_type for r in response.results)
    ids = engine.candidates(engine.retriever.rewrite(misspelled), 1, 10)
    assert int(target["item_id"]) in ids, "trigram BM25 must still find a misspelled name"


def test_search_says_which_correction_or_completion_it_showed_results_for(
    engine: SearchEngine, catalogue: pd.DataFrame
) -> None:
    names = catalogue["name"].map(normalize_text)
    name = next(n for n in names if len(n.split()[-1]) >= 6)
    slipped = name[:-2] + name[-1] + name[-2]  # the last two letters swapped
    corrected = engine.search(slipped, 1, 10)
    assert corrected.query == slipped
    assert corrected.rewrite is not None and corrected.rewrite.kind == "corrected"
    assert corrected.rewrite.query == name and 0 < corrected.rewrite.confidence <= 1
    half = engine.search(name[: len(name) - 3], 1, 10)
    assert half.rewrite is not None and half.rewrite.kind == "completed"
    assert half.rewrite.query.startswith(name[: len(name) - 3])
    assert engine.search(name, 1, 10).rewrite is None, "a name typed right is read as typed"


def test_a_prefix_reads_the_listeners_market_where_the_routing_favours_it(
    engine: SearchEngine, logged_day: LoggedDay, catalogue: pd.DataFrame
) -> None:
    """The market comes from the online store (what the ranker's features carry), only for a
    query typed partway and only when the routing gives it a bonus; it orders the completions."""
    from searchrank.core.retrieval import FusionRouting
    from searchrank.serving.stages import timed_request

    markets = logged_day.rows.groupby(S.USER_ID)[T.MARKET_COLUMN].first().dropna()
    user, market = int(markets.index[0]), str(markets.iloc[0])
    assert engine.features.listener_market(user) == market
    assert engine.features.listener_market(10**12) is None, "an unknown listener has none"
    names = catalogue["name"].map(normalize_text)
    prefix = next(n[:2] for n in names if engine.retriever.is_partial(Rewrite.unchanged(n[:2])))
    favoured = SearchEngine(
        engine.features,
        engine.ranker,
        replace(engine.retriever, routing=FusionRouting(market_weight=4.0)),
    )
    for searcher, query, reads in (
        (favoured, prefix, True),
        (favoured, names.iloc[0], False),  # typed whole
        (engine, prefix, False),  # no bonus in the routing
    ):
        with timed_request() as seconds:
            searcher.search(query, user, 10)
        assert (seconds["listener"] > 0) is reads, (query, reads)
    rewrite = favoured.retriever.rewrite(prefix)
    found = favoured.candidates(rewrite, user, 10)
    retrieve = favoured.retriever.retrieve
    assert found == retrieve(rewrite, user, SEARCH_CANDIDATES, market=market)
    assert found != retrieve(rewrite, user, SEARCH_CANDIDATES), "the market reorders them"


def _explicit(catalogue: pd.DataFrame) -> pd.Series:
    return catalogue.set_index(S.ITEM_ID)["explicit"]


def test_explicit_items_are_withheld_exactly_when_the_listeners_filter_applies(
    engine: SearchEngine, logged_day: LoggedDay, catalogue: pd.DataFrame
) -> None:
    explicit = _explicit(catalogue)
    rows = logged_day.rows
    setting = rows.groupby(S.USER_ID)[T.EXPLICIT_FILTER_COLUMN].first().dropna().astype(bool)
    unfiltered, filtered = int(setting.index[~setting][0]), int(setting.index[setting][0])
    items = catalogue[S.ITEM_ID].head(400).tolist()
    dirty = int(explicit.reindex(items).sum())
    assert 0 < dirty < len(items), "the candidates must mix explicit and clean items"
    for user, requested, applies in (
        (unfiltered, None, False),
        (unfiltered, True, True),
        (filtered, None, True),
        (filtered, False, True),  # the stored setting wins over a request to lift it
        (10**12, None, True),  # an unknown listener is filtered unless the request says off
        (10**12, False, False),
    ):
        response = engine.rank("rock", user, items, explicit_filter=requested)
        shown = [r.item_id for r in response.items]
        assert response.explicit_filter is applies, (user, requested)
        assert int(explicit.reindex(shown).sum()) == (0 if applies else dirty), (user, requested)
        assert response.withheld_explicit == (dirty if applies else 0)
        assert len(shown) + response.withheld_explicit == len(items)
        # Without a known candidate the listener's setting is still looked up and reported.
        nothing = engine.rank("rock", user, [10**13], explicit_filter=requested)
        assert not nothing.items and nothing.explicit_filter is applies, (user, requested)


def test_a_filtered_search_still_fills_k_from_clean_items(
    engine: SearchEngine, catalogue: pd.DataFrame
) -> None:
    explicit = _explicit(catalogue)
    # Hip-hop is the genre with the most explicit tracks: a query that retrieves many of them.
    response = engine.search("hip hop", 10**12, 100, explicit_filter=True)
    shown = [r.item_id for r in response.results]
    assert len(shown) == 100 and response.withheld_explicit > 0
    assert not explicit.reindex(shown).fillna(True).any()
    unfiltered = engine.search("hip hop", 10**12, 100, explicit_filter=False)
    assert explicit.reindex([r.item_id for r in unfiltered.results]).any()


def test_the_service_refuses_a_model_the_feature_service_cannot_feed(
    logged_day: LoggedDay, ranker_checkpoint: Path
) -> None:
    from searchrank.features.store import open_store

    store = open_store(logged_day.repo)
    _, processor, _ = load_ranker(ranker_checkpoint)
    contract = FeatureContract.load(ranker_checkpoint)
    check_feature_service(store, contract, processor)  # what it trained on: fine
    with pytest.raises(InputError, match=r"ranker_v9.*registered"):
        check_feature_service(store, replace(contract, feature_service="ranker_v9"), processor)
    # The model reads a feature the registry no longer has, and one whose type changed.
    columns = contract.by_column()
    gone = replace(columns["item_stats__popularity"], column="item_stats__plays_1d")
    retyped = replace(columns["user_stats__activity_bucket"], dtype="Int64")
    edited = replace(
        contract,
        columns=(*(c for c in contract.columns if c.column != retyped.column), gone, retyped),
    )
    numeric = [*processor.numeric, ColumnRole("item_stats__plays_1d", "numeric")]
    with pytest.raises(ContractMismatchError) as caught:
        check_feature_service(store, edited, replace(processor, numeric=numeric))
    problems = dict(caught.value.problems)
    assert problems["item_stats__plays_1d"] == "the model reads it, the feature service lacks it"
    assert problems["user_stats__activity_bucket"].startswith("must be Int64 as in training")


def test_dense_candidates_are_fused_with_the_lexical_ones_as_the_intent_routes(
    engine: SearchEngine,
    retriever_model: RetrieverSummary,
    intent_splits: dict[str, Path],
    tmp_path: Path,
) -> None:
    """With a two-tower retriever, its index, the intent model and a routing, ``/search``
    candidates are the fusion of both lists weighted for the predicted intent, and the saved
    generator loads back with every part."""
    from searchrank.components.build_index.logic import build_index
    from searchrank.core.ann import AnnParams
    from searchrank.core.candidates import RetrieverParts
    from searchrank.core.intent import top_intent
    from searchrank.core.retrieval import FusionRouting, reciprocal_rank_fusion

    model_dir = Path(retriever_model.model_dir)
    build_index(model_dir.parent / "embeddings.parquet", tmp_path / "index", AnnParams(), k=10)
    query, user = "chill", 1
    understood = CandidateGenerator(
        engine.retriever.lexical, intent=IntentModel.load(intent_splits["model"])
    ).understand(query)
    assert understood is not None
    intent = top_intent(understood)
    routing = FusionRouting({intent: 1.0})
    routing.save(tmp_path / "routing.json")
    parts = RetrieverParts(
        model_dir, tmp_path / "index", intent_splits["model"], tmp_path / "routing.json"
    )
    CandidateGenerator(engine.retriever.lexical).save(tmp_path / "generator", parts)
    generator = CandidateGenerator.load(tmp_path / "generator")
    assert generator.dense is not None and generator.intent is not None
    assert generator.routing == routing
    saved = {f.name for f in (tmp_path / "generator" / "two_tower").iterdir()}
    assert "optimizer.pt" in {f.name for f in model_dir.iterdir()}
    assert "optimizer.pt" not in saved, "the service carries no optimizer state"
    dense = generator.dense.retrieve([query], [user], 50)[0]
    lexical = engine.retriever.lexical.retrieve(query, 50)[0].tolist()
    read = generator.rewrite(query)
    assert generator.retrieve(read, user, 50) == reciprocal_rank_fusion([dense, lexical], 50)
    assert generator.retrieve(read, user, 50, intent) == dense, "routed fully to the index"
    assert set(dense) - set(lexical), "the dense side brings items the words alone do not"

    fused = SearchEngine(engine.features, engine.ranker, generator)
    response = fused.search(query, user, 10)
    assert len(response.results) == 10 and response.retrieved >= 10
    assert response.intent == intent
    assert engine.search(query, user, 10).intent is None, "no intent model, no intent"


def test_a_ranker_that_reads_intent_needs_the_intent_model(engine: SearchEngine) -> None:
    from dataclasses import replace

    from searchrank.core.features import ColumnRole
    from searchrank.core.intent import intent_column

    processor = engine.ranker.processor
    reads_intent = replace(
        processor, numeric=[*processor.numeric, ColumnRole(intent_column("track"), "numeric")]
    )
    with pytest.raises(InputError, match="intent model"):
        SearchEngine(
            engine.features, replace(engine.ranker, processor=reads_intent), engine.retriever
        )


def test_encoded_inputs_equal_the_processors_encoding_of_the_rows_read(
    engine: SearchEngine, logged_day: LoggedDay
) -> None:
    """The service gathers item inputs from the cache's encoded matrix and encodes the rest per
    request; the result is what the processor makes of the same rows as a frame. A cache that
    starts with a few items looks the others up on the request and encodes them the same."""
    from searchrank.serving.online import OnlineFeatures

    rows = logged_day.rows
    search = rows[rows[S.SEARCH_ID] == rows[S.SEARCH_ID].iloc[0]]
    query, user = str(search[S.QUERY].iloc[0]), int(search[S.USER_ID].iloc[0])
    items = search[S.ITEM_ID].tolist()
    intent = engine.understand(query)
    probabilities = intent.probabilities if intent else {}
    full = engine.features
    few = OnlineFeatures(full.store, full.contract, full.processor, items[:2])
    assert len(few.items) == 2
    for features in (full, few):
        fetched = features.fetch(query, user, items)
        encoded = features.encode(fetched, probabilities)
        dense, codes = full.processor.transform(fetched.frame(probabilities))
        assert np.array_equal(encoded["dense"], dense)
        assert np.array_equal(encoded["codes"], codes)
    assert len(few.items) == len(set(items)), "looked-up items are cached"
    with pytest.raises(ValueError, match="unknown to the catalogue"):
        full.fetch(query, user, [*items, 10**13])


def test_items_the_cache_lacks_are_read_on_demand_and_encoded_like_the_rest(
    engine: SearchEngine,
) -> None:
    from searchrank.serving.online import ItemCache

    full = engine.features.items.snapshot
    ids = full.item_ids
    half, rest = ids[: len(ids) // 2], ids[len(ids) // 2 :]
    cache = ItemCache(
        engine.features.store,
        engine.features.layout,
        engine.features.processor,
        half,
        engine.features.deadline,
    )
    asked = [rest[0], half[0], rest[-1], 10**13]  # missing, cached, missing, unknown anywhere
    snapshot, rows = cache.positions(asked)
    assert rows[-1] == -1 and (rows[:-1] >= 0).all()
    assert snapshot.item_ids[: len(half)] == half, "cached rows keep their positions"
    assert len(snapshot) == len(half) + 2
    expected = np.asarray([full.position[i] for i in asked[:-1]])
    np.testing.assert_array_equal(snapshot.dense[rows[:-1]], full.dense[expected])
    np.testing.assert_array_equal(snapshot.codes[rows[:-1]], full.codes[expected])
    for name, column in full.columns.items():
        assert snapshot.columns[name][rows[:-1]].tolist() == column[expected].tolist(), name
    np.testing.assert_array_equal(snapshot.popularity[rows[:-1]], full.popularity[expected])
    # The popularity order covers the added items: every position once, most popular first.
    assert sorted(snapshot.by_popularity.tolist()) == list(range(len(snapshot)))
    ordered = np.nan_to_num(snapshot.popularity[snapshot.by_popularity], nan=-np.inf)
    assert (ordered[:-1] >= ordered[1:]).all()
    assert cache.positions([rest[0]])[0] is snapshot, "a second ask reads nothing"
