"""Query understanding for how people type: spelling correction and prefix completion against
the catalogue's own vocabulary.

Listeners misspell names ("midnigth city") and stop typing halfway ("midni"). BM25 over
character trigrams tolerates a slip but ranks the item lower; the two-tower's query tower never
saw the slip and embeds it somewhere else. The :class:`QueryRewriter` turns such a query into
what the listener most likely meant, from a :class:`Lexicon` of the words and phrases the
catalogue holds (names, artists, genres, moods, topic keywords), and says how sure it is. The
retrievers read the rewrite beside the original, so a wrong rewrite costs little.

- **Correction** (symmetric delete, Garbe 2012). Every lexicon word, and every variant of it
  with up to :data:`MAX_EDITS` letters deleted, goes into an index. A typed word's own
  delete-variants meet them there, and each candidate is confirmed by its optimal string
  alignment distance (a swap of two neighbouring letters is one edit). Candidates are scored as
  a noisy channel: log popularity, minus :data:`EDIT_COST` per edit, plus :data:`CONTEXT_BONUS`
  when the candidate follows or precedes its neighbour in some catalogue phrase.
- **Completion** (search-as-you-type). When the last word is no lexicon word but the query
  begins a catalogue phrase, the query is completed to the most popular such phrase.
- **No harm.** A query made only of lexicon words is left alone.

The confidence of a rewrite is the probability its choice gets among the competing candidates
under those scores (the product over corrected words); an unchanged query has confidence 1.

The rewrite is also a ranker input (:func:`rewrite_features`, columns ``query_rewrite__…``): how
sure the rewriter was and what it did tell the ranker how much the query's own words can be
trusted. ``train_intent`` adds them to the splits with :func:`add_rewrite_features` and
:func:`catalogue_rewriter`, the same rewriter the service builds.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.errors import InputError, require_columns
from searchrank.core.text import FILLER_WORDS, normalize_text

MAX_EDITS = 2
"""The most edits a correction undoes (typed words of :data:`TWO_EDITS_FROM` letters or more;
shorter ones get one)."""
TWO_EDITS_FROM = 5
CONTEXT_ONLY_BELOW = 4
"""Typed words shorter than this ("teh", "adn") are corrected only to a word that sits beside
a neighbouring query word in some phrase: too many words lie one edit from them."""
EDIT_COST = 5.0
"""Each edit divides a candidate's odds by e⁵ ≈ 150: distance decides before popularity."""
CONTEXT_BONUS = 3.0
"""A candidate that sits beside its neighbouring query word in some phrase gains e³ ≈ 20."""
PHRASE_COLUMNS = ("name", "artist_name")
"""Catalogue columns whose values are phrases a listener types whole (and completes)."""
WORD_COLUMNS = ("genre", "mood", "keywords")
"""Catalogue columns whose words are vocabulary (never completions)."""
LEXICON_FILE = "lexicon.json"

UNCHANGED, CORRECTED, COMPLETED = "unchanged", "corrected", "completed"
REWRITE_VIEW = "query_rewrite"
"""The feature-view part of the rewrite's ranker columns (``<view>__<feature>``, as Feast names
its columns); the service computes them per request, Feast never serves them."""


@dataclass(frozen=True)
class Rewrite:
    """What the rewriter made of one query.

    Attributes:
        original: the query as normalized (:func:`~searchrank.core.text.normalize_text`).
        query: what the listener most likely meant; equal to ``original`` when unchanged.
        kind: ``"unchanged"``, ``"corrected"`` or ``"completed"``.
        confidence: in (0, 1]; 1 when unchanged.
    """

    original: str
    query: str
    kind: str
    confidence: float

    @classmethod
    def unchanged(cls, query: str) -> Rewrite:
        """``query`` (normalized) read as typed."""
        return cls(query, query, UNCHANGED, 1.0)

    @property
    def changed(self) -> bool:
        return self.kind != UNCHANGED


