"""The query rewriter: spelling correction and prefix completion against the catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.query_rewrite import (
    COMPLETED,
    CORRECTED,
    REWRITE_COLUMNS,
    UNCHANGED,
    Lexicon,
    QueryRewriter,
    add_rewrite_features,
    catalogue_rewriter,
    osa_distance,
    rewrite_features,
)
from searchrank.core.text import normalize_text
from searchrank.features import tables as T
from searchrank.features.generator.simulate import misspell


@pytest.fixture(scope="module")
def rewriter(catalogue: pd.DataFrame) -> QueryRewriter:
    return QueryRewriter(Lexicon.from_catalogue(catalogue))


def small_catalogue() -> pd.DataFrame:
    return pd.DataFrame(
        {
            S.ITEM_ID: [1, 2, 3, 4],
            "name": ["Midnight City", "Midnight Train", "The Roast Talks", "Quiet Harbour"],
            "artist_name": ["Neon Owls", "Neon Owls", "Ada Stone", "Ada Stone"],
            "genre": ["pop", "pop", "comedy", "folk"],
        }
    )


def test_osa_distance_counts_a_swap_of_neighbours_as_one_edit() -> None:
    assert osa_distance("midnight", "midnight") == 0
    assert osa_distance("midnigth", "midnight") == 1
    assert osa_distance("midnght", "midnight") == 1
    assert osa_distance("mindight", "midnight") == 1
    assert osa_distance("ca", "abc") == 3, "no substring is edited twice"
    assert osa_distance("", "abc") == 3


def test_keyboard_slips_on_catalogue_names_are_corrected(
    rewriter: QueryRewriter, catalogue: pd.DataFrame
) -> None:
    rng = np.random.default_rng(0)
    names = catalogue["name"].map(normalize_text).drop_duplicates().sample(400, random_state=0)
    typed = [misspell(name, rng) for name in names]
    slipped = [(t, n) for t, n in zip(typed, names, strict=True) if t != n]
    rewrites = [rewriter.rewrite(t) for t, _ in slipped]
    exact = np.mean([r.query == n for r, (_, n) in zip(rewrites, slipped, strict=True)])
    assert exact > 0.85, f"{exact:.3f} of {len(slipped)} slips corrected to the name"
    assert all(0.0 < r.confidence <= 1.0 for r in rewrites)
    assert {r.kind for r in rewrites} <= {CORRECTED, COMPLETED, UNCHANGED}


def test_correctly_typed_queries_are_left_alone(
    rewriter: QueryRewriter, catalogue: pd.DataFrame, dataset_dir: Path
) -> None:
    searches = pd.read_parquet(dataset_dir / T.file_name(T.SEARCHES))
    typed_right = searches[searches["query_form"].isin(["exact", "descriptive"])][S.QUERY]
    artists = catalogue["artist_name"].map(normalize_text)
    for query in [*typed_right, *artists]:
        rewrite = rewriter.rewrite(query)
        assert rewrite.kind == UNCHANGED and rewrite.query == query and rewrite.confidence == 1
        assert not rewrite.changed


def test_a_half_typed_name_completes_to_its_most_popular_phrase() -> None:
    popularity = pd.Series({1: 5.0, 2: 1.0, 3: 1.0, 4: 1.0})
    rewriter = QueryRewriter(Lexicon.from_catalogue(small_catalogue(), popularity))
    rewrite = rewriter.rewrite("Midn")
    assert (rewrite.kind, rewrite.query) == (COMPLETED, "midnight city")
    assert rewrite.confidence == pytest.approx(5.0 / 6.0)
    assert rewriter.rewrite("midnight tr").query == "midnight train"
    flipped = QueryRewriter(Lexicon.from_catalogue(small_catalogue(), popularity.rdiv(5.0)))
    assert flipped.rewrite("midn").query == "midnight train"


def test_a_short_word_is_corrected_only_where_a_phrase_supports_it() -> None:
    rewriter = QueryRewriter(Lexicon.from_catalogue(small_catalogue()))
    assert rewriter.rewrite("teh roast talks").query == "the roast talks"
    assert rewriter.rewrite("teh").kind == UNCHANGED, "three letters alone: too ambiguous"
    assert rewriter.rewrite("quiet harbuor").query == "quiet harbour"


def test_the_lexicon_round_trips_and_bad_input_is_named(tmp_path: Path) -> None:
    lexicon = Lexicon.from_catalogue(small_catalogue())
    assert "comedy" in lexicon.words and "neon owls" in lexicon.phrases
    lexicon.save(tmp_path / "lexicon")
    assert Lexicon.load(tmp_path / "lexicon") == lexicon
    with pytest.raises(InputError, match="catalogue columns"):
        Lexicon.from_catalogue(small_catalogue().drop(columns="artist_name"))
    with pytest.raises(InputError, match="popularity"):
        Lexicon.from_catalogue(small_catalogue(), pd.Series({1: -1.0}))


def test_the_rewrite_becomes_ranker_features_per_row() -> None:
    rewriter = catalogue_rewriter(small_catalogue())
    rows = pd.DataFrame({S.QUERY: ["midnigth city", "midnight city", "midnigth city", "quiet h"]})
    featured = add_rewrite_features(rows.assign(**{REWRITE_COLUMNS[0]: 9.0}), rewriter)
    assert list(featured.columns) == [S.QUERY, *REWRITE_COLUMNS], "an old column is replaced"
    corrected = rewrite_features(rewriter.rewrite("midnigth city"))
    assert featured.iloc[0][list(REWRITE_COLUMNS)].tolist() == pytest.approx(
        list(corrected.values())
    )
    assert corrected[REWRITE_COLUMNS[1]] == 1.0 and corrected[REWRITE_COLUMNS[2]] == 0.0
    assert 0.0 < corrected[REWRITE_COLUMNS[0]] <= 1.0
    assert featured.iloc[1][list(REWRITE_COLUMNS)].tolist() == [1.0, 0.0, 0.0], "as typed"
    assert featured.iloc[3][REWRITE_COLUMNS[2]] == 1.0, "a prefix is completed"
    assert add_rewrite_features(rows.head(0), rewriter).columns.tolist()[-3:] == list(
        REWRITE_COLUMNS
    )
    with pytest.raises(InputError, match="rows columns"):
        add_rewrite_features(rows.rename(columns={S.QUERY: "q"}), rewriter)


def test_the_catalogue_rewriter_weighs_every_item_one_plus_its_streams() -> None:
    weighted = catalogue_rewriter(small_catalogue(), pd.Series({2: 9.0}))
    assert weighted.lexicon.phrases["midnight train"] == 10.0
    assert weighted.lexicon.phrases["midnight city"] == 1.0, "an unstreamed item still counts"
    assert catalogue_rewriter(small_catalogue()).lexicon.phrases["midnight train"] == 1.0
