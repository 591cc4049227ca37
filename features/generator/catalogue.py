"""The synthetic catalogue: artists, albums, tracks (with live, remaster, acoustic, remix and
cover versions), podcast shows and episodes, with word-list names, genres, markets, power-law
popularity, release dates, durations and explicit flags.

Every searchable entity is an *item* with one global ``item_id``. Arrays are indexed by item
index (``item_id - 1``) so the search simulation can work on numpy arrays, not objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from searchrank.features import vocabulary as V
from searchrank.features.generator import words as W

# Integer codes of the item types: positions in the contract's vocabulary.
TRACK, ALBUM, ARTIST, SHOW, EPISODE = (
    V.ITEM_TYPES.index(t) for t in ("track", "album", "artist", "show", "episode")
)
PODCAST_TYPES = (SHOW, EPISODE)

GENRE_SHARE = np.array([0.18, 0.12, 0.14, 0.10, 0.04, 0.04, 0.06, 0.08, 0.07, 0.05, 0.08, 0.04])
EXPLICIT_RATE = np.array([0.12, 0.10, 0.60, 0.08, 0.01, 0.0, 0.05, 0.15, 0.25, 0.35, 0.10, 0.03])
VERSION_PROBABILITY = {
    "live": 0.30,
    "remaster": 0.25,
    "acoustic": 0.12,
    "remix": 0.15,
    "cover": 0.20,
}


@dataclass
class Catalogue:
    """Column arrays of the catalogue, one entry per item (index = ``item_id - 1``).

    ``genre`` holds a music genre index (into ``vocabulary.GENRES``) for music items and a
    podcast topic index (into ``vocabulary.PODCAST_TOPICS``) for shows and episodes. ``mood`` is
    -1 for items without a mood. ``release_day`` counts days from the start of the logged window
    (negative before it). ``creator`` is the index of the artist or show item; ``parent`` the
    index of the original recording (itself for originals). ``base_pop`` is the hidden popularity
    in (0, 1].
    """

    item_type: np.ndarray
    name: np.ndarray
    artist_name: np.ndarray
    genre: np.ndarray
    mood: np.ndarray
    market: np.ndarray
    release_day: np.ndarray
    duration_s: np.ndarray
    explicit: np.ndarray
    version: np.ndarray
    parent: np.ndarray
    creator: np.ndarray
    base_pop: np.ndarray

    def __len__(self) -> int:
        return len(self.item_type)

    @property
    def item_id(self) -> np.ndarray:
        return np.arange(1, len(self) + 1, dtype=np.int64)

    def genre_label(self) -> np.ndarray:
        """The genre (music) or topic (podcasts) of each item as text."""
        music = np.array(V.GENRES, dtype=object)[np.minimum(self.genre, len(V.GENRES) - 1)]
        topics = np.array(V.PODCAST_TOPICS, dtype=object)[
            np.minimum(self.genre, len(V.PODCAST_TOPICS) - 1)
        ]
        return np.where(np.isin(self.item_type, PODCAST_TYPES), topics, music)

    def keywords(self) -> np.ndarray:
        """Metadata words of each item, as a catalogue's tags would be: genre and mood for
        music; topic, topic words and "podcast" for shows and episodes."""
        genre = self.genre_label()
        out = np.empty(len(self), dtype=object)
        for i in range(len(self)):
            words = [str(genre[i])]
            if self.mood[i] >= 0:
                words.append(V.MOODS[self.mood[i]])
            if self.item_type[i] in PODCAST_TYPES:
                words += [*W.TOPIC_WORDS[str(genre[i])], "podcast"]
            out[i] = " ".join(words)
        return out

    def to_frame(self, window_start: datetime) -> pd.DataFrame:
        """The public catalogue table (hidden popularity left out)."""
        release = pd.to_datetime(window_start) + pd.to_timedelta(self.release_day, unit="D")
        moods = np.array((*V.MOODS, None), dtype=object)[self.mood]
        is_original = self.parent == np.arange(len(self))
        return pd.DataFrame(
            {
                "item_id": self.item_id,
                "item_type": np.array(V.ITEM_TYPES, dtype=object)[self.item_type],
                "name": self.name,
                "artist_name": self.artist_name,
                "genre": self.genre_label(),
                "keywords": self.keywords(),
                "mood": moods,
                "market": np.array(V.MARKETS, dtype=object)[self.market],
                "language": [W.MARKET_LANGUAGE[V.MARKETS[m]] for m in self.market],
                "release_timestamp": release.floor("s"),
                "feature_timestamp": release.floor("s"),
                "duration_s": self.duration_s.astype(np.int32),
                "explicit": self.explicit.astype(bool),
                "version_type": np.array(V.VERSION_TYPES, dtype=object)[self.version],
                "original_item_id": pd.arrays.IntegerArray(self.parent + 1, is_original),
                "creator_item_id": self.creator.astype(np.int64) + 1,
            }
        )


class _Names:
    """Draws display names from the word lists with one random generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def artist(self, genre: str, language: str) -> str:
        r = self.rng.random()
        if genre in W.ARTIST_PREFIXES and r < 0.35:
            return f"{self.pick(W.ARTIST_PREFIXES[genre])} {self.pick(W.NOUNS)}"
        if r < 0.55:
            return f"{self.pick(W.FIRST_NAMES)} {self.pick(W.LAST_NAMES)}"
        if r < 0.75:
            return f"the {self.pick(W.ADJECTIVES)} {self.pick(W.PLURAL_NOUNS)}"
        if language in W.LOCAL_WORDS and r < 0.85:
            return f"{self.pick(W.LOCAL_WORDS[language])} {self.pick(W.PLURAL_NOUNS)}"
        return f"{self.pick(W.ADJECTIVES)} {self.pick(W.NOUNS)}"

    def track(self, language: str) -> str:
        r = self.rng.random()
        if language in W.LOCAL_WORDS and r < 0.3:
            return f"{self.pick(W.LOCAL_WORDS[language])} {self.pick(W.LOCAL_WORDS[language])}"
        if r < 0.35:
            return f"{self.pick(W.ADJECTIVES)} {self.pick(W.NOUNS)}"
        if r < 0.5:
            return self.pick(W.NOUNS)
        if r < 0.65:
            return f"{self.pick(W.VERBS)} {self.pick(W.NOUNS)}"
        if r < 0.8:
            return f"{self.pick(W.NOUNS)} of {self.pick(W.NOUNS)}"
        if r < 0.9:
            return f"the {self.pick(W.NOUNS)}"
        return f"{self.pick(W.VERBS)} in the {self.pick(W.NOUNS)}"

    def album(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return f"{self.pick(W.ADJECTIVES)} {self.pick(W.PLURAL_NOUNS)}"
        if r < 0.55:
            return self.pick(W.NOUNS)
        if r < 0.8:
            return f"the {self.pick(W.ADJECTIVES)} {self.pick(W.NOUNS)}"
        return f"{self.pick(W.NOUNS)} and {self.pick(W.NOUNS)}"

    def show(self, topic: str) -> str:
        word = self.pick(W.TOPIC_WORDS[topic])
        r = self.rng.random()
        if r < 0.35:
            return f"the {word} {self.pick(W.SHOW_NOUNS)}"
        if r < 0.6:
            return f"{topic} {self.pick(W.SHOW_NOUNS)}"
        if r < 0.8:
            return f"{self.pick(W.FIRST_NAMES)}s {word} {self.pick(W.SHOW_NOUNS)}"
        return f"{self.pick(W.ADJECTIVES)} {word}"

    def episode(self, topic: str, number: int) -> str:
        word = self.pick(W.TOPIC_WORDS[topic])
        r = self.rng.random()
        if r < 0.4:
            return f"{word} part {number % 5 + 1}"
        if r < 0.7:
            return f"the {self.pick(W.ADJECTIVES)} {word}"
        return f"episode {number} {word} and {self.pick(W.NOUNS)}"


def _title(text: str) -> str:
    return " ".join(
        w if w in {"of", "and", "the", "in"} and i else w.capitalize()
        for i, w in enumerate(text.split())
    )


def _zipf(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Power-law popularity in (0, 1]: a random permutation of rank^-exponent."""
    ranks = rng.permutation(n) + 1
    return ranks.astype(np.float64) ** -exponent


def build_catalogue(
    rng: np.random.Generator, n_artists: int, window_days: int, window_start: datetime
) -> Catalogue:
    """Generate a catalogue around ``n_artists`` music artists and ``n_artists // 5`` shows."""
    names = _Names(rng)
    rows: dict[str, list] = {k: [] for k in Catalogue.__dataclass_fields__}

    def add(**values: object) -> int:
        for key, value in values.items():
            rows[key].append(value)
        return len(rows["item_type"]) - 1

    n_genres = len(V.GENRES)
    artist_genre = rng.choice(n_genres, size=n_artists, p=GENRE_SHARE / GENRE_SHARE.sum())
    artist_market = rng.choice(len(V.MARKETS), size=n_artists, p=W.MARKET_SHARE)
    artist_pop = _zipf(rng, n_artists, 0.9)
    artist_debut = -rng.uniform(20, 3_650 * 3, size=n_artists)
    seen_artists: set[str] = set()
    artist_index = np.zeros(n_artists, dtype=np.int64)
    for a in range(n_artists):
        genre = V.GENRES[artist_genre[a]]
        language = W.MARKET_LANGUAGE[V.MARKETS[artist_market[a]]]
        name = names.artist(genre, language)
        while name in seen_artists:
            name = f"{name} {names.pick(W.PLURAL_NOUNS)}"
        seen_artists.add(name)
        display = _title(name)
        artist_index[a] = add(
            item_type=ARTIST,
            name=display,
            artist_name=display,
            genre=int(artist_genre[a]),
            mood=-1,
            market=int(artist_market[a]),
            release_day=float(artist_debut[a]),
            duration_s=0,
            explicit=False,
            version=0,
            parent=-1,
            creator=-1,
            base_pop=float(artist_pop[a]),
        )

    mood_weights = np.array(W.GENRE_MOOD_AFFINITY, dtype=np.float64)
    mood_weights /= mood_weights.sum(axis=1, keepdims=True)
    originals: list[int] = []
    for a in range(n_artists):
        genre = int(artist_genre[a])
        language = W.MARKET_LANGUAGE[V.MARKETS[artist_market[a]]]
        n_albums = 1 + int(rng.poisson(0.5 + 3 * artist_pop[a] ** 0.5))
        album_days = np.sort(rng.uniform(artist_debut[a], window_days, size=n_albums))
        if rng.random() < 0.08:  # a fresh release inside the logged window
            album_days[-1] = rng.uniform(0, window_days)
        for release in album_days:
            newness = 1.0 + 2.0 * float(release > -30)
            album_pop = artist_pop[a] * float(rng.lognormal(0, 0.5)) * newness
            album = add(
                item_type=ALBUM,
                name=_title(names.album()),
                artist_name=rows["name"][artist_index[a]],
                genre=genre,
                mood=-1,
                market=int(artist_market[a]),
                release_day=float(release),
                duration_s=0,
                explicit=False,
                version=0,
                parent=-1,
                creator=int(artist_index[a]),
                base_pop=album_pop,
            )
            n_tracks = 3 + int(rng.poisson(5))
            in_album = np.arange(1, n_tracks + 1, dtype=np.float64) ** -0.8
            explicit = rng.random(n_tracks) < EXPLICIT_RATE[genre]
            for t in range(n_tracks):
                track = add(
                    item_type=TRACK,
                    name=_title(names.track(language)),
                    artist_name=rows["name"][artist_index[a]],
                    genre=genre,
                    mood=int(rng.choice(len(V.MOODS), p=mood_weights[genre])),
                    market=int(artist_market[a]),
                    release_day=float(release),
                    duration_s=int(np.clip(rng.normal(215, 55), 80, 640)),
                    explicit=bool(explicit[t]),
                    version=0,
                    parent=-1,
                    creator=int(artist_index[a]),
                    base_pop=album_pop * in_album[t],
                )
                originals.append(track)
            rows["explicit"][album] = bool(explicit.any())
            rows["duration_s"][album] = int(sum(rows["duration_s"][-n_tracks:]))

    _add_versions(rng, rows, originals, artist_index, window_days, window_start, add)
    _add_podcasts(rng, names, max(30, n_artists // 5), window_days, add)

    parent = np.array(rows["parent"], dtype=np.int64)
    own = np.arange(len(parent))
    creator = np.array(rows["creator"], dtype=np.int64)
    pop = np.array(rows["base_pop"], dtype=np.float64)
    return Catalogue(
        item_type=np.array(rows["item_type"], dtype=np.int8),
        name=np.array(rows["name"], dtype=object),
        artist_name=np.array(rows["artist_name"], dtype=object),
        genre=np.array(rows["genre"], dtype=np.int16),
        mood=np.array(rows["mood"], dtype=np.int16),
        market=np.array(rows["market"], dtype=np.int8),
        release_day=np.array(rows["release_day"], dtype=np.float64),
        duration_s=np.array(rows["duration_s"], dtype=np.int32),
        explicit=np.array(rows["explicit"], dtype=bool),
        version=np.array(rows["version"], dtype=np.int8),
        parent=np.where(parent < 0, own, parent),
        creator=np.where(creator < 0, own, creator),
        base_pop=pop / pop.max(),
    )


def _add_versions(rng, rows, originals, artist_index, window_days, window_start, add) -> None:  # type: ignore[no-untyped-def]
    """Give the most popular originals live, remastered, acoustic, remixed and covered versions."""
    pops = np.array([rows["base_pop"][t] for t in originals])
    threshold = np.quantile(pops, 0.8) if len(pops) else 0.0
    for track in originals:
        if rows["base_pop"][track] < threshold:
            continue
        for version, probability in VERSION_PROBABILITY.items():
            if rng.random() >= probability:
                continue
            title = rows["name"][track]
            creator = rows["creator"][track]
            # Most versions of old songs came out long ago; a few are new.
            first = rows["release_day"][track]
            release = first + (window_days - first) * float(rng.random()) ** 3
            if version == "live":
                title = f"{title} (Live)"
            elif version == "remaster":
                year = (window_start + timedelta(days=release)).year
                title = f"{title} - Remastered {year}"
            elif version == "acoustic":
                title = f"{title} (Acoustic)"
            elif version == "remix":
                remixer = rows["name"][int(rng.choice(artist_index))]
                title = f"{title} ({remixer} Remix)"
            else:
                creator = int(rng.choice(artist_index))
            add(
                item_type=TRACK,
                name=title,
                artist_name=rows["name"][creator],
                genre=rows["genre"][creator],
                mood=rows["mood"][track],
                market=rows["market"][creator],
                release_day=release,
                duration_s=int(rows["duration_s"][track] * rng.uniform(0.9, 1.25)),
                explicit=rows["explicit"][track],
                version=V.VERSION_TYPES.index(version),
                parent=track,
                creator=creator,
                base_pop=rows["base_pop"][track] * float(rng.uniform(0.05, 0.4)),
            )


def _add_podcasts(rng, names, n_shows, window_days, add) -> None:  # type: ignore[no-untyped-def]
    """Podcast shows with weekly-ish episodes, many of them fresh inside the window."""
    show_pop = _zipf(rng, n_shows, 0.8) * 0.6
    for s in range(n_shows):
        topic_index = int(rng.integers(len(V.PODCAST_TOPICS)))
        topic = V.PODCAST_TOPICS[topic_index]
        market = int(rng.choice(len(V.MARKETS), p=W.MARKET_SHARE))
        show_name = _title(names.show(topic))
        n_episodes = 4 + int(rng.poisson(10))
        cadence = float(rng.choice([1.0, 3.5, 7.0, 14.0]))
        first = window_days - cadence * n_episodes * float(rng.uniform(0.6, 1.6))
        explicit = bool(rng.random() < 0.2)
        show = add(
            item_type=SHOW,
            name=show_name,
            artist_name=show_name,
            genre=topic_index,
            mood=-1,
            market=market,
            release_day=first,
            duration_s=0,
            explicit=explicit,
            version=0,
            parent=-1,
            creator=-1,
            base_pop=float(show_pop[s]),
        )
        for e in range(n_episodes):
            release = first + cadence * e + float(rng.uniform(0, 0.5))
            if release >= window_days:  # not published yet when the logs end
                break
            add(
                item_type=EPISODE,
                name=_title(names.episode(topic, e + 1)),
                artist_name=show_name,
                genre=topic_index,
                mood=-1,
                market=market,
                release_day=release,
                duration_s=int(rng.uniform(900, 5_400)),
                explicit=explicit,
                version=0,
                parent=-1,
                creator=show,
                base_pop=float(show_pop[s]) * float(rng.uniform(0.2, 0.7)),
            )
