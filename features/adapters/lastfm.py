"""Load Last.fm HetRec 2011 and derive a real tag-search ranking dataset from it.

The HetRec 2011 release (``hetrec2011-lastfm-2k``) holds 1,892 users, their play counts of their
top artists, the free-text tags they gave artists, and their friendships. A tag works as a real
search query over artists: the query is the tag text, and an artist's relevance grows with the
number of distinct users who gave it that tag (:func:`relevance_grade`). Each (user, tag) pair
becomes one search at the first date that user used the tag, personalized by the user's plays.

Leakage the dataset cannot avoid: play counts (``user_artists.dat``) are all-time aggregates
without timestamps, so the popularity and personalization features of a search also count plays
made after it. Tag dates are month-granular (almost every row says day 1), and a few rows carry
bogus years before 2005; both are kept as released.

Tag assignments to the 390 artists missing from ``artists.dat`` count in
:func:`lastfm_statistics` (they are part of the documented totals) but not in the search dataset,
whose items need a name to match the query against.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.io import write_parquet_atomically
from searchrank.core.text import TEXT_MATCH_FEATURES, normalize_text, text_match

NEGATIVE_POOL = 2000
"""Negatives of a search are sampled from this many most-listened artists."""

ARTISTS_OUTPUT = "lastfm_artists.parquet"
TAG_SEARCH_OUTPUT = "lastfm_tag_search.parquet"
STATS_OUTPUT = "lastfm_stats.json"

POPULARITY_FEATURES: tuple[str, ...] = (
    "artist_log_listeners",
    "artist_log_plays",
    "artist_log_other_tag_assignments",
)
PERSONAL_FEATURES: tuple[str, ...] = ("user_artist_log_plays", "friends_artist_log_plays")
TEXT_FEATURES: tuple[str, ...] = tuple(f"text_{name}" for name in TEXT_MATCH_FEATURES)
TAG_SEARCH_FEATURES: tuple[str, ...] = POPULARITY_FEATURES + PERSONAL_FEATURES + TEXT_FEATURES
"""The float32 feature columns of :func:`tag_search_dataset`, in order. None is computed from the
(tag, artist) assignment counts, which define the label: ``artist_log_other_tag_assignments``
counts the artist's assignments of every other tag, a popularity signal."""


@dataclass(frozen=True)
class LastFm:
    """The five HetRec tables, with snake_case columns."""

    artists: pd.DataFrame
    """``artist_id``, ``name``: one row per line of ``artists.dat``."""
    tags: pd.DataFrame
    """``tag_id``, ``tag``: the tag text, decoded from Latin-1."""
    user_artists: pd.DataFrame
    """``user_id``, ``artist_id``, ``plays``: all-time play counts of each user's top artists."""
    tag_assignments: pd.DataFrame
    """``user_id``, ``artist_id``, ``tag_id``, ``event_timestamp`` (UTC midnight of the date)."""
    friends: pd.DataFrame
    """``user_id``, ``friend_id``: every friendship listed in both directions."""


@dataclass(frozen=True)
class _File:
    name: str
    columns: dict[str, str]
    """Header column → output column, for the columns kept."""
    header: tuple[str, ...]
    encoding: str = "utf-8"


_ARTISTS = _File(
    "artists.dat",
    {"id": "artist_id", "name": "name"},
    ("id", "name", "url", "pictureURL"),
)
_TAGS = _File("tags.dat", {"tagID": "tag_id", "tagValue": "tag"}, ("tagID", "tagValue"), "latin-1")
_USER_ARTISTS = _File(
    "user_artists.dat",
    {"userID": "user_id", "artistID": "artist_id", "weight": "plays"},
    ("userID", "artistID", "weight"),
)
_TAG_ASSIGNMENTS = _File(
    "user_taggedartists.dat",
    {
        "userID": "user_id",
        "artistID": "artist_id",
        "tagID": "tag_id",
        "day": "day",
        "month": "month",
        "year": "year",
    },
    ("userID", "artistID", "tagID", "day", "month", "year"),
)
_FRIENDS = _File(
    "user_friends.dat", {"userID": "user_id", "friendID": "friend_id"}, ("userID", "friendID")
)
_TEXT_COLUMNS = frozenset({"name", "tag"})


