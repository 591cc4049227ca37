"""Tests of the Last.fm HetRec 2011 adapter on the real dataset and on a tiny hand-written copy."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shared_data import SHARED_DATASETS

from searchrank.core.errors import InputError
from searchrank.core.schema import TIMESTAMP_TYPE
from searchrank.core.text import normalize_text
from searchrank.features.adapters.lastfm import (
    TAG_SEARCH_FEATURES,
    LastFm,
    convert_lastfm,
    lastfm_statistics,
    load_lastfm,
    relevance_grade,
    tag_search_dataset,
)

HETREC = SHARED_DATASETS / "hetrec2011-lastfm-2k"

DOCUMENTED = {
    "users": 1892,
    "artists": 17632,
    "user_artist_pairs": 92834,
    "tags": 11946,
    "tag_assignments": 186479,
    "friend_pairs": 25434,
    "tag_artist_pairs": 109750,
    "tag_artist_pairs_ge2": 23422,
    "tag_artist_pairs_ge5": 5546,
    "tags_with_10_artists_ge2": 266,
}

# A tiny copy in the release's format: "metal" was given to Metallica by users 10 and 11 and to
# Beyoncé by 11 and 12, so it qualifies with min_relevant=2; "électro" has one such artist only.
TINY = {
    "artists.dat": (
        "id\tname\turl\tpictureURL\n"
        "1\tMetallica\thttp://a\thttp://b\n"
        "2\tBeyoncé\thttp://a\thttp://b\n"
        "3\tDaft Punk\thttp://a\t\n"
        '4\t"Weird Al" Yankovic\thttp://a\thttp://b\n'
    ),
    "tags.dat": "tagID\ttagValue\n1\tmetal\n2\télectro\n3\tNA\n",
    "user_artists.dat": (
        "userID\tartistID\tweight\n10\t1\t100\n10\t2\t5\n11\t1\t50\n11\t3\t7\n12\t2\t1\n12\t4\t3\n"
    ),
    "user_taggedartists.dat": (
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "10\t1\t1\t1\t4\t2009\n"
        "11\t1\t1\t1\t5\t2009\n"
        "11\t2\t1\t1\t3\t2008\n"
        "12\t2\t1\t1\t1\t2011\n"
        "12\t3\t2\t1\t6\t2010\n"
        "10\t3\t2\t1\t7\t2010\n"
    ),
    "user_friends.dat": "userID\tfriendID\n10\t11\n11\t10\n",
}


def _tiny_folder(folder: Path, **replaced: str) -> Path:
    for name, text in TINY.items():
        content = replaced.get(name.replace(".dat", ""), text)
        encoding = "latin-1" if name == "tags.dat" else "utf-8"
        (folder / name).write_text(content, encoding=encoding)
    return folder


@pytest.fixture(scope="module")
def lastfm() -> LastFm:
    if not HETREC.is_dir():
        pytest.skip(f"{HETREC} is not available")
    return load_lastfm(HETREC)


@pytest.fixture(scope="module")
def searches(lastfm: LastFm) -> pd.DataFrame:
    table = tag_search_dataset(lastfm, max_candidates=20, negatives=5, max_searches=3000)
    assert table.schema.field("event_timestamp").type == TIMESTAMP_TYPE
    assert all(table.schema.field(f).type == pa.float32() for f in TAG_SEARCH_FEATURES)
    return table.to_pandas()


def test_statistics_match_the_documented_values(lastfm: LastFm) -> None:
    assert lastfm_statistics(lastfm) == DOCUMENTED


def test_tags_are_decoded_from_latin1(lastfm: LastFm) -> None:
    tags = lastfm.tags.set_index("tag_id")["tag"]
    assert tags[4571] == "rock français"
    assert tags[7982] == "fußball"
    assert tags[11213] == "die Ärzte"


def test_artist_names_keep_literal_quotes(lastfm: LastFm) -> None:
    assert '"Weird Al" Yankovic' in set(lastfm.artists["name"])


def test_tag_dates_are_utc_midnight(lastfm: LastFm) -> None:
    stamps = lastfm.tag_assignments["event_timestamp"]
    assert str(stamps.dt.tz) == "UTC"
    first = lastfm.tag_assignments.iloc[0]  # "2  52  13  1  4  2009" in the release
    assert first["event_timestamp"] == pd.Timestamp("2009-04-01", tz="UTC")


def test_relevance_grade_boundaries() -> None:
    grades = relevance_grade(np.array([0, 1, 2, 4, 5, 100]))
    assert grades.tolist() == [0, 1, 2, 2, 3, 3]
    assert grades.dtype == np.int32
    with pytest.raises(InputError, match="n_users"):
        relevance_grade(np.array([3, -1]))


def test_searches_are_ordered_and_bounded(searches: pd.DataFrame) -> None:
    assert searches["search_id"].nunique() == 3000
    assert searches["search_id"].is_monotonic_increasing
    assert searches["event_timestamp"].is_monotonic_increasing
    assert str(searches["event_timestamp"].dt.tz) == "UTC"
    sizes = searches.groupby("search_id").size()
    assert sizes.max() <= 20
    per_search = searches.groupby("search_id")
    assert (per_search["user_id"].nunique() == 1).all()
    assert (per_search["query"].nunique() == 1).all()
    # negatives are the only rows nobody tagged, so at most 5 per search carry label 0
    assert (searches["label"].eq(0).groupby(searches["search_id"]).sum() <= 5).all()
    assert set(searches["label"]) == {0, 1, 2, 3}


def test_features_do_not_include_the_label_counts(searches: pd.DataFrame) -> None:
    features = [c for c in searches.columns if searches[c].dtype == np.float32]
    assert features == list(TAG_SEARCH_FEATURES)
    assert not [c for c in searches.columns if "n_users" in c or "tag_count" in c]
    assert not [c for c in searches.columns if "tag_artist" in c or "grade" in c]


def test_labels_match_counts_recomputed_from_the_raw_files(searches: pd.DataFrame) -> None:
    raw = pd.read_csv(HETREC / "user_taggedartists.dat", sep="\t")
    tags = pd.read_csv(
        HETREC / "tags.dat",
        sep="\t",
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
    )
    normalized = dict(zip(tags["tagID"], tags["tagValue"].map(normalize_text), strict=True))
    rng = np.random.default_rng(7)
    sample = pd.concat(
        [
            searches[searches["label"] == g].sample(5, random_state=int(rng.integers(1000)))
            for g in range(4)
        ]
    )
    for row in sample.itertuples():
        own = raw[(raw["userID"] == row.user_id) & (raw["tagID"].map(normalized) == row.query)]
        first = pd.to_datetime(own[["year", "month", "day"]]).min().tz_localize("UTC")
        assert row.event_timestamp == first
        # a few tags normalize alike ("Hip-Hop", "hip hop"): the row is one of the user's tags
        grades = set()
        for tag in own["tagID"].unique():
            givers = raw[(raw["tagID"] == tag) & (raw["artistID"] == row.item_id)]["userID"]
            grades.add(int(relevance_grade(np.array([givers.nunique()]))[0]))
        assert row.label in grades


def test_personal_play_features_match_user_artists(searches: pd.DataFrame) -> None:
    plays = pd.read_csv(HETREC / "user_artists.dat", sep="\t")
    listened = searches.merge(
        plays, left_on=["user_id", "item_id"], right_on=["userID", "artistID"]
    )
    assert len(listened) > 0
    row = listened.iloc[len(listened) // 2]
    assert row["user_artist_log_plays"] == pytest.approx(math.log1p(row["weight"]), rel=1e-6)
    unheard = searches.merge(
        plays,
        left_on=["user_id", "item_id"],
        right_on=["userID", "artistID"],
        how="left",
        indicator=True,
    )
    assert (unheard.loc[unheard["_merge"] == "left_only", "user_artist_log_plays"] == 0).all()


def test_sampling_is_deterministic_and_prefix_stable(lastfm: LastFm) -> None:
    small = tag_search_dataset(lastfm, max_candidates=20, negatives=5, max_searches=200)
    again = tag_search_dataset(lastfm, max_candidates=20, negatives=5, max_searches=200)
    larger = tag_search_dataset(lastfm, max_candidates=20, negatives=5, max_searches=400)
    reseeded = tag_search_dataset(lastfm, max_candidates=20, negatives=5, max_searches=200, seed=1)
    assert small.equals(again)
    assert larger.slice(0, small.num_rows).equals(small)
    assert not reseeded.equals(small)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"max_candidates": 0}, "max_candidates"),
        ({"max_candidates": 5, "negatives": 5}, "negatives"),
        ({"negatives": -1}, "negatives"),
        ({"min_relevant": 0}, "min_relevant"),
        ({"max_searches": 0}, "max_searches"),
    ],
)
def test_bad_search_parameters_are_rejected(
    tmp_path: Path, parameters: dict[str, int], field: str
) -> None:
    data = load_lastfm(_tiny_folder(tmp_path))
    with pytest.raises(InputError, match=field):
        tag_search_dataset(data, **parameters)


def test_convert_tiny_copy_exactly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    counts = convert_lastfm(_tiny_folder(tmp_path), out)

    assert counts == {"artists": 4, "tag_search": 12, "searches": 3}
    stats = json.loads((out / "lastfm_stats.json").read_text(encoding="utf-8"))
    assert stats == {
        "users": 3,
        "artists": 4,
        "user_artist_pairs": 6,
        "tags": 3,
        "tag_assignments": 6,
        "friend_pairs": 2,
        "tag_artist_pairs": 3,
        "tag_artist_pairs_ge2": 3,
        "tag_artist_pairs_ge5": 0,
        "tags_with_10_artists_ge2": 0,
    }
    artists = pq.read_table(out / "lastfm_artists.parquet").to_pydict()
    assert artists == {
        "item_id": [1, 2, 3, 4],
        "name": ["Metallica", "Beyoncé", "Daft Punk", '"Weird Al" Yankovic'],
        "listeners": [2, 2, 1, 1],
        "plays": [150, 6, 7, 3],
    }

    table = pq.read_table(out / "lastfm_tag_search.parquet")
    assert table.column_names[:6] == [
        "search_id",
        "user_id",
        "item_id",
        "query",
        "event_timestamp",
        "label",
    ]
    rows = table.to_pandas()
    assert rows["search_id"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # first uses of "metal": user 11 in March 2008, user 10 in April 2009, user 12 in 2011
    assert rows.groupby("search_id")["user_id"].first().tolist() == [11, 10, 12]
    assert rows["event_timestamp"].iloc[0] == pd.Timestamp("2008-03-01", tz="UTC")
    assert set(rows["query"]) == {"metal"}
    # popularity order: listeners, then artist id; "électro" and "NA" make no search
    assert rows["item_id"].tolist() == [1, 2, 3, 4] * 3
    assert rows["label"].tolist() == [2, 2, 0, 0] * 3

    first = rows.iloc[0]  # user 11 searching "metal", candidate Metallica
    assert first["artist_log_listeners"] == pytest.approx(math.log1p(2))
    assert first["artist_log_plays"] == pytest.approx(math.log1p(150))
    # Both of Metallica's tag assignments are "metal", the searched tag: none left to count.
    assert first["artist_log_other_tag_assignments"] == 0.0
    assert first["user_artist_log_plays"] == pytest.approx(math.log1p(50))
    assert first["friends_artist_log_plays"] == pytest.approx(math.log1p(100))
    assert first["text_name_prefix"] == 1.0
    assert first["text_name_exact"] == 0.0
    assert rows.iloc[3]["user_artist_log_plays"] == 0.0  # user 11 never played Weird Al


def test_tiny_copy_decodes_latin1_tags(tmp_path: Path) -> None:
    data = load_lastfm(_tiny_folder(tmp_path))
    assert data.tags["tag"].tolist() == ["metal", "électro", "NA"]


def test_missing_folder_and_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as error:
        load_lastfm(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(error.value)
    folder = _tiny_folder(tmp_path)
    (folder / "user_friends.dat").unlink()
    with pytest.raises(InputError, match="lacks this file") as error:
        load_lastfm(folder)
    assert str(folder / "user_friends.dat") in str(error.value)


@pytest.mark.parametrize(
    ("replaced", "named", "rule"),
    [
        ({"user_artists": "user\tartist\tplays\n1\t2\t3\n"}, "user_artists.dat", "header"),
        (
            {"user_artists": "userID\tartistID\tweight\n10\t1\t100\n10\t2\t12x\n"},
            "user_artists.dat:3",
            "integers",
        ),
        (
            {
                "user_taggedartists": (
                    "userID\tartistID\ttagID\tday\tmonth\tyear\n1\t1\t1\t31\t2\t2009\n"
                )
            },
            "user_taggedartists.dat:2",
            "valid date",
        ),
    ],
)
def test_malformed_files_are_named(
    tmp_path: Path, replaced: dict[str, str], named: str, rule: str
) -> None:
    with pytest.raises(InputError, match=rule) as error:
        load_lastfm(_tiny_folder(tmp_path, **replaced))
    assert named in str(error.value)
