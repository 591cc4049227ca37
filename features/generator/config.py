"""Configuration of the synthetic music-search generator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from searchrank.core.errors import InputError
from searchrank.features.generator.retriever import POPULARITY_WEIGHT


def _today_utc() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class GeneratorConfig:
    """How much synthetic search traffic to generate, over which days, from which seed.

    The same configuration (seed and end date included) always produces byte-identical files.
    Sizes not given are derived from ``searches`` so that one knob scales the whole world.

    Attributes:
        searches: number of searches over the whole window.
        seed: seed of every random draw.
        days: length of the logged window in days (at least 30 for the demo's time split).
        end_date: the (exclusive) last day of the window; today in UTC when not given.
        users: number of listeners; derived from ``searches`` when not given.
        artists: number of music artists; derived from ``users`` when not given.
        max_candidates: the longest impression list the retriever shows.
        chunk_searches: at most this many searches are held in memory at once.
        old_ranker_popularity: the weight of today's popularity (in [0, 1]) beside the lexical
            score (in (0, 1]) in the order the old ranker shows its candidates. The default
            0.5 mixes both; a large value simulates a popularity-heavy old ranker, whose logged
            positions say more about popularity than about relevance, so that its clicks'
            position bias misleads a model more (see ``bench_experiment --old-ranker-popularity``).
    """

    searches: int = 20_000
    seed: int = 7
    days: int = 35
    end_date: date | None = None
    users: int | None = None
    artists: int | None = None
    max_candidates: int = 20
    chunk_searches: int = 50_000
    old_ranker_popularity: float = POPULARITY_WEIGHT

    def __post_init__(self) -> None:
        rules: list[tuple[str, int | None, int, int]] = [
            ("searches", self.searches, 1, 1_000_000_000),
            ("days", self.days, 1, 3_650),
            ("users", self.users, 10, 50_000_000),
            ("artists", self.artists, 10, 5_000_000),
            ("max_candidates", self.max_candidates, 2, 1_000),
            ("chunk_searches", self.chunk_searches, 100, 10_000_000),
        ]
        for name, value, low, high in rules:
            if value is not None and not low <= value <= high:
                raise InputError(name, value, f"must be an integer between {low} and {high}")
        if not 0.0 <= self.old_ranker_popularity <= 100.0:
            raise InputError(
                "old_ranker_popularity", self.old_ranker_popularity, "must lie between 0 and 100"
            )

    @property
    def n_users(self) -> int:
        return self.users if self.users is not None else min(max(self.searches // 10, 300), 500_000)

    @property
    def n_artists(self) -> int:
        if self.artists is not None:
            return self.artists
        return min(max(self.n_users // 4, 150), 50_000)

    @property
    def window_end(self) -> datetime:
        """Midnight UTC at the end of the window (exclusive)."""
        day = self.end_date or _today_utc()
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
