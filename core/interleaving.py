"""Team-draft interleaving: which of two rankers do users prefer, from the clicks on one list?

An A/B test shows each user one ranker and compares the two groups, so the difference between
rankers has to stand out from the difference between users. Interleaving shows every query one
merged list built from both rankings and credits each click to the ranker that contributed the
clicked item: the comparison is made within the query, which typically needs one to two orders of
magnitude fewer queries than an A/B test for the same ranking change (Chapelle et al. 2012).

Team-draft interleaving (Radlinski, Kurup & Joachims 2008) merges the rankings like two captains
picking teams: the team with fewer picks so far picks next, a coin flip decides on equal counts,
and the picking team adds its highest-ranked item not yet shown. Each team then has the same
number of items near the top up to one, so a click model that ignores teams (position bias
included) favours neither: only a better ranking earns more clicks.

:func:`credit` turns a query's clicks into its outcome (+1 B won, −1 A won, 0 tie) and
:func:`interleaving_result` summarizes the outcomes of many queries. Sizing such an experiment
is :func:`searchrank.core.abtest.sessions_to_detect` with ``arms=1``: the per-query credit is a
one-sample test.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from searchrank.core.errors import InputError

TEAM_A = 0
"""The team of a shown position contributed by ranking A, as :func:`team_draft` returns it."""
TEAM_B = 1
"""The team of a shown position contributed by ranking B."""


def team_draft(
    ranking_a: np.ndarray,
    ranking_b: np.ndarray,
    rng: np.random.Generator,
    length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two rankings of the same candidates by team-draft interleaving.

    Args:
        ranking_a: (n,) item indices (integers) ranked by A, best first, each item once.
        ranking_b: (n,) the same items ranked by B.
        rng: the source of the coin flips; one flip is drawn per pair of picks.
        length: the number of positions to show, at least 1; default (and at most) ``n``.

    Returns:
        (items, teams): two (length,) int64 arrays, the merged list top first and the team that
        contributed each position, :data:`TEAM_A` (0) or :data:`TEAM_B` (1).

    Raises:
        InputError: a ranking is not a 1-D integer array, the two are not permutations of the
            same set of distinct items, or length is not a positive integer.
    """
    items_a = _check_ranking("ranking_a", ranking_a)
    items_b = _check_ranking("ranking_b", ranking_b)
    if len(set(items_a)) != len(items_a):
        raise InputError("ranking_a", ranking_a, "must list each item once")
    if sorted(items_b) != sorted(items_a):
        raise InputError("ranking_b", ranking_b, "must rank exactly the items of ranking_a")
    if length is None:
        length = len(items_a)
    elif isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise InputError("length", length, "must be a positive integer (or None for all items)")
    length = min(int(length), len(items_a))

    # The team with fewer picks picks next, so the counts are equal exactly before picks 0, 2,
    # 4, …: there the flip's winner picks, and the other team picks right after. One flip per
    # pair of picks, drawn at once. Plain Python in the loop: a query has tens of items, where
    # numpy's per-call overhead would dominate (interleave_many runs this for every query).
    winners = (rng.random((length + 1) // 2) < 0.5).tolist()  # True: B wins the pair's flip
    rankings = (items_a, items_b)
    next_rank = [0, 0]
    shown: set[int] = set()
    items: list[int] = []
    teams: list[int] = []
    for pick in range(length):
        team = int(winners[pick // 2]) ^ (pick % 2)  # the winner on even picks, else the other
        ranking = rankings[team]
        rank = next_rank[team]
        # The other team may already have shown this team's best items: skip past them.
        while ranking[rank] in shown:
            rank += 1
        next_rank[team] = rank + 1
        shown.add(ranking[rank])
        items.append(ranking[rank])
        teams.append(team)
    return np.array(items, dtype=np.int64), np.array(teams, dtype=np.int64)


def interleave_many(
    rankings_a: list[np.ndarray],
    rankings_b: list[np.ndarray],
    seed: int,
    length: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`team_draft` for many queries, reproducible from one seed.

    Args:
        rankings_a: one (n_q,) ranking by A per query.
        rankings_b: the rankings by B of the same queries, in the same order.
        seed: the seed of the coin flips of all queries.
        length: as in :func:`team_draft`, the same for every query.

    Returns:
        One (items, teams) pair per query, as :func:`team_draft` returns it.

    Raises:
        InputError: the lists differ in length, or as :func:`team_draft` for a query.
    """
    if len(rankings_b) != len(rankings_a):
        raise InputError(
            "rankings_b",
            len(rankings_b),
            f"must hold one ranking per query of rankings_a ({len(rankings_a)} queries)",
        )
    rng = np.random.default_rng(seed)
    return [team_draft(a, b, rng, length) for a, b in zip(rankings_a, rankings_b, strict=True)]


def credit(teams: np.ndarray, clicked: np.ndarray) -> int:
    """The outcome of one interleaved query from the clicks on its merged list.

    Args:
        teams: (length,) the team of each shown position, as :func:`team_draft` returns it.
        clicked: (length,) bool (or 0/1), whether the position was clicked.

    Returns:
        +1 when team B's items got more clicks, −1 when team A's did, 0 on a tie (no clicks
        included).

    Raises:
        InputError: teams holds a value other than 0 or 1, or the arrays differ in shape.
    """
    team_of = np.asarray(teams)
    clicks = np.asarray(clicked)
    if team_of.ndim != 1 or not np.isin(team_of, (TEAM_A, TEAM_B)).all():
        raise InputError("teams", teams, "must be a 1-D array of teams, 0 (A) or 1 (B)")
    if clicks.shape != team_of.shape:
        raise InputError(
            "clicked", clicks.shape, f"must hold one flag per position {team_of.shape}"
        )
    clicked_teams = team_of[clicks.astype(bool)]
    return int(np.sign(np.sum(clicked_teams == TEAM_B) - np.sum(clicked_teams == TEAM_A)))


@dataclass(frozen=True)
class InterleavingResult:
    """The outcome of :func:`interleaving_result` over many interleaved queries."""

    queries: int
    wins_a: int
    wins_b: int
    ties: int
    preference: float
    """The mean per-query credit, in [−1, 1]: ``(wins_b − wins_a) / queries``. Positive means
    users prefer B; 0.02 means B wins two more queries in a hundred than A does."""
    preference_low: float
    """The interval of ``preference`` from the normal approximation on the per-query credits
    (mean ± z·sd/√queries), clipped to [−1, 1]; as is ``preference_high``."""
    preference_high: float
    p_value: float
    """Two-sided, of no preference (a mean credit of 0), from the same normal approximation;
    when every credit is the same it is 1 if they are 0 and 0 otherwise."""
    confidence: float

    @property
    def win_rate(self) -> float:
        """The share of queries B wins, counting a tie as half a win: 0.5 is no preference."""
        return (self.wins_b + self.ties / 2.0) / self.queries

    def as_dict(self) -> dict[str, float]:
        """The fields and :attr:`win_rate` by name, for logging and reports."""
        return {**dataclasses.asdict(self), "win_rate": self.win_rate}


def interleaving_result(credits: np.ndarray, confidence: float = 0.95) -> InterleavingResult:
    """Summarize per-query credits: counts, the preference for B, its interval and p-value.

    The credits are bounded, so their mean is close to normal after a few hundred queries: the
    normal approximation gives the interval and p-value in closed form, the same model as
    :func:`searchrank.core.abtest.sessions_to_detect` with ``arms=1`` sizes the experiment on.

    Args:
        credits: (queries,) per-query outcomes from :func:`credit`, each −1, 0 or +1; at least 2.
        confidence: the coverage of the interval, strictly between 0 and 1.

    Returns:
        The :class:`InterleavingResult`.

    Raises:
        InputError: credits is not a 1-D array of −1, 0 and +1 with at least 2 queries, or
            confidence is out of range.
    """
    values = np.asarray(credits)
    if values.ndim != 1 or not np.isin(values, (-1, 0, 1)).all():
        raise InputError("credits", credits, "must be a 1-D array of per-query credits −1, 0, +1")
    if len(values) < 2:
        raise InputError("credits", len(values), "needs at least 2 queries to estimate a spread")
    if not 0.0 < confidence < 1.0:
        raise InputError("confidence", confidence, "must lie strictly between 0 and 1")

    queries = len(values)
    preference = float(values.mean())
    standard_error = float(values.std(ddof=1)) / math.sqrt(queries)
    half_width = NormalDist().inv_cdf((1.0 + confidence) / 2.0) * standard_error
    if standard_error > 0.0:
        # erfc gives 2·(1 − Φ(|z|)) without the cancellation of 1 − Φ for large |z|.
        p_value = math.erfc(abs(preference) / standard_error / math.sqrt(2.0))
    else:
        p_value = 1.0 if preference == 0.0 else 0.0
    return InterleavingResult(
        queries=queries,
        wins_a=int(np.sum(values == -1)),
        wins_b=int(np.sum(values == 1)),
        ties=int(np.sum(values == 0)),
        preference=preference,
        preference_low=max(-1.0, preference - half_width),
        preference_high=min(1.0, preference + half_width),
        p_value=p_value,
        confidence=float(confidence),
    )


def _check_ranking(name: str, ranking: np.ndarray) -> list[int]:
    """Validate one ranking; returns its items as a list of Python ints (the merge loop's type)."""
    array = np.asarray(ranking)
    # dtype.kind rather than np.issubdtype: this runs twice per query, and is ten times faster.
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InputError(name, ranking, "must be a 1-D integer array of item indices")
    items: list[int] = array.tolist()
    return items
