"""Tests of the BM25 lexical baseline: hand-checked scores, analyzers, persistence and speed."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from searchrank.core.bm25 import BM25Scorer, tokenize
from searchrank.core.errors import InputError

IDS = np.array([101, 102, 103, 104, 105, 106, 107], dtype=np.int64)
TEXTS = [
    "Blinding Lights The Weeknd",
    "Lights Out",
    "Blinding Lights (Extended Club Mix Version) The Weeknd",
    "Love Story",
    "Love Song",
    "Halo Beyoncé",
    "Crazy in Love Beyoncé",
]


@pytest.fixture(scope="module")
def word() -> BM25Scorer:
    return BM25Scorer.fit(IDS, TEXTS)


def _lucene_bm25(tf: int, df: int, n_docs: int, doc_len: int, avg_len: float) -> float:
    """One term's BM25 contribution, written out from the formula."""
    k1, b = 1.5, 0.75
    idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * doc_len / avg_len))


def test_tokenize_normalizes_like_the_rest_of_searchrank() -> None:
    assert tokenize("Beyoncé – Halo (Live)", "word") == ["beyonce", "halo", "live"]
    assert tokenize("The Weeknd", "word") == ["the", "weeknd"]
    assert tokenize("The Weeknd", "word", stopwords={"the"}) == ["weeknd"]
    assert tokenize("ab", "char3") == ["  a", " ab", "ab "]
    assert tokenize(None, "word") == []


def test_score_matches_the_formula(word: BM25Scorer) -> None:
    lengths = [len(tokenize(t, "word")) for t in TEXTS]
    avg = sum(lengths) / len(lengths)
    # "halo" occurs once, in item 106 (2 words); "beyonce" in items 106 and 107.
    expected = _lucene_bm25(1, 1, 7, 2, avg) + _lucene_bm25(1, 2, 7, 2, avg)
    got = word.score(["halo beyonce"], np.array([106]))
    assert got[0] == pytest.approx(expected, rel=1e-6)


def test_ordering_on_a_toy_corpus(word: BM25Scorer) -> None:
    ids, scores = word.retrieve("blinding lights", k=10)
    # Both terms in a short title beat both terms in a long one, which beats one term.
    assert ids.tolist() == [101, 103, 102]
    assert np.all(np.diff(scores) < 0)

    # A rare term outweighs a common one: "halo" (1 item) beats "love" (3 items).
    ids, _ = word.retrieve("love halo", k=10)
    assert ids[0] == 106

    # "Crazy in Love" is the only item with three of the query's words.
    ids, _ = word.retrieve("crazy in love", k=1)
    assert ids.tolist() == [107]

    # No shared term: score 0, and never retrieved.
    assert word.score(["lights"], np.array([104]))[0] == 0.0
    ids, scores = word.retrieve("metallica", k=5)
    assert ids.size == 0
    assert scores.size == 0


def test_the_is_kept_by_default_and_stopwords_are_an_option() -> None:
    ids = np.array([1, 2, 3])
    texts = ["The The", "The Weeknd", "Weeknd Tribute"]
    plain = BM25Scorer.fit(ids, texts)
    assert plain.retrieve("the the", k=3)[0].tolist() == [1, 2]
    assert plain.retrieve("the weeknd", k=3)[0].tolist() == [2, 1, 3]
    no_the = BM25Scorer.fit(ids, texts, stopwords=["The"])
    # The band "The The" becomes unfindable once "the" is a stopword.
    assert no_the.retrieve("the the", k=3)[0].size == 0
    assert no_the.score(["the the"], np.array([1]))[0] == 0.0


def test_score_agrees_with_retrieve(word: BM25Scorer) -> None:
    queries = ["blinding lights", "love", "beyonce halo", "the weeknd"]
    for query in queries:
        ids, scores = word.retrieve(query, k=len(IDS))
        pair_scores = word.score([query] * len(ids), ids)
        np.testing.assert_array_equal(pair_scores, scores)
    # Interleaved queries and candidates, as a candidate table lists them.
    rows_q = ["love", "the weeknd", "love", "beyonce halo", "the weeknd"]
    rows_i = np.array([104, 101, 107, 106, 103])
    expected = [
        dict(zip(*word.retrieve(q, k=len(IDS)), strict=True)).get(int(i), 0.0)
        for q, i in zip(rows_q, rows_i, strict=True)
    ]
    np.testing.assert_array_equal(word.score(rows_q, rows_i), np.asarray(expected, np.float32))


def test_top_k_truncates_and_breaks_ties_by_corpus_order() -> None:
    ids = np.array([5, 3, 9, 1])
    scorer = BM25Scorer.fit(ids, ["love", "love", "love", "hate"])
    got, scores = scorer.retrieve("love", k=2)
    assert got.tolist() == [5, 3]
    assert scores[0] == scores[1]


def test_char3_matches_a_misspelling() -> None:
    ids = np.array([1, 2, 3])
    texts = ["Halo Beyoncé", "Hello Adele", "Lose Yourself Eminem"]
    word = BM25Scorer.fit(ids, texts)
    char3 = BM25Scorer.fit(ids, texts, analyzer="char3")
    assert word.score(["beyonse"], np.array([1]))[0] == 0.0
    assert char3.score(["beyonse"], np.array([1]))[0] > 0.0
    assert char3.retrieve("beyonse", k=1)[0].tolist() == [1]
    assert char3.retrieve("adel helo", k=1)[0].tolist() == [2]