def load_lastfm(source: Path) -> LastFm:
    """Read the HetRec 2011 Last.fm folder.

    Args:
        source: the folder holding ``artists.dat``, ``tags.dat``, ``user_artists.dat``,
            ``user_taggedartists.dat`` and ``user_friends.dat``.

    Returns:
        The five tables; tag assignment dates become UTC timestamps at midnight.

    Raises:
        InputError: the folder or a file is missing, a header differs from the release, an id
            or count is not an integer, or a date does not exist.
    """
    if not source.is_dir():
        raise InputError("source", str(source), "the HetRec 2011 Last.fm folder does not exist")
    assignments = _read(source, _TAG_ASSIGNMENTS)
    assignments["event_timestamp"] = _dates(assignments, source / _TAG_ASSIGNMENTS.name)
    return LastFm(
        artists=_read(source, _ARTISTS),
        tags=_read(source, _TAGS),
        user_artists=_read(source, _USER_ARTISTS),
        tag_assignments=assignments.drop(columns=["day", "month", "year"]),
        friends=_read(source, _FRIENDS),
    )


def lastfm_statistics(data: LastFm) -> dict[str, int]:
    """Count what the dataset's readme and provenance notes document.

    Args:
        data: the loaded dataset.

    Returns:
        ``users``, ``artists``, ``user_artist_pairs``, ``tags``, ``tag_assignments``,
        ``friend_pairs``, ``tag_artist_pairs`` (distinct), ``tag_artist_pairs_ge2`` and
        ``tag_artist_pairs_ge5`` (given by at least 2 / 5 distinct users) and
        ``tags_with_10_artists_ge2`` (tags with at least 10 such artists given by >= 2 users).
    """
    pairs = tag_artist_users(data.tag_assignments)
    ge2 = pairs[pairs["n_users"] >= 2]
    return {
        "users": int(data.user_artists["user_id"].nunique()),
        "artists": len(data.artists),
        "user_artist_pairs": len(data.user_artists),
        "tags": len(data.tags),
        "tag_assignments": len(data.tag_assignments),
        "friend_pairs": len(data.friends),
        "tag_artist_pairs": len(pairs),
        "tag_artist_pairs_ge2": len(ge2),
        "tag_artist_pairs_ge5": int((pairs["n_users"] >= 5).sum()),
        "tags_with_10_artists_ge2": int((ge2.groupby("tag_id").size() >= 10).sum()),
    }


def tag_artist_users(assignments: pd.DataFrame) -> pd.DataFrame:
    """Count the distinct users who gave each tag to each artist.

    Args:
        assignments: tag assignments with ``user_id``, ``artist_id`` and ``tag_id``.

    Returns:
        One row per distinct (``tag_id``, ``artist_id``) with ``n_users``.
    """
    grouped = assignments.groupby(["tag_id", "artist_id"], sort=True)["user_id"].nunique()
    return grouped.rename("n_users").reset_index()


def relevance_grade(n_users: np.ndarray) -> np.ndarray:
    """Turn the number of distinct users who gave a tag to an artist into a graded label.

    Args:
        n_users: counts >= 0.

    Returns:
        int32 grades: 0 for 0 users, 1 for 1, 2 for 2–4 and 3 for 5 or more.

    Raises:
        InputError: a count is negative.
    """
    counts = np.asarray(n_users)
    if counts.size and counts.min() < 0:
        raise InputError("n_users", int(counts.min()), "user counts must be >= 0")
    return (counts >= 1).astype(np.int32) + (counts >= 2) + (counts >= 5)


