"""``experiment``: champion against challenger on simulated traffic, the way a search team decides.

Offline NDCG on logged clicks is not where a ranker ships. The decision is made online: an
interleaving test finds the better ranker fast, and an A/B test checks the success metric and
the guardrails. On synthetic data both can run without listeners, because the generator knows
how its listeners react to any ranking of their candidates
(:func:`searchrank.features.generator.environment.respond`).

The traffic is the test split's searches (a later period than training: held-out traffic), each
shown to the same listener again with the same candidates:

- **interleaving** (team-draft, :mod:`searchrank.core.interleaving`): every search sees one list
  merged from both rankers; the ranker whose items got more clicks wins the search;
- **A/B** (:mod:`searchrank.core.abtest`): each listener is assigned to one arm by a salted hash;
  the success metric is streams of at least 30 s per search, per listener, analysed with CUPED
  on the listener's streams per search before the experiment (the training split's logs), after
  a sample-ratio-mismatch check;
- **guardrails**, non-inferiority with stated margins: the explicit-leak rate, the zero-result
  rate and the model stage's p99 latency, timed here search by search for both arms;
- **the decision**: ship only without a sample-ratio mismatch, with a significant gain in the
  success metric and every guardrail passed;
- **sensitivity**: how many searches each method needs to detect the difference between these
  two rankers with the configured power, from a simulation where every search is shown both
  ways (the effect measured without assignment noise).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from searchrank.components.experiment.config import ExperimentConfig
from searchrank.core import abtest
from searchrank.core import schema as S
from searchrank.core.bootstrap import mean_intervals
from searchrank.core.content import filter_applies, is_withheld
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.interleaving import credit, interleave_many, interleaving_result
from searchrank.core.io import read_parquet_input
from searchrank.core.metrics import per_query_ndcg
from searchrank.core.scoring import Scorer, load_scorer
from searchrank.features import tables as T
from searchrank.features.generator.environment import (
    RELEVANCE,
    SAVE_SCALE,
    attach_ground_truth,
    load_ground_truth,
    respond,
)

SUCCESS_GRADE = int(S.Grade.STREAM)
"""A search succeeds with each stream of at least 30 s (label 2 or more)."""
CLICK_GRADE = int(S.Grade.CLICK)


@dataclass
class Traffic:
    """Held-out searches to simulate, rows of one search contiguous.

    Attributes:
        rows: the test rows with the ground truth's ``relevance`` and ``save_scale``.
        starts: (searches + 1,) row offsets of each search.
        user: (searches,) the listener of each search.
        applies: (searches,) whether the listener's explicit-content filter applies.
        explicit: (n,) each row's explicit flag (None where unknown), for the policy.
    """

    rows: pd.DataFrame
    starts: np.ndarray
    user: np.ndarray
    applies: np.ndarray
    explicit: np.ndarray

    @property
    def searches(self) -> int:
        return len(self.starts) - 1

    @property
    def search_of_row(self) -> np.ndarray:
        """(n,) each row's search as an index 0, 1, … into ``starts``."""
        return np.repeat(np.arange(self.searches), np.diff(self.starts))

    @property
    def hidden(self) -> np.ndarray:
        """(n,) rows the explicit-content policy withholds from their listener."""
        return is_withheld(self.explicit) & self.applies[self.search_of_row]


@dataclass
class Shown:
    """What one ranker (or the interleaving of two) shows every search.

    Attributes:
        lists: one array per search of row indices (into ``Traffic.rows``), top first, after
            the explicit-content policy and cut at the list length.
    """

    lists: list[np.ndarray]

    def positions(self, rows: int) -> np.ndarray:
        """(rows,) each row's position, -1 where it is not shown."""
        position = np.full(rows, -1, dtype=np.int64)
        lengths = np.array([len(shown) for shown in self.lists], dtype=np.int64)
        if lengths.sum():
            first = np.repeat(np.cumsum(lengths) - lengths, lengths)
            position[np.concatenate(self.lists)] = np.arange(lengths.sum()) - first
        return position


@dataclass(frozen=True)
class ArmOutcome:
    """Per-listener values of one arm of the A/B test, listeners in a fixed order."""

    users: np.ndarray
    success: np.ndarray
    """Streams of at least 30 s per search."""
    leak_rate: np.ndarray
    """Items a filtered listener must not see, per item shown to them (0 without a filter)."""
    zero_result: np.ndarray
    """Share of the listener's searches that showed nothing."""
    searches: np.ndarray


