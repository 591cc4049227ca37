"""One simulated day of search traffic: who searches, what they mean, what they type, what the
retriever shows and how they react.

Reactions follow a position-biased cascade click model driven by a hidden relevance that mixes
the true intent (is this the item the listener meant?), text match, the listener's taste,
popularity, freshness, language, explicit-content aversion and noise. The model only ever sees
the logged outcome: 0 skip, 1 click, 2 stream of at least 30 s, 3 save or add to a playlist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from searchrank.core.propensity import stream_above
from searchrank.core.text import normalize_text
from searchrank.features import vocabulary as V
from searchrank.features.generator import words as W
from searchrank.features.generator.catalogue import (
    ALBUM,
    ARTIST,
    EPISODE,
    PODCAST_TYPES,
    SHOW,
    TRACK,
    Catalogue,
)
from searchrank.features.generator.retriever import POPULARITY_WEIGHT, LexicalRetriever
from searchrank.features.generator.sampling import GroupSampler, sample_rows
from searchrank.features.generator.users import Users

INTENTS: tuple[str, ...] = ("track", "artist", "album", "podcast", "genre_mood")
TRACK_I, ARTIST_I, ALBUM_I, PODCAST_I, GENRE_MOOD_I = range(len(INTENTS))
MUSIC_INTENT_SHARE = np.array([0.46, 0.25, 0.08, 0.0, 0.21])

QUERY_FORMS: tuple[str, ...] = ("exact", "prefix", "misspelled", "descriptive")
EXACT, PREFIX, MISSPELLED, DESCRIPTIVE = range(len(QUERY_FORMS))
NAMED_FORM_SHARE = np.array([0.62, 0.18, 0.20])

HOUR_WEIGHTS = np.array(
    [3, 2, 1, 1, 1, 1, 2, 4, 6, 6, 6, 6, 7, 7, 6, 6, 7, 8, 9, 10, 10, 9, 7, 5], dtype=np.float64
)
MARKET_LOCAL_SHARE = 0.5
"""Share of named searches whose target is drawn among items of the listener's own market."""
PODCAST_BASE_CHANCE = 0.03
PODCAST_AFFINITY_CHANCE = 0.35
"""A search is about podcasts with chance base + this × the listener's podcast affinity."""
SHOW_SHARE = 0.35
EPISODE_SHARE = 0.20
"""Of podcast searches, the shares that name a show and an episode (the rest describe a topic)."""
GENRE_TASTE_SHARE = 0.75
"""A music search's genre follows the listener's taste with this weight, and is uniform else."""

MIN_PREFIX = 2
"""A name typed partway keeps at least this many characters, and is cut before its end."""

EXAMINATION_EXPONENT = 0.85
SUBSTITUTE_WHEN_SHOWN = 0.3
"""How much of a substitute's appeal remains when what the listener asked for is in the list."""
ABANDON_AFTER_SATISFIED = 0.65


@dataclass
class Day:
    """What the world looks like on one simulated day."""

    index: int
    available: np.ndarray
    """bool (n_items,): released before the day began, so showable all day."""
    popularity: np.ndarray
    """float (n_items,) in [0, 1]: the platform's popularity score (log-scaled plays)."""


@dataclass
class Chunk:
    """The searches and impressions of one simulated chunk, as flat arrays.

    Search arrays have shape (n_searches,); impression arrays (n_impressions,), with
    ``imp_search`` pointing into the search arrays and rows of one search contiguous.
    """

    user: np.ndarray
    time: np.ndarray
    raw_query: list[str]
    query: list[str]
    intent: np.ndarray
    form: np.ndarray
    target: np.ndarray
    imp_search: np.ndarray
    imp_item: np.ndarray
    imp_position: np.ndarray
    imp_label: np.ndarray
    imp_relevance: np.ndarray
    """The hidden relevance that drew each label (ground truth, never a model input)."""
    imp_save_scale: np.ndarray
    """How readily the listener saves what they stream (:func:`save_propensity`)."""


