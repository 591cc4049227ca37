"""The candidate generator's sources: BM25 with its popularity prior, and the generative
retriever as a third source (routed, timed, saved and loaded with the rest)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from searchrank.core import schema as S
from searchrank.core.candidates import (
    GENERATIVE_DEPTH,
    CandidateGenerator,
    RetrieverParts,
    SourceLists,
)
from searchrank.core.errors import InputError
from searchrank.core.generative import GenerativeConfig, GenerativeRetriever, GenerativeSource
from searchrank.core.query_rewrite import Rewrite
from searchrank.core.retrieval import FusionRouting, reciprocal_rank_fusion
from searchrank.core.retriever import IdVocabulary
from searchrank.core.semantic_ids import SemanticIdConfig, fit_semantic_ids

ITEMS = 60


def catalogue() -> pd.DataFrame:
    """Sixty tracks; the ten "Midnight …" ones match the query "midnight" equally well."""
    names = [f"Midnight {word}" for word in "abcdefghij"] + [f"Song {i}" for i in range(50)]
    return pd.DataFrame(
        {
            S.ITEM_ID: np.arange(100, 100 + ITEMS),
            "name": names,
            "artist_name": ["Neon Owls"] * ITEMS,
        }
    )


def generative_source() -> GenerativeSource:
    """An untrained generative retriever over the catalogue's items (random semantic IDs)."""
    rng = np.random.default_rng(0)
    item_ids = np.arange(100, 100 + ITEMS)
    ids = fit_semantic_ids(item_ids, rng.normal(size=(ITEMS, 8)), SemanticIdConfig(2, 4))
    depth = ids.codes.shape[1]
    config = GenerativeConfig(depth, int(ids.codes.max()) + 1, users=3, text_buckets=64, d_model=16)
    torch.manual_seed(0)
    return GenerativeSource(GenerativeRetriever(config), IdVocabulary(np.array([1, 2, 3])), ids, 8)


def unchanged(query: str) -> Rewrite:
    return Rewrite(query, query, "unchanged", 1.0)


def test_the_popularity_prior_puts_the_streamed_item_first_among_equal_matches() -> None:
    streams = pd.Series({105: 500.0, 101: 3.0})
    # BM25 alone: "midnight" begins every "Midnight …" name, and the prefix index's own
    # popularity order is tested below.
    generator = replace(
        CandidateGenerator.from_catalogue(catalogue(), streams=streams), prefix=None
    )
    plain = generator.retrieve(unchanged("midnight"), 1, 10)
    assert plain[0] != 105, "BM25 alone has no reason to put it first"
    generator.routing = FusionRouting(popularity_weight=0.5)
    assert generator.popularity_weight == 0.5
    assert generator.retrieve(unchanged("midnight"), 1, 10)[0] == 105
    assert sorted(generator.retrieve(unchanged("midnight"), 1, 10)) == sorted(plain)
    without_streams = replace(CandidateGenerator.from_catalogue(catalogue()), prefix=None)
    without_streams.routing = FusionRouting(popularity_weight=0.5)
    assert without_streams.popularity_weight == 0.0
    assert without_streams.retrieve(unchanged("midnight"), 1, 10) == plain


def test_streams_must_be_counts() -> None:
    with pytest.raises(InputError, match="streams"):
        CandidateGenerator.from_catalogue(catalogue(), streams=pd.Series({101: -1.0}))


def test_the_generative_source_decodes_catalogue_items_inside_the_decode_stage() -> None:
    generator = CandidateGenerator.from_catalogue(catalogue(), generative=generative_source())
    timed: list[str] = []

    @contextmanager
    def timer(name: str) -> Iterator[None]:
        timed.append(name)
        yield

    rewrites = [unchanged("midnight"), Rewrite("midnigt", "midnight", "corrected", 0.9)]
    lists = generator.source_lists(rewrites, [1, 99], 100, timer)
    assert timed == ["decode"] and lists.dense is None and lists.generative is not None
    for found in lists.generative:
        assert 0 < len(found) <= GENERATIVE_DEPTH
        assert set(found) <= set(catalogue()[S.ITEM_ID])
    routed = FusionRouting(generative_default=1.0)
    generator.routing = routed
    only_generative = generator.retrieve(unchanged("midnight"), 1, 10)
    assert only_generative == lists.generative[0][:10], "all the weight on the third source"


def test_the_generative_source_and_the_streams_are_saved_and_loaded(tmp_path: Path) -> None:
    streams = pd.Series({105: 500.0})
    source = generative_source()
    source.save(tmp_path / "source")
    generator = CandidateGenerator.from_catalogue(catalogue(), streams=streams, generative=source)
    routing = FusionRouting(generative_default=0.3, popularity_weight=0.5)
    routing.save(tmp_path / "routing.json")
    parts = RetrieverParts(routing=tmp_path / "routing.json", generative=tmp_path / "source")
    generator.save(tmp_path / "saved", parts)
    loaded = CandidateGenerator.load(tmp_path / "saved")
    assert loaded.generative is not None and loaded.routing == routing
    assert loaded.log_streams is not None
    np.testing.assert_allclose(loaded.log_streams, generator.log_streams)  # type: ignore[arg-type]
    generator.routing = routing
    for query in ("midnight", "song 7"):
        assert loaded.retrieve(unchanged(query), 2, 20) == generator.retrieve(
            unchanged(query), 2, 20
        )