def tag_search_dataset(
    data: LastFm,
    *,
    max_candidates: int = 50,
    negatives: int = 10,
    min_relevant: int = 2,
    seed: int = 0,
    max_searches: int | None = None,
) -> pa.Table:
    """Build the tag-search ranking dataset: one search per (user, tag), artists as items.

    Candidates are chosen without looking at labels: the ``max_candidates - negatives`` most
    popular artists (listeners, then artist id) that anyone gave the tag, plus ``negatives``
    artists nobody gave it, sampled per search from the :data:`NEGATIVE_POOL` most popular
    artists. Each search lists its candidates in popularity order.

    Args:
        data: the loaded dataset.
        max_candidates: most rows per search.
        negatives: sampled artists without the tag per search.
        min_relevant: only tags with at least this many artists of grade >= 2 make searches.
        seed: seeds the negative sampling.
        max_searches: keep only the first searches in time order (a prefix of the full
            dataset); ``None`` keeps all.

    Returns:
        A ranking dataset with ``search_id``, ``user_id``, ``item_id`` (the artist id),
        ``query`` (the normalized tag), ``event_timestamp`` (the user's first use of the tag),
        ``label`` (:func:`relevance_grade`) and the float32 :data:`TAG_SEARCH_FEATURES`, sorted by
        time, search and popularity.

    Raises:
        InputError: a parameter is out of range.
    """
    _check_search_parameters(max_candidates, negatives, min_relevant, max_searches)
    assignments = data.tag_assignments[
        data.tag_assignments["artist_id"].isin(data.artists["artist_id"])
    ]
    pairs = tag_artist_users(assignments)
    searches = _searches(assignments, pairs, min_relevant, max_searches)
    popularity = _artist_popularity(data)
    rows = _candidates(searches, pairs, popularity, max_candidates - negatives, negatives, seed)
    labels = rows.merge(pairs, on=["tag_id", "artist_id"], how="left")["n_users"]
    rows["label"] = relevance_grade(labels.fillna(0).to_numpy(dtype=np.int64))
    rows["query"] = rows["tag_id"].map(data.tags.set_index("tag_id")["tag"].map(normalize_text))
    features = {
        **_popularity_features(rows, popularity, data),
        **_personal_features(rows, data),
        **_text_features(rows, data),
    }
    timestamps = pa.array(rows["event_timestamp"]).cast(S.TIMESTAMP_TYPE)
    columns: dict[str, pa.Array] = {
        S.SEARCH_ID: pa.array(rows["search_id"].to_numpy(), pa.int64()),
        S.USER_ID: pa.array(rows["user_id"].to_numpy(), pa.int64()),
        S.ITEM_ID: pa.array(rows["artist_id"].to_numpy(), pa.int64()),
        S.QUERY: pa.array(rows["query"].to_numpy(), pa.string()),
        S.EVENT_TIMESTAMP: timestamps,
        S.LABEL: pa.array(rows["label"].to_numpy(), pa.int32()),
    }
    columns.update({name: pa.array(features[name], pa.float32()) for name in TAG_SEARCH_FEATURES})
    return pa.table(columns)


def convert_lastfm(source: Path, out: Path) -> dict[str, int]:
    """Write the artist catalogue, the tag-search dataset and the statistics.

    Args:
        source: the HetRec 2011 Last.fm folder.
        out: the output folder (created when missing).

    Returns:
        ``artists`` and ``tag_search`` (rows written) and ``searches`` (distinct searches).

    Raises:
        InputError: the source folder or one of its files is missing or malformed.
    """
    data = load_lastfm(source)
    popularity = _artist_popularity(data)
    artists = pa.table(
        {
            S.ITEM_ID: pa.array(data.artists["artist_id"].to_numpy(), pa.int64()),
            "name": pa.array(data.artists["name"].to_numpy(), pa.string()),
            "listeners": pa.array(popularity.loc[data.artists["artist_id"], "listeners"]),
            "plays": pa.array(popularity.loc[data.artists["artist_id"], "plays"]),
        }
    )
    tag_search = tag_search_dataset(data)
    write_parquet_atomically(artists, out / ARTISTS_OUTPUT)
    write_parquet_atomically(tag_search, out / TAG_SEARCH_OUTPUT)
    _write_json_atomically(lastfm_statistics(data), out / STATS_OUTPUT)
    return {
        "artists": artists.num_rows,
        "tag_search": tag_search.num_rows,
        "searches": len(np.unique(tag_search.column(S.SEARCH_ID).to_numpy())),
    }


