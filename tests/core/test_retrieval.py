"""Catalogue-wide retrieval helpers: item texts, exact top-k, recall and MRR, fusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.core.ann import exact_top_k
from searchrank.core.candidates import lexical_text
from searchrank.core.errors import InputError
from searchrank.core.retrieval import (
    FusionRouting,
    fit_fusion_routing,
    fit_popularity_weight,
    item_streams,
    popularity_reranked,
    reciprocal_rank_fusion,
    retrieval_metrics,
    route_key,
    wanted_items,
)
from searchrank.core.retriever import two_tower_item_text


def test_recall_and_mrr_by_hand() -> None:
    retrieved = [[5, 1, 2], [9, 8, 7], [3, 4, 6]]
    relevant = [[1, 2], [4], [6, 3], []]  # the empty one does not count
    metrics = retrieval_metrics([*retrieved, [1]], relevant, ks=(1, 3))
    assert metrics["recall@1"] == pytest.approx((0 + 0 + 0.5) / 3)
    assert metrics["recall@3"] == pytest.approx((1.0 + 0 + 1.0) / 3)
    assert metrics["mrr"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert metrics["searches"] == 3


def test_one_list_per_search_is_required() -> None:
    with pytest.raises(InputError, match="retrieved"):
        retrieval_metrics([[1]], [[1], [2]])


def test_reciprocal_rank_fusion_by_hand() -> None:
    # 1: 1/61 + 1/63; 2: 1/62 + 1/61; 3: 1/63; 4: 1/62
    assert reciprocal_rank_fusion([[1, 2, 3], [2, 4, 1]], k=4) == [2, 1, 4, 3]
    assert reciprocal_rank_fusion([[7, 5, 6]], k=2) == [7, 5], "one list comes back as it was"
    assert reciprocal_rank_fusion([[1], [2]], k=2, weights=[1.0, 2.0]) == [2, 1]
    with pytest.raises(InputError, match="weights"):
        reciprocal_rank_fusion([[1]], k=1, weights=[1.0, 1.0])


def test_exact_top_k_equals_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    items, queries = rng.normal(size=(300, 8)), rng.normal(size=(20, 8))
    ids = np.arange(100, 400)
    top, _ = exact_top_k(ids, items, queries, 10, "inner_product", batch_size=7)
    expected = ids[np.argsort(-(queries @ items.T), axis=1)[:, :10]]
    assert (top == expected).all()


def test_two_tower_item_text_joins_text_columns_and_names_metadata() -> None:
    catalogue = pd.DataFrame(
        {
            "item_id": [2, 1, 2],
            "name": ["Halo", "Hey Jude", "Halo"],
            "artist_name": ["Beyoncé", None, "Beyoncé"],
            "keywords": ["pop", "", "pop"],
            "item_type": ["track", "track", "track"],
        }
    )
    ids, texts, extra = two_tower_item_text(catalogue)
    assert ids.tolist() == [2, 1]
    assert texts == ["Halo Beyoncé pop", "Hey Jude  "]
    assert extra == [["item_type track"], ["item_type track"]]
    with pytest.raises(InputError, match="catalogue columns"):
        two_tower_item_text(pd.DataFrame({"item_id": [1]}))

    # The served BM25 reads names and artists only.
    ids, texts = lexical_text(catalogue)
    assert ids.tolist() == [2, 1]
    assert texts == ["Halo Beyoncé", "Hey Jude "]
    with pytest.raises(InputError, match="catalogue columns"):
        lexical_text(catalogue.drop(columns="artist_name"))


def test_wanted_items_are_engaged_items_and_the_named_target() -> None:
    rows = pd.DataFrame(
        {
            "search_id": [7, 7, 7, 3, 3, 5],
            "item_id": [10, 11, 12, 20, 21, 30],
            "label": [2, 0, 3, 1, 0, 0],
        }
    )
    searches = pd.DataFrame(
        {"search_id": [3, 5, 7, 9], "target_item_id": pd.array([None, 99, 11, 1], "Int64")}
    )
    # Searches in order of first appearance; 3 and 5 wanted nothing they showed.
    assert wanted_items(rows, 2).to_dict() == {7: [10, 12]}
    wanted = wanted_items(rows, 2, searches)
    assert wanted.index.tolist() == [7, 5], "a named item counts even when no row shows it"
    assert wanted.to_dict() == {7: [10, 11, 12], 5: [99]}
    assert wanted_items(rows, 1, searches.drop(columns="target_item_id")).to_dict() == {
        7: [10, 12],
        3: [20],
    }
    with pytest.raises(InputError, match="rows columns"):
        wanted_items(rows.drop(columns="label"), 2)


def test_routing_picks_each_intents_best_dense_share_on_hand_made_searches(
    tmp_path: Path,
) -> None:
    """Moods are found only by the dense list's second item and names only by the lexical
    list's, so the fitted routing puts the dense list first for moods and last for names."""
    dense = [[1, 2], [3, 4], [5, 6], [7, 8]]
    lexical = [[9, 1], [10, 3], [5, 11], [7, 12]]
    relevant = [[2], [4], [11], [12]]
    intents = ["genre_mood", "genre_mood", "track", "track"]
    routing = fit_fusion_routing(dense, lexical, relevant, intents, k=2)
    # Every share above 0.5 finds each mood's item, every share below it each track's; among
    # those ties the share nearest an even fusion wins.
    assert routing.dense_share == {"genre_mood": 0.55, "track": 0.45}
    assert routing.default == 0.45, "over all searches the uneven shares tie; the lower wins"
    assert routing.fuse(dense[0], lexical[0], 2, "genre_mood") == [1, 2]
    assert routing.fuse(dense[2], lexical[2], 2, "track") == [5, 11]
    assert routing.weights(None) == routing.weights("podcast") == (0.45, 0.55, 0.0)
    routing.save(tmp_path / "routing.json")
    assert FusionRouting.load(tmp_path / "routing.json") == routing


