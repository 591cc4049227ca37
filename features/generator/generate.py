"""Write the synthetic music-search dataset: catalogue, users, searches, impressions and the
daily feature snapshots, streamed day by day in bounded memory.

The output folder holds one parquet file per table in :mod:`searchrank.features.tables` and a
``manifest.json``. Files are written into a temporary folder and moved into place only when the
whole dataset is complete, so a failed run never leaves a half-written dataset behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrank.core import schema as S
from searchrank.core.names import PACKAGE_VERSION
from searchrank.features import tables as T
from searchrank.features.generator.catalogue import Catalogue, build_catalogue
from searchrank.features.generator.config import GeneratorConfig
from searchrank.features.generator.simulate import (
    INTENTS,
    QUERY_FORMS,
    Chunk,
    Day,
    Simulator,
    expected_grade,
)
from searchrank.features.generator.snapshots import WINDOW, FeatureState
from searchrank.features.generator.users import Users, build_users

WARMUP_DAYS = 7
"""Days simulated before the window and not logged, so the first snapshots have history."""
BACKFILL_AFTER = -3
"""After this warm-up day, the 30-day windows' older days are backfilled with its average."""
WEEKEND_LIFT = 1.15
GROWTH_OVER_WINDOW = 0.15

Progress = Callable[[int, int], None]
"""Called with (days done, days in total) as the generation advances."""


@dataclass(frozen=True)
class Manifest:
    """What a generated data folder holds."""

    generator_version: str
    seed: int
    searches: int
    users: int
    items: int
    window_start: str
    window_end: str
    old_ranker_popularity: float
    rows: dict[str, int]


def daily_volume(total: int, days: int, window_start: datetime) -> np.ndarray:
    """Searches per day: weekly seasonality and slow growth, summing exactly to ``total``."""
    weekday = np.array([(window_start + timedelta(days=d)).weekday() for d in range(days)])
    weights = np.where(weekday >= 5, WEEKEND_LIFT, 1.0) * (
        1.0 + GROWTH_OVER_WINDOW * np.arange(days) / max(days - 1, 1)
    )
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]
    counts[remainder] += 1
    return counts


def daily_popularity(catalogue: Catalogue, day: int, rng: np.random.Generator) -> np.ndarray:
    """The platform's popularity score in [0, 1] on ``day`` (log-scaled daily plays).

    New releases spike and decay over about two weeks; every item wobbles a little day to day.
    """
    age = day - catalogue.release_day
    trend = 1.0 + 4.0 * np.exp(-np.maximum(age, 0.0) / 12.0)
    plays = catalogue.base_pop * trend * rng.lognormal(0.0, 0.08, size=len(catalogue))
    score = np.log1p(1000.0 * plays) / np.log1p(5000.0)
    return np.where(age >= 0, np.clip(score, 0.0, 1.0), 0.0)


@dataclass
class World:
    """What a config's dataset is drawn from: the catalogue, the listeners and the random
    streams of the feature snapshots and of each day. :func:`generate` draws the logs from it;
    a benchmark rebuilds it to read the generator's hidden truth (each day's popularity, each
    listener's taste) beside the logs."""

    config: GeneratorConfig
    window_start: datetime
    catalogue: Catalogue
    users: Users
    state_rng: np.random.Generator
    day_seeds: list[np.random.SeedSequence]

    @classmethod
    def of(cls, config: GeneratorConfig) -> World:
        window_start = config.window_end - timedelta(days=config.days)
        seeds = np.random.SeedSequence(config.seed).spawn(3 + WARMUP_DAYS + config.days)
        world_rng, user_rng, state_rng = (np.random.default_rng(s) for s in seeds[:3])
        return cls(
            config,
            window_start,
            build_catalogue(world_rng, config.n_artists, config.days, window_start),
            build_users(user_rng, config.n_users, config.days),
            state_rng,
            seeds[3:],
        )

    def simulator(self) -> Simulator:
        config = self.config
        return Simulator(
            self.catalogue, self.users, config.max_candidates, config.old_ranker_popularity
        )

    def day(self, index: int) -> tuple[Day, np.random.Generator]:
        """Day ``index`` of the window (negative: the warm-up before it) and the random stream
        that simulates its searches, after the day's popularity was drawn from it."""
        rng = np.random.default_rng(self.day_seeds[index + WARMUP_DAYS])
        popularity = daily_popularity(self.catalogue, index, rng)
        # Only items released before the day starts can be shown that day.
        return Day(index, self.catalogue.release_day <= index, popularity), rng