def lists_of(generator: CandidateGenerator, rewrite: Rewrite) -> SourceLists:
    return generator.source_lists([rewrite], [1], 4)


def test_a_query_typed_partway_gets_the_items_it_begins_and_its_own_route() -> None:
    """ "song" begins fifty names, whose trigrams tie in BM25, so BM25's first two are neither
    of the streamed "Song 47" and "Song 48"; the prefix index lists the most streamed first."""
    streams = pd.Series({147: 900.0, 148: 400.0})
    source = generative_source()
    generator = CandidateGenerator.from_catalogue(catalogue(), streams=streams, generative=source)
    typed = unchanged("song")
    assert generator.is_partial(typed) and not generator.is_partial(unchanged("song 47"))
    bm25_only = replace(generator, prefix=None).source_lists([typed], [1], 2).lexical[0]
    assert {147, 148}.isdisjoint(bm25_only)
    lists = generator.source_lists([typed, unchanged("song 47")], [1, 1], 4)
    assert lists.partial == [True, False]
    assert lists.described == [False, False], "a prefix is partway; a name names an item"
    assert {147, 148} <= set(lists.lexical[0]), "the prefix list's first two fused in"
    # Retrieval reads a query typed partway as typed, not as its completion (one of the names
    # the prefix begins), while a correction of a query typed whole is read beside it.
    completed = Rewrite("song", "song 7", "completed", 0.6)
    assert generator.source_lists([completed], [1], 4) == lists_of(generator, typed)
    corrected = Rewrite("midnigt", "midnight", "corrected", 0.9)
    assert generator.source_lists([corrected], [1], 4) != lists_of(generator, unchanged("midnigt"))
    # The route of queries typed partway has its own weights: a track's are all on the
    # generative list, a track typed partway's all on the lexical one.
    partway = "track (typed partway)"
    shares = {"track": 1.0, partway: 0.0}
    generator.routing = FusionRouting({partway: 0.0}, generative_share=shares)
    assert generator.retrieve(typed, 1, 4, "track") == lists.lexical[0]
    whole = generator.retrieve(unchanged("song 47"), 1, 4, "track")
    assert lists.generative is not None and whole == lists.generative[1][:4]


def test_a_whole_name_that_begins_longer_ones_gets_their_items_but_not_the_partway_route() -> None:
    """ "Song 4" names item 114 and begins "Song 40" to "Song 49": its lexical list fuses in
    the completions (the name itself first, then the most streamed, "Song 45"), while it keeps
    the route of a query typed whole."""
    generator = CandidateGenerator.from_catalogue(catalogue(), streams=pd.Series({155: 900.0}))
    assert generator.prefix is not None
    typed = unchanged("song 4")
    assert generator.completes(typed) and not generator.is_partial(typed)
    assert not generator.completes(unchanged("song 45")), "no longer name begins with it"
    assert generator.prefix.complete("song 4", 3) == [114, 155, 150]
    lists = lists_of(generator, typed)
    assert lists.partial == [False]
    assert 155 in lists.lexical[0] and 155 not in generator._lexical("song 4", 4)
    completions = generator.prefix.complete("song 4", 4)
    assert lists.lexical[0] == reciprocal_rank_fusion(
        [generator._lexical("song 4", 4), completions], 4
    )
    generator.routing = FusionRouting(market_weight=1.0)
    assert generator.needs_market(typed), "its completions favour the listener's market"


def test_a_correction_that_begins_longer_names_gets_their_items_at_its_confidence() -> None:
    """ "sogn 4" is corrected to "Song 4", a name that begins "Song 40" to "Song 49": the
    correction's completions join at the prefix weight times its confidence."""
    generator = CandidateGenerator.from_catalogue(catalogue(), streams=pd.Series({155: 900.0}))
    corrected = Rewrite("sogn 4", "song 4", "corrected", 0.9)
    assert generator.completions_of(corrected) == [("song 4", 0.9)]
    generator.routing = FusionRouting(prefix_weight=4.0)
    lists = lists_of(generator, corrected)
    bm25 = [generator._lexical("sogn 4", 4), generator._lexical("song 4", 4)]
    completions = generator.prefix.complete("song 4", 4)  # type: ignore[union-attr]
    assert lists.lexical[0] == reciprocal_rank_fusion([*bm25, completions], 4, [1.0, 0.9, 3.6])
    assert 155 in lists.lexical[0]
    # A query typed partway is read as typed: its completion's phrase adds nothing.
    completed = Rewrite("son", "song 4", "completed", 0.6)
    assert generator.completions_of(completed) == [("son", 1.0)]
    assert generator.completions_of(unchanged("zzz")) == []


