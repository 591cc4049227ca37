"""Semantic IDs: short code tuples for items, fit by residual k-means (as in TIGER).

A generative retriever does not score every item against a query; it *writes* the id of the item
it wants, token by token, the way a language model writes a word. For that the id must mean
something: an item's **semantic ID** is a tuple of a few small integers derived from its
embedding, such as ``(17, 203, 5, 0)``, so that items with similar embeddings get similar ids and
the model can learn "queries like this one start with 17".

The codes come from **residual k-means** (residual quantization). Level 1 clusters the item
vectors into ``codes`` clusters and gives each item the number of its nearest centroid. Level 2
clusters what level 1 left unexplained, the *residual* (vector minus its level-1 centroid), and so
on: each level refines the one before it. The codes therefore run from coarse to fine, and items
close in embedding space share a prefix (same first code: same broad region; same first two:
closer still). The sum of an item's chosen centroids approximates its vector, and
:meth:`SemanticIds.report` measures how well (``reconstruction_error``).

Two items can still end up with the same ``levels`` codes. TIGER appends one more column to make
every id unique: items sharing their codes are numbered 0, 1, 2, … in ascending item id order.
That **de-duplication column** is part of the id the retriever decodes (see
:mod:`searchrank.core.constrained_decoding`), but not of :meth:`SemanticIds.encode`, which codes
new vectors against the fitted codebooks.

The k-means here is plain numpy: k-means++ initialization, Lloyd iterations, empty clusters
re-seeded from the points farthest from their centroid, and distances computed in chunks so
memory stays bounded however many items there are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from searchrank.core.errors import InputError, check_int

ARRAYS_FILE = "semantic_ids.npz"
"""Item ids, codes and codebooks inside a saved folder."""
CONFIG_FILE = "semantic_ids.json"
"""The config and fit statistics inside a saved folder."""
CHUNK_CELLS = 1 << 21
"""Distances computed at once (rows × centroids): 8 MiB of float32 per chunk."""
MAX_CODES = 65_536


@dataclass(frozen=True)
class SemanticIdConfig:
    """How semantic IDs are fit.

    Attributes:
        levels: code levels before the de-duplication column (TIGER uses 3).
        codes: centroids per level; fewer are used when the points have fewer distinct values.
        iterations: the most Lloyd iterations per level (fewer once assignments stop changing).
        seed: seeds the sample, k-means++ and re-seeding, so a fit is reproducible.
        sample: k-means fits each level on at most this many items, drawn with ``seed``;
            ``None`` fits on all. Every item is then assigned its codes.
    """

    levels: int = 3
    codes: int = 256
    iterations: int = 25
    seed: int = 0
    sample: int | None = 100_000

    def __post_init__(self) -> None:
        bounds: tuple[tuple[str, int, int | None], ...] = (
            ("levels", 1, None),
            ("codes", 2, MAX_CODES),
            ("iterations", 1, None),
            ("seed", 0, None),
        )
        for name, low, high in bounds:
            check_int(name, getattr(self, name), low, high)
        if self.sample is not None:
            check_int("sample", self.sample, 2, None)


def _distinct_rows(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``points`` (n, d) and how many times each occurs: ((u, d), (u,))."""
    rows = np.ascontiguousarray(points + np.float32(0.0))  # -0.0 becomes 0.0: equal rows match
    keys = rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return rows[first], counts


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``min(k, distinct rows)`` initial centroids, each a point drawn with probability
    proportional to its squared distance from the nearest centroid drawn so far (Arthur and
    Vassilvitskii, 2007).

    The draw runs over the distinct rows, each weighted by how often it occurs, so that no row
    is drawn twice.
    """
    distinct, counts = _distinct_rows(points)
    norms = np.einsum("ij,ij->i", distinct, distinct)
    chosen = [_draw(counts.astype(np.float64), chosen=[], rng=rng)]
    closest = np.full(len(distinct), np.inf, dtype=np.float32)
    for _ in range(min(k, len(distinct)) - 1):
        centre = distinct[chosen[-1]]
        distances = norms - 2.0 * (distinct @ centre) + centre @ centre
        np.minimum(closest, np.maximum(distances, 0.0), out=closest)
        closest[chosen[-1]] = 0.0
        chosen.append(_draw(closest * counts, chosen, rng))
    return distinct[chosen].copy()


def _draw(weights: np.ndarray, chosen: list[int], rng: np.random.Generator) -> int:
    """An index drawn with probability proportional to ``weights``; uniformly from those not
    ``chosen`` when rounding left no weight (rows closer together than float32 can tell)."""
    cumulative = np.cumsum(weights, dtype=np.float64)
    if cumulative[-1] > 0.0:
        drawn = np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")
        last = np.searchsorted(cumulative, cumulative[-1], side="left")  # the last with weight
        return int(min(drawn, last))
    left = np.setdiff1d(np.arange(len(weights)), chosen)
    return int(left[rng.integers(len(left))])


def _nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n,) the index of each point's nearest centroid.

    Rows are scored in chunks of :data:`CHUNK_CELLS` distances, so memory stays bounded. The
    score ``|c|² - 2 x·c`` ranks centroids as the squared distance does (``|x|²`` is the same
    for every centroid), at the cost of one matrix product per chunk.
    """
    labels = np.empty(len(points), dtype=np.int64)
    scale = -2.0 * centroids.T
    centroid_norms = np.einsum("ij,ij->i", centroids, centroids)
    rows = max(1, CHUNK_CELLS // len(centroids))
    for start in range(0, len(points), rows):
        scores = points[start : start + rows] @ scale
        scores += centroid_norms
        labels[start : start + rows] = scores.argmin(axis=1)
    return labels


def _means(points: np.ndarray, columns: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The mean of each cluster, summed in float64 one dimension at a time (``columns`` is
    ``points.T``, contiguous).

    An empty cluster takes one of the points farthest from their cluster's mean instead, so
    that all ``k`` centroids stay in use.
    """
    counts = np.bincount(labels, minlength=k)
    sums = np.stack([np.bincount(labels, weights=c, minlength=k) for c in columns], axis=1)
    centroids = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        gaps = points - centroids[labels]
        distances = np.einsum("ij,ij->i", gaps, gaps)
        farthest = np.argsort(-distances, kind="stable")[: len(empty)]
        centroids[empty] = points[farthest]
    return centroids


def kmeans(points: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means from a k-means++ start.

    Args:
        points: (n, d) float32 points.
        k: the most centroids; ``min(k, distinct rows of points)`` are fit.
        iterations: the most Lloyd iterations; it stops early once no assignment changes.
        rng: the source of every random choice, for reproducible fits.

    Returns:
        (k', d) float32 centroids, k' = ``min(k, distinct rows of points)``.
    """
    centroids = _kmeans_plus_plus(points, k, rng)
    columns = np.ascontiguousarray(points.T)
    previous: np.ndarray | None = None
    for _ in range(iterations):
        labels = _nearest(points, centroids)
        if previous is not None and np.array_equal(labels, previous):
            break
        centroids = _means(points, columns, labels, len(centroids))
        previous = labels
    return centroids


def _assign(residual: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """One level of residual quantization: (n,) the nearest code of each residual row, whose
    centroid is then subtracted from ``residual`` in place."""
    labels = _nearest(residual, codebook)
    residual -= codebook[labels]
    return labels


def _dedup_column(codes: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """(n,) 0, 1, 2, … within each group of items sharing all their codes, by ascending id."""
    order = np.lexsort((item_ids, *codes.T[::-1]))
    ranked = codes[order]
    starts_group = np.ones(len(codes), dtype=bool)
    starts_group[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)
    group_start = np.flatnonzero(starts_group)[np.cumsum(starts_group) - 1]
    column = np.empty(len(codes), dtype=np.int64)
    column[order] = np.arange(len(codes)) - group_start
    return column


def _vectors(vectors: np.ndarray, field: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or not array.shape[1]:
        raise InputError(field, array.shape, "must be a 2-D array (items × dimensions)")
    if not np.isfinite(array).all():
        raise InputError(field, "…", "must hold finite numbers only (no NaN or infinity)")
    return array


def _item_ids(item_ids: np.ndarray, n: int) -> np.ndarray:
    ids = np.asarray(item_ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise InputError("item_ids", ids.shape, f"must be {n} integer ids, one per vector")
    if len(np.unique(ids)) != n:
        raise InputError("item_ids", "…", "must be distinct")
    return ids.astype(np.int64)


def _perplexity(codes: np.ndarray, k: int) -> float:
    """exp(entropy) of the code frequencies: the number of equally used codes it equals."""
    frequencies = np.bincount(codes, minlength=k) / len(codes)
    used = frequencies[frequencies > 0]
    return float(np.exp(-(used * np.log(used)).sum()))


@dataclass(eq=False)
class SemanticIds:
    """Fitted semantic IDs of a catalogue. Build with :func:`fit_semantic_ids` or :meth:`load`.

    Attributes:
        item_ids: (n,) int64 item ids.
        codes: (n, levels + 1) int64: each item's code per level, then its de-duplication code.
        codebooks: one (k, d) float32 centroid array per level (k may be below ``codes``).
        config: what the codes were fit with.
        reconstruction_error: over the fitted items, mean squared norm of the residual left
            after the last level, relative to the mean squared norm of the vectors.
    """

    item_ids: np.ndarray
    codes: np.ndarray
    codebooks: list[np.ndarray]
    config: SemanticIdConfig
    reconstruction_error: float

    @property
    def levels(self) -> int:
        return len(self.codebooks)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """The ``levels`` codes of new vectors (m, d): (m, levels) int64, no de-dup column.

        The training vectors encode to the first ``levels`` columns of :attr:`codes`.
        """
        array = _vectors(vectors, "vectors")
        dimensions = self.codebooks[0].shape[1]
        if array.shape[1] != dimensions:
            raise InputError("vectors", array.shape, f"must have {dimensions} columns")
        residual = array.copy()
        codes = [_assign(residual, codebook) for codebook in self.codebooks]
        return np.stack(codes, axis=1)

    def report(self) -> dict[str, Any]:
        """How the codes use their codebooks and how much they share.

        Returns:
            ``items``; ``levels``; ``codes_per_level``: the k fit at each level; per level
            ``code_usage`` (distinct codes used / k) and ``perplexity`` (exp of the entropy of
            the code frequencies); ``collisions``: the share of items whose ``levels`` codes
            some other item also has; ``max_duplicates``: the largest group sharing them;
            ``reconstruction_error`` as the attribute.
        """
        sizes = [len(codebook) for codebook in self.codebooks]
        columns = [self.codes[:, level] for level in range(self.levels)]
        _, groups, counts = np.unique(
            self.codes[:, : self.levels], axis=0, return_inverse=True, return_counts=True
        )
        return {
            "items": len(self.item_ids),
            "levels": self.levels,
            "codes_per_level": sizes,
            "code_usage": [len(np.unique(c)) / k for c, k in zip(columns, sizes, strict=True)],
            "perplexity": [_perplexity(c, k) for c, k in zip(columns, sizes, strict=True)],
            "collisions": float((counts[groups.ravel()] > 1).mean()),
            "max_duplicates": int(self.codes[:, -1].max()) + 1,
            "reconstruction_error": self.reconstruction_error,
        }

    @cached_property
    def _item_by_code(self) -> dict[tuple[int, ...], int]:
        return dict(zip(map(tuple, self.codes.tolist()), self.item_ids.tolist(), strict=True))

    @cached_property
    def _row_by_item(self) -> dict[int, int]:
        return {item: row for row, item in enumerate(self.item_ids.tolist())}

    def item_of(self, code: Sequence[int]) -> int | None:
        """The item whose full code (``levels + 1`` ints) is ``code``, or ``None``."""
        return self._item_by_code.get(tuple(int(c) for c in code))

    def code_of(self, item_id: int) -> np.ndarray:
        """The full code (``levels + 1``,) of a fitted item."""
        row = self._row_by_item.get(int(item_id))
        if row is None:
            raise InputError("item_id", item_id, "must be one of the fitted items")
        return self.codes[row].copy()

    def save(self, folder: Path) -> None:
        """Write the arrays (:data:`ARRAYS_FILE`) and the config (:data:`CONFIG_FILE`); the
        codebooks are stored stacked, with each level's size."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / ARRAYS_FILE,
            item_ids=self.item_ids,
            codes=self.codes,
            codebooks=np.concatenate(self.codebooks),
            codebook_sizes=np.array([len(c) for c in self.codebooks], dtype=np.int64),
        )
        description = {
            "config": asdict(self.config),
            "reconstruction_error": self.reconstruction_error,
            "items": len(self.item_ids),
        }
        (folder / CONFIG_FILE).write_text(json.dumps(description, indent=2))

    @classmethod
    def load(cls, folder: Path) -> SemanticIds:
        description = json.loads((folder / CONFIG_FILE).read_text())
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
            ends = np.cumsum(arrays["codebook_sizes"])[:-1]
            return cls(
                arrays["item_ids"],
                arrays["codes"],
                np.split(arrays["codebooks"], ends),
                SemanticIdConfig(**description["config"]),
                float(description["reconstruction_error"]),
            )


def fit_semantic_ids(
    item_ids: np.ndarray, vectors: np.ndarray, config: SemanticIdConfig
) -> SemanticIds:
    """Fit residual k-means codebooks on item vectors and code every item.

    Args:
        item_ids: (n,) distinct integer item ids.
        vectors: (n, d) the items' embeddings, finite.
        config: levels, codes per level, iterations, seed and sample size.

    Returns:
        The items' codes (``levels`` k-means codes, then the de-duplication code) and the
        codebooks that :meth:`SemanticIds.encode` codes new vectors with.

    Raises:
        InputError: ``vectors`` is not 2-D, not finite or has fewer than 2 rows; ``item_ids``
            is not one distinct integer per row of ``vectors``.
    """
    array = _vectors(vectors, "vectors")
    if len(array) < 2:
        raise InputError("vectors", array.shape, "must have at least 2 rows (items)")
    ids = _item_ids(item_ids, len(array))
    rng = np.random.default_rng(config.seed)
    sample = np.arange(len(array))
    if config.sample is not None and config.sample < len(array):
        sample = np.sort(rng.choice(len(array), size=config.sample, replace=False))
    residual = array.copy()
    codes = np.empty((len(array), config.levels + 1), dtype=np.int64)
    codebooks: list[np.ndarray] = []
    for level in range(config.levels):
        codebook = kmeans(residual[sample], config.codes, config.iterations, rng)
        codes[:, level] = _assign(residual, codebook)
        codebooks.append(codebook)
    codes[:, -1] = _dedup_column(codes[:, :-1], ids)
    total = float(np.einsum("ij,ij->", array, array, dtype=np.float64))
    left = float(np.einsum("ij,ij->", residual, residual, dtype=np.float64))
    return SemanticIds(ids, codes, codebooks, config, left / total if total > 0 else 0.0)
