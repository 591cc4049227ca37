"""Constrained decoding: a generative retriever writes only semantic IDs that exist.

A generative retriever (TIGER) answers a query by decoding an item's semantic ID token by token
(:mod:`searchrank.core.semantic_ids`): first code, second code, …, de-duplication code. Left to
itself, the model can write a code tuple that belongs to no item; with 256 codes per level and
three levels plus the de-dup column, almost every tuple is such an *invalid ID*.

:class:`CodeTrie` holds the IDs that exist as a prefix tree: after any prefix it knows which next
tokens lead to an item. :func:`beam_search` asks the model for the next token's log-probabilities of
every beam, sets those of the tokens the trie does not allow to −inf, and keeps the best partial
codes; :func:`beam_search_batch` does the same for many queries, one model call a depth. Every
prefix it keeps leads to at least one item, so every finished code is an item's: the invalid-ID rate
is 0 by construction, and no beam is spent on ids that do not exist.

The trie can also be narrowed per listener: :meth:`CodeTrie.without` leaves some items out (the
explicit tracks, for a listener whose explicit-content filter applies), and decoding with that
trie can return none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

import numpy as np

from searchrank.core.errors import InputError, check_int

Step = Callable[[np.ndarray], np.ndarray]
"""The model: (B, t) int64 prefixes → (B, V_t) log-probabilities of the token at depth t."""
BatchStep = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]
"""The model over many queries: the query of each beam (B,), the beams' prefixes (B, t) and the
row of the previous call's prefixes that each beam extends (B,; ``None`` at t = 0, so that a
model may keep state per beam) → (B, V_t) log-probabilities of the token at depth t."""

_NONE = np.zeros(0, dtype=np.int64)
_NONE.setflags(write=False)


class CodeTrie:
    """The valid codes of a catalogue as a prefix tree. Build with :meth:`from_codes`.

    Attributes:
        codes: (n, depth) int64 the items' codes (read-only).
        item_ids: (n,) int64 the item of each code row (read-only).
        vocabulary: per depth, the largest code there + 1: the fewest log-probabilities a
            decoding step must return at that depth.
    """

    def __init__(
        self,
        codes: np.ndarray,
        item_ids: np.ndarray,
        children: dict[tuple[int, ...], np.ndarray],
    ) -> None:
        self.codes = codes
        self.item_ids = item_ids
        self._children = children
        self._items = dict(zip(map(tuple, codes.tolist()), item_ids.tolist(), strict=True))
        self.vocabulary: tuple[int, ...] = tuple(
            int(column.max()) + 1 if len(column) else 0 for column in codes.T
        )

    @classmethod
    def from_codes(cls, codes: np.ndarray, item_ids: np.ndarray) -> CodeTrie:
        """A trie of ``codes`` (n, depth), the non-negative integer codes of ``item_ids`` (n,).

        Raises:
            InputError: ``codes`` is not a 2-D array of non-negative integers with at least one
                column, or has two equal rows; ``item_ids`` is not n distinct integers.
        """
        array = np.asarray(codes)
        if array.ndim != 2 or not array.shape[1] or not np.issubdtype(array.dtype, np.integer):
            raise InputError("codes", array.shape, "must be a 2-D integer array (items × depth)")
        if (array < 0).any():
            raise InputError("codes", "…", "must be non-negative")
        ids = np.asarray(item_ids)
        if ids.shape != (len(array),) or not np.issubdtype(ids.dtype, np.integer):
            raise InputError("item_ids", ids.shape, f"must be {len(array)} integer ids, one a row")
        if len(np.unique(ids)) != len(ids):
            raise InputError("item_ids", "…", "must be distinct")
        array, ids = array.astype(np.int64), ids.astype(np.int64)
        array.setflags(write=False)
        ids.setflags(write=False)
        return cls(array, ids, _children(array))

    @property
    def depth(self) -> int:
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return len(self.item_ids)

    def allowed(self, prefix: tuple[int, ...]) -> np.ndarray:
        """The sorted tokens that may follow ``prefix`` (read-only); empty if it leads nowhere."""
        return self._children.get(tuple(prefix), _NONE)

    def item_of(self, code: tuple[int, ...]) -> int | None:
        """The item whose full code is ``code``, or ``None``."""
        return self._items.get(tuple(code))

    def without(self, item_ids: Iterable[int]) -> CodeTrie:
        """A trie of every item but ``item_ids`` (ids not in the trie are ignored); prefixes
        that led only to left-out items lead nowhere in it."""
        keep = ~np.isin(self.item_ids, np.fromiter(item_ids, dtype=np.int64))
        return CodeTrie.from_codes(self.codes[keep], self.item_ids[keep])


def _children(codes: np.ndarray) -> dict[tuple[int, ...], np.ndarray]:
    """Each prefix of ``codes`` (n, depth), of every length below depth, mapped to the sorted
    tokens that follow it.

    The rows are sorted once; a row then starts a new prefix of length t + 1 where it differs
    from the row above within its first t + 1 columns.
    """
    if not len(codes):
        return {}
    ranked = codes[np.lexsort(codes.T[::-1])]
    differs = ranked[1:] != ranked[:-1]
    first_change = np.full(len(ranked), -1, dtype=np.int64)  # -1: the first row starts all
    first_change[1:] = np.where(differs.any(axis=1), differs.argmax(axis=1), codes.shape[1])
    repeated = np.flatnonzero(first_change == codes.shape[1])
    if len(repeated):
        code = ranked[repeated[0]].tolist()
        raise InputError("codes", code, "must be distinct: two items share this code")
    children: dict[tuple[int, ...], np.ndarray] = {}
    for t in range(codes.shape[1]):
        rows = np.flatnonzero(first_change <= t)  # the first row of each prefix of length t + 1
        tokens = ranked[rows, t]
        tokens.setflags(write=False)
        starts = np.flatnonzero(first_change[rows] < t)  # where the prefix of length t changes
        prefixes = map(tuple, ranked[rows[starts], :t].tolist())
        children.update(zip(prefixes, np.split(tokens, starts[1:]), strict=True))
    return children


def beam_search(
    step: Step, trie: CodeTrie, beam_size: int, n_results: int | None = None
) -> list[tuple[int, float]]:
    """Decode the items whose codes score best under ``step``, never leaving ``trie``: one
    query's :func:`beam_search_batch`.

    Args:
        step: the model; receives int64 prefixes (B, t), shape (1, 0) at t = 0, and returns
            (B, V_t) log-probabilities of the next token, V_t at least ``trie.vocabulary[t]``.
        trie, beam_size, n_results: as in :func:`beam_search_batch`.

    Returns:
        (item id, summed log-probability) of up to ``n_results`` items, best first.
    """
    batch: BatchStep = lambda _queries, prefixes, _parents: step(prefixes)  # noqa: E731
    return beam_search_batch(batch, trie, 1, beam_size, n_results)[0]


def beam_search_batch(
    step: BatchStep, trie: CodeTrie, queries: int, beam_size: int, n_results: int | None = None
) -> list[list[tuple[int, float]]]:
    """Decode, for each of ``queries`` queries at once, the items whose codes score best under
    ``step``, never leaving ``trie``.

    At each depth t every query's beams go to ``step`` in one call; its log-probabilities of
    the tokens the trie does not allow after a prefix count as −inf, so only allowed tokens
    extend a beam. Each query keeps the ``beam_size`` extensions with the highest summed
    log-probability (ties go to the smaller code), and at full depth each beam is an item. The
    queries never compete: each one's results are those of decoding it alone.

    Args:
        step: the model; receives the query of each beam (B,), the beams' int64 prefixes
            (B, t) (at t = 0, one empty prefix per query) and the row of its previous call's
            prefixes that each beam extends (``None`` at t = 0), and returns (B, V_t)
            log-probabilities of the next token, V_t at least ``trie.vocabulary[t]``.
        trie: the codes that may be decoded.
        queries: how many queries ``step`` answers for (numbered from 0).
        beam_size: partial codes kept at each depth, per query.
        n_results: items returned per query, at most ``beam_size``; ``None`` returns
            ``beam_size``.

    Returns:
        Per query, (item id, summed log-probability) of up to ``n_results`` items, best first.

    Raises:
        InputError: ``queries``, ``beam_size`` or ``n_results`` is out of range; ``step``
            returned an array of the wrong shape or with NaN.
    """
    check_int("queries", queries, 0)
    check_int("beam_size", beam_size, 1, None)
    results = beam_size if n_results is None else n_results
    check_int("n_results", results, 1, beam_size)
    if not len(trie) or not queries:
        return [[] for _ in range(queries)]
    owners = np.arange(queries)
    prefixes = np.zeros((queries, 0), dtype=np.int64)
    scores = np.zeros(queries, dtype=np.float64)
    parents = None
    for t in range(trie.depth):
        log_probs = _checked(step(owners, prefixes, parents), prefixes.shape, trie.vocabulary[t])
        beams, prefixes, scores = _extend(prefixes, scores, log_probs, trie)
        owners = owners[beams]
        order = np.lexsort((*prefixes.T[::-1], -scores, owners))
        best = order[_rank_in_group(owners[order]) < beam_size]
        owners, prefixes, scores, parents = owners[best], prefixes[best], scores[best], beams[best]
    top = _rank_in_group(owners) < results  # full depth: each beam an item's code
    owners, scores = owners[top], scores[top]
    items = [trie._items[code] for code in map(tuple, prefixes[top].tolist())]
    bounds = np.searchsorted(owners, np.arange(queries + 1)).tolist()
    found = list(zip(items, scores.tolist(), strict=True))
    return [found[start:end] for start, end in pairwise(bounds)]


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """Each element's position within its run of equal values of sorted ``groups``."""
    return np.arange(len(groups)) - np.searchsorted(groups, groups)


