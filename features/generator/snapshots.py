"""Daily feature snapshots computed from the simulated logs, as a nightly batch job would.

After each simulated day the state below is updated with that day's searches and impressions,
and one snapshot per table is emitted, stamped when it became available (two hours after
midnight). Values change every day, so a point-in-time join and a naive latest-value join give
different answers, as they do on real logs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from searchrank.features import tables as T
from searchrank.features import vocabulary as V
from searchrank.features.generator.catalogue import PODCAST_TYPES, Catalogue
from searchrank.features.generator.simulate import Chunk
from searchrank.features.generator.users import Users

WINDOW = 30
"""Days of history kept in the ring buffers (the longest rolling window)."""
COLD_START_DAYS = 14


class SparseCounter:
    """Counts keyed by int64 (for pairs too many for a dense matrix), merged once a day."""

    def __init__(self, width: int) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.values = np.zeros((0, width))

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        all_keys = np.concatenate([self.keys, keys])
        unique, inverse = np.unique(all_keys, return_inverse=True)
        merged = np.zeros((len(unique), self.values.shape[1]))
        np.add.at(merged, inverse, np.concatenate([self.values, values]))
        self.keys, self.values = unique, merged

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Counts for ``keys``, zeros where a key was never added; shape (len(keys), width)."""
        out = np.zeros((len(keys), self.values.shape[1]))
        if len(self.keys) == 0:
            return out
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[pos] == keys
        out[found] = self.values[pos[found]]
        return out


