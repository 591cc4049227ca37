"""Ranking metrics over flat arrays of (query, candidate) rows, one value per query.

Every function takes three parallel arrays of length ``n``: graded relevance ``labels``
(integers >= 0; for NDCG alone, non-negative real grades where ``grades="real"``), model
``scores`` and query ids ``groups``. The rows of one query must be
contiguous, as they are in every ranking dataset of this project (checked by
:func:`searchrank.core.schema.search_bounds`).

Conventions:

* **Ranking and ties.** Within a query, candidates are ranked by descending score with a stable
  sort, so tied scores keep their row order: of two candidates with the same score the earlier
  row ranks higher. The result is deterministic, but a baseline that scores many candidates
  alike (a popularity prior, a constant) is measured in whatever order its rows arrive, so
  shuffle or sort its rows on purpose before comparing it with a model.
* **NDCG** uses exponential gains ``2^label − 1`` and discounts ``log2(rank + 1)`` with ranks
  from 1 (Burges et al.; the LightGBM ``ndcg`` convention). The ideal DCG is computed from the
  query's own candidate labels, and NDCG@k truncates both the DCG and the ideal DCG at rank k;
  a k beyond the list length counts the whole list.
* **Real-valued grades.** NDCG also takes a real grade (``grades="real"``, :data:`Grades`), such
  as the simulator's true grade, the label an item earns on average: the same gain
  ``2^grade − 1``, discount and truncation, so an integer grade scores as that label. The gain
  of an average grade is not the average gain (``2^g − 1`` is convex, so it is the smaller),
  but it orders items as the grade does, and ranking by the grade itself scores 1.
* **Relevant** (for MRR, MAP and recall) means ``label >= relevance_threshold`` (default 1).
  MRR and MAP read the whole list; recall@k is the share of the query's relevant candidates
  ranked in the top k; MAP divides by the number of relevant candidates of the query.
* **Exclusion.** A query without any relevant candidate has no defined MRR, MAP or recall, and
  with the default threshold an ideal DCG of 0. Such queries get NaN for every metric, are left
  out of every mean and are counted instead, so all metrics are averaged over the same queries.
  Every figure searchrank reports follows this rule, LightGBM's validation NDCG included.
  :func:`ndcg_at_k` is the one NDCG of the project; its ``no_relevant`` parameter names the
  convention (:data:`NoRelevant`), so another one (LightGBM's built-in ``ndcg`` counts such
  queries as 1) is a visible choice rather than a second implementation; its ``grades``
  parameter, and that of :func:`per_query_ndcg` (its per-query values), name the labels it
  takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd

from searchrank.core.errors import InputError
from searchrank.core.schema import search_bounds

MAX_LABEL = 53
"""The largest label accepted: gains ``2^label − 1`` stay exact integers in float64 up to it."""

COUNT_COLUMNS: tuple[str, ...] = ("n_candidates", "n_relevant", "has_relevant")
"""The bookkeeping columns of :func:`per_query_metrics`; every other column is a metric."""

QUERY_INDEX = "query_id"
"""The index name of :func:`per_query_metrics` frames."""

NoRelevant = Literal["skip", "one", "zero"]
"""What NDCG makes of a query without any relevant candidate, whose ideal DCG is 0 (so NDCG is
0 / 0): ``"skip"`` leaves it out of the mean (NaN per query), the convention of every figure
searchrank reports; ``"one"`` counts it as 1, as LightGBM's built-in ``ndcg`` metric does;
``"zero"`` counts it as 0."""
NO_RELEVANT: tuple[str, ...] = get_args(NoRelevant)

Grades = Literal["integer", "real"]
"""What NDCG's labels may be: ``"integer"``, graded relevance labels, integers from 0 to
:data:`MAX_LABEL` (logged labels: every figure against clicks); ``"real"``, any real grade from
0 to :data:`MAX_LABEL`, such as the simulator's true grade
(:data:`~searchrank.core.schema.TRUE_GRADE`). Both use the gain ``2^grade − 1``; a query
counts as having a relevant candidate when one has a positive grade (its ideal DCG is
positive)."""
GRADES: tuple[str, ...] = get_args(Grades)


def per_query_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    relevance_threshold: int = 1,
) -> pd.DataFrame:
    """NDCG@k, MRR, MAP and recall@k of every query.

    Args:
        labels: (n,) graded relevance, integers in [0, :data:`MAX_LABEL`].
        scores: (n,) model scores, higher ranks first; NaN is not allowed.
        groups: (n,) query ids; the rows of one query must be contiguous.
        ks: the cut-offs for NDCG and recall, distinct positive integers.
        relevance_threshold: the smallest label that counts as relevant, at least 1.

    Returns:
        One row per query, indexed by query id (named :data:`QUERY_INDEX`) in order of first
        appearance, with the columns ``ndcg@{k}`` for each k, ``mrr``, ``map``, ``recall@{k}``
        for each k, and the counts ``n_candidates``, ``n_relevant`` and ``has_relevant`` (bool).
        Metrics are NaN where ``has_relevant`` is False.

    Raises:
        InputError: the arrays differ in length or are empty, a label is negative, fractional or
            above :data:`MAX_LABEL`, a score is NaN, a query's rows are not contiguous, or a k or
            the threshold is out of range.
    """
    y, s, g = _check_arrays(labels, scores, groups)
    cutoffs = _check_ks(ks)
    threshold = _check_threshold(relevance_threshold)

    ranking = _rank(y, s, g)
    rank, starts = ranking.rank, ranking.starts
    relevant = (ranking.ranked >= threshold).astype(np.float64)
    n_relevant = np.add.reduceat(relevant, starts)
    has_relevant = n_relevant > 0
    # Excluded queries divide by zero here; their values are replaced by NaN below.
    with np.errstate(divide="ignore", invalid="ignore"):
        ndcg = {f"ndcg@{k}": _ndcg(ranking, k, "skip") for k in cutoffs}
        recall = {f"recall@{k}": _sum_top(relevant, rank, k, starts) / n_relevant for k in cutoffs}
        mrr = np.maximum.reduceat(relevant / rank, starts)
        relevant_so_far = np.cumsum(relevant)
        relevant_so_far -= np.repeat(relevant_so_far[starts] - relevant[starts], ranking.sizes)
        average_precision = np.add.reduceat(relevant * relevant_so_far / rank, starts) / n_relevant

    columns = {**ndcg, "mrr": mrr, "map": average_precision, **recall}
    frame = pd.DataFrame(
        {name: np.where(has_relevant, values, np.nan) for name, values in columns.items()},
        index=pd.Index(g[starts], name=QUERY_INDEX),
    )
    frame["n_candidates"] = ranking.sizes
    frame["n_relevant"] = n_relevant.astype(np.int64)
    frame["has_relevant"] = has_relevant
    return frame


def mean_metrics(per_query: pd.DataFrame) -> dict[str, float]:
    """Average a :func:`per_query_metrics` frame over the queries with a relevant candidate.

    Args:
        per_query: the output of :func:`per_query_metrics`, possibly filtered to fewer queries.

    Returns:
        The mean of every metric column over queries with ``has_relevant`` (NaN when there are
        none), plus ``queries`` (the number of all queries) and ``queries_without_relevant``.

    Raises:
        InputError: the frame lacks a ``has_relevant`` column.
    """
    if "has_relevant" not in per_query.columns:
        raise InputError(
            "per_query columns",
            list(per_query.columns),
            "expected the output of per_query_metrics, with a 'has_relevant' column",
        )
    has_relevant = per_query["has_relevant"].to_numpy(dtype=bool)
    metric_columns = [c for c in per_query.columns if c not in COUNT_COLUMNS]
    included = per_query.loc[has_relevant, metric_columns]
    means: dict[str, float] = {
        c: float(included[c].mean()) if len(included) else float("nan") for c in metric_columns
    }
    means["queries"] = len(per_query)
    means["queries_without_relevant"] = int((~has_relevant).sum())
    return means


def per_query_ndcg(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    *,
    grades: Grades = "integer",
) -> pd.DataFrame:
    """NDCG@k of every query: :func:`ndcg_at_k`'s per-query values, for statistics over
    queries (bootstrap intervals), on grades :func:`per_query_metrics` does not take.

    Args:
        labels: (n,) grades, as ``grades`` says (:data:`Grades`).
        scores: (n,) model scores, higher ranks first; NaN is not allowed.
        groups: (n,) query ids; the rows of one query must be contiguous.
        ks: the cut-offs, distinct positive integers.
        grades: ``"integer"`` for graded labels, ``"real"`` for real-valued grades.

    Returns:
        One row per query, indexed by query id (named :data:`QUERY_INDEX`) in order of first
        appearance, with the columns ``ndcg@{k}`` for each k, ``n_candidates`` and
        ``has_relevant`` (some candidate has a positive grade), NaN where that is False: a
        frame :func:`mean_metrics` averages. With integer labels, its NDCG is that of
        :func:`per_query_metrics` at the default threshold.

    Raises:
        InputError: as :func:`per_query_metrics` (a fractional label only with ``"integer"``),
            or ``grades`` is not a :data:`Grades`.
    """
    y, s, g = _check_arrays(labels, scores, groups, _check_grades(grades))
    cutoffs = _check_ks(ks)
    ranking = _rank(y, s, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndcg = {f"ndcg@{k}": _ndcg(ranking, k, "skip") for k in cutoffs}
    frame = pd.DataFrame(ndcg, index=pd.Index(g[ranking.starts], name=QUERY_INDEX))
    frame["n_candidates"] = ranking.sizes
    frame["has_relevant"] = np.maximum.reduceat(ranking.ranked, ranking.starts) > 0
    return frame


def ndcg_at_k(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    k: int,
    *,
    no_relevant: NoRelevant = "skip",
    grades: Grades = "integer",
) -> float:
    """Mean NDCG@k over queries: the one NDCG of searchrank (see the module docstring).

    Args:
        labels: (n,) graded relevance, as in :func:`per_query_metrics`.
        scores: (n,) model scores.
        groups: (n,) contiguous query ids.
        k: the cut-off, a positive integer.
        no_relevant: what a query without any relevant candidate (no positive grade) counts
            as (:data:`NoRelevant`); ``"skip"`` leaves it out, as every reported figure does.
        grades: ``"integer"`` for graded labels, ``"real"`` for real-valued grades
            (:data:`Grades`).

    Returns:
        The mean NDCG@k; with ``"skip"``, NaN when no query has a relevant candidate.

    Raises:
        InputError: as :func:`per_query_metrics` (a fractional label only with ``"integer"``),
            or ``no_relevant`` is not a :data:`NoRelevant` or ``grades`` not a :data:`Grades`.
    """
    if no_relevant not in NO_RELEVANT:
        raise InputError("no_relevant", no_relevant, f"must be one of {list(NO_RELEVANT)}")
    y, s, g = _check_arrays(labels, scores, groups, _check_grades(grades))
    (cutoff,) = _check_ks((k,))
    with np.errstate(divide="ignore", invalid="ignore"):
        per_query = _ndcg(_rank(y, s, g), cutoff, no_relevant)
    counted = per_query[~np.isnan(per_query)]
    return float(counted.mean()) if len(counted) else float("nan")


@dataclass(frozen=True)
class _Ranking:
    """Every query's rows in ranked order; arrays of shape (n,) unless said otherwise."""

    ranked: np.ndarray
    """Labels, by descending score within each query (ties in row order)."""
    rank: np.ndarray
    """The rank of each ranked row within its query, from 1."""
    gain: np.ndarray
    """Discounted gains ``(2^label − 1) / log2(rank + 1)`` of the ranked labels."""
    ideal_gain: np.ndarray
    """The same for the labels sorted best first: the ideal ranking."""
    starts: np.ndarray
    """(Q,) the first row of each query, queries in order of first appearance."""
    sizes: np.ndarray
    """(Q,) the rows of each query."""


