"""Query normalization and the request-time query–item text-match features.

Training and serving must compute these features with the same code, or the ranker sees one
distribution offline and another online. This module is that code: the Feast on-demand feature
view ``query_item_match`` calls :func:`text_match` during ``get_historical_features`` and
``get_online_features`` alike, and the synthetic generator's lexical retriever uses it too.

The similarity is PostgreSQL ``pg_trgm``-style: each word is padded with two spaces in front and
one behind, cut into character trigrams, and two strings are compared by the Jaccard index of
their trigram sets. Trigrams make the score tolerant to the misspellings users type.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

TEXT_MATCH_FEATURES: tuple[str, ...] = (
    "name_exact",
    "name_prefix",
    "name_token_coverage",
    "name_trigram_sim",
    "artist_token_coverage",
    "artist_trigram_sim",
    "keyword_coverage",
)
"""Output names of :func:`text_match`, in order; all values lie in [0, 1]."""

FILLER_WORDS = frozenset(
    {"music", "songs", "song", "vibes", "playlist", "best", "new", "hits", "podcast", "podcasts"}
)
"""Query words that say nothing about an item's metadata: "chill vibes" asks for chill items."""

_NON_WORD = re.compile(r"[^\w]+")


def normalize_text(text: str) -> str:
    """Fold case and accents, turn punctuation into spaces, and collapse whitespace.

    ``"Beyoncé – Halo (Live)"`` becomes ``"beyonce halo live"``. Queries are stored and looked up
    in this form, so the Feast ``query`` entity key of a search is its normalized text.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", stripped.casefold()).replace("_", " ").split())


class Analyzed(NamedTuple):
    """A string as the matcher sees it."""

    norm: str
    """The normalized text (see :func:`normalize_text`)."""
    words: frozenset[str]
    trigrams: frozenset[str]
    """The padded character trigrams of every word."""


@lru_cache(maxsize=1 << 18)
def analyze(text: str) -> Analyzed:
    """Normalize ``text`` and cut it into words and padded word trigrams (cached)."""
    norm = normalize_text(text)
    words = norm.split()
    trigrams: set[str] = set()
    for word in words:
        padded = f"  {word} "
        trigrams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return Analyzed(norm, frozenset(words), frozenset(trigrams))


def trigram_similarity(a: str, b: str) -> float:
    """Jaccard index of the two strings' padded word trigrams (0 when either is empty)."""
    ta = analyze(a).trigrams
    tb = analyze(b).trigrams
    if not ta or not tb:
        return 0.0
    inter = len(ta & tb)
    return inter / (len(ta) + len(tb) - inter)


def _coverage(query_words: frozenset[str], field_words: frozenset[str]) -> float:
    return len(query_words & field_words) / len(query_words) if query_words else 0.0


@lru_cache(maxsize=1 << 20)
def _pair_features(query: str, name: str, artist: str, keywords: str) -> tuple[float, ...]:
    qn, qw, _ = analyze(query)
    nn, nw, _ = analyze(name)
    aw = analyze(artist).words
    return (
        float(bool(qn) and qn == nn),
        float(bool(qn) and nn.startswith(qn)),
        _coverage(qw, nw),
        trigram_similarity(query, name),
        _coverage(qw, aw),
        trigram_similarity(query, artist),
        _coverage(qw - FILLER_WORDS, analyze(keywords).words),
    )


def text_match(
    queries: Sequence[str | None],
    names: Sequence[str | None],
    artists: Sequence[str | None],
    keywords: Sequence[str | None] | None = None,
) -> dict[str, np.ndarray]:
    """Compute the text-match features for aligned (query, item) rows.

    Args:
        queries: the search text of each row (raw or normalized).
        names: the item's display name of each row; ``None`` for an unknown item.
        artists: the item's artist, creator or show name of each row; ``None`` when unknown.
        keywords: the item's metadata words (genre, mood, topic) of each row; none when absent.

    Returns:
        One float32 array of shape (n,) per name in :data:`TEXT_MATCH_FEATURES`. Rows with a
        missing query or name score 0 on every feature.
    """
    n = len(queries)
    words = keywords if keywords is not None else [None] * n
    if not len(names) == len(artists) == len(words) == n:
        raise ValueError(
            f"text_match needs aligned inputs, got {n} queries, {len(names)} names, "
            f"{len(artists)} artists and {len(words)} keyword lists"
        )
    out = np.zeros((n, len(TEXT_MATCH_FEATURES)), dtype=np.float32)
    for i, (q, name, artist, kw) in enumerate(zip(queries, names, artists, words, strict=True)):
        if q and name:
            out[i] = _pair_features(q, name, artist or "", kw or "")
    return {feature: out[:, j] for j, feature in enumerate(TEXT_MATCH_FEATURES)}
