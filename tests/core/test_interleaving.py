"""Team-draft interleaving: the draft rule on random rankings, fairness under position-biased
clicks, detecting the better ranker, per-query credit and the summary of many queries."""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import pytest

from searchrank.core.errors import InputError
from searchrank.core.interleaving import (
    TEAM_A,
    TEAM_B,
    credit,
    interleave_many,
    interleaving_result,
    team_draft,
)

ITEMS = 10
ATTRACTION = 0.6 * 0.7 ** np.arange(ITEMS)
"""Click probability of item i when examined: item 0 is the most relevant, item 9 the least."""
EXAMINATION = 1.0 / (1.0 + np.arange(ITEMS))
"""Probability that a user looks at position p: the top is seen, the tail rarely (position bias)."""


def _clicks(items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Clicks on a shown list under the position-biased model, which ignores the teams."""
    return rng.random(len(items)) < EXAMINATION[: len(items)] * ATTRACTION[items]


def _experiment(
    rankings_a: list[np.ndarray], rankings_b: list[np.ndarray], seed: int
) -> np.ndarray:
    """Interleave every query and return its credit under the click model."""
    rng = np.random.default_rng(seed + 1)
    return np.array(
        [
            credit(teams, _clicks(items, rng))
            for items, teams in interleave_many(rankings_a, rankings_b, seed)
        ]
    )


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_each_pick_is_its_teams_best_item_not_yet_shown() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 16))
        ranking_a = rng.choice(1000, size=n, replace=False)  # arbitrary item ids, not 0..n-1
        ranking_b = rng.permutation(ranking_a)
        items, teams = team_draft(ranking_a, ranking_b, rng)

        assert sorted(items.tolist()) == sorted(ranking_a.tolist())
        assert items[0] in (ranking_a[0], ranking_b[0])
        picks_b = np.cumsum(teams == TEAM_B)
        picks_a = np.arange(1, n + 1) - picks_b
        assert np.abs(picks_a - picks_b).max() <= 1
        for position, (item, team) in enumerate(zip(items, teams, strict=True)):
            own = ranking_a if team == TEAM_A else ranking_b
            best_left = next(i for i in own if i not in set(items[:position].tolist()))
            assert item == best_left


def test_the_coin_decides_who_picks_first() -> None:
    ranking_a, ranking_b = np.arange(ITEMS), np.arange(ITEMS)[::-1]
    rng = np.random.default_rng(1)
    firsts = [team_draft(ranking_a, ranking_b, rng)[1][0] for _ in range(1000)]
    # A fair coin: the share of B is 0.5 ± 0.016 (one sd), so ±0.06 is almost 4 sd.
    assert abs(np.mean(firsts) - 0.5) < 0.06


def test_length_cuts_the_list_without_changing_its_top() -> None:
    rng = np.random.default_rng(2)
    ranking_a, ranking_b = rng.permutation(ITEMS), rng.permutation(ITEMS)
    full_items, full_teams = team_draft(ranking_a, ranking_b, np.random.default_rng(7))
    items, teams = team_draft(ranking_a, ranking_b, np.random.default_rng(7), length=3)
    assert items.tolist() == full_items[:3].tolist()
    assert teams.tolist() == full_teams[:3].tolist()
    assert len(team_draft(ranking_a, ranking_b, rng, length=50)[0]) == ITEMS


def test_interleave_many_is_reproducible_from_its_seed() -> None:
    rng = np.random.default_rng(3)
    rankings_a = [rng.permutation(ITEMS) for _ in range(50)]
    rankings_b = [rng.permutation(ITEMS) for _ in range(50)]
    first = interleave_many(rankings_a, rankings_b, seed=5)
    again = interleave_many(rankings_a, rankings_b, seed=5)
    other = interleave_many(rankings_a, rankings_b, seed=6)
    teams = [t.tolist() for _, t in first]
    assert teams == [t.tolist() for _, t in again]
    assert teams != [t.tolist() for _, t in other]


def test_identical_rankings_show_no_preference_despite_position_bias() -> None:
    # Both teams have the same items near the top up to one, so clicks that favour the top
    # favour neither team. A draft in which A always picked first would give A the top item of
    # every query and a preference far below 0.
    rng = np.random.default_rng(4)
    rankings = [rng.permutation(ITEMS) for _ in range(10_000)]
    result = interleaving_result(_experiment(rankings, rankings, seed=4))

    # The credit's sd is below 1, so the standard error is below 0.01: 0.04 is over 4 of them,
    # and p > 0.001 fails one seed in a thousand when there is no preference.
    assert abs(result.preference) < 0.04
    assert result.p_value > 0.001
    assert result.preference_low < 0.0 < result.preference_high


def test_the_ranking_by_relevance_beats_its_reverse() -> None:
    by_relevance = [np.arange(ITEMS)] * 2000
    reversed_ = [np.arange(ITEMS)[::-1]] * 2000

    b_better = interleaving_result(_experiment(reversed_, by_relevance, seed=5))
    assert b_better.preference_low > 0.0
    assert b_better.p_value < 0.01
    assert b_better.wins_b > 2 * b_better.wins_a

    a_better = interleaving_result(_experiment(by_relevance, reversed_, seed=6))
    assert a_better.preference_high < 0.0
    assert a_better.p_value < 0.01


@pytest.mark.parametrize(
    ("teams", "clicked", "expected"),
    [
        ([0, 1, 0, 1], [False, True, False, False], 1),
        ([0, 1, 0, 1], [True, False, True, True], -1),
        ([0, 1, 0, 1], [True, True, False, False], 0),
        ([1, 0, 1], [False, False, False], 0),
        ([1, 0, 1], [1, 0, 1], 1),
    ],
)
def test_credit_goes_to_the_team_with_more_clicks(
    teams: list[int], clicked: list[bool], expected: int
) -> None:
    assert credit(np.array(teams), np.array(clicked)) == expected


def test_result_of_known_credits() -> None:
    credits = np.array([1, 1, -1, 0])
    result = interleaving_result(credits)

    assert (result.queries, result.wins_b, result.wins_a, result.ties) == (4, 2, 1, 1)
    assert result.preference == 0.25
    assert result.win_rate == 0.625
    standard_error = math.sqrt(2.75 / 3) / 2  # sample sd of the credits over √4
    z = NormalDist().inv_cdf(0.975)
    assert result.preference_low == pytest.approx(0.25 - z * standard_error, rel=1e-12)
    assert result.preference_high == 1.0  # 0.25 + 0.94 clipped to the largest preference
    p_value = 2.0 * (1.0 - NormalDist().cdf(0.25 / standard_error))
    assert result.p_value == pytest.approx(p_value, rel=1e-12)
    assert result.as_dict()["win_rate"] == 0.625


def test_result_when_every_credit_is_the_same() -> None:
    ties = interleaving_result(np.zeros(20, dtype=int))
    assert (ties.preference, ties.preference_low, ties.preference_high) == (0.0, 0.0, 0.0)
    assert ties.p_value == 1.0
    assert interleaving_result(np.ones(20, dtype=int)).p_value == 0.0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: team_draft(np.array([0, 1, 2]), np.array([0, 1, 3]), _rng()), "ranking_b"),
        (lambda: team_draft(np.array([0, 0, 1]), np.array([0, 0, 1]), _rng()), "ranking_a"),
        (lambda: team_draft(np.array([0.0, 1.0]), np.array([1, 0]), _rng()), "ranking_a"),
        (lambda: team_draft(np.array([0, 1]), np.array([1, 0]), _rng(), length=0), "length"),
        (lambda: interleave_many([np.arange(3)], [], seed=0), "rankings_b"),
        (lambda: credit(np.array([0, 2]), np.array([True, False])), "teams"),
        (lambda: credit(np.array([0, 1]), np.array([True])), "clicked"),
        (lambda: interleaving_result(np.array([1, 2, 0])), "credits"),
        (lambda: interleaving_result(np.array([1])), "credits"),
        (lambda: interleaving_result(np.array([1, 0]), confidence=1.0), "confidence"),
    ],
)
def test_bad_input_names_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InputError) as error:
        call()
    assert error.value.field == field