def _rank(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> _Ranking:
    """Rank every query's candidates by score (checked arrays; see :func:`per_query_metrics`)."""
    bounds = search_bounds(groups, field="groups")
    starts, sizes = bounds[:-1], np.diff(bounds)
    query_of_row = np.repeat(np.arange(len(starts)), sizes)
    # Groups are contiguous, so sorting within queries keeps every query on its own rows and the
    # rank of sorted row p is its offset from the query's first row.
    rank = np.arange(1, len(labels) + 1) - np.repeat(starts, sizes)
    discount = 1.0 / np.log2(rank + 1.0)
    ranked = labels[_order_within_queries(scores, query_of_row)]
    ideal = labels[_order_within_queries(labels.astype(np.float64), query_of_row)]
    return _Ranking(
        ranked=ranked,
        rank=rank,
        gain=(np.exp2(ranked) - 1.0) * discount,
        ideal_gain=(np.exp2(ideal) - 1.0) * discount,
        starts=starts,
        sizes=sizes,
    )


def _ndcg(ranking: _Ranking, k: int, no_relevant: NoRelevant) -> np.ndarray:
    """(Q,) NDCG@k of every query; a query with an ideal DCG of 0 gets ``no_relevant``'s value.

    Call under ``np.errstate(divide="ignore", invalid="ignore")``: those queries divide by 0.
    """
    ideal = _sum_top(ranking.ideal_gain, ranking.rank, k, ranking.starts)
    ndcg = _sum_top(ranking.gain, ranking.rank, k, ranking.starts) / ideal
    fill = {"skip": np.nan, "one": 1.0, "zero": 0.0}[no_relevant]
    return np.where(ideal > 0, ndcg, fill)


def _sum_top(values: np.ndarray, rank: np.ndarray, k: int, starts: np.ndarray) -> np.ndarray:
    """Per-query sums of ``values`` (n,) over ranks 1..k; returns (queries,)."""
    return np.add.reduceat(np.where(rank <= k, values, 0.0), starts)


def _order_within_queries(key: np.ndarray, query_of_row: np.ndarray) -> np.ndarray:
    """Row order by query, then by descending ``key`` with ties in row order.

    Args:
        key: (n,) float sort key, higher first.
        query_of_row: (n,) non-decreasing query numbers.

    Returns:
        (n,) a permutation of the rows.
    """
    by_key = np.argsort(-key, kind="stable")
    return by_key[np.argsort(query_of_row[by_key], kind="stable")]


def _check_grades(grades: Grades) -> Grades:
    """Validate NDCG's ``grades`` parameter."""
    if grades not in GRADES:
        raise InputError("grades", grades, f"must be one of {list(GRADES)}")
    return grades


def _check_arrays(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, grades: Grades = "integer"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the three row arrays; returns labels (int64, or float64 with real ``grades``),
    scores (float64) and groups."""
    y = np.asarray(labels)
    s = np.asarray(scores)
    g = np.asarray(groups)
    for name, array in (("labels", y), ("scores", s), ("groups", g)):
        if array.ndim != 1:
            raise InputError(name, array.shape, "must be a one-dimensional array")
    if len(y) == 0:
        raise InputError("labels", y, "needs at least one row")
    for name, array in (("scores", s), ("groups", g)):
        if len(array) != len(y):
            raise InputError(
                name, len(array), f"must have one value per row of labels ({len(y)} rows)"
            )
    for name, array in (("labels", y), ("scores", s)):
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise InputError(name, str(array.dtype), "must be an integer or float array")
    integer = grades == "integer"
    bad_label = ~np.isfinite(y) | (y < 0) | (y > MAX_LABEL)
    if integer:
        bad_label |= y != np.floor(y)
    if bad_label.any():
        kind = "integers" if integer else "real numbers"
        raise InputError(
            "labels",
            y[bad_label][0],
            f"graded relevance labels must be {kind} from 0 to {MAX_LABEL}",
        )
    if np.isnan(s).any():
        raise InputError("scores", float("nan"), "scores must not be NaN")
    return y.astype(np.int64 if integer else np.float64), s.astype(np.float64), g


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validate the cut-offs: distinct positive integers."""
    cutoffs = tuple(ks)
    for k in cutoffs:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InputError("ks", k, "cut-offs must be positive integers")
    if len(set(cutoffs)) != len(cutoffs):
        raise InputError("ks", cutoffs, "cut-offs must be distinct")
    return tuple(int(k) for k in cutoffs)


def _check_threshold(relevance_threshold: int) -> int:
    """Validate the relevance threshold; 0 would call every candidate relevant."""
    if (
        isinstance(relevance_threshold, bool)
        or not isinstance(relevance_threshold, int | np.integer)
        or relevance_threshold < 1
    ):
        raise InputError(
            "relevance_threshold",
            relevance_threshold,
            "must be an integer of at least 1 (a label at or above it counts as relevant)",
        )
    return int(relevance_threshold)