@pytest.mark.parametrize("analyzer", ["word", "char3"])
def test_save_load_round_trip(tmp_path: Path, analyzer: str) -> None:
    ids = np.array(["spotify:track:a", "spotify:track:b", "spotify:track:c"])
    texts = ["Halo Beyoncé", "Hello Adele", "The Weeknd"]
    scorer = BM25Scorer.fit(ids, texts, k1=1.2, b=0.5, analyzer=analyzer, stopwords=["the"])  # type: ignore[arg-type]
    scorer.save(tmp_path / "bm25")
    loaded = BM25Scorer.load(tmp_path / "bm25")
    assert (loaded.k1, loaded.b, loaded.analyzer, loaded.stopwords) == (
        1.2,
        0.5,
        analyzer,
        ("the",),
    )
    np.testing.assert_array_equal(loaded.item_ids, ids)
    queries = ["halo", "helo adele", "the weeknd", "beyonse"]
    pairs = np.array(["spotify:track:a", "spotify:track:b", "spotify:track:c", "spotify:track:a"])
    np.testing.assert_array_equal(loaded.score(queries, pairs), scorer.score(queries, pairs))
    for query in queries:
        for got, want in zip(loaded.retrieve(query, 3), scorer.retrieve(query, 3), strict=True):
            np.testing.assert_array_equal(got, want)


def test_unknown_items_and_missing_queries_score_zero(word: BM25Scorer) -> None:
    got = word.score(["love", None, "", "love"], np.array([999, 104, 104, 104]))
    assert got[:3].tolist() == [0.0, 0.0, 0.0]
    assert got[3] > 0.0
    assert word.score([], np.array([], dtype=np.int64)).shape == (0,)


def test_object_arrays_of_string_ids_are_accepted() -> None:
    ids = np.array(["a", "b"], dtype=object)
    scorer = BM25Scorer.fit(ids, ["love story", "halo"])
    assert scorer.score(["halo"], np.array(["b"], dtype=object))[0] > 0.0


@pytest.mark.parametrize(
    ("ids", "texts", "kwargs", "field"),
    [
        (np.array([], dtype=np.int64), [], {}, "item_ids"),
        (np.array([1, 2]), ["a"], {}, "texts"),
        (np.array([1, 1]), ["a", "b"], {}, "item_ids"),
        (np.array([1.5, 2.5]), ["a", "b"], {}, "item_ids"),
        (np.array([1, 2]), ["", "!!"], {}, "texts"),
        (np.array([1, 2]), ["a", "b"], {"k1": -1.0}, "k1"),
        (np.array([1, 2]), ["a", "b"], {"b": 1.5}, "b"),
        (np.array([1, 2]), ["a", "b"], {"analyzer": "char4"}, "analyzer"),
    ],
)
def test_fit_rejects_bad_input(
    ids: np.ndarray, texts: list[str], kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError) as err:
        BM25Scorer.fit(ids, texts, **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_score_and_retrieve_reject_bad_input(word: BM25Scorer, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="item_ids"):
        word.score(["love", "halo"], np.array([104]))
    with pytest.raises(InputError, match="item_ids"):
        word.score(["love"], np.array(["104"]))
    with pytest.raises(InputError, match="k"):
        word.retrieve("love", k=0)
    with pytest.raises(InputError, match="folder"):
        BM25Scorer.load(tmp_path / "missing")


def _synthetic_catalog(
    n_items: int, n_queries: int, n_pairs: int, seed: int = 0
) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """Zipf-distributed random-letter words, 2–6 per item; a query is 1–3 words of an item."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = np.unique(
        ["".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(20_000)]
    )
    p = 1.0 / np.arange(1, len(vocabulary) + 1)
    words = rng.choice(vocabulary, size=(n_items, 6), p=p / p.sum())
    lengths = rng.integers(2, 7, size=n_items)
    texts = [" ".join(row[:k]) for row, k in zip(words, lengths, strict=True)]
    sources = rng.integers(0, n_items, size=n_queries)
    queries = [" ".join(texts[s].split()[: rng.integers(1, 4)]) for s in sources]
    item_ids = np.arange(n_items, dtype=np.int64) * 10
    pair_queries = [queries[q] for q in rng.integers(0, n_queries, size=n_pairs)]
    pair_items = item_ids[rng.integers(0, n_items, size=n_pairs)]
    return item_ids, texts, pair_queries, pair_items


@pytest.mark.parametrize("analyzer", ["word", "char3"])
def test_speed_of_scoring_many_pairs(analyzer: str) -> None:
    """200k pairs, 20k items, 5k distinct queries; timings are printed, not asserted."""
    item_ids, texts, queries, pairs = _synthetic_catalog(20_000, 5_000, 200_000)
    start = time.perf_counter()
    scorer = BM25Scorer.fit(item_ids, texts, analyzer=analyzer)  # type: ignore[arg-type]
    fitted = time.perf_counter()
    scores = scorer.score(queries, pairs)
    scored = time.perf_counter()
    print(
        f"\nBM25 {analyzer}: fit 20k items {fitted - start:.2f}s, "
        f"score 200k pairs / 5k queries {scored - fitted:.2f}s"
    )
    assert scores.shape == (200_000,)
    # Spot-check a few pairs against retrieval over the whole corpus.
    for row in range(0, 200_000, 40_000):
        ids, best = scorer.retrieve(queries[row], k=20_000)
        expected = best[ids == pairs[row]]
        assert scores[row] == (expected[0] if expected.size else 0.0)