class Simulator:
    """Simulates searches against one catalogue and one population of listeners."""

    def __init__(
        self,
        catalogue: Catalogue,
        users: Users,
        max_candidates: int,
        popularity_weight: float = POPULARITY_WEIGHT,
    ) -> None:
        self.cat = catalogue
        self.users = users
        self.max_candidates = max_candidates
        self.retriever = LexicalRetriever(catalogue, popularity_weight)
        n_genres = max(len(V.GENRES), len(V.PODCAST_TOPICS))
        self.n_genres = n_genres
        group = catalogue.item_type.astype(np.int64) * n_genres + catalogue.genre
        self.global_sampler = GroupSampler(group, len(V.ITEM_TYPES) * n_genres)
        self.market_sampler = GroupSampler(
            group * len(V.MARKETS) + catalogue.market, len(V.ITEM_TYPES) * n_genres * len(V.MARKETS)
        )
        self.mood_sampler_weights = np.array(W.GENRE_MOOD_AFFINITY, dtype=np.float64)
        self.item_language = np.array(
            [W.MARKET_LANGUAGE[V.MARKETS[m]] for m in catalogue.market], dtype=object
        )
        self.user_language = np.array(
            [W.MARKET_LANGUAGE[V.MARKETS[m]] for m in users.market], dtype=object
        )
        self._weights = np.zeros(len(catalogue))
        self._cache_day = -1
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def begin_day(self, day: Day) -> None:
        weights = np.where(day.available, np.expm1(day.popularity * np.log1p(1000.0)), 0.0)
        self._weights = weights
        self.global_sampler.set_weights(weights)
        self.market_sampler.set_weights(weights)
        self._cache_day = day.index
        self._cache = {}

    def simulate(self, day: Day, n: int, rng: np.random.Generator) -> Chunk:
        """Simulate ``n`` searches on ``day`` (call :meth:`begin_day` first)."""
        users, time = self._who_and_when(day, n, rng)
        intent, target, form, genre_q, mood_q, topic_q = self._intents(users, rng)
        raw = [
            self._typed_query(
                int(intent[s]),
                int(form[s]),
                int(target[s]),
                int(genre_q[s]),
                int(mood_q[s]),
                int(topic_q[s]),
                rng,
            )
            for s in range(n)
        ]
        queries = [normalize_text(q) for q in raw]
        lists = [self._retrieve(q, day) for q in queries]
        lengths = np.array([len(items) for items, _ in lists], dtype=np.int64)
        imp_search = np.repeat(np.arange(n), lengths)
        imp_item = np.concatenate([items for items, _ in lists])
        lexical = np.concatenate([lex for _, lex in lists])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        position = np.arange(len(imp_item)) - np.repeat(starts, lengths)
        relevance = self._relevance(
            day,
            users[imp_search],
            imp_item,
            target[imp_search],
            intent[imp_search],
            genre_q[imp_search],
            mood_q[imp_search],
            topic_q[imp_search],
            lexical,
            imp_search,
            rng,
        )
        save_scale = save_propensity(self.users.activity_level[users])[imp_search]
        labels = cascade_labels(relevance, position, save_scale, starts, rng)
        order = np.argsort(time, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        imp_order = np.argsort(rank[imp_search], kind="stable")
        return Chunk(
            user=users[order],
            time=time[order],
            raw_query=[raw[s] for s in order],
            query=[queries[s] for s in order],
            intent=intent[order],
            form=form[order],
            target=target[order],
            imp_search=rank[imp_search][imp_order],
            imp_item=imp_item[imp_order],
            imp_position=position[imp_order].astype(np.int32),
            imp_label=labels[imp_order].astype(np.int32),
            imp_relevance=relevance[imp_order],
            imp_save_scale=save_scale[imp_order],
        )

    # -- who searches, when, for what ------------------------------------------------------

    def _who_and_when(
        self, day: Day, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        signed_up = self.users.signup_day < day.index + 1
        weights = np.where(signed_up, self.users.rate, 0.0)
        users = rng.choice(len(weights), size=n, p=weights / weights.sum())
        hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
        time = day.index + (hour + rng.random(n)) / 24.0
        signup = self.users.signup_day[users]
        late = signup > time
        time[late] = signup[late] + rng.random(late.sum()) * (day.index + 1 - signup[late])
        return users, time

    def _intents(self, users: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        n = len(users)
        podcast = rng.random(n) < self._podcast_chance(users)
        music_intent = rng.choice(
            len(INTENTS), size=n, p=MUSIC_INTENT_SHARE / MUSIC_INTENT_SHARE.sum()
        )
        intent = np.where(podcast, PODCAST_I, music_intent)
        genre = sample_rows(self._genre_chances(users), rng)
        topic = sample_rows(self.users.topic_taste[users], rng)
        market = self.users.market[users].astype(np.int64)

        item_type = np.select(
            [intent == TRACK_I, intent == ARTIST_I, intent == ALBUM_I],
            [TRACK, ARTIST, ALBUM],
            TRACK,
        )
        podcast_form = rng.random(n)
        episode_from = SHOW_SHARE + EPISODE_SHARE
        item_type = np.where(podcast & (podcast_form < SHOW_SHARE), SHOW, item_type)
        item_type = np.where(
            podcast & (podcast_form >= SHOW_SHARE) & (podcast_form < episode_from),
            EPISODE,
            item_type,
        )
        group_genre = np.where(podcast, topic, genre)
        named = (intent != GENRE_MOOD_I) & ~(podcast & (podcast_form >= episode_from))

        group = item_type.astype(np.int64) * self.n_genres + group_genre
        local = self.market_sampler.sample(group * len(V.MARKETS) + market, rng)
        anywhere = self.global_sampler.sample(group, rng)
        use_local = (rng.random(n) < MARKET_LOCAL_SHARE) & (local >= 0)
        target = np.where(named, np.where(use_local, local, anywhere), -1)
        named &= target >= 0

        form = np.where(named, rng.choice(3, size=n, p=NAMED_FORM_SHARE), DESCRIPTIVE)
        descriptive_music = intent == GENRE_MOOD_I
        by_mood = descriptive_music & (rng.random(n) < 0.5)
        mood_probs = self.mood_sampler_weights[genre]
        mood = np.where(
            by_mood, sample_rows(mood_probs / mood_probs.sum(1, keepdims=True), rng), -1
        )
        genre_q = np.where(descriptive_music & ~by_mood, genre, -1)
        topic_q = np.where(podcast & ~named, topic, -1)
        return intent, target, form, genre_q, mood, topic_q

    def _podcast_chance(self, users: np.ndarray) -> np.ndarray:
        return PODCAST_BASE_CHANCE + PODCAST_AFFINITY_CHANCE * self.users.podcast_affinity[users]

    def _genre_chances(self, users: np.ndarray) -> np.ndarray:
        """(n, genres): each listener's chance of searching each music genre."""
        uniform = (1.0 - GENRE_TASTE_SHARE) / len(V.GENRES)
        return GENRE_TASTE_SHARE * self.users.genre_taste[users] + uniform

    def target_weights(self, user: int, items: np.ndarray) -> np.ndarray:
        """Proportional to the chance that a search by ``user`` today names each of ``items``
        (call :meth:`begin_day` first; both are positions, the logs' ids less one):
        :meth:`_intents`' draw written out. The item's type
        follows the search's intent, its genre (a podcast's topic) the listener's taste, and
        within them the item is drawn by the day's popularity, half the time among the
        listener's own market's items.

        Knowing all this, no retriever could rank a query's candidates better: it is the
        generator's hidden truth, for measuring how far from the best possible a model is.
        """
        cat = self.cat
        kind, genre = cat.item_type[items], cat.genre[items].astype(np.int64)
        podcast = float(self._podcast_chance(np.array([user]))[0])
        music = (1.0 - podcast) * MUSIC_INTENT_SHARE / MUSIC_INTENT_SHARE.sum()
        type_chance = np.select(
            [kind == TRACK, kind == ARTIST, kind == ALBUM, kind == SHOW, kind == EPISODE],
            [
                music[TRACK_I],
                music[ARTIST_I],
                music[ALBUM_I],
                podcast * SHOW_SHARE,
                podcast * EPISODE_SHARE,
            ],
            0.0,
        )
        music_genre = self._genre_chances(np.array([user]))[0]
        topic = self.users.topic_taste[user]
        is_podcast = np.isin(kind, PODCAST_TYPES)
        genre_chance = np.where(
            is_podcast,
            topic[np.minimum(genre, len(topic) - 1)],
            music_genre[np.minimum(genre, len(music_genre) - 1)],
        )
        group = kind.astype(np.int64) * self.n_genres + genre
        market = int(self.users.market[user])
        anywhere = self.global_sampler.totals(group)
        local = self.market_sampler.totals(group * len(V.MARKETS) + market)
        weight = self._weights[items]
        local_chance = np.where(
            (cat.market[items] == market) & (local > 0), weight / np.maximum(local, 1e-300), 0.0
        )
        global_share = np.where(local > 0, 1.0 - MARKET_LOCAL_SHARE, 1.0)
        item_chance = MARKET_LOCAL_SHARE * local_chance + global_share * np.where(
            anywhere > 0, weight / np.maximum(anywhere, 1e-300), 0.0
        )
        return type_chance * genre_chance * item_chance

    def _typed_query(
        self,
        intent: int,
        form: int,
        target: int,
        genre: int,
        mood: int,
        topic: int,
        rng: np.random.Generator,
    ) -> str:
        if form == DESCRIPTIVE:
            if mood >= 0:
                template = W.MOOD_QUERY_TEMPLATES[int(rng.integers(len(W.MOOD_QUERY_TEMPLATES)))]
                return template.format(
                    mood=V.MOODS[mood], genre=V.GENRES[int(rng.integers(len(V.GENRES)))]
                )
            if genre >= 0:
                template = W.GENRE_QUERY_TEMPLATES[int(rng.integers(len(W.GENRE_QUERY_TEMPLATES)))]
                return template.format(genre=V.GENRES[genre])
            topic_name = V.PODCAST_TOPICS[max(topic, 0)]
            template = W.TOPIC_QUERY_TEMPLATES[int(rng.integers(len(W.TOPIC_QUERY_TEMPLATES)))]
            words = W.TOPIC_WORDS[topic_name]
            return template.format(topic=topic_name, word=words[int(rng.integers(len(words)))])
        name = str(self.cat.name[target])
        if form == EXACT:
            if intent == TRACK_I and rng.random() < 0.25:
                return f"{name} {self.cat.artist_name[target]}"
            return name if rng.random() < 0.5 else name.lower()
        text = normalize_text(name)
        if form == PREFIX:
            if len(text) <= MIN_PREFIX + 1:
                return text
            return text[: int(rng.integers(MIN_PREFIX, len(text)))]
        return misspell(text, rng)

    def _retrieve(self, query: str, day: Day) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get(query)
        if cached is None:
            cached = self.retriever.retrieve(
                query, day.available, day.popularity, self.max_candidates
            )
            self._cache[query] = cached
        return cached

    # -- what the listener makes of the list -----------------------------------------------

    def _relevance(
        self,
        day: Day,
        user: np.ndarray,
        item: np.ndarray,
        target: np.ndarray,
        intent: np.ndarray,
        genre_q: np.ndarray,
        mood_q: np.ndarray,
        topic_q: np.ndarray,
        lexical: np.ndarray,
        search: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        cat, users = self.cat, self.users
        has_target = target >= 0
        t = np.maximum(target, 0)
        is_target = has_target & (item == t)
        # Substitutes: another version of the song, or an artist's works, stand in for what was
        # asked for when it is missing from the list, and matter much less when it is there.
        shown = np.bincount(
            search, weights=is_target, minlength=search.max() + 1 if len(search) else 0
        )
        substitute = np.where(shown[search] > 0, SUBSTITUTE_WHEN_SHOWN, 1.0)
        is_track = cat.item_type[item] == TRACK
        is_podcast = np.isin(cat.item_type[item], PODCAST_TYPES)
        same_song = has_target & ~is_target & is_track & (cat.parent[item] == cat.parent[t])
        of_target = has_target & (cat.creator[item] == t) & ~is_target
        same_creator = has_target & ~is_target & (cat.creator[item] == cat.creator[t])
        genre_hit = (genre_q >= 0) & ~is_podcast & (cat.genre[item] == genre_q)
        mood_hit = (mood_q >= 0) & (cat.mood[item] == mood_q)
        topic_hit = (topic_q >= 0) & is_podcast & (cat.genre[item] == topic_q)
        genre_index = np.minimum(cat.genre[item], len(V.GENRES) - 1)
        topic_index = np.minimum(cat.genre[item], len(V.PODCAST_TOPICS) - 1)
        taste = np.where(
            is_podcast,
            users.topic_taste[user, topic_index]
            * len(V.PODCAST_TOPICS)
            * (0.3 + users.podcast_affinity[user]),
            users.genre_taste[user, genre_index] * len(V.GENRES),
        )
        age = np.maximum(day.index - cat.release_day[item], 0.0)
        fresh = np.exp(-age / 10.0)
        same_language = self.item_language[item] == self.user_language[user]
        explicit_clash = cat.explicit[item] & users.explicit_averse[user]
        return (
            3.0 * is_target
            + 1.4 * substitute * same_song
            + np.where(intent == ARTIST_I, 1.6 * (0.4 + day.popularity[item]), 0.5)
            * substitute
            * of_target
            + 0.5 * same_creator
            + 1.3 * genre_hit
            + 1.6 * mood_hit
            + 1.6 * topic_hit
            + 0.45 * np.minimum(taste, 4.0)
            + 0.9 * day.popularity[item]
            + 0.8 * fresh * (is_podcast | (age < 30))
            + 0.5 * lexical
            + 0.3 * same_language
            - 1.5 * explicit_clash
            + 0.45 * pair_noise(user, item)
            + 0.25 * rng.standard_normal(len(item))
        )


def prefix_chance(name: str, query: str) -> float:
    """The chance that a listener who types ``name`` (normalized) partway types ``query``:
    :meth:`Simulator._typed_query`'s cut written out. A name of at most ``MIN_PREFIX + 1``
    characters is typed whole; a longer one is cut after ``MIN_PREFIX`` to ``len - 1``
    characters, each as likely."""
    if len(name) <= MIN_PREFIX + 1:
        return float(query == name)
    cut = MIN_PREFIX <= len(query) < len(name) and name.startswith(query)
    return 1.0 / (len(name) - MIN_PREFIX) if cut else 0.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- the click model: the one place that turns relevance and position into a logged label ----


def examination(position: np.ndarray) -> np.ndarray:
    """The chance that a listener looks at the item shown at ``position`` (0 = top)."""
    return (1.0 + np.asarray(position, dtype=np.float64)) ** -EXAMINATION_EXPONENT


def save_propensity(activity_level: np.ndarray) -> np.ndarray:
    """How readily a listener saves what they stream, by hidden activity level (0, 1, 2)."""
    return 0.6 + 0.2 * np.asarray(activity_level, dtype=np.float64)


def _grade_chances(
    relevance: np.ndarray, save_scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(click | examined), P(stream | click) and P(save | stream) of each impression."""
    click = _sigmoid(1.5 * (relevance - 3.0))
    stream = _sigmoid(1.5 * (relevance - 2.8))
    save = _sigmoid(1.2 * (relevance - 5.0)) * save_scale
    return click, stream, save


def expected_grade(relevance: np.ndarray, save_scale: np.ndarray) -> np.ndarray:
    """The label an item earns on average once the listener has looked at it.

    This is the item's true relevance on the label scale (0 skip … 3 save), free of position
    bias and of the cascade: what an unbiased ranker should order by.
    """
    click, stream, save = _grade_chances(relevance, save_scale)
    return click * (1.0 + stream * (1.0 + save))


def cascade_labels(
    relevance: np.ndarray,
    position: np.ndarray,
    save_scale: np.ndarray,
    starts: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the logged labels of shown lists through the position-biased cascade click model.

    A listener examines position p with :func:`examination`; an examined item is clicked,
    streamed and saved with chances that grow with its relevance; after the first satisfying
    result (a stream) many listeners stop looking.

    Args:
        relevance: (n,) hidden relevance of each shown item.
        position: (n,) where it was shown, 0 = top; the rows of one list are contiguous and in
            position order.
        save_scale: (n,) the listener's :func:`save_propensity`, per row.
        starts: (lists,) the first row of each list.
        rng: the random draws (consumed in a fixed order, so a seed reproduces the labels).

    Returns:
        (n,) int64 labels: 0 skip, 1 click, 2 stream of at least 30 s, 3 save.
    """
    n = len(relevance)
    p_click, p_stream, p_save = _grade_chances(relevance, save_scale)
    examined = rng.random(n) < examination(position)
    click = examined & (rng.random(n) < p_click)
    stream = click & (rng.random(n) < p_stream)
    save = stream & (rng.random(n) < p_save)
    label = click.astype(np.int64) + stream + save
    # Cascade: after the first satisfying result many listeners stop looking.
    search = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
    abandons = rng.random(len(starts)) < ABANDON_AFTER_SATISFIED
    label[stream_above(label >= 2, starts) & abandons[search]] = 0
    return label


def pair_noise(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """A persistent, roughly standard-normal taste of each listener for each item.

    Hash-based, so the same (user, item) pair always gets the same value without storing a
    users × items matrix: a listener who loved a song yesterday loves it today.
    """
    x = user.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= item.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    total = np.zeros(len(x))
    for shift in (np.uint64(11), np.uint64(22), np.uint64(33)):
        x ^= x >> np.uint64(29)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        total += (x >> shift).astype(np.float64) / float(1 << (64 - int(shift)))
    return (total - 1.5) * 2.0


def misspell(text: str, rng: np.random.Generator) -> str:
    """One or two typing slips: a neighbouring key, a dropped, doubled or swapped letter."""
    chars = list(text)
    for _ in range(1 + int(rng.random() < 0.3)):
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if len(letters) < 3:
            break
        i = letters[int(rng.integers(1, len(letters)))]
        kind = int(rng.integers(4))
        if kind == 0 and chars[i] in W.KEYBOARD_NEIGHBOURS:
            options = W.KEYBOARD_NEIGHBOURS[chars[i]]
            chars[i] = options[int(rng.integers(len(options)))]
        elif kind == 1:
            del chars[i]
        elif kind == 2:
            chars.insert(i, chars[i])
        elif i + 1 < len(chars) and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            del chars[i]
    return "".join(chars)
