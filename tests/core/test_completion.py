"""The prefix index: which queries are typed partway, and the items a prefix begins, the most
streamed first, the listener's market and taste ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.core import schema as S
from searchrank.core.completion import (
    PREFIX_FILE,
    TASTE_SMOOTHING,
    ListenerTaste,
    PrefixIndex,
    fit_completion_weights,
)
from searchrank.core.errors import InputError


def catalogue() -> pd.DataFrame:
    return pd.DataFrame(
        {
            S.ITEM_ID: [1, 2, 3, 4, 5, 6],
            "item_type": ["track", "album", "track", "track", "track", "artist"],
            "name": ["Midnight City", "Midnight", "Mid-Air", "Halo", "Midnight City", "Beyoncé"],
            "artist_name": ["M83", "Neon Owls", "Midas Touch", "Beyoncé", None, "Beyoncé"],
            "market": ["FR", "SE", "SE", "US", None, "US"],
        }
    )


def test_a_query_is_partial_when_it_begins_a_name_and_is_none() -> None:
    index = PrefixIndex.from_catalogue(catalogue())
    assert index.is_partial("midn") and index.is_partial("midnight c")
    assert index.is_partial("bey"), "an artist is found by its own item's name, normalized"
    assert not index.is_partial("midnight"), "a whole name is typed whole"
    assert not index.is_partial("midnight city")
    assert not index.is_partial("zz") and not index.is_partial("")
    assert index.is_name("midnight") and index.is_name("midnight city")
    assert not index.is_name("midn") and not index.is_name("zz") and not index.is_name("")


def test_a_genre_mood_or_topic_is_typed_whole_though_it_begins_a_name() -> None:
    shows = pd.DataFrame(
        {
            S.ITEM_ID: [1, 2],
            "name": ["History of Rome", "Chill Evenings"],
            "genre": ["History", None],
            "mood": [None, "chill"],
            "keywords": ["history ancient", "chill"],
        }
    )
    index = PrefixIndex.from_catalogue(shows)
    assert not index.is_partial("history") and not index.is_partial("chill")
    assert index.is_partial("histo") and index.is_partial("history of")
    assert index.complete("history", 5) == [1], "its completions are still there to fuse"
    untagged = PrefixIndex.from_catalogue(shows.drop(columns=["genre", "mood", "keywords"]))
    assert untagged.is_partial("history"), "without those columns only names decide"


def test_completions_list_each_item_once_most_streamed_first() -> None:
    streams = pd.Series({3: 50.0, 5: 10.0, 1: 2.0})
    index = PrefixIndex.from_catalogue(catalogue(), streams)
    assert index.complete("mid", 10) == [3, 5, 1, 2], "item 2 is unstreamed"
    assert index.complete("mid", 2) == [3, 5]
    assert index.complete("midnight c", 10) == [5, 1]
    assert index.complete("", 10) == [] and index.complete("xyz", 10) == []
    unweighted = PrefixIndex.from_catalogue(catalogue())
    assert unweighted.complete("mid", 10) == [3, 2, 1, 5], "ties keep the phrases' order"


def test_a_whole_name_that_begins_longer_ones_may_still_be_typed_and_comes_first() -> None:
    """ "Midnight" names the album 2 and begins "Midnight City": the listener may be typing
    either, so completions list the album first, however little it streams, then the rest."""
    index = PrefixIndex.from_catalogue(catalogue(), pd.Series({3: 50.0, 5: 10.0, 1: 2.0}))
    assert index.continues("midnight") and not index.is_partial("midnight")
    assert index.continues("mid") and index.is_partial("mid")
    assert not index.continues("midnight city"), "no longer name begins with it"
    assert not index.continues("zz") and not index.continues("")
    assert index.complete("midnight", 10) == [2, 5, 1]
    assert index.complete("midnight", 1, "FR", 8.0) == [2], "the bonus ranks only the rest"
    tagged = catalogue().assign(genre=["midnight", None, None, None, None, None])
    assert not PrefixIndex.from_catalogue(tagged).continues("midnight"), "a genre is typed whole"


def test_an_artists_songs_are_not_listed_under_the_artists_name() -> None:
    """Indexing names only: "bey" lists the artist, not every track whose artist it begins."""
    index = PrefixIndex.from_catalogue(catalogue(), pd.Series({4: 100.0, 6: 1.0}))
    assert index.complete("bey", 10) == [6]
    assert index.complete("mid", 10).count(3) == 1, "'Midas Touch' is an artist, not a name here"


def test_the_listeners_market_puts_its_items_ahead_by_the_bonus() -> None:
    # log1p streams: item 3 (SE) 3.93, item 1 (FR) 3.04, item 2 (SE) 0.69.
    index = PrefixIndex.from_catalogue(catalogue(), pd.Series({3: 50.0, 1: 20.0, 2: 1.0}))
    assert index.complete("mid", 2) == [3, 1]
    assert index.complete("mid", 2, "FR", 1.0) == [1, 3], "3.04 + 1 beats 3.93"
    assert index.complete("mid", 2, "FR", 0.5) == [3, 1], "3.54 does not"
    assert index.complete("mid", 2, "SE", 4.0) == [3, 2]
    assert index.complete("mid", 2, None, 4.0) == [3, 1], "an unknown market gives no bonus"
    assert index.complete("mid", 2, "FR", 0.0) == [3, 1]


def genres() -> pd.DataFrame:
    """The catalogue, its "Mid…" names in three genres."""
    return catalogue().assign(genre=["synthpop", "jazz", "metal", "pop", "synthpop", "pop"])


def listeners() -> pd.DataFrame:
    """Listener 7 streamed the jazz album 6 times; listener 8 streamed the pop track 20 times."""
    return pd.DataFrame({S.USER_ID: [7] * 6 + [8] * 20, S.ITEM_ID: [2] * 6 + [4] * 20})


def test_a_listeners_taste_is_their_genre_shares_over_everyones() -> None:
    taste = PrefixIndex.from_catalogue(genres(), listeners=listeners()).taste
    assert list(taste.genres) == ["", "jazz", "metal", "pop", "synthpop"]
    np.testing.assert_allclose(taste.shares, np.array([1, 7, 1, 21, 1]) / 31, rtol=1e-6)
    own = np.array([0, 6, 0, 0, 0]) + TASTE_SMOOTHING * taste.shares
    lift = taste.lift(7)
    assert lift is not None
    np.testing.assert_allclose(lift, np.log(own / (6 + TASTE_SMOOTHING) / taste.shares), 1e-6)
    assert lift[1] > 0 > lift[2], "more jazz than everyone, less metal"
    assert taste.lift(9) is None and taste.lift(None) is None, "a listener never seen"
    assert PrefixIndex.from_catalogue(genres()).taste.lift(7) is None, "no streams, no taste"
    with pytest.raises(InputError, match="streams columns"):
        ListenerTaste.from_streams(pd.Series({1: "pop"}), pd.DataFrame({S.ITEM_ID: [1]}))


def test_completions_put_the_listeners_genres_ahead() -> None:
    index = PrefixIndex.from_catalogue(genres(), pd.Series({3: 5.0, 1: 3.0, 2: 2.0}), listeners())
    assert index.complete("mid", 1) == [3], "the most streamed"
    assert index.complete("mid", 1, user_id=7, taste_weight=1.0) == [2], "jazz for listener 7"
    assert index.complete("mid", 1, user_id=8, taste_weight=1.0) == [3]
    assert index.complete("mid", 1, user_id=9, taste_weight=1.0) == [3], "no taste known"
    assert index.complete("mid", 1, user_id=7, taste_weight=0.0) == [3]


def test_the_market_bonus_and_taste_are_fitted_to_what_listeners_wanted() -> None:
    index = PrefixIndex.from_catalogue(genres(), pd.Series({3: 5.0, 1: 3.0, 2: 2.0}), listeners())
    # French listeners typing "mid" wanted the French item 1, which streams lose at k=1.
    fitted = fit_completion_weights(
        index, ["mid", "mid"], ["FR", "FR"], [None, None], [[1], [1]], k=1
    )
    assert fitted == (0.5, 0.0), "the least bonus that puts item 1 first"
    # Listener 7, who streams jazz, wanted the jazz album 2, which streams put third.
    assert fit_completion_weights(index, ["mid"], [None], [7], [[2]], k=1) == (0.0, 0.5)
    assert fit_completion_weights(index, ["mid"], ["FR"], [7], [[3]], k=1) == (0.0, 0.0), (
        "no evidence, no bonus"
    )
    assert fit_completion_weights(index, [], [], [], [], k=1) == (0.0, 0.0)
    with pytest.raises(InputError, match="prefixes/markets/users/relevant"):
        fit_completion_weights(index, ["mid"], [], [7], [[1]])


def test_the_index_is_saved_and_loaded(tmp_path: Path) -> None:
    tagged = genres().assign(mood=["night", None, None, None, None, None])
    index = PrefixIndex.from_catalogue(tagged, pd.Series({4: 3.0}), listeners())
    index.save(tmp_path)
    loaded = PrefixIndex.load(tmp_path)
    for field in ("phrases", "item_ids", "log_streams", "markets", "descriptive", "genres"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(index, field))
    assert list(loaded.descriptive) == ["jazz", "metal", "night", "pop", "synthpop"]
    np.testing.assert_allclose(loaded.taste.counts, index.taste.counts)
    assert loaded.complete("mid", 1, user_id=7, taste_weight=1.0) == [2]
    assert loaded.complete("h", 3) == [4]
    assert loaded.complete("mid", 1, "FR", 10.0) == [1]


def test_an_index_saved_before_markets_and_topics_loads_with_none_known(tmp_path: Path) -> None:
    index = PrefixIndex.from_catalogue(catalogue())
    np.savez(
        tmp_path / PREFIX_FILE,
        phrases=index.phrases,
        item_ids=index.item_ids,
        log_streams=index.log_streams,
    )
    loaded = PrefixIndex.load(tmp_path)
    assert set(loaded.markets) == {""} and len(loaded.descriptive) == 0
    assert loaded.taste.lift(7) is None
    assert loaded.complete("mid", 1, "FR", 10.0) == index.complete("mid", 1)
    assert loaded.is_partial("midn") and not loaded.is_partial("midnight")


def test_a_catalogue_without_markets_gives_no_bonus() -> None:
    index = PrefixIndex.from_catalogue(catalogue().drop(columns="market"))
    assert index.complete("mid", 1, "FR", 10.0) == index.complete("mid", 1)


def test_bad_catalogues_and_streams_are_refused() -> None:
    with pytest.raises(InputError, match="catalogue columns"):
        PrefixIndex.from_catalogue(catalogue().drop(columns="name"))
    with pytest.raises(InputError, match="streams"):
        PrefixIndex.from_catalogue(catalogue(), pd.Series({1: -2.0}))