def test_bad_routings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dense_share\[track\]"):
        FusionRouting({"track": 1.5})
    with pytest.raises(InputError, match="searches"):
        fit_fusion_routing([[1]], [[1]], [[1]], [], k=1)
    (tmp_path / "bad.json").write_text('{"dense_share": 3}')
    with pytest.raises(InputError, match="routing"):
        FusionRouting.load(tmp_path / "bad.json")


def test_the_generative_list_gets_weight_only_for_the_intents_where_it_adds_recall(
    tmp_path: Path,
) -> None:
    """Podcasts' wanted items are only in the generative lists; tracks' are in the lexical
    ones, and the generative lists hold nothing useful there."""
    dense = [[1, 2], [3, 4], [5, 6], [7, 8]]
    lexical = [[9, 10], [11, 12], [13, 14], [15, 16]]
    generative = [[21, 22], [23, 24], [25, 26], [27, 28]]
    relevant = [[21], [23], [13], [15]]
    intents = ["podcast", "podcast", "track", "track"]
    routing = fit_fusion_routing(dense, lexical, relevant, intents, k=2, generative=generative)
    assert routing.generative_share["track"] == 0.0, "a tie goes to the smaller weight"
    assert routing.generative_share["podcast"] > 0.0
    dense_weight, lexical_weight, weight = routing.weights("podcast")
    assert dense_weight + lexical_weight + weight == pytest.approx(1.0)
    assert routing.fuse(dense[0], lexical[0], 2, "podcast", generative[0])[0] == 21
    assert 21 not in routing.fuse(dense[2], lexical[2], 2, "track", generative[2])
    routing.save(tmp_path / "routing.json")
    assert FusionRouting.load(tmp_path / "routing.json") == routing


