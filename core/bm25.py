"""The lexical baseline: BM25 over item texts, built on the maintained ``bm25s`` library.

Texts are tokenized with the normalization the rest of searchrank uses
(:func:`~searchrank.core.text.normalize_text`), so a query scores the same here as in
the text-match features. Two analyzers are offered:

``"word"``
    Normalized whitespace tokens. No stemming and, by default, no stopwords: song, album and
    artist names are short, and their function words carry the match ("the weeknd", "the
    the", "take that"), so dropping them would merge distinct names.
``"char3"``
    Padded character trigrams of every word, as :func:`~searchrank.core.text.analyze`
    cuts them (``"  b", " be", "bey", ...``). A misspelled query ("beyonse") shares no word
    with its target but most of its trigrams, so BM25 over trigrams still finds it.

Scoring is BM25 in Lucene's form, ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` and
``tf / (tf + k1 * (1 - b + b * len / avg_len))``, summed over the query's distinct terms. A query
is a set of terms: repeating a word does not weigh it more, and trigram sets behave the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from searchrank.core.errors import InputError
from searchrank.core.text import analyze, normalize_text

if TYPE_CHECKING:
    import bm25s

Analyzer = Literal["word", "char3"]
ANALYZERS: tuple[str, ...] = get_args(Analyzer)

INDEX_FOLDER = "bm25s"
"""The bm25s index inside a saved folder, written by bm25s itself."""
META_FILE = "bm25.json"
"""Item ids and parameters inside a saved folder."""


def tokenize(text: str | None, analyzer: Analyzer, stopwords: Collection[str] = ()) -> list[str]:
    """Cut a text into the terms BM25 counts, duplicates kept (term frequency matters).

    Args:
        text: raw or normalized text; ``None`` has no terms.
        analyzer: ``"word"`` or ``"char3"`` (see the module docstring).
        stopwords: normalized words to drop before analysis.

    Returns:
        The terms in text order; for ``"char3"`` each word's distinct trigrams in sorted order.
    """
    words = [w for w in normalize_text(text or "").split() if w not in stopwords]
    if analyzer == "word":
        return words
    return [gram for word in words for gram in sorted(analyze(word).trigrams)]


class BM25Scorer:
    """BM25 scores of (query, item) pairs and top-k retrieval over a fixed item corpus.

    Build one with :meth:`fit` or :meth:`load`.
    """

    def __init__(
        self,
        index: bm25s.BM25,
        item_ids: np.ndarray,
        *,
        analyzer: Analyzer,
        stopwords: tuple[str, ...],
    ) -> None:
        self._index = index
        self.item_ids = item_ids
        """(m,) the corpus item ids, in index order."""
        self.analyzer: Analyzer = analyzer
        self.stopwords = stopwords
        """Normalized stopwords, sorted."""
        self._stopword_set = frozenset(stopwords)
        self._sorted_positions = np.argsort(item_ids, kind="stable")
        self._sorted_ids = item_ids[self._sorted_positions]

    @property
    def k1(self) -> float:
        return float(self._index.k1)

    @property
    def b(self) -> float:
        return float(self._index.b)

    @classmethod
    def fit(
        cls,
        item_ids: np.ndarray,
        texts: Sequence[str | None],
        k1: float = 1.5,
        b: float = 0.75,
        *,
        analyzer: Analyzer = "word",
        stopwords: Collection[str] = (),
    ) -> BM25Scorer:
        """Index a corpus of item texts.

        Args:
            item_ids: (m,) distinct integer or string ids.
            texts: m texts (for example ``"<name> <artist>"``); ``None`` indexes nothing.
            k1: term-frequency saturation, >= 0.
            b: document-length normalization, in [0, 1].
            analyzer: ``"word"`` or ``"char3"`` (see the module docstring).
            stopwords: words to ignore in items and queries, e.g. ``bm25s.stopwords.STOPWORDS_EN``
                for long descriptive texts; empty by default because names are short.

        Returns:
            The fitted scorer.

        Raises:
            InputError: the corpus is empty or has no terms at all, ids and texts differ in
                length, ids repeat or are neither integers nor strings, or k1, b or the analyzer
                are out of range.
        """
        import bm25s

        ids = _as_ids(item_ids, "item_ids")
        if ids.ndim != 1 or len(ids) == 0:
            raise InputError("item_ids", ids.shape, "the corpus needs at least one item")
        if len(texts) != len(ids):
            raise InputError("texts", len(texts), f"needs one text per item id ({len(ids)})")
        if len(np.unique(ids)) != len(ids):
            raise InputError("item_ids", _repeated(ids), "item ids must be distinct")
        if not (_is_real(k1) and math.isfinite(k1) and k1 >= 0):
            raise InputError("k1", k1, "a finite number >= 0")
        if not (_is_real(b) and 0 <= b <= 1):
            raise InputError("b", b, "a number in [0, 1]")
        if analyzer not in ANALYZERS:
            raise InputError("analyzer", analyzer, f"one of {list(ANALYZERS)}")
        stop = tuple(sorted({normalize_text(w) for w in stopwords} - {""}))
        stop_set = frozenset(stop)

        vocab: dict[str, int] = {}
        corpus = [
            [vocab.setdefault(term, len(vocab)) for term in tokenize(text, analyzer, stop_set)]
            for text in texts
        ]
        if not vocab:
            raise InputError("texts", list(texts[:5]), "the corpus texts contain no terms")
        index = bm25s.BM25(k1=float(k1), b=float(b), method="lucene")
        index.index((corpus, vocab), create_empty_token=False, show_progress=False)
        return cls(index, ids, analyzer=analyzer, stopwords=stop)

    def score(self, queries: Sequence[str | None], item_ids: np.ndarray) -> np.ndarray:
        """BM25 score of each (query, item) pair.

        Each distinct query is scored against the whole corpus once and the needed items are
        read off, so many candidates per query cost little more than one.

        Args:
            queries: (n,) query texts; ``None`` scores 0.
            item_ids: (n,) item ids, of the corpus ids' kind (integer or string).

        Returns:
            (n,) float32 scores; 0 for an item outside the corpus or without a shared term.
        """
        ids = _as_ids(item_ids, "item_ids")
        n = len(queries)
        if ids.shape != (n,):
            raise InputError("item_ids", ids.shape, f"needs one item id per query, shape ({n},)")
        out = np.zeros(n, dtype=np.float32)
        docs = self.positions(ids)
        known = np.flatnonzero(docs >= 0)
        if known.size == 0:
            return out
        codes: dict[str | None, int] = {}
        query_code = np.fromiter(
            (codes.setdefault(queries[i], len(codes)) for i in known.tolist()), np.int64, known.size
        )
        order = np.argsort(query_code, kind="stable")
        bounds = np.searchsorted(query_code[order], np.arange(len(codes) + 1))
        for code, query in enumerate(codes):
            rows = known[order[bounds[code] : bounds[code + 1]]]
            scores = self._corpus_scores(query)
            if scores is not None:
                out[rows] = scores[docs[rows]]
        return out

    def retrieve(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best-scoring items of the corpus for one query.

        Args:
            query: the query text.
            k: the number of items wanted, >= 1.

        Returns:
            (item_ids, scores), each of shape (min(k, matching items),), best first; ties go to
            the earlier corpus item. Items without a shared term are never returned.
        """
        if not (isinstance(k, int | np.integer) and not isinstance(k, bool) and k >= 1):
            raise InputError("k", k, "an integer >= 1")
        scores = self._corpus_scores(query)
        if scores is None:
            return self.item_ids[:0], np.zeros(0, dtype=np.float32)
        matching = np.flatnonzero(scores > 0)
        if matching.size > k:
            # The k-th best score bounds the candidates; lexsort below breaks its ties.
            kth = np.partition(scores[matching], matching.size - k)[matching.size - k]
            matching = matching[scores[matching] >= kth]
        best = matching[np.lexsort((matching, -scores[matching]))][:k]
        return self.item_ids[best], scores[best].astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write the bm25s index (``bm25s/``) and ``bm25.json`` (ids, parameters) to ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        self._index.save(str(folder / INDEX_FOLDER), show_progress=False)
        meta = {
            "item_ids": self.item_ids.tolist(),
            "item_id_dtype": self.item_ids.dtype.str,
            "analyzer": self.analyzer,
            "stopwords": list(self.stopwords),
            "k1": self.k1,
            "b": self.b,
        }
        (folder / META_FILE).write_text(json.dumps(meta) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BM25Scorer:
        """Read a scorer written by :meth:`save`."""
        import bm25s

        if not (folder / META_FILE).is_file() or not (folder / INDEX_FOLDER).is_dir():
            raise InputError(
                "folder", str(folder), f"a saved BM25 scorer needs {META_FILE} and {INDEX_FOLDER}/"
            )
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        index = bm25s.BM25.load(str(folder / INDEX_FOLDER), show_progress=False)
        ids = np.asarray(meta["item_ids"], dtype=np.dtype(meta["item_id_dtype"]))
        return cls(index, ids, analyzer=meta["analyzer"], stopwords=tuple(meta["stopwords"]))

    def _corpus_scores(self, query: str | None) -> np.ndarray | None:
        """(m,) scores of the query against every item; ``None`` when no term is in the corpus."""
        vocab = self._index.vocab_dict
        terms = set(tokenize(query, self.analyzer, self._stopword_set))
        # Sorted so that float32 sums add up in one order, whatever the set's iteration order.
        term_ids = sorted(vocab[t] for t in terms if t in vocab)
        if not term_ids:
            return None
        return np.asarray(self._index.get_scores_from_ids(term_ids))

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """(n,) corpus positions of ``ids``; -1 for ids outside the corpus."""
        if (ids.dtype.kind in "iu") != (self._sorted_ids.dtype.kind in "iu"):
            raise InputError(
                "item_ids", ids.dtype, f"must be of the corpus ids' kind ({self._sorted_ids.dtype})"
            )
        at = np.searchsorted(self._sorted_ids, ids).clip(max=len(self._sorted_ids) - 1)
        found = self._sorted_ids[at] == ids
        return np.where(found, self._sorted_positions[at], -1)


def _as_ids(values: np.ndarray, field: str) -> np.ndarray:
    """Item ids as an integer or unicode array (object arrays of strings are converted)."""
    ids = np.asarray(values)
    if ids.dtype == object and all(isinstance(v, str) for v in ids.ravel()):
        ids = ids.astype(str)
    if ids.dtype.kind not in "iuU":
        raise InputError(field, ids.dtype, "item ids must be integers or strings")
    return ids


def _repeated(ids: np.ndarray) -> list[object]:
    values, counts = np.unique(ids, return_counts=True)
    return values[counts > 1][:5].tolist()


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