class FeatureState:
    """Rolling per-user, per-item and per-query counters plus cumulative pair counters."""

    def __init__(self, catalogue: Catalogue, users: Users, rng: np.random.Generator) -> None:
        self.cat = catalogue
        self.users = users
        n_users, n_items = len(users), len(catalogue)
        # user ring: searches, clicks, streams, saves, podcast streams
        self.user_ring = np.zeros((WINDOW, n_users, 5))
        # item ring: impressions, clicks, streams, saves
        self.item_ring = np.zeros((WINDOW, n_items, 4))
        self.query_days: list[tuple[int, pd.DataFrame]] = []
        # Listening before the logs began, so that long-standing listeners have a history.
        history_days = np.clip(-users.signup_day, 0, 365)
        expected = users.genre_taste * (users.rate * history_days * 0.3)[:, None]
        self.user_genre_streams = rng.poisson(expected).astype(np.float64)
        self.user_logged_streams = np.zeros(n_users)
        self.user_creator_streams = SparseCounter(1)
        self.pairs = SparseCounter(3)  # clicks, streams, saves per (user, item)
        self._today_pairs = np.zeros(0, dtype=np.int64)
        self.music_genre = np.where(
            np.isin(catalogue.item_type, PODCAST_TYPES), -1, catalogue.genre
        ).astype(np.int64)

    def _pair_key(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return user.astype(np.int64) * len(self.cat) + item

    def record_chunk(self, day: int, chunk: Chunk) -> None:
        """Add one chunk of the day's traffic to the counters."""
        slot = day % WINDOW
        user = chunk.user[chunk.imp_search]
        item = chunk.imp_item
        label = chunk.imp_label
        click, stream, save = label >= 1, label >= 2, label >= 3
        podcast = np.isin(self.cat.item_type[item], PODCAST_TYPES)
        n_users = len(self.users)
        ring = self.user_ring[slot]
        ring[:, 0] += np.bincount(chunk.user, minlength=n_users)
        for col, mask in ((1, click), (2, stream), (3, save), (4, stream & podcast)):
            ring[:, col] += np.bincount(user[mask], minlength=n_users)
        shown = np.ones(len(item), dtype=bool)
        for col, mask in ((0, shown), (1, click), (2, stream), (3, save)):
            self.item_ring[slot][:, col] += np.bincount(item[mask], minlength=len(self.cat))

        genre = self.music_genre[item[stream]]
        music = genre >= 0
        np.add.at(self.user_genre_streams, (user[stream][music], genre[music]), 1.0)
        self.user_logged_streams += np.bincount(user[stream], minlength=n_users)
        creator_keys = self._pair_key(user[stream], self.cat.creator[item[stream]])
        self.user_creator_streams.add(creator_keys, np.ones((len(creator_keys), 1)))
        keys = self._pair_key(user, item)
        self.pairs.add(keys, np.stack([click, stream, save], axis=1).astype(np.float64))
        self._today_pairs = np.concatenate([self._today_pairs, keys])

        search_click = np.bincount(chunk.imp_search, weights=click, minlength=len(chunk.user)) > 0
        search_stream = np.bincount(chunk.imp_search, weights=stream, minlength=len(chunk.user)) > 0
        today = pd.DataFrame(
            {
                "day": day,
                "query": chunk.query,
                "searches": 1,
                "clicked": search_click.astype(np.int64),
                "streamed": search_stream.astype(np.int64),
            }
        )
        self.query_days.append((day, today))

    def backfill(self, observed: list[int], missing: list[int]) -> None:
        """Fill the days before the simulation with the average of the ``observed`` days.

        The rolling 30-day windows would otherwise grow through the first month of logs, a
        drift that real logs do not have.
        """
        for ring in (self.user_ring, self.item_ring):
            average = ring[[d % WINDOW for d in observed]].mean(axis=0)
            for day in missing:
                ring[day % WINDOW] = average
        frames = {d: q for d, q in self.query_days if d in observed}
        for k, day in enumerate(missing):
            template = frames[observed[k % len(observed)]]
            self.query_days.append((day, template.assign(day=day)))

    def end_day(
        self, day: int, window_start: datetime, popularity: np.ndarray
    ) -> dict[str, pd.DataFrame]:
        """Close ``day``: emit the snapshots that become available the next morning.

        Args:
            day: the day index relative to the window start.
            window_start: midnight UTC of day 0.
            popularity: the platform popularity of every item in [0, 1] that day.
        """
        stamp = pd.Timestamp(window_start + timedelta(days=day + 1) + T.SNAPSHOT_DELAY)
        snapshots = {
            T.USER_STATS: self._user_snapshot(day, stamp),
            T.ITEM_STATS: self._item_snapshot(day, stamp, popularity),
            T.QUERY_STATS: self._query_snapshot(day, stamp),
            T.USER_ITEM_STATS: self._user_item_snapshot(stamp),
        }
        # Make room for tomorrow in the rings and forget queries older than the window.
        self.user_ring[(day + 1) % WINDOW] = 0.0
        self.item_ring[(day + 1) % WINDOW] = 0.0
        self.query_days = [(d, q) for d, q in self.query_days if d > day + 1 - WINDOW]
        self._today_pairs = np.zeros(0, dtype=np.int64)
        return snapshots

    def _last(self, ring: np.ndarray, day: int, days: int) -> np.ndarray:
        slots = [(day - k) % WINDOW for k in range(days)]
        return ring[slots].sum(axis=0)

    def _user_snapshot(self, day: int, stamp: pd.Timestamp) -> pd.DataFrame:
        users = self.users
        now = day + 1 + T.SNAPSHOT_DELAY / timedelta(days=1)
        present = np.flatnonzero(users.signup_day < now)
        week = self._last(self.user_ring, day, 7)[present]
        month = self._last(self.user_ring, day, WINDOW)[present]
        genre_streams = self.user_genre_streams[present]
        total_genre = genre_streams.sum(axis=1)
        top = genre_streams.argmax(axis=1)
        age = now - users.signup_day[present]
        searches_30d = month[:, 0]
        bucket = np.select(
            [age < COLD_START_DAYS, searches_30d < 5, searches_30d < 25],
            list(V.ACTIVITY_BUCKETS[:3]),
            V.ACTIVITY_BUCKETS[3],
        )
        return pd.DataFrame(
            {
                "user_id": present.astype(np.int64) + 1,
                "account_age_days": age.astype(np.float32),
                "searches_7d": week[:, 0].astype(np.int64),
                "clicks_7d": week[:, 1].astype(np.int64),
                "streams_7d": week[:, 2].astype(np.int64),
                "saves_30d": month[:, 3].astype(np.int64),
                "clicks_per_search_30d": ((month[:, 1] + 0.5) / (searches_30d + 1.0)).astype(
                    np.float32
                ),
                "podcast_share_30d": (month[:, 4] / np.maximum(month[:, 2], 1.0)).astype(
                    np.float32
                ),
                "top_genre": np.where(total_genre > 0, np.array(V.GENRES, dtype=object)[top], None),
                "top_genre_share": (
                    genre_streams.max(axis=1) / np.maximum(total_genre, 1.0)
                ).astype(np.float32),
                "activity_bucket": bucket.astype(object),
                "market": np.array(V.MARKETS, dtype=object)[users.market[present]],
                "explicit_filter": users.explicit_filter[present],
                T.TIMESTAMP_COLUMN: stamp,
                T.FEATURE_TIMESTAMP: stamp,
                T.CREATED_COLUMN: stamp,
            }
        )

    def _item_snapshot(self, day: int, stamp: pd.Timestamp, popularity: np.ndarray) -> pd.DataFrame:
        now = day + 1 + T.SNAPSHOT_DELAY / timedelta(days=1)
        released = np.flatnonzero(self.cat.release_day < now)
        week = self._last(self.item_ring, day, 7)[released]
        month = self._last(self.item_ring, day, WINDOW)[released]
        prior_ctr = 0.1
        return pd.DataFrame(
            {
                "item_id": released.astype(np.int64) + 1,
                "popularity": (100.0 * popularity[released]).round(1).astype(np.float32),
                "impressions_7d": week[:, 0].astype(np.int64),
                "clicks_7d": week[:, 1].astype(np.int64),
                "streams_7d": week[:, 2].astype(np.int64),
                "saves_30d": month[:, 3].astype(np.int64),
                "ctr_7d": ((week[:, 1] + 20 * prior_ctr) / (week[:, 0] + 20)).astype(np.float32),
                "days_since_release": (now - self.cat.release_day[released]).astype(np.float32),
                T.TIMESTAMP_COLUMN: stamp,
                T.FEATURE_TIMESTAMP: stamp,
                T.CREATED_COLUMN: stamp,
            }
        )

    def _query_snapshot(self, day: int, stamp: pd.Timestamp) -> pd.DataFrame:
        if not self.query_days:
            return pd.DataFrame()
        recent = pd.concat([q for _, q in self.query_days], ignore_index=True)
        recent["week"] = recent["day"] > day - 7
        recent["searches_week"] = recent["searches"] * recent["week"]
        agg = recent.groupby("query", sort=True).agg(
            searches_7d=("searches_week", "sum"),
            searches_30d=("searches", "sum"),
            clicked=("clicked", "sum"),
            streamed=("streamed", "sum"),
        )
        denominator = agg["searches_30d"] + 2.0
        return pd.DataFrame(
            {
                "query": agg.index.astype(object),
                "searches_7d": agg["searches_7d"].to_numpy(np.int64),
                "searches_30d": agg["searches_30d"].to_numpy(np.int64),
                "click_rate_30d": ((agg["clicked"] + 1.0) / denominator).to_numpy(np.float32),
                "stream_rate_30d": ((agg["streamed"] + 0.5) / denominator).to_numpy(np.float32),
                T.TIMESTAMP_COLUMN: stamp,
                T.FEATURE_TIMESTAMP: stamp,
                T.CREATED_COLUMN: stamp,
            }
        )

    def _user_item_snapshot(self, stamp: pd.Timestamp) -> pd.DataFrame:
        keys = np.unique(self._today_pairs)
        n_items = len(self.cat)
        user, item = keys // n_items, keys % n_items
        counts = self.pairs.get(keys)
        total = self.user_genre_streams[user].sum(axis=1)
        logged = self.user_logged_streams[user]
        genre = self.music_genre[item]
        genre_streams = np.where(
            genre >= 0, self.user_genre_streams[user, np.maximum(genre, 0)], 0.0
        )
        creator_streams = self.user_creator_streams.get(
            self._pair_key(user, self.cat.creator[item])
        )[:, 0]
        return pd.DataFrame(
            {
                "user_id": user + 1,
                "item_id": item + 1,
                "clicks": counts[:, 0].astype(np.int64),
                "streams": counts[:, 1].astype(np.int64),
                "saves": counts[:, 2].astype(np.int64),
                "artist_affinity": (creator_streams / np.maximum(logged, 1.0)).astype(np.float32),
                "genre_affinity": (genre_streams / np.maximum(total, 1.0)).astype(np.float32),
                T.TIMESTAMP_COLUMN: stamp,
                T.FEATURE_TIMESTAMP: stamp,
                T.CREATED_COLUMN: stamp,
            }
        )