@dataclass(frozen=True)
class Lexicon:
    """The catalogue's vocabulary with popularity weights.

    Attributes:
        words: each normalized word to its weight (the summed weight of the items it describes).
        phrases: each normalized name or artist to its weight.
    """

    words: dict[str, float]
    phrases: dict[str, float]

    @classmethod
    def from_catalogue(
        cls, catalogue: pd.DataFrame, popularity: pd.Series | None = None
    ) -> Lexicon:
        """The words and phrases of a catalogue.

        Args:
            catalogue: one row per item with ``item_id``, ``name`` and ``artist_name``; the
                ``genre``, ``mood`` and ``keywords`` columns add words where present.
            popularity: a non-negative weight per item id (for example streams in the training
                window); every item weighs 1 without it, and items it lacks weigh 0.

        Raises:
            InputError: a required column is missing, or a weight is negative or not finite.
        """
        require_columns(catalogue.columns, "catalogue", (S.ITEM_ID, *PHRASE_COLUMNS))
        items = catalogue.drop_duplicates(S.ITEM_ID)
        weight = np.ones(len(items))
        if popularity is not None:
            weight = items[S.ITEM_ID].map(popularity).fillna(0.0).to_numpy(dtype=np.float64)
            if not np.isfinite(weight).all() or (weight < 0).any():
                raise InputError("popularity", float(np.nanmin(weight)), "weights must be ≥ 0")
        words: dict[str, float] = defaultdict(float)
        phrases: dict[str, float] = defaultdict(float)
        for column in (*PHRASE_COLUMNS, *(c for c in WORD_COLUMNS if c in items.columns)):
            text = items[column].fillna("").astype(str).map(normalize_text)
            for value, w in pd.Series(weight).groupby(text.to_numpy()).sum().items():
                if not value:
                    continue
                if column in PHRASE_COLUMNS:
                    phrases[str(value)] += float(w)
                for word in str(value).split():
                    words[word] += float(w)
        for word in FILLER_WORDS:
            words.setdefault(word, 0.0)
        return cls(dict(words), dict(phrases))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        body = {"words": self.words, "phrases": self.phrases}
        (folder / LEXICON_FILE).write_text(json.dumps(body, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> Lexicon:
        body = json.loads((folder / LEXICON_FILE).read_text())
        return cls(body["words"], body["phrases"])


class QueryRewriter:
    """Corrects and completes queries against a :class:`Lexicon` (see the module's docs)."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._log_weight = {w: math.log1p(v) for w, v in lexicon.words.items()}
        self._deletes: dict[str, list[str]] = defaultdict(list)
        for word in lexicon.words:
            for variant in _deletes(word, MAX_EDITS):
                self._deletes[variant].append(word)
        self._bigrams = {pair for phrase in lexicon.phrases for pair in pairwise(phrase.split())}
        order = sorted(lexicon.phrases)
        self._phrases = np.array(order, dtype=str)
        self._phrase_weight = np.array([lexicon.phrases[p] for p in order], dtype=np.float64)

    def rewrite(self, query: str) -> Rewrite:
        """The most likely meant query (see :class:`Rewrite`)."""
        original = normalize_text(query)
        words = original.split()
        unknown = [i for i, w in enumerate(words) if w not in self.lexicon.words]
        if not unknown:
            return Rewrite.unchanged(original)
        if unknown == [len(words) - 1]:
            completed = self._complete(original)
            if completed is not None:
                return Rewrite(original, completed[0], COMPLETED, completed[1])
        corrected, confidence = list(words), 1.0
        for i in unknown:
            choice = self._correct(corrected, i)
            if choice is not None:
                corrected[i], chance = choice
                confidence *= chance
        text = " ".join(corrected)
        if text == original:
            return Rewrite.unchanged(original)
        return Rewrite(original, text, CORRECTED, confidence)

    def _complete(self, prefix: str) -> tuple[str, float] | None:
        """The most popular phrase that starts with ``prefix``, and its share of their weight."""
        low = int(np.searchsorted(self._phrases, prefix, side="left"))
        high = int(np.searchsorted(self._phrases, prefix + "\U0010ffff", side="right"))
        if high <= low:
            return None
        weights = self._phrase_weight[low:high]
        best = low + int(np.argmax(weights))
        total = float(weights.sum())
        return str(self._phrases[best]), float(self._phrase_weight[best] / total) if total else 1.0

    def _correct(self, words: list[str], i: int) -> tuple[str, float] | None:
        """The best lexicon word for ``words[i]`` and its probability among the candidates."""
        typed = words[i]
        limit = MAX_EDITS if len(typed) >= TWO_EDITS_FROM else 1
        found = {c for v in _deletes(typed, limit) for c in self._deletes.get(v, ())}
        scored = []
        # In word order, so that a tie goes to the same word in every process (the set's own
        # order follows string hashing, which Python seeds per process).
        for candidate in sorted(found):
            edits = osa_distance(typed, candidate)
            context = (i > 0 and (words[i - 1], candidate) in self._bigrams) + (
                i + 1 < len(words) and (candidate, words[i + 1]) in self._bigrams
            )
            if edits > limit or (len(typed) < CONTEXT_ONLY_BELOW and not context):
                continue
            score = self._log_weight[candidate] - EDIT_COST * edits + CONTEXT_BONUS * context
            scored.append((score, candidate))
        if not scored:
            return None
        scores = np.array([s for s, _ in scored])
        best = int(np.argmax(scores))
        chance = 1.0 / float(np.exp(scores - scores[best]).sum())
        return scored[best][1], chance


def _deletes(word: str, edits: int) -> Iterator[str]:
    """``word`` and every string made from it by deleting up to ``edits`` letters."""
    seen = {word}
    yield word
    for k in range(1, min(edits, len(word) - 1) + 1):
        for dropped in combinations(range(len(word)), k):
            variant = "".join(c for j, c in enumerate(word) if j not in dropped)
            if variant not in seen:
                seen.add(variant)
                yield variant


def osa_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    neighbouring letters each cost one edit (no substring is edited twice)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            current[j] = min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (ca != cb),
            )
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def catalogue_rewriter(catalogue: pd.DataFrame, streams: pd.Series | None = None) -> QueryRewriter:
    """The rewriter of a catalogue: its :class:`Lexicon`, each item weighing one plus its streams
    (every item counts, a streamed one more), or one each without ``streams``.

    Args:
        catalogue: one row per item with ``item_id``, ``name`` and ``artist_name``.
        streams: each item's streams in the training window, indexed by item id
            (:func:`~searchrank.core.retrieval.item_streams`); items it lacks count 0.
    """
    popularity = None
    if streams is not None:
        items = catalogue[S.ITEM_ID].drop_duplicates()
        popularity = 1.0 + pd.Series(streams, dtype=np.float64).reindex(items).fillna(0.0)
    return QueryRewriter(Lexicon.from_catalogue(catalogue, popularity))


def rewrite_column(feature: str) -> str:
    return f"{REWRITE_VIEW}__{feature}"


REWRITE_COLUMNS = tuple(rewrite_column(f) for f in ("confidence", CORRECTED, COMPLETED))
"""The columns :func:`rewrite_features` fills."""


def is_rewrite_column(column: str) -> bool:
    return column.startswith(f"{REWRITE_VIEW}__")


def rewrite_features(rewrite: Rewrite) -> dict[str, float]:
    """The rewrite as ranker inputs: its confidence (1 when unchanged) and whether the query
    was corrected or completed."""
    return {
        rewrite_column("confidence"): float(rewrite.confidence),
        rewrite_column(CORRECTED): float(rewrite.kind == CORRECTED),
        rewrite_column(COMPLETED): float(rewrite.kind == COMPLETED),
    }


def add_rewrite_features(rows: pd.DataFrame, rewriter: QueryRewriter) -> pd.DataFrame:
    """``rows`` with :func:`rewrite_features` of each row's ``query`` appended (rewritten once
    per distinct query); columns already there are replaced.

    Raises:
        InputError: ``rows`` has no ``query`` column.
    """
    if S.QUERY not in rows.columns:
        raise InputError("rows columns", list(rows.columns), f"must include {S.QUERY}")
    queries = rows[S.QUERY].astype(str)
    distinct = queries.drop_duplicates()
    table = pd.DataFrame(
        [rewrite_features(rewriter.rewrite(q)) for q in distinct],
        index=distinct.to_numpy(),
        columns=list(REWRITE_COLUMNS),
    ).astype(np.float32)
    values = table.reindex(queries.to_numpy()).set_index(rows.index)
    return pd.concat([rows.drop(columns=table.columns, errors="ignore"), values], axis=1)