def test_a_query_that_names_no_item_takes_the_described_route() -> None:
    """The artist "Neon Owls" is no item's name here (only names are indexed); a corrected
    query names the item it was corrected to; a prefix takes the route of queries typed
    partway instead."""
    generator = CandidateGenerator.from_catalogue(catalogue(), generative=generative_source())
    named = Rewrite("midnigt a", "midnight a", "corrected", 0.9)
    queries = [unchanged("neon owls"), named, unchanged("song")]
    lists = generator.source_lists(queries, [1, 1, 1], 4)
    assert lists.described == [True, False, False]
    # The described route's weights are all on the generative list, the intent's on the others.
    generator.routing = FusionRouting({}, generative_share={"track (described)": 1.0})
    assert lists.generative is not None
    assert generator.retrieve(queries[0], 1, 4, "track") == lists.generative[0][:4]
    assert generator.retrieve(named, 1, 4, "track") != lists.generative[1][:4]
    without_names = replace(generator, prefix=None)
    assert without_names.source_lists(queries[:1], [1], 4).described == [False]


def test_the_prefix_index_is_saved_and_loaded_and_an_older_folder_has_none(
    tmp_path: Path,
) -> None:
    generator = CandidateGenerator.from_catalogue(catalogue(), streams=pd.Series({147: 9.0}))
    generator.save(tmp_path / "saved")
    loaded = CandidateGenerator.load(tmp_path / "saved")
    assert loaded.prefix is not None
    assert loaded.retrieve(unchanged("so"), 1, 5) == generator.retrieve(unchanged("so"), 1, 5)
    (tmp_path / "saved" / "prefix_index.npz").unlink()
    assert CandidateGenerator.load(tmp_path / "saved").prefix is None


def test_a_prefix_favours_the_listeners_market_only_as_far_as_the_routing_says() -> None:
    """ "song" begins fifty names; "Song 37" streams most, "Song 3" is the only Swedish one."""
    markets = ["SE" if i == 113 else "US" for i in range(100, 100 + ITEMS)]
    generator = CandidateGenerator.from_catalogue(
        catalogue().assign(market=markets), streams=pd.Series({147: 900.0, 113: 50.0})
    )
    assert generator.prefix is not None
    typed = unchanged("song")

    def lexical(market: str | None) -> list[int]:
        return generator.source_lists([typed], [1], 10, markets=[market]).lexical[0]

    def fused(market: str | None, bonus: float) -> list[int]:
        """BM25's list fused with the prefix's completions as ``complete`` orders them."""
        completions = generator.prefix.complete("song", 10, market, bonus)  # type: ignore[union-attr]
        return reciprocal_rank_fusion([generator._lexical("song", 10), completions], 10)

    assert not generator.needs_market(typed), "no routing: no bonus, no market to read"
    assert lexical("SE") == fused(None, 0.0)
    generator.routing = FusionRouting(market_weight=4.0)  # log1p 900 = 6.8 against 3.9 + 4
    assert generator.needs_market(typed) and not generator.needs_market(unchanged("song 47"))
    assert generator.prefix.complete("song", 2, "SE", 4.0) == [113, 147]
    assert lexical("SE") == fused("SE", 4.0) != fused(None, 0.0)
    assert lexical("US") == fused("US", 4.0) and lexical(None) == fused(None, 0.0)
    assert generator.retrieve(typed, 1, 10, market="SE") == lexical("SE"), "retrieve passes it on"


def test_a_prefix_favours_each_listeners_genres_as_far_as_the_routing_says() -> None:
    """ "song" begins fifty names; "Song 37" streams most, "Song 3" is the only jazz one, and
    listener 7 streamed jazz (through "Midnight a") while listener 8 streamed rock."""
    genres = ["jazz" if i in (100, 113) else "rock" for i in range(100, 100 + ITEMS)]
    listeners = pd.DataFrame({S.USER_ID: [7] * 5 + [8] * 5, S.ITEM_ID: [100] * 5 + [147] * 5})
    generator = CandidateGenerator.from_catalogue(
        catalogue().assign(genre=genres),
        streams=pd.Series({147: 8.0, 113: 5.0}),
        listeners=listeners,
    )
    typed = unchanged("song")

    def first(user: int) -> list[int]:
        return generator.source_lists([typed], [user], 1).lexical[0]

    assert first(7) == first(8), "no routing: no taste"
    generator.routing = FusionRouting(prefix_weight=2.0)
    assert first(7) == first(8) == [147], "the completions first, the most streamed first"
    generator.routing = FusionRouting(taste_weight=1.0, prefix_weight=2.0)
    assert first(7) == [113] and first(8) == [147], "each listener's own genre first"
    assert first(9) == [147], "a listener who never streamed gets the streams' order"
    assert generator.retrieve(typed, 7, 1) == [113], "retrieve passes the listener on"


def test_the_routings_prefix_weight_weighs_the_completions_against_bm25() -> None:
    generator = CandidateGenerator.from_catalogue(catalogue(), streams=pd.Series({147: 900.0}))
    typed = unchanged("song")
    assert generator.prefix_weight == 1.0
    even = generator.source_lists([typed], [1], 1).lexical[0]
    generator.routing = FusionRouting(prefix_weight=2.0)
    assert generator.source_lists([typed], [1], 1).lexical[0] == [147] != even