@dataclass
class ExperimentReport:
    """Everything the experiment measured, and the decision."""

    champion: str
    challenger: str
    searches: int
    users: int
    true_ndcg: dict[str, dict[str, float]]
    """Each model's NDCG@10 against the true grades on these searches: mean, low, high."""
    interleaving: dict[str, Any]
    ab: dict[str, Any]
    srm: dict[str, Any]
    guardrails: list[dict[str, Any]]
    decision: dict[str, Any]
    sensitivity: dict[str, Any]
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    """The model stage's milliseconds per search, by model name."""
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """Scalars for the KFP metrics artifact."""
        return {
            "interleaving_preference": float(self.interleaving["preference"]),
            "ab_relative_effect": float(self.ab["relative"]),
            "ab_p_value": float(self.ab["p_value"]),
            "sessions_interleaving": float(self.sensitivity["sessions_interleaving"]),
            "sessions_ab": float(self.sensitivity["sessions_ab"]),
            "ship": float(self.decision["ship"]),
        }


# -- traffic and what each ranker shows ---------------------------------------------------------


def prepare_traffic(test: pd.DataFrame, truth: pd.DataFrame) -> Traffic:
    """The test rows joined to their ground truth, with the content policy's inputs.

    Raises:
        InputError: a test row has no ground truth (the truth is from another data folder).
    """
    joined = attach_ground_truth(test, truth, (RELEVANCE, SAVE_SCALE, S.TRUE_GRADE))
    starts = S.search_bounds(joined[S.SEARCH_ID].to_numpy())
    first = starts[:-1]
    setting = (
        joined[T.EXPLICIT_FILTER_COLUMN].to_numpy(dtype=object)[first]
        if T.EXPLICIT_FILTER_COLUMN in joined.columns
        else np.full(len(first), None, dtype=object)
    )
    explicit = (
        joined[T.EXPLICIT_COLUMN].to_numpy(dtype=object)
        if T.EXPLICIT_COLUMN in joined.columns
        else np.full(len(joined), False, dtype=object)
    )
    return Traffic(
        rows=joined,
        starts=starts,
        user=joined[S.USER_ID].to_numpy()[first],
        applies=np.array([filter_applies(None, s) for s in setting], dtype=bool),
        explicit=explicit,
    )


def ranked_lists(traffic: Traffic, scores: np.ndarray, cutoff: int | None) -> Shown:
    """Each search's candidates by descending score (stable), after the explicit-content policy
    (:func:`~searchrank.core.content.visible`), cut at ``cutoff`` (None: the whole list)."""
    search = traffic.search_of_row
    order = np.lexsort((-np.asarray(scores, dtype=np.float64), search))
    order = order[~traffic.hidden[order]]
    kept = np.bincount(search[order], minlength=traffic.searches)
    rank = np.arange(len(order)) - np.repeat(np.cumsum(kept) - kept, kept)
    if cutoff is not None:
        order, kept = order[rank < cutoff], np.minimum(kept, cutoff)
    return Shown(np.split(order, np.cumsum(kept)[:-1]))


def interleaved(a: Shown, b: Shown, cutoff: int, seed: int) -> tuple[Shown, list[np.ndarray]]:
    """Team-draft interleaving of two rankers' full visible lists, cut at ``cutoff``.

    Returns:
        (the merged lists, each search's team per shown position: 0 champion, 1 challenger).
    """
    merged = interleave_many(a.lists, b.lists, seed=seed, length=cutoff)
    return Shown([items for items, _ in merged]), [teams for _, teams in merged]


def search_credits(teams: list[np.ndarray], merged: Shown, labels: np.ndarray) -> np.ndarray:
    """Each interleaved search's credit from its clicks: +1 challenger, -1 champion, 0 tie."""
    return np.array(
        [
            credit(t, labels[rows] >= CLICK_GRADE)
            for t, rows in zip(teams, merged.lists, strict=True)
        ]
    )


def react(traffic: Traffic, shown: Shown, seed: int) -> np.ndarray:
    """The simulated listeners' labels for what ``shown`` shows, (n,), 0 where not shown."""
    return respond(traffic.rows, shown.positions(len(traffic.rows)), seed)


# -- the A/B test's per-listener values ----------------------------------------------------------