class _Writers:
    """One parquet writer per table, opened lazily in a staging folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}

    def write(self, table: str, frame: pd.DataFrame) -> None:
        schema = T.SCHEMAS[table]
        if table not in self.writers:
            self.writers[table] = pq.ParquetWriter(self.folder / T.file_name(table), schema)
            self.rows[table] = 0
        if len(frame):
            arrow = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
            self.writers[table].write_table(arrow)
            self.rows[table] += len(frame)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _chunk_frames(chunk: Chunk, first_id: int, window_start: datetime) -> dict[str, pd.DataFrame]:
    """The rows one chunk adds to the searches, impressions and ground-truth tables."""
    n = len(chunk.user)
    search_id = np.arange(first_id, first_id + n, dtype=np.int64)
    ts = pd.to_datetime(window_start) + pd.to_timedelta(chunk.time, unit="D")
    ts = ts.floor("ms")
    searches = pd.DataFrame(
        {
            "search_id": search_id,
            "user_id": chunk.user.astype(np.int64) + 1,
            T.TIMESTAMP_COLUMN: ts,
            "raw_query": chunk.raw_query,
            "query": chunk.query,
            "intent": np.array(INTENTS, dtype=object)[chunk.intent],
            "query_form": np.array(QUERY_FORMS, dtype=object)[chunk.form],
            "target_item_id": pd.arrays.IntegerArray(chunk.target + 1, chunk.target < 0),
            "n_candidates": np.bincount(chunk.imp_search, minlength=n).astype(np.int32),
        }
    )
    s = chunk.imp_search
    impressions = pd.DataFrame(
        {
            "search_id": search_id[s],
            "user_id": searches["user_id"].to_numpy()[s],
            "item_id": chunk.imp_item.astype(np.int64) + 1,
            "query": np.array(chunk.query, dtype=object)[s],
            T.TIMESTAMP_COLUMN: ts[s],
            "position": chunk.imp_position,
            "label": chunk.imp_label,
        }
    )
    truth = pd.DataFrame(
        {
            "search_id": search_id[s],
            "item_id": impressions["item_id"].to_numpy(),
            S.HIDDEN_RELEVANCE: chunk.imp_relevance,
            S.SAVE_SCALE: chunk.imp_save_scale,
            S.TRUE_GRADE: expected_grade(chunk.imp_relevance, chunk.imp_save_scale),
        }
    )
    return {T.SEARCHES: searches, T.IMPRESSIONS: impressions, T.GROUND_TRUTH: truth}


def generate(config: GeneratorConfig, out: Path, progress: Progress | None = None) -> Manifest:
    """Generate the dataset described by ``config`` into the folder ``out``.

    Existing files of the same names in ``out`` are replaced only after the new dataset is
    complete; other files in ``out`` are left alone.
    """
    out.mkdir(parents=True, exist_ok=True)
    world = World.of(config)
    catalogue, users, window_start = world.catalogue, world.users, world.window_start
    all_days = list(range(-WARMUP_DAYS, config.days))
    simulator = world.simulator()
    state = FeatureState(catalogue, users, world.state_rng)
    volume = daily_volume(config.searches, config.days, window_start)
    warmup = np.full(WARMUP_DAYS, max(int(volume.mean()), 1), dtype=np.int64)

    with tempfile.TemporaryDirectory(dir=out, prefix=".generating-") as staging_name:
        staging = Path(staging_name)
        writers = _Writers(staging)
        try:
            writers.write(T.CATALOGUE, catalogue.to_frame(window_start))
            writers.write(T.USERS, users.to_frame(window_start))
            next_id = 1
            for k, day_index in enumerate(all_days):
                day, rng = world.day(day_index)
                simulator.begin_day(day)
                remaining = int(warmup[k] if day_index < 0 else volume[day_index])
                while remaining > 0:
                    n = min(remaining, config.chunk_searches)
                    chunk = simulator.simulate(day, n, rng)
                    state.record_chunk(day_index, chunk)
                    if day_index >= 0:
                        for table, rows in _chunk_frames(chunk, next_id, window_start).items():
                            writers.write(table, rows)
                        next_id += n
                    remaining -= n
                if day_index == BACKFILL_AFTER:
                    observed = list(range(-WARMUP_DAYS, day_index + 1))
                    state.backfill(observed, list(range(day_index + 1 - WINDOW, -WARMUP_DAYS)))
                snapshots = state.end_day(day_index, window_start, day.popularity)
                if day_index >= -2:  # searches early on day 0 need the snapshot of day -1
                    for table, frame in snapshots.items():
                        writers.write(table, frame)
                if progress is not None:
                    progress(k + 1, len(all_days))
        finally:
            writers.close()
        manifest = Manifest(
            generator_version=PACKAGE_VERSION,
            seed=config.seed,
            searches=config.searches,
            users=len(users),
            items=len(catalogue),
            window_start=window_start.isoformat(),
            window_end=config.window_end.isoformat(),
            old_ranker_popularity=config.old_ranker_popularity,
            rows=dict(writers.rows),
        )
        (staging / T.MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        for table in (*T.ALL_TABLES,):
            shutil.move(staging / T.file_name(table), out / T.file_name(table))
        shutil.move(staging / T.MANIFEST, out / T.MANIFEST)
    return manifest