def _write_json_atomically(payload: dict[str, int], path: Path) -> None:
    # Same all-or-nothing rule as the parquet outputs: write beside the target, then rename.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _read(source: Path, spec: _File) -> pd.DataFrame:
    path = source / spec.name
    if not path.is_file():
        raise InputError(str(path), spec.name, "the HetRec 2011 Last.fm folder lacks this file")
    # QUOTE_NONE: names such as '"Weird Al" Yankovic' carry literal quotes; no NA parsing, since
    # tags such as "null" or "NA" are text.
    frame = pd.read_csv(
        path,
        sep="\t",
        encoding=spec.encoding,
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
    )
    if tuple(frame.columns) != spec.header:
        raise InputError(
            str(path), list(frame.columns), f"the header must be the columns {list(spec.header)}"
        )
    frame = frame[list(spec.columns)].rename(columns=spec.columns)
    for column in frame.columns.difference(list(_TEXT_COLUMNS)):
        frame[column] = _integers(frame[column], path)
    return frame


def _integers(values: pd.Series, path: Path) -> pd.Series:
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() | (parsed != parsed.round())
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}:{first + 2} column {values.name!r}",  # +2: 1-based, after the header
            values.iloc[first],
            "ids, counts and dates must be integers",
        )
    return parsed.astype(np.int64)


def _dates(assignments: pd.DataFrame, path: Path) -> pd.Series:
    stamps = pd.to_datetime(assignments[["year", "month", "day"]], errors="coerce", utc=True)
    if stamps.isna().any():
        first = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        row = assignments.iloc[first]
        raise InputError(
            f"{path}:{first + 2}",
            f"{row['day']}/{row['month']}/{row['year']}",
            "day, month and year must form a valid date",
        )
    return stamps


def _check_search_parameters(
    max_candidates: int, negatives: int, min_relevant: int, max_searches: int | None
) -> None:
    if max_candidates < 1:
        raise InputError("max_candidates", max_candidates, "must be >= 1")
    if not 0 <= negatives < max_candidates:
        raise InputError(
            "negatives", negatives, f"must lie in 0..max_candidates-1 ({max_candidates - 1})"
        )
    if min_relevant < 1:
        raise InputError("min_relevant", min_relevant, "must be >= 1")
    if max_searches is not None and max_searches < 1:
        raise InputError("max_searches", max_searches, "must be >= 1 or None")


def _searches(
    assignments: pd.DataFrame, pairs: pd.DataFrame, min_relevant: int, max_searches: int | None
) -> pd.DataFrame:
    """One row per (user, tag) of a qualifying tag, at the user's first use, in time order."""
    relevant = pairs[relevance_grade(pairs["n_users"].to_numpy()) >= 2].groupby("tag_id").size()
    tags = relevant.index[relevant >= min_relevant]
    used = assignments[assignments["tag_id"].isin(tags)]
    searches = used.groupby(["user_id", "tag_id"])["event_timestamp"].min().reset_index()
    searches = searches.sort_values(["event_timestamp", "user_id", "tag_id"], kind="stable")
    if max_searches is not None:
        searches = searches.head(max_searches)
    searches = searches.reset_index(drop=True)
    searches["search_id"] = np.arange(len(searches), dtype=np.int64)
    return searches


def _artist_popularity(data: LastFm) -> pd.DataFrame:
    """Listeners, plays and tag assignments of every artist in ``artists.dat``, with its rank.

    Rank 0 is the most popular artist: most distinct listeners, ties broken by artist id.
    """
    listened = data.user_artists.groupby("artist_id").agg(
        listeners=("user_id", "nunique"), plays=("plays", "sum")
    )
    tagged = data.tag_assignments.groupby("artist_id").size().rename("tag_assignments")
    popularity = (
        pd.DataFrame(index=pd.Index(data.artists["artist_id"], name="artist_id"))
        .join(listened)
        .join(tagged)
        .fillna(0)
        .astype(np.int64)
        .reset_index()
        .sort_values(["listeners", "artist_id"], ascending=[False, True], kind="stable")
    )
    popularity["rank"] = np.arange(len(popularity), dtype=np.int64)
    return popularity.set_index("artist_id")


