"""The synthetic music-search generator: determinism, realism and point-in-time structure."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.text import normalize_text
from searchrank.features import tables as T
from searchrank.features.generator.config import GeneratorConfig
from searchrank.features.generator.generate import daily_volume, generate
from searchrank.features.generator.simulate import misspell
from searchrank.features.generator.users import build_users

TINY = GeneratorConfig(searches=600, days=30, seed=3, end_date=date(2026, 6, 1))


def read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(folder / T.file_name(table))


def test_same_seed_gives_identical_tables_and_other_seed_differs(tmp_path: Path) -> None:
    generate(TINY, tmp_path / "a")
    generate(TINY, tmp_path / "b")
    generate(replace(TINY, seed=4), tmp_path / "c")
    for table in T.ALL_TABLES:
        a = pq.read_table(tmp_path / "a" / T.file_name(table))
        assert a.equals(pq.read_table(tmp_path / "b" / T.file_name(table))), table
    a, c = read(tmp_path / "a", T.SEARCHES), read(tmp_path / "c", T.SEARCHES)
    assert not a["query"].equals(c["query"])


def test_every_table_has_its_declared_schema_and_the_manifest_counts_rows(
    dataset_dir: Path,
) -> None:
    manifest = json.loads((dataset_dir / T.MANIFEST).read_text())
    for table in T.ALL_TABLES:
        file_schema = pq.read_schema(dataset_dir / T.file_name(table))
        assert file_schema.remove_metadata().equals(T.SCHEMAS[table]), table
        assert (
            pq.ParquetFile(dataset_dir / T.file_name(table)).metadata.num_rows
            == manifest["rows"][table]
        )


def test_catalogue_looks_like_a_streaming_catalogue(
    dataset_dir: Path, small_config: GeneratorConfig
) -> None:
    items = read(dataset_dir, T.CATALOGUE)
    assert set(items["item_type"]) == {"track", "album", "artist", "show", "episode"}
    assert items["market"].nunique() >= 6 and items["language"].nunique() >= 5
    assert items["explicit"].any() and not items["explicit"].all()
    # Names come from word lists: every word is alphabetic, no random strings.
    words = set(" ".join(items["name"]).lower().replace("(", " ").replace(")", " ").split())
    assert all(w.isalpha() or w.isdigit() or w == "-" for w in words)
    # Versions of the same song exist and point at their original.
    versions = items[items["version_type"] != "original"]
    assert set(versions["version_type"]) >= {"live", "remaster", "cover"}
    originals = items.set_index("item_id").loc[versions["original_item_id"].to_numpy()]
    for (_, version), original in zip(versions.iterrows(), originals["name"], strict=True):
        if version["version_type"] == "cover":
            assert version["name"] == original
        else:
            assert version["name"].startswith(original)
    # Some releases happen inside the logged window; most are older.
    window_start = small_config.window_end - pd.Timedelta(days=small_config.days)
    fresh = items["release_timestamp"] >= window_start
    assert 0 < fresh.mean() < 0.5
    tracks = items[items["item_type"] == "track"]
    assert tracks["duration_s"].between(60, 700).all()


def test_popularity_follows_a_power_law(dataset_dir: Path) -> None:
    stats = read(dataset_dir, T.ITEM_STATS)
    latest = stats.sort_values(T.TIMESTAMP_COLUMN).groupby("item_id").tail(1)
    plays = np.expm1(latest["popularity"].to_numpy() / 100 * np.log1p(5000.0)) / 1000
    plays = np.sort(plays)[::-1]
    top_share = plays[: len(plays) // 10].sum() / plays.sum()
    assert top_share > 0.5, "the top 10% of items should hold most of the plays"


def test_users_include_cold_start_listeners(
    dataset_dir: Path, small_config: GeneratorConfig
) -> None:
    users = read(dataset_dir, T.USERS)
    window_start = small_config.window_end - pd.Timedelta(days=small_config.days)
    cold = users[users["signup_timestamp"] >= window_start]
    assert 0.05 < len(cold) / len(users) < 0.25
    stats = read(dataset_dir, T.USER_STATS).merge(users, on="user_id")
    assert (stats[T.TIMESTAMP_COLUMN] >= stats["signup_timestamp"]).all()
    buckets = set(stats["activity_bucket"])
    assert {"cold_start", "light", "heavy"} <= buckets


def test_about_one_listener_in_twelve_filters_explicit_content_and_dislikes_it(
    dataset_dir: Path,
) -> None:
    users = build_users(np.random.default_rng(3), 100_000, 30)
    assert 0.06 < users.explicit_filter.mean() < 0.10
    assert users.explicit_averse[users.explicit_filter].all()
    # The setting is a user feature: the same for a listener in every daily snapshot.
    stats = read(dataset_dir, T.USER_STATS)
    per_user = stats.groupby("user_id")["explicit_filter"].nunique()
    assert (per_user == 1).all() and 0 < stats["explicit_filter"].mean() < 0.25


def test_searches_cover_every_intent_and_query_form(dataset_dir: Path) -> None:
    searches = read(dataset_dir, T.SEARCHES)
    assert set(searches["intent"]) == {"track", "artist", "album", "podcast", "genre_mood"}
    assert set(searches["query_form"]) == {"exact", "prefix", "misspelled", "descriptive"}
    items = read(dataset_dir, T.CATALOGUE).set_index("item_id")
    named = searches.dropna(subset=["target_item_id"])
    target_names = (
        items.loc[named["target_item_id"].astype(int), "name"].map(normalize_text).to_numpy()
    )
    prefix = named["query_form"].to_numpy() == "prefix"
    assert all(
        t.startswith(q) for q, t in zip(named["query"][prefix], target_names[prefix], strict=True)
    )
    typo = named["query_form"].to_numpy() == "misspelled"
    assert (named["query"].to_numpy()[typo] != target_names[typo]).mean() > 0.9
    assert (searches["query"] == searches["raw_query"].map(normalize_text)).all()


def test_misspell_makes_small_edits() -> None:
    rng = np.random.default_rng(0)
    typos = [misspell("midnight rain", rng) for _ in range(200)]
    assert sum(t != "midnight rain" for t in typos) > 180
    assert all(abs(len(t) - len("midnight rain")) <= 2 for t in typos)
    assert all(t[0] == "m" for t in typos), "the first letter is rarely mistyped"


def test_impressions_are_position_biased_graded_lists(
    dataset_dir: Path, small_config: GeneratorConfig
) -> None:
    imps = read(dataset_dir, T.IMPRESSIONS)
    searches = read(dataset_dir, T.SEARCHES)
    assert set(imps[S.LABEL]) <= set(S.GRADES) and set(imps[S.LABEL]) == set(S.GRADES)
    sizes = imps.groupby(S.SEARCH_ID).size()
    assert sizes.between(2, small_config.max_candidates).all()
    assert sizes.index.equals(pd.Index(searches[S.SEARCH_ID]))
    positions = imps.groupby(S.SEARCH_ID)[S.POSITION].agg(["min", "max", "count"])
    assert (positions["min"] == 0).all() and (positions["max"] == positions["count"] - 1).all()
    click_rate = (imps[S.LABEL] > 0).groupby(imps[S.POSITION]).mean()
    assert click_rate.iloc[0] > 3 * click_rate.iloc[5] > 0
    merged = imps.merge(searches[[S.SEARCH_ID, "target_item_id"]], on=S.SEARCH_ID)
    is_target = merged[S.ITEM_ID] == merged["target_item_id"]
    assert merged.loc[is_target, S.LABEL].mean() > 5 * merged.loc[~is_target, S.LABEL].mean()
    # The logged order is imperfect: relevant results sit below irrelevant ones often enough.
    assert (merged.loc[is_target, S.POSITION] > 0).mean() > 0.1


def test_timestamps_span_the_window_and_snapshots_arrive_after_midnight(
    dataset_dir: Path, small_config: GeneratorConfig
) -> None:
    searches = read(dataset_dir, T.SEARCHES)
    span = searches[T.TIMESTAMP_COLUMN].max() - searches[T.TIMESTAMP_COLUMN].min()
    assert span >= pd.Timedelta(days=small_config.days - 1)
    assert searches[T.TIMESTAMP_COLUMN].is_monotonic_increasing
    for table in T.SNAPSHOT_TABLES:
        stamps = read(dataset_dir, table)[T.TIMESTAMP_COLUMN]
        assert (stamps.dt.hour == T.SNAPSHOT_DELAY.seconds // 3600).all(), table
        assert stamps.dt.normalize().nunique() >= small_config.days, table


def test_point_in_time_join_differs_from_a_latest_value_join(dataset_dir: Path) -> None:
    imps = read(dataset_dir, T.IMPRESSIONS).sort_values(T.TIMESTAMP_COLUMN)
    stats = read(dataset_dir, T.USER_STATS).sort_values(T.TIMESTAMP_COLUMN)
    pit = pd.merge_asof(imps, stats, on=T.TIMESTAMP_COLUMN, by=S.USER_ID)
    latest = imps.merge(stats.groupby(S.USER_ID).tail(1), on=S.USER_ID, suffixes=("", "_latest"))
    pit = pit.set_index([S.SEARCH_ID, S.ITEM_ID])["searches_7d"]
    latest = latest.set_index([S.SEARCH_ID, S.ITEM_ID])["searches_7d"]
    differs = (pit.reindex(latest.index) != latest).mean()
    assert differs > 0.5


def test_generation_streams_in_chunks(tmp_path: Path) -> None:
    config = replace(TINY, searches=2_000, chunk_searches=100)
    generate(config, tmp_path)
    searches = pq.ParquetFile(tmp_path / T.file_name(T.SEARCHES))
    assert searches.metadata.num_row_groups >= config.searches // config.chunk_searches


def _peak_rss_mb(searches: int, folder: Path) -> float:
    code = (
        "import resource, sys; from pathlib import Path; from datetime import date;"
        "from searchrank.features.generator.config import GeneratorConfig;"
        "from searchrank.features.generator.generate import generate;"
        f"generate(GeneratorConfig(searches={searches}, users=1000, artists=300, days=30,"
        " chunk_searches=2000, end_date=date(2026, 6, 1)), Path(sys.argv[1]));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)], check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_stays_bounded_as_searches_grow(tmp_path: Path) -> None:
    small = _peak_rss_mb(3_000, tmp_path / "small")
    large = _peak_rss_mb(30_000, tmp_path / "large")
    assert large < 1.5 * small, f"10x the searches took {large:.0f} MB against {small:.0f} MB"


def test_daily_volume_is_exact_and_weekly() -> None:
    volume = daily_volume(10_001, 28, datetime(2026, 6, 1, tzinfo=UTC))
    assert volume.sum() == 10_001
    weekday = np.array([(datetime(2026, 6, 1) + pd.Timedelta(days=d)).weekday() for d in range(28)])
    assert volume[weekday >= 5].mean() > volume[weekday < 5].mean()


@pytest.mark.parametrize(
    ("field", "value"), [("searches", 0), ("days", 0), ("max_candidates", 1), ("users", 3)]
)
def test_bad_configuration_names_the_field(field: str, value: int) -> None:
    with pytest.raises(InputError, match=field):
        GeneratorConfig(**{field: value})


def test_a_popularity_heavy_old_ranker_shows_positions_that_say_less_about_relevance(
    tmp_path: Path,
) -> None:
    def position_grade_correlation(weight: float) -> float:
        folder = tmp_path / str(weight)
        generate(replace(TINY, old_ranker_popularity=weight), folder)
        rows = read(folder, T.IMPRESSIONS).merge(
            read(folder, T.GROUND_TRUTH), on=[S.SEARCH_ID, S.ITEM_ID]
        )
        manifest = json.loads((folder / T.MANIFEST).read_text())
        assert manifest["old_ranker_popularity"] == weight
        return float(rows[[S.POSITION, S.TRUE_GRADE]].corr("spearman").iloc[0, 1])

    default = position_grade_correlation(TINY.old_ranker_popularity)
    popularity_heavy = position_grade_correlation(20.0)
    assert default < popularity_heavy < 0.0
    assert popularity_heavy - default > 0.05
    with pytest.raises(InputError, match="old_ranker_popularity"):
        GeneratorConfig(old_ranker_popularity=-1.0)