def arm_outcome(
    traffic: Traffic, shown: Shown, labels: np.ndarray, searches: np.ndarray
) -> ArmOutcome:
    """Per-listener success, leak and zero-result rates over the given searches."""
    search = traffic.search_of_row
    shown_row = shown.positions(len(traffic.rows)) >= 0

    def per_search_sum(mask: np.ndarray) -> np.ndarray:
        return np.bincount(search[mask & shown_row], minlength=traffic.searches)[searches]

    per_search = pd.DataFrame(
        {
            "user": traffic.user[searches],
            "success": per_search_sum(labels >= SUCCESS_GRADE),
            "shown": per_search_sum(np.ones(len(search), dtype=bool)),
            "leaked": per_search_sum(traffic.hidden),
        }
    )
    per_search["empty"] = per_search["shown"] == 0
    per_user = per_search.groupby("user", sort=True).agg(
        success=("success", "mean"),
        leaked=("leaked", "sum"),
        shown=("shown", "sum"),
        zero_result=("empty", "mean"),
        searches=("success", "size"),
    )
    return ArmOutcome(
        users=per_user.index.to_numpy(),
        success=per_user["success"].to_numpy(dtype=np.float64),
        leak_rate=(per_user["leaked"] / per_user["shown"].clip(lower=1)).to_numpy(np.float64),
        zero_result=per_user["zero_result"].to_numpy(dtype=np.float64),
        searches=per_user["searches"].to_numpy(dtype=np.int64),
    )


def pre_period_success(pre: pd.DataFrame | None, users: np.ndarray) -> np.ndarray | None:
    """Each listener's streams of at least 30 s per search before the experiment (NaN for
    listeners without searches then), the CUPED covariate; None without a pre-period."""
    if pre is None:
        return None
    per_search = (
        (pre[S.LABEL] >= SUCCESS_GRADE)
        .groupby([pre[S.USER_ID], pre[S.SEARCH_ID]], sort=False)
        .sum()
    )
    per_user = per_search.groupby(level=0).mean()
    return per_user.reindex(users).to_numpy(dtype=np.float64)


def check_power(traffic: Traffic, config: ExperimentConfig) -> int:
    """Refuse to run an A/B test that cannot detect the configured effect.

    The logged labels of the held-out searches (shown by the old ranker) give the success
    metric's per-listener mean and spread before anything is simulated.

    Returns:
        The number of listeners the configured power needs.

    Raises:
        InputError: fewer listeners than that.
    """
    labels = traffic.rows[S.LABEL].to_numpy()
    searches = np.arange(traffic.searches)
    logged = Shown([np.arange(traffic.starts[q], traffic.starts[q + 1]) for q in searches])
    outcome = arm_outcome(traffic, logged, labels, searches)
    effect = config.minimum_detectable_effect * float(outcome.success.mean())
    sd = float(outcome.success.std(ddof=1)) if len(outcome.users) > 1 else 0.0
    if effect <= 0:
        raise InputError(
            "test", "no successful searches", "the held-out searches have no stream to improve on"
        )
    needed = abtest.sessions_to_detect(
        effect, sd, alpha=1 - config.confidence, power=config.power, arms=2
    )
    if len(outcome.users) < needed:
        raise InputError(
            "sessions",
            f"{len(outcome.users)} listeners ({traffic.searches} searches)",
            f"an A/B test needs at least {needed} listeners to detect a "
            f"{config.minimum_detectable_effect:.0%} change of streams per search with power "
            f"{config.power:.0%}; use more held-out searches or a larger minimum_detectable_effect",
        )
    return needed


# -- latency of the model stage -----------------------------------------------------------------