def _checked(output: Any, asked: tuple[int, ...], vocabulary: int) -> np.ndarray:
    """``step``'s output as float64, refused unless it is (B, V) with V >= ``vocabulary`` for
    prefixes of shape ``asked`` (B, t)."""
    log_probs = np.asarray(output, dtype=np.float64)
    rows = asked[0]
    if log_probs.ndim != 2 or log_probs.shape[0] != rows or log_probs.shape[1] < vocabulary:
        raise InputError(
            "step",
            log_probs.shape,
            f"must return log-probabilities of shape ({rows}, V) with V >= {vocabulary} "
            f"for prefixes of shape {asked}",
        )
    return log_probs


def _extend(
    prefixes: np.ndarray, scores: np.ndarray, log_probs: np.ndarray, trie: CodeTrie
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every beam extended by every token the trie allows after it: (the beam each extension
    came from (C,), prefixes (C, t + 1), summed log-probabilities (C,))."""
    allowed = [trie.allowed(tuple(prefix)) for prefix in prefixes.tolist()]
    beams = np.repeat(np.arange(len(prefixes)), [len(tokens) for tokens in allowed])
    tokens = np.concatenate(allowed)
    chosen = log_probs[beams, tokens]
    if np.isnan(chosen).any():
        raise InputError("step", "NaN", "must return log-probabilities, not NaN")
    extended = np.concatenate([prefixes[beams], tokens[:, None]], axis=1)
    return beams, extended, scores[beams] + chosen
