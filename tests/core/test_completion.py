"""The prefix index: which queries are typed partway, and the items a prefix begins, the most
streamed first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.core import schema as S
from searchrank.core.completion import PrefixIndex
from searchrank.core.errors import InputError


def catalogue() -> pd.DataFrame:
    return pd.DataFrame(
        {
            S.ITEM_ID: [1, 2, 3, 4, 5],
            "name": ["Midnight City", "Midnight", "Mid-Air", "Halo", "Midnight City"],
            "artist_name": ["M83", "Neon Owls", "Midas Touch", "Beyoncé", None],
        }
    )


def test_a_query_is_partial_when_it_begins_a_name_or_artist_and_is_none() -> None:
    index = PrefixIndex.from_catalogue(catalogue())
    assert index.is_partial("midn") and index.is_partial("midnight c")
    assert index.is_partial("bey"), "artists count: 'beyonce' once normalized"
    assert not index.is_partial("midnight"), "a whole name is typed whole"
    assert not index.is_partial("midnight city")
    assert not index.is_partial("zz") and not index.is_partial("")


def test_completions_list_each_item_once_most_streamed_first() -> None:
    streams = pd.Series({3: 50.0, 5: 10.0, 1: 2.0})
    index = PrefixIndex.from_catalogue(catalogue(), streams)
    # "mid" begins names 1, 2, 3, 5 and the artist of 3 ("midas touch"); item 2 is unstreamed.
    assert index.complete("mid", 10) == [3, 5, 1, 2]
    assert index.complete("mid", 2) == [3, 5]
    assert index.complete("midnight c", 10) == [5, 1]
    assert index.complete("", 10) == [] and index.complete("xyz", 10) == []
    unweighted = PrefixIndex.from_catalogue(catalogue())
    assert unweighted.complete("mid", 10) == [3, 2, 1, 5], "ties keep the phrases' order"


def test_the_index_is_saved_and_loaded(tmp_path: Path) -> None:
    index = PrefixIndex.from_catalogue(catalogue(), pd.Series({4: 3.0}))
    index.save(tmp_path)
    loaded = PrefixIndex.load(tmp_path)
    for field in ("phrases", "item_ids", "log_streams"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(index, field))
    assert loaded.complete("h", 3) == [4]


def test_bad_catalogues_and_streams_are_refused() -> None:
    with pytest.raises(InputError, match="catalogue columns"):
        PrefixIndex.from_catalogue(catalogue().drop(columns="artist_name"))
    with pytest.raises(InputError, match="streams"):
        PrefixIndex.from_catalogue(catalogue(), pd.Series({1: -2.0}))