def model_latencies(
    traffic: Traffic, scorers: tuple[Scorer, Scorer], searches: int
) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds to score one search's candidates, for each arm, on the same searches.

    The arms take turns search by search, so that the machine's drift (other load, caches)
    falls on both alike.
    """
    picked = np.linspace(0, traffic.searches - 1, min(searches, traffic.searches)).astype(int)
    timings: tuple[list[float], list[float]] = ([], [])
    for q in picked:
        rows = traffic.rows.iloc[int(traffic.starts[q]) : int(traffic.starts[q + 1])]
        for arm, scorer in enumerate(scorers):
            started = time.perf_counter()
            scorer(rows)
            timings[arm].append((time.perf_counter() - started) * 1000.0)
    return np.asarray(timings[0]), np.asarray(timings[1])


# -- the experiment ----------------------------------------------------------------------------


def check_contracts(champion: Path, challenger: Path) -> FeatureContract:
    """Both models must read the same features: the same contract, the same schema.

    Raises:
        InputError: either model lacks its contract, or the two contracts differ.
    """
    contracts = []
    for name, folder in (("champion", champion), ("challenger", challenger)):
        try:
            contracts.append(FeatureContract.load(folder))
        except InputError as error:
            raise InputError(
                name, str(folder), f"must hold its feature contract ({error})"
            ) from error
    first, second = contracts
    if first.schema_hash != second.schema_hash:
        raise InputError(
            "challenger",
            f"{second.feature_service} (schema {second.schema_hash})",
            f"reads other features than the champion's {first.feature_service} (schema "
            f"{first.schema_hash}); an experiment compares rankers on the same traffic and "
            "the same features",
        )
    return first


def run_experiment(
    test_path: Path,
    ground_truth_path: Path,
    champion: Path,
    challenger: Path,
    config: ExperimentConfig,
    *,
    pre_period_path: Path | None = None,
    names: tuple[str, str] = ("champion", "challenger"),
) -> ExperimentReport:
    """Run interleaving and an A/B test of ``challenger`` against ``champion`` on the test
    split's searches, check the guardrails, decide, and size both methods.

    Args:
        test_path: the test split (held-out searches, with features).
        ground_truth_path: the generator's ``ground_truth.parquet`` (or its data folder).
        champion: the model folder in production (a ranker checkpoint or LightGBM baseline).
        challenger: the model folder that wants to replace it.
        config: list length, A/B split, margins, power and seed.
        pre_period_path: rows before the experiment (the training split), for CUPED.
        names: how the report calls the two models.

    Raises:
        InputError: the models read different features, the test split has no ground truth,
            or too few listeners for the configured power; all before anything is simulated.
    """
    check_contracts(champion, challenger)
    test = read_parquet_input(test_path, "test")
    if test.empty:
        raise InputError("test", str(test_path), "the test split must have rows")
    traffic = prepare_traffic(test, load_ground_truth(ground_truth_path))
    needed_users = check_power(traffic, config)
    pre = read_parquet_input(pre_period_path, "pre_period") if pre_period_path else None
    scorers = (load_scorer(champion), load_scorer(challenger))
    report = simulate_experiment(traffic, scorers, config, pre, names)
    report.sensitivity["users_needed_for_configured_effect"] = needed_users
    return report


def simulate_experiment(
    traffic: Traffic,
    scorers: tuple[Scorer, Scorer],
    config: ExperimentConfig,
    pre: pd.DataFrame | None = None,
    names: tuple[str, str] = ("champion", "challenger"),
) -> ExperimentReport:
    """:func:`run_experiment` on prepared traffic with two scorers (any function of rows: a
    loaded model, or a baseline such as BM25), without the checks that precede it."""
    scores = [scorer(traffic.rows) for scorer in scorers]
    full = [ranked_lists(traffic, s, None) for s in scores]
    top = [ranked_lists(traffic, s, config.cutoff) for s in scores]

    # Interleaving: every search sees one merged list.
    merged, teams = interleaved(full[0], full[1], config.cutoff, config.seed)
    preference = interleaving_result(
        search_credits(teams, merged, react(traffic, merged, config.seed)), config.confidence
    )

    # A/B: each listener sees one arm.
    treated = abtest.assign_arms(traffic.user, config.salt, config.treatment_share)
    searches = np.arange(traffic.searches)
    ab_labels = [react(traffic, top[arm], config.seed + 1 + arm) for arm in (0, 1)]
    arms = [
        arm_outcome(traffic, top[arm], ab_labels[arm], searches[treated == bool(arm)])
        for arm in (0, 1)
    ]
    srm = abtest.srm_check(len(arms[0].users), len(arms[1].users), config.treatment_share)
    covariates = [pre_period_success(pre, arm.users) for arm in arms]
    effect = abtest.ab_test(
        arms[0].success, arms[1].success, covariates[0], covariates[1], config.confidence
    )
    latency = model_latencies(traffic, scorers, config.latency_searches)
    guardrails = [
        abtest.non_inferiority(
            arms[0].leak_rate,
            arms[1].leak_rate,
            config.leak_margin,
            "explicit-leak rate",
            config.confidence,
        ),
        abtest.non_inferiority(
            arms[0].zero_result,
            arms[1].zero_result,
            config.zero_result_margin,
            "zero-result rate",
            config.confidence,
        ),
        abtest.quantile_non_inferiority(
            latency[0],
            latency[1],
            margin_ms=config.latency_margin_ms,
            name="p99 latency of the model stage (ms)",
            seed=config.seed,
            confidence=config.confidence,
        ),
    ]
    decision = abtest.decide(effect, guardrails, srm)
    sensitivity = measure_sensitivity(traffic, full, top, pre, config)
    return ExperimentReport(
        champion=names[0],
        challenger=names[1],
        searches=traffic.searches,
        users=len(np.unique(traffic.user)),
        true_ndcg=true_ndcg(traffic, dict(zip(names, scores, strict=True)), config),
        interleaving=preference.as_dict(),
        ab={**effect.as_dict(), "metric": "streams of at least 30 s per search, per listener"},
        srm=srm.as_dict(),
        guardrails=[g.as_dict() for g in guardrails],
        decision={"ship": decision.ship, "verdict": decision.verdict, "reasons": decision.reasons},
        sensitivity=sensitivity,
        latency_ms={name: values.tolist() for name, values in zip(names, latency, strict=True)},
        config=config.as_dict(),
    )


def true_ndcg(
    traffic: Traffic, scores: dict[str, np.ndarray], config: ExperimentConfig
) -> dict[str, dict[str, float]]:
    """NDCG@10 of each model's full ranking against the true grades, with bootstrap intervals
    over searches (the same resamples for every model)."""
    rows = traffic.rows
    groups, grades = rows[S.SEARCH_ID].to_numpy(), rows[S.TRUE_GRADE].to_numpy()
    per_query = np.stack(
        [
            per_query_ndcg(grades, values, groups, (10,), grades="real")["ndcg@10"].to_numpy()
            for values in scores.values()
        ]
    )
    per_query = per_query[:, ~np.isnan(per_query).any(axis=0)]
    low, high = mean_intervals(per_query, seed=config.seed, confidence=config.confidence)
    return {
        name: {"mean": float(per_query[i].mean()), "low": float(low[i]), "high": float(high[i])}
        for i, name in enumerate(scores)
    }


def measure_sensitivity(
    traffic: Traffic,
    full: list[Shown],
    top: list[Shown],
    pre: pd.DataFrame | None,
    config: ExperimentConfig,
) -> dict[str, Any]:
    """Searches each method needs to detect this pair's difference at the configured power.

    Both effects are measured on ``config.sensitivity_replicates`` fresh simulations of the same
    searches, so that the size of the difference is known better than one experiment knows it;
    the spread that sets the sample size is that of one search (interleaving) or one listener
    (A/B), as a single experiment meets it.

    Interleaving: a one-sample test of the per-search credit. A/B: every search is shown both
    ways (a counterfactual simulation, free of assignment noise) to measure the true per-listener
    effect; its spread between listeners (after CUPED when a pre-period is given) sets the
    listeners needed, converted to searches by the mean searches per listener.
    """
    alpha = 1 - config.confidence
    replicates = range(config.sensitivity_replicates)
    credits = []
    for r in replicates:
        merged, teams = interleaved(full[0], full[1], config.cutoff, config.seed + 100 + r)
        labels = react(traffic, merged, config.seed + 100 + r)
        credits.append(search_credits(teams, merged, labels))
    pooled = np.concatenate(credits)
    mean_credit = float(pooled.mean())
    sessions_interleaving = (
        abtest.sessions_to_detect(
            mean_credit, float(pooled.std(ddof=1)), alpha=alpha, power=config.power, arms=1
        )
        if mean_credit != 0
        else None
    )
    searches = np.arange(traffic.searches)
    draws = [
        [
            arm_outcome(
                traffic,
                top[arm],
                react(traffic, top[arm], config.seed + 200 + 2 * r + arm),
                searches,
            )
            for arm in (0, 1)
        ]
        for r in replicates
    ]
    difference = float(np.mean([(b.success - a.success).mean() for a, b in draws]))
    both = draws[0]
    values = np.concatenate([both[0].success, both[1].success])
    covariate = pre_period_success(pre, both[0].users)
    if covariate is not None:
        adjusted, _ = abtest.cuped_adjust(values, np.concatenate([covariate, covariate]))
        spread = float(adjusted.std(ddof=1))
    else:
        spread = float(values.std(ddof=1))
    searches_per_user = float(both[0].searches.mean())
    users_ab = (
        abtest.sessions_to_detect(difference, spread, alpha=alpha, power=config.power, arms=2)
        if difference != 0
        else None
    )
    sessions_ab = round(users_ab * searches_per_user) if users_ab is not None else None
    ratio = (
        sessions_ab / sessions_interleaving
        if sessions_ab is not None and sessions_interleaving
        else None
    )
    return {
        "sessions_interleaving": sessions_interleaving,
        "sessions_ab": sessions_ab,
        "ab_over_interleaving": ratio,
        "true_success_difference": difference,
        "true_relative_effect": difference / float(both[0].success.mean()),
        "mean_credit": mean_credit,
        "replicates": config.sensitivity_replicates,
        "searches_per_listener": searches_per_user,
    }


def write_report_json(report: ExperimentReport, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=2, default=str))
