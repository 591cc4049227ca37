"""The retriever that produced the logged impression lists: lexical match plus popularity.

It is deliberately simple, as a first production retriever is: a candidate must match the query
by name or artist trigrams, or by genre, mood or podcast-topic words; candidates are ordered by
lexical score plus a popularity prior. The ranker trained on the logs must learn to do better.
"""

from __future__ import annotations

import numpy as np

from searchrank.core.text import FILLER_WORDS, analyze
from searchrank.features.generator.catalogue import Catalogue

MIN_LEXICAL = 0.15
POPULARITY_WEIGHT = 0.5
"""The default weight of popularity beside the lexical score in the display order."""
MIN_LIST = 5
"""When fewer items match, the list is padded with the most popular available items."""


class _Postings:
    """A CSR inverted index: term id -> item indices."""

    def __init__(self, terms_per_item: list[frozenset[str]]) -> None:
        vocab: dict[str, int] = {}
        pairs = [
            (vocab.setdefault(t, len(vocab)), i)
            for i, terms in enumerate(terms_per_item)
            for t in terms
        ]
        term_ids = np.array([p[0] for p in pairs], dtype=np.int64)
        items = np.array([p[1] for p in pairs], dtype=np.int64)
        order = np.argsort(term_ids, kind="stable")
        self.items = items[order]
        self.indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.add.at(self.indptr, term_ids + 1, 1)
        self.indptr = np.cumsum(self.indptr)
        self.vocab = vocab
        self.sizes = np.array([len(t) for t in terms_per_item], dtype=np.float64)

    def postings(self, terms: frozenset[str]) -> np.ndarray:
        """Item indices containing each of ``terms``, concatenated (an item once per term)."""
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        if not ids:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.items[self.indptr[t] : self.indptr[t + 1]] for t in ids])


def _counts(postings: np.ndarray, n_items: int) -> np.ndarray:
    """How often each item occurs in ``postings``, shape (n_items,)."""
    return np.bincount(postings, minlength=n_items).astype(np.float64)


def _meta_terms(catalogue: Catalogue) -> list[frozenset[str]]:
    return [analyze(k).words for k in catalogue.keywords()]


class LexicalRetriever:
    """Candidate generation over the whole catalogue for one normalized query at a time."""

    def __init__(self, catalogue: Catalogue, popularity_weight: float = POPULARITY_WEIGHT) -> None:
        self.n_items = len(catalogue)
        self.popularity_weight = popularity_weight
        self.names = _Postings([analyze(n).trigrams for n in catalogue.name])
        self.artists = _Postings([analyze(a).trigrams for a in catalogue.artist_name])
        self.meta = _Postings(_meta_terms(catalogue))

    def lexical(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Items that share anything with ``query`` and their lexical scores in (0, 1].

        Returns:
            (item indices, sorted ascending; lexical scores), both shape (m,).
        """
        q = analyze(query)
        meaningful = q.words - FILLER_WORDS
        name_post = self.names.postings(q.trigrams)
        artist_post = self.artists.postings(q.trigrams)
        meta_post = self.meta.postings(meaningful)
        name_hits = _counts(name_post, self.n_items)
        artist_hits = _counts(artist_post, self.n_items)
        meta_hits = _counts(meta_post, self.n_items)
        candidates = np.flatnonzero(name_hits + artist_hits + meta_hits)
        if not len(candidates):
            return candidates, np.zeros(0)
        n_q = len(q.trigrams)
        name_hits, artist_hits = name_hits[candidates], artist_hits[candidates]
        name_sim = name_hits / np.maximum(n_q + self.names.sizes[candidates] - name_hits, 1.0)
        artist_sim = artist_hits / np.maximum(
            n_q + self.artists.sizes[candidates] - artist_hits, 1.0
        )
        meta = meta_hits[candidates] / max(len(meaningful), 1)
        return candidates, np.maximum.reduce([name_sim, 0.85 * artist_sim, 0.75 * meta])

    def retrieve(
        self, query: str, available: np.ndarray, popularity: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The impression list for ``query``.

        Args:
            query: normalized query text.
            available: bool (n_items,), items released by now.
            popularity: float (n_items,) in [0, 1], today's popularity score.
            k: the longest list to return.

        Returns:
            (item indices in display order, their lexical scores), both shape (n,), 2 <= n <= k.
        """
        candidates, lexical = self.lexical(query)
        keep = (lexical >= MIN_LEXICAL) & available[candidates]
        candidates, lexical = candidates[keep], lexical[keep]
        score = lexical + self.popularity_weight * popularity[candidates]
        best = np.argpartition(-score, k)[:k] if len(score) > k else np.arange(len(score))
        best = best[np.lexsort((candidates[best], -score[best]))]
        top, top_lexical = candidates[best], lexical[best]
        if len(top) < MIN_LIST:
            fill = np.setdiff1d(self._popular(available, popularity), top)[
                : min(MIN_LIST, k) - len(top)
            ]
            top = np.concatenate([top, fill])
            top_lexical = np.concatenate([top_lexical, np.zeros(len(fill))])
        return top, top_lexical

    def _popular(self, available: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """The most popular available items, best first (the fallback when little matches)."""
        ranked = np.flatnonzero(available)
        return ranked[np.argsort(-popularity[ranked], kind="stable")[: 4 * MIN_LIST]]