def test_a_routing_saved_before_the_generative_source_loads_without_it(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text('{"dense_share": {"track": 0.25}, "default": 0.5}')
    routing = FusionRouting.load(tmp_path / "old.json")
    assert routing.weights("track") == (0.25, 0.75, 0.0)
    assert routing.popularity_weight == 0.0 and routing.market_weight == 0.0
    with pytest.raises(InputError, match="popularity_weight"):
        FusionRouting(popularity_weight=-1.0)
    with pytest.raises(InputError, match="market_weight"):
        FusionRouting(market_weight=float("nan"))
    with pytest.raises(InputError, match="prefix_weight"):
        FusionRouting(prefix_weight=-1.0)
    assert routing.prefix_weight == 1.0
    FusionRouting(market_weight=2.0, prefix_weight=4.0).save(tmp_path / "new.json")
    loaded = FusionRouting.load(tmp_path / "new.json")
    assert (loaded.market_weight, loaded.prefix_weight) == (2.0, 4.0)
    with pytest.raises(InputError, match=r"generative_share\[podcast\]"):
        FusionRouting(generative_share={"podcast": 2.0})


def test_the_popularity_prior_reorders_near_ties_and_its_weight_is_fitted() -> None:
    ids = np.array([10, 11, 12])
    scores = np.array([5.0, 4.9, 1.0])
    log_streams = np.log1p(np.array([0.0, 100.0, 1000.0]))
    assert popularity_reranked(ids, scores, log_streams, 0.0, 2) == [10, 11]
    assert popularity_reranked(ids, scores, log_streams, 0.1, 2) == [11, 10]
    assert popularity_reranked(ids, scores, log_streams, 2.0, 1) == [12]
    pools = [(ids, scores, log_streams)] * 2
    assert fit_popularity_weight(pools, [[11], [11]], k=1) == 0.05, "the least weight that works"
    assert fit_popularity_weight(pools, [[10], [10]], k=1) == 0.0


def test_item_streams_count_rows_at_the_stream_grade() -> None:
    rows = pd.DataFrame({"item_id": [1, 1, 2, 3, 3, 3], "label": [2, 3, 1, 2, 0, 2]})
    assert item_streams(rows).to_dict() == {1: 2.0, 3: 2.0}
    with pytest.raises(InputError, match="rows columns"):
        item_streams(rows.drop(columns="label"))


def test_a_query_typed_partway_takes_its_routes_weights_else_its_intents() -> None:
    routing = FusionRouting({"track": 0.5, route_key("track", True): 0.0, "album": 0.25})
    assert route_key("track", False) == "track"
    assert routing.weights("track") == (0.5, 0.5, 0.0)
    assert routing.weights("track", partial=True) == (0.0, 1.0, 0.0)
    assert routing.weights("album", partial=True) == routing.weights("album"), "no own route"
    assert routing.weights(None, partial=True) == routing.weights(None)
    found = fit_fusion_routing(
        [[1], [2]], [[3], [4]], [[1], [4]], ["track", route_key("track", True)], k=1
    )
    assert found.weights("track", partial=True)[0] < found.weights("track")[0]


def test_a_described_query_takes_its_routes_weights_else_its_intents() -> None:
    described = route_key("podcast", False, described=True)
    assert described == "podcast (described)"
    assert route_key("podcast", True, described=True) == route_key("podcast", True), "partway first"
    routing = FusionRouting({"podcast": 0.25, described: 1.0})
    assert routing.weights("podcast", described=True) == (1.0, 0.0, 0.0)
    assert routing.weights("podcast") == (0.25, 0.75, 0.0)
    assert routing.weights("track", described=True) == routing.weights("track"), "no own route"
    assert routing.fuse([1], [2], 1, "podcast", described=True) == [1]
    assert routing.fuse([1], [2], 1, "podcast") == [2]


def test_shares_that_tie_on_recall_at_k_are_told_apart_by_the_head_of_the_list() -> None:
    """The wanted item is the lexical list's 8th of 20. Dense shares from 0 to 0.5 all keep it
    in the first 20; only those below 0.5 keep it in the first 10, so 0.45 wins, not the even
    0.5."""
    dense = [list(range(100, 120))]
    lexical = [list(range(200, 220))]
    relevant = [[207]]
    routing = fit_fusion_routing(dense, lexical, relevant, ["artist"], k=20)
    assert routing.dense_share == {"artist": 0.45}
    assert routing.fuse(dense[0], lexical[0], 20, "artist").index(207) < 10
    even = FusionRouting(default=0.5).fuse(dense[0], lexical[0], 20)
    assert 10 <= even.index(207) < 20, "the even fusion keeps it only past the head"
