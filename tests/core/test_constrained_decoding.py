"""The trie of valid semantic IDs and beam search constrained to it."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from searchrank.core.constrained_decoding import CodeTrie, beam_search, beam_search_batch
from searchrank.core.errors import InputError
from searchrank.core.semantic_ids import SemanticIdConfig, fit_semantic_ids

VOCABULARY = (6, 5, 4)
"""Tokens per depth of the random tries: 120 possible codes, of which a trie uses a few."""


def _trie(items: int, seed: int) -> CodeTrie:
    """A trie of ``items`` distinct random codes, with shuffled non-contiguous item ids."""
    rng = np.random.default_rng(seed)
    every = np.array(list(itertools.product(*(range(v) for v in VOCABULARY))))
    codes = every[rng.choice(len(every), size=items, replace=False)]
    return CodeTrie.from_codes(codes, rng.permutation(items) * 7 + 1)


def _table_step(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """A model whose log-probabilities are a fixed random function of the prefix."""

    def step(prefixes: np.ndarray) -> np.ndarray:
        depth = prefixes.shape[1]
        rows = [
            np.random.default_rng([seed, depth, *prefix]).normal(size=VOCABULARY[depth])
            for prefix in prefixes.tolist()
        ]
        logits = np.array(rows).reshape(len(prefixes), VOCABULARY[depth])
        return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)

    return step


def _brute_force(trie: CodeTrie, step: Callable[[np.ndarray], np.ndarray]) -> list[int]:
    """Every item of ``trie`` by its total log-probability under ``step``, best first."""
    totals = {}
    for code, item in zip(trie.codes.tolist(), trie.item_ids.tolist(), strict=True):
        totals[item] = sum(
            step(np.array([code[:t]], dtype=np.int64))[0, token] for t, token in enumerate(code)
        )
    return sorted(totals, key=lambda item: -totals[item])


def test_the_trie_knows_the_next_tokens_and_the_items() -> None:
    codes = np.array([[0, 2, 1], [0, 2, 0], [3, 1, 0], [0, 1, 5]])
    trie = CodeTrie.from_codes(codes, np.array([10, 11, 12, 13]))
    assert trie.depth == 3 and len(trie) == 4 and trie.vocabulary == (4, 3, 6)
    assert trie.allowed(()).tolist() == [0, 3]
    assert trie.allowed((0,)).tolist() == [1, 2]
    assert trie.allowed((0, 2)).tolist() == [0, 1]
    assert trie.allowed((1,)).tolist() == [] and trie.allowed((0, 2, 1)).tolist() == []
    assert trie.item_of((3, 1, 0)) == 12 and trie.item_of((3, 1)) is None
    assert trie.item_of((9, 9, 9)) is None


def test_decoded_items_are_always_valid_even_when_the_model_prefers_invalid_codes() -> None:
    rng = np.random.default_rng(0)
    trie = _trie(30, seed=1)
    valid = set(trie.item_ids.tolist())

    def step(prefixes: np.ndarray) -> np.ndarray:
        depth = prefixes.shape[1]
        logits = rng.normal(size=(len(prefixes), VOCABULARY[depth]))
        for row, prefix in enumerate(prefixes.tolist()):
            invalid = np.setdiff1d(np.arange(VOCABULARY[depth]), trie.allowed(tuple(prefix)))
            logits[row, invalid] += 8.0  # nearly all the mass on tokens that lead nowhere
        return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)

    decoded = 0
    for _ in range(200):
        results = beam_search(step, trie, beam_size=int(rng.integers(1, 8)))
        assert all(item in valid for item, _ in results)
        decoded += len(results)
    assert decoded >= 200


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_as_wide_as_the_catalogue_finds_the_exact_ranking(seed: int) -> None:
    trie = _trie(25, seed=seed)
    step = _table_step(seed)
    results = beam_search(step, trie, beam_size=25)
    assert [item for item, _ in results] == _brute_force(trie, step)
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True) and all(s < 0.0 for s in scores)


def test_results_come_best_first_and_n_results_cuts_the_list() -> None:
    trie = _trie(40, seed=3)
    step = _table_step(3)
    wide = beam_search(step, trie, beam_size=10)
    assert len(wide) == 10
    assert [s for _, s in wide] == sorted((s for _, s in wide), reverse=True)
    assert beam_search(step, trie, beam_size=10, n_results=3) == wide[:3]


@pytest.mark.parametrize("beam_size", [1, 3, 12])
def test_a_batch_of_queries_decodes_as_each_query_alone(beam_size: int) -> None:
    trie = _trie(40, seed=4)
    steps = [_table_step(seed) for seed in range(5)]

    previous: list[np.ndarray] = []

    def batch(queries: np.ndarray, prefixes: np.ndarray, parents: np.ndarray | None) -> np.ndarray:
        # Each beam extends the row of the previous call that ``parents`` names.
        if parents is None:
            assert not prefixes.shape[1]
        else:
            assert (prefixes[:, :-1] == previous[-1][parents]).all()
        previous.append(prefixes)
        rows = [steps[q](prefix[None]) for q, prefix in zip(queries, prefixes, strict=True)]
        return np.concatenate(rows)

    alone = [beam_search(step, trie, beam_size, n_results=min(beam_size, 5)) for step in steps]
    assert beam_search_batch(batch, trie, len(steps), beam_size, min(beam_size, 5)) == alone
    assert beam_search_batch(batch, trie, 0, beam_size) == []


def test_ties_are_broken_by_the_smaller_code() -> None:
    codes = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    trie = CodeTrie.from_codes(codes, np.array([5, 6, 7, 8]))
    flat = beam_search(lambda p: np.zeros((len(p), 2)), trie, beam_size=4)
    assert flat == [(7, 0.0), (6, 0.0), (5, 0.0), (8, 0.0)]


def test_a_trie_without_some_items_never_decodes_them() -> None:
    trie = _trie(40, seed=4)
    left_out = trie.item_ids[::3].tolist()
    narrowed = trie.without([*left_out, 999_999])
    assert len(narrowed) == len(trie) - len(left_out)
    assert set(narrowed.item_ids.tolist()) == set(trie.item_ids.tolist()) - set(left_out)
    for code, item in zip(trie.codes.tolist(), trie.item_ids.tolist(), strict=True):
        assert narrowed.item_of(tuple(code)) == (None if item in left_out else item)
    results = beam_search(_table_step(4), narrowed, beam_size=len(narrowed))
    assert len(results) == len(narrowed) and not {item for item, _ in results} & set(left_out)


def test_prefixes_left_without_items_disappear() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0]])
    narrowed = CodeTrie.from_codes(codes, np.array([1, 2, 3])).without([3])
    assert narrowed.allowed(()).tolist() == [0] and narrowed.allowed((1,)).tolist() == []
    assert beam_search(lambda p: np.zeros((len(p), 2)), narrowed.without([1, 2]), 2) == []


def test_semantic_ids_decode_through_their_trie() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    ids = fit_semantic_ids(np.arange(300), vectors, SemanticIdConfig(levels=2, codes=8))
    trie = CodeTrie.from_codes(ids.codes, ids.item_ids)
    target = ids.codes[123]

    def step(prefixes: np.ndarray) -> np.ndarray:
        depth = prefixes.shape[1]
        log_probs = np.full((len(prefixes), trie.vocabulary[depth]), -5.0)
        log_probs[:, target[depth]] = 0.0
        return log_probs

    assert beam_search(step, trie, beam_size=4)[0] == (123, 0.0)


@pytest.mark.parametrize(
    ("field", "call"),
    [
        ("beam_size", lambda t: beam_search(lambda p: np.zeros((len(p), 6)), t, 0)),
        ("n_results", lambda t: beam_search(lambda p: np.zeros((len(p), 6)), t, 2, 3)),
        ("step", lambda t: beam_search(lambda p: np.zeros((len(p), 5)), t, 2)),
        ("step", lambda t: beam_search(lambda p: np.zeros((len(p) + 1, 6)), t, 2)),
        ("step", lambda t: beam_search(lambda p: np.zeros(6), t, 2)),
        ("step", lambda t: beam_search(lambda p: np.full((len(p), 6), np.nan), t, 2)),
        ("codes", lambda t: CodeTrie.from_codes(np.array([[1, 2], [1, 2]]), np.array([1, 2]))),
        ("codes", lambda t: CodeTrie.from_codes(np.array([[-1, 2]]), np.array([1]))),
        ("item_ids", lambda t: CodeTrie.from_codes(np.array([[1], [2]]), np.array([1]))),
        ("item_ids", lambda t: CodeTrie.from_codes(np.array([[1], [2]]), np.array([1, 1]))),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    field: str, call: Callable[[CodeTrie], object]
) -> None:
    with pytest.raises(InputError, match=field):
        call(_six_first_tokens())


def _six_first_tokens() -> CodeTrie:
    """A trie whose first tokens run up to 5: a step must return at least 6 columns."""
    return CodeTrie.from_codes(np.array([[5, 0], [0, 1], [2, 1]]), np.array([1, 2, 3]))


def test_a_bad_step_shape_is_reported_with_the_expected_one() -> None:
    with pytest.raises(InputError, match=r"\(1, 4\).*\(1, V\) with V >= 6.*\(1, 0\)"):
        beam_search(lambda p: np.zeros((1, 4)), _six_first_tokens(), 2)


def test_the_step_sees_the_beams_prefixes() -> None:
    seen: list[tuple[tuple[int, ...], np.dtype]] = []

    def step(prefixes: np.ndarray) -> np.ndarray:
        seen.append((prefixes.shape, prefixes.dtype))
        return np.log(np.full((len(prefixes), 6), 1 / 6))

    beam_search(step, _six_first_tokens(), beam_size=2)
    assert seen == [((1, 0), np.dtype(np.int64)), ((2, 1), np.dtype(np.int64))]