def _candidates(
    searches: pd.DataFrame,
    pairs: pd.DataFrame,
    popularity: pd.DataFrame,
    tagged_per_search: int,
    negatives: int,
    seed: int,
) -> pd.DataFrame:
    """Rows of (search, artist) in search order and, within a search, in popularity order."""
    by_rank = popularity.index.to_numpy()
    pool = np.arange(min(NEGATIVE_POOL, len(by_rank)), dtype=np.int64)
    ranks = popularity.loc[pairs["artist_id"], "rank"].to_numpy()
    tag_ids = pairs["tag_id"].to_numpy()
    order = np.lexsort((ranks, tag_ids))
    tags, starts = np.unique(tag_ids[order], return_index=True)
    # strict=False: without pairs, split still returns one empty part for zero tags.
    tagged = dict(zip(tags.tolist(), np.split(ranks[order], starts[1:]), strict=False))
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    untagged: dict[int, np.ndarray] = {}
    for tag in searches["tag_id"].tolist():
        carriers = tagged[tag]
        if tag not in untagged:
            untagged[tag] = np.setdiff1d(pool, carriers, assume_unique=True)
        eligible = untagged[tag]
        sampled = rng.choice(eligible, size=min(negatives, len(eligible)), replace=False)
        chosen.append(np.sort(np.concatenate([carriers[:tagged_per_search], sampled])))
    sizes = np.fromiter((len(c) for c in chosen), dtype=np.int64, count=len(chosen))
    rows = searches.loc[np.repeat(searches.index.to_numpy(), sizes)].reset_index(drop=True)
    rows["artist_id"] = by_rank[np.concatenate(chosen)] if chosen else np.empty(0, np.int64)
    return rows


def _popularity_features(
    rows: pd.DataFrame, popularity: pd.DataFrame, data: LastFm
) -> dict[str, np.ndarray]:
    stats = popularity.loc[rows["artist_id"]]
    # The searched tag's own assignments define the label, so they are left out of the count.
    own_tag = data.tag_assignments.groupby(["tag_id", "artist_id"]).size().rename("own")
    own = rows[["tag_id", "artist_id"]].join(own_tag, on=["tag_id", "artist_id"])["own"]
    other = stats["tag_assignments"].to_numpy(dtype=np.float64) - own.fillna(0).to_numpy()
    return {
        "artist_log_listeners": np.log1p(stats["listeners"].to_numpy(dtype=np.float64)),
        "artist_log_plays": np.log1p(stats["plays"].to_numpy(dtype=np.float64)),
        "artist_log_other_tag_assignments": np.log1p(other),
    }


def _personal_features(rows: pd.DataFrame, data: LastFm) -> dict[str, np.ndarray]:
    keys = ["user_id", "artist_id"]
    searchers = rows["user_id"].unique()
    friends = data.friends[data.friends["user_id"].isin(searchers)]
    friend_plays = (
        friends.merge(
            data.user_artists, left_on="friend_id", right_on="user_id", suffixes=("", "_")
        )
        .groupby(keys, as_index=False)["plays"]
        .sum()
    )
    # Summed so that a repeated (user, artist) line cannot duplicate rows in the merge.
    plays = data.user_artists.groupby(keys, as_index=False)["plays"].sum()
    own = rows[keys].merge(plays, on=keys, how="left")["plays"]
    social = rows[keys].merge(friend_plays, on=keys, how="left")["plays"]
    return {
        "user_artist_log_plays": np.log1p(own.fillna(0).to_numpy(dtype=np.float64)),
        "friends_artist_log_plays": np.log1p(social.fillna(0).to_numpy(dtype=np.float64)),
    }


def _text_features(rows: pd.DataFrame, data: LastFm) -> dict[str, np.ndarray]:
    # Many searches share a tag and its candidates: score each (tag, artist) pair once.
    keys = ["tag_id", "artist_id"]
    unique = rows[[*keys, "query"]].drop_duplicates(keys)
    names = unique["artist_id"].map(data.artists.set_index("artist_id")["name"]).tolist()
    scores = text_match(unique["query"].tolist(), names, names)
    for name in TEXT_MATCH_FEATURES:
        unique[f"text_{name}"] = scores[name]
    aligned = rows[keys].merge(unique, on=keys, how="left")
    return {column: aligned[column].to_numpy() for column in TEXT_FEATURES}
