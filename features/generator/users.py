"""Synthetic listeners: market, sign-up time, activity level, explicit-content setting and
hidden tastes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from searchrank.features import vocabulary as V
from searchrank.features.generator import words as W

ACTIVITY_LEVELS: tuple[str, ...] = ("light", "medium", "heavy")
ACTIVITY_SHARE = (0.5, 0.35, 0.15)
ACTIVITY_RATE = (1.0, 4.0, 14.0)
COLD_START_SHARE = 0.12
"""Share of listeners who sign up inside the logged window, so have no history at first."""
MINOR_SHARE = 0.10
"""Share of listeners under 18 (hidden: the service never knows a listener's age)."""
ADULT_FILTER_RATE, MINOR_FILTER_RATE = 0.04, 0.45
"""How often adults and minors have the explicit-content filter on: about 8 % in all, as family
and teen plans turn it on by default."""


@dataclass
class Users:
    """Column arrays of the listeners, one entry per user (index = ``user_id - 1``).

    ``signup_day`` counts days from the start of the logged window (negative before it).
    ``genre_taste`` (n_users, n_genres) and ``topic_taste`` (n_users, n_topics) are rows of
    probabilities; ``podcast_affinity`` is in [0, 1]. The tastes are hidden: they drive the
    simulation, and models must learn them from behaviour. ``explicit_filter`` is the listener's
    public setting: with it on, the service must never show them explicit content (they also
    dislike it, so ``explicit_averse`` holds for them).
    """

    market: np.ndarray
    signup_day: np.ndarray
    activity_level: np.ndarray
    rate: np.ndarray
    genre_taste: np.ndarray
    topic_taste: np.ndarray
    podcast_affinity: np.ndarray
    explicit_averse: np.ndarray
    explicit_filter: np.ndarray

    def __len__(self) -> int:
        return len(self.market)

    def to_frame(self, window_start: datetime) -> pd.DataFrame:
        """The public profile table: no hidden tastes."""
        signup = pd.to_datetime(window_start) + pd.to_timedelta(self.signup_day, unit="D")
        return pd.DataFrame(
            {
                "user_id": np.arange(1, len(self) + 1, dtype=np.int64),
                "market": np.array(V.MARKETS, dtype=object)[self.market],
                "signup_timestamp": signup.floor("s"),
            }
        )


def build_users(rng: np.random.Generator, n_users: int, window_days: int) -> Users:
    """Draw ``n_users`` listeners; about 12 % of them sign up inside the window and about 8 %
    have the explicit-content filter on."""
    level = rng.choice(len(ACTIVITY_LEVELS), size=n_users, p=ACTIVITY_SHARE)
    rate = np.array(ACTIVITY_RATE)[level] * rng.lognormal(0, 0.4, size=n_users)
    cold = rng.random(n_users) < COLD_START_SHARE
    signup = np.where(
        cold,
        rng.uniform(0, window_days, size=n_users),
        -rng.exponential(700, size=n_users) - 1,
    )
    genre_taste = rng.dirichlet(np.full(len(V.GENRES), 0.35), size=n_users)
    topic_taste = rng.dirichlet(np.full(len(V.PODCAST_TOPICS), 0.4), size=n_users)
    market = rng.choice(len(V.MARKETS), size=n_users, p=W.MARKET_SHARE).astype(np.int8)
    podcast_affinity = rng.beta(1.0, 3.5, size=n_users)
    averse = rng.random(n_users) < 0.15
    minor = rng.random(n_users) < MINOR_SHARE
    explicit_filter = rng.random(n_users) < np.where(minor, MINOR_FILTER_RATE, ADULT_FILTER_RATE)
    return Users(
        market=market,
        signup_day=signup,
        activity_level=level.astype(np.int8),
        rate=rate,
        genre_taste=genre_taste,
        topic_taste=topic_taste,
        podcast_affinity=podcast_affinity,
        explicit_averse=averse | explicit_filter,
        explicit_filter=explicit_filter,
    )
