"""``evaluate``: ranking quality of a candidate against its baselines, by slice, with
confidence intervals, and the decision to bless it or not.

Convention for searches without any relevant candidate (no label at or above the relevance
threshold): they carry no information about ordering, so they are excluded from every mean, for
every system alike, and counted (``queries_without_relevant``).

On simulated data a ground truth may be given: each row's true grade (the label the item earns
on average once looked at, free of position bias). Every system then also gets NDCG against it
(:class:`TruthEvaluation`), over every search with a positive true grade (clicked or not), as
information only: the blessing reads the logged labels alone.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from searchrank.components.evaluate import scoring
from searchrank.components.evaluate.config import EvaluateConfig
from searchrank.core import schema as S
from searchrank.core.bootstrap import BootstrapResult, mean_intervals, paired_bootstrap
from searchrank.core.champion import Champion
from searchrank.core.content import LeakAudit, filter_applies, is_withheld, visible
from searchrank.core.errors import InputError
from searchrank.core.io import read_parquet_input
from searchrank.core.metrics import mean_metrics, per_query_metrics, per_query_ndcg
from searchrank.features import tables as T
from searchrank.features import vocabulary as V
from searchrank.features.generator.environment import attach_true_grades, load_ground_truth

CANDIDATE, CHAMPION = "candidate", "champion"
LIGHTGBM, POPULARITY, BM25 = "lightgbm", "popularity", "bm25"
COLD_START = V.ACTIVITY_BUCKETS[0]
"""The activity slice of listeners without user features (the contract's first bucket)."""
SLICES = ("intent", "item_type", "market", "activity")
LOW, HIGH = "low", "high"
"""The keys of a slice mean's bootstrap interval in :attr:`EvaluationReport.slices`."""
MEAN = "mean"
"""The key of a mean beside its interval in :attr:`TruthEvaluation.systems`."""
TRUE_PREFIX = "true_"
"""The prefix of a metric against the true grade: ``true_ndcg@10`` beside ``ndcg@10``."""
GROUND_TRUTH_FIELD = "ground_truth"
"""The input named in the errors about the ground truth."""


@dataclass(frozen=True)
class Comparison:
    """The candidate against one other system on the primary metric."""

    other: str
    metric: str
    required_low: float
    result: dict[str, float]
    passed: bool


@dataclass(frozen=True)
class TruthEvaluation:
    """NDCG against the simulator's true grades (simulated data only). Information only: it
    never enters the blessing.

    Every mean is over the searches with a candidate of positive true grade (``queries``),
    clicked or not, the same searches for every system; intervals are percentile bootstrap
    intervals over them, with the resamples, seed and confidence of the click comparisons.
    """

    metric: str
    """The metric of :attr:`comparisons`: ``true_`` and the primary metric when that is an
    NDCG (``true_ndcg@10``), else ``true_ndcg@{max(ks)}``."""
    queries: int
    systems: dict[str, dict[str, dict[str, float]]]
    """system -> ``true_ndcg@{k}`` for each k -> ``mean``, ``low`` and ``high``."""
    comparisons: dict[str, dict[str, float]]
    """other system -> the paired bootstrap of (candidate − other) on :attr:`metric`
    (:meth:`~searchrank.core.bootstrap.BootstrapResult.as_dict`: difference, ratio, their
    intervals, p-value)."""


@dataclass(frozen=True)
class EvaluationReport:
    """Everything ``evaluate`` found."""

    primary: str
    queries: int
    queries_without_relevant: int
    systems: dict[str, dict[str, float]]
    comparisons: list[Comparison]
    slices: dict[str, dict[str, dict[str, dict[str, float]]]]
    """slice -> value -> system -> the primary metric's mean over the value's searches (those
    with a relevant candidate), ``low`` and ``high``: its percentile bootstrap interval (the
    comparisons' resamples, seed and confidence), and ``queries``: how many searches."""
    blessed: bool
    reasons: list[str]
    champion: str = ""
    """The reference of the champion the candidate was compared with; empty when none."""
    confidence: float = 0.95
    """The coverage of every bootstrap interval of the report."""
    explicit: dict[str, float] = field(default_factory=dict)
    """The candidate's explicit-leak audit (:func:`explicit_audit`); empty when the test split
    has no explicit flags or settings."""
    bootstrap: dict[str, list[float]] = field(default_factory=dict)
    truth: TruthEvaluation | None = None
    """NDCG against the true grades, when a ground truth was given (simulated data)."""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("bootstrap")
        if self.truth is None:
            out.pop("truth")
        return out

    def metrics(self) -> dict[str, float]:
        """The step's KFP metrics: every system's ranking metrics (and, with a ground truth,
        its NDCG against the true grades), the leak rate, the verdict."""
        out = {
            f"{system}_{name}": values[name]
            for system, values in self.systems.items()
            for name in ("ndcg@1", "ndcg@5", "ndcg@10", "mrr", "map")
        }
        if self.truth is not None:
            out |= {
                f"{system}_{name}": values[MEAN]
                for system, metrics in self.truth.systems.items()
                for name, values in metrics.items()
            }
        if self.explicit:
            out["explicit_leak_rate"] = self.explicit["leak_rate"]
        out["blessed"] = float(self.blessed)
        return out


def query_slices(test: pd.DataFrame, searches: pd.DataFrame | None) -> pd.DataFrame:
    """One row per search: its slice values (those the data allows)."""
    first = test.groupby(S.SEARCH_ID, sort=False).first()
    out = pd.DataFrame(index=first.index)
    if searches is not None and "intent" in searches.columns:
        out["intent"] = searches.set_index(S.SEARCH_ID)["intent"].reindex(out.index)
    if T.ITEM_TYPE_COLUMN in test.columns:
        # A search's item type is that of its most relevant candidate (the first shown, on ties).
        ranked = test.sort_values(S.LABEL, ascending=False, kind="stable")
        out["item_type"] = ranked.groupby(S.SEARCH_ID)[T.ITEM_TYPE_COLUMN].first()
    if T.MARKET_COLUMN in test.columns:
        out["market"] = first[T.MARKET_COLUMN]
    if T.ACTIVITY_COLUMN in test.columns:
        out["activity"] = first[T.ACTIVITY_COLUMN].fillna(COLD_START)
    return out.fillna("unknown")


def score_systems(
    test: pd.DataFrame,
    candidate: Path,
    lightgbm: Path | None,
    champion: Path | None,
    corpus_frames: list[pd.DataFrame],
) -> dict[str, np.ndarray]:
    """Scores of the candidate and every baseline available for these rows."""
    from searchrank.core.scoring import score_model

    systems = {CANDIDATE: score_model(test, candidate)}
    if champion is not None:
        systems[CHAMPION] = score_model(test, champion)
    if lightgbm is not None:
        systems[LIGHTGBM] = score_model(test, lightgbm)
    popularity = scoring.score_popularity(test)
    if popularity is not None:
        systems[POPULARITY] = popularity
    bm25 = scoring.score_bm25(test, scoring.known_catalogue(corpus_frames))
    if bm25 is not None:
        systems[BM25] = bm25
    return systems


def compare(
    per_query: dict[str, pd.DataFrame], config: EvaluateConfig
) -> tuple[list[Comparison], dict[str, BootstrapResult]]:
    """The candidate against every other system (paired bootstrap over the same queries)."""
    candidate = per_query[CANDIDATE]
    keep = candidate["has_relevant"].to_numpy()
    comparisons, results = [], {}
    for other, table in per_query.items():
        if other == CANDIDATE:
            continue
        result = paired_bootstrap(
            candidate[config.primary].to_numpy()[keep],
            table[config.primary].to_numpy()[keep],
            samples=config.bootstrap_samples,
            seed=config.seed,
            confidence=config.confidence,
        )
        required = (
            config.min_gain_vs_champion if other == CHAMPION else config.min_gain_vs_baselines
        )
        comparisons.append(
            Comparison(
                other,
                config.primary,
                required,
                {k: float(v) for k, v in result.as_dict().items()},
                result.difference_low > required,
            )
        )
        results[other] = result
    return comparisons, results


def slice_metrics(
    per_query: dict[str, pd.DataFrame], slices: pd.DataFrame, config: EvaluateConfig
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """The primary metric's mean per slice value and system, with its bootstrap interval and
    the number of searches behind it (see :attr:`EvaluationReport.slices`)."""
    relevant = per_query[CANDIDATE]["has_relevant"].to_numpy()
    table = np.stack([t[config.primary].to_numpy() for t in per_query.values()])
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for name in (c for c in SLICES if c in slices.columns):
        values = slices[name].reindex(per_query[CANDIDATE].index)
        out[name] = {}
        for value in sorted(values.dropna().unique(), key=str):
            chosen = (values == value).to_numpy() & relevant
            out[name][str(value)] = slice_value(list(per_query), table[:, chosen], config)
    return out


def slice_value(
    systems: list[str], values: np.ndarray, config: EvaluateConfig
) -> dict[str, dict[str, float]]:
    """One slice value's entry of :attr:`EvaluationReport.slices`.

    Args:
        systems: the systems' names, one per row of ``values``.
        values: (systems, n) the primary metric of the slice value's n searches.
        config: the primary metric's name and the bootstrap's resamples, seed and confidence:
            the same as the comparisons', resampling every system over the same searches.

    Returns:
        system -> {primary: mean, ``low`` and ``high``: its interval, ``queries``: n}; the
        mean and interval are NaN when the slice value has no search with a relevant candidate.
    """
    searches = values.shape[1]
    if searches:
        means = values.mean(axis=1)
        low, high = mean_intervals(
            values, samples=config.bootstrap_samples, seed=config.seed, confidence=config.confidence
        )
    else:
        means = low = high = np.full(len(systems), np.nan)
    return {
        system: {
            config.primary: float(means[k]),
            LOW: float(low[k]),
            HIGH: float(high[k]),
            "queries": float(searches),
        }
        for k, system in enumerate(systems)
    }


def read_true_grades(path: Path, test: pd.DataFrame) -> np.ndarray:
    """The true grade of every test row, from a generated data folder or its ground-truth file.

    Returns:
        (n,) float64, in the rows' order.

    Raises:
        InputError: naming ``ground_truth``: the table is missing, unreadable or lacks its
            columns, or a test row has no true grade (a ground truth of other data).
    """
    try:
        truth = load_ground_truth(path)
    except InputError as error:
        raise InputError(GROUND_TRUTH_FIELD, error.value, error.rule) from error
    except (OSError, ValueError) as error:  # not parquet: pyarrow's errors are ValueErrors
        raise InputError(
            GROUND_TRUTH_FIELD, str(path), f"must be a readable parquet file ({error})"
        ) from error
    missing = sorted({S.SEARCH_ID, S.ITEM_ID, S.TRUE_GRADE} - set(truth.columns))
    if missing:
        raise InputError(
            GROUND_TRUTH_FIELD, str(path), f"has no column {missing} of the ground truth table"
        )
    try:
        return attach_true_grades(test, truth)[S.TRUE_GRADE].to_numpy(np.float64)
    except InputError as error:
        raise InputError(GROUND_TRUTH_FIELD, error.value, error.rule) from error


def true_metric(config: EvaluateConfig) -> str:
    """The metric of the comparisons against the true grades (see :class:`TruthEvaluation`)."""
    click = config.primary if config.primary.startswith("ndcg@") else f"ndcg@{max(config.ks)}"
    return TRUE_PREFIX + click


def against_truth(
    grades: np.ndarray,
    systems: dict[str, np.ndarray],
    groups: np.ndarray,
    config: EvaluateConfig,
) -> TruthEvaluation:
    """Every system's NDCG@k against the true grades, with intervals, and the candidate against
    each other system on :func:`true_metric` (paired bootstrap over the same searches).

    Args:
        grades: (n,) the rows' true grades, real numbers in [0, 3].
        systems: name -> (n,) scores, the candidate's under :data:`CANDIDATE`.
        groups: (n,) search ids, each search's rows contiguous.
        config: the cut-offs, and the bootstrap's resamples, seed and confidence.
    """
    per_query = {
        name: per_query_ndcg(grades, scores, groups, ks=config.ks, grades="real")
        for name, scores in systems.items()
    }
    keep = per_query[CANDIDATE]["has_relevant"].to_numpy()
    if not keep.any():
        raise InputError(
            GROUND_TRUTH_FIELD, "every true grade is 0", "some test search needs a positive grade"
        )
    samples, seed, confidence = config.bootstrap_samples, config.seed, config.confidence
    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in per_query}
    for metric in (f"ndcg@{k}" for k in config.ks):
        values = np.stack([table[metric].to_numpy()[keep] for table in per_query.values()])
        low, high = mean_intervals(values, samples=samples, seed=seed, confidence=confidence)
        for row, system in enumerate(per_query):
            out[system][TRUE_PREFIX + metric] = {
                MEAN: float(values[row].mean()),
                LOW: float(low[row]),
                HIGH: float(high[row]),
            }
    compared = true_metric(config).removeprefix(TRUE_PREFIX)
    candidate = per_query[CANDIDATE][compared].to_numpy()[keep]
    comparisons = {}
    for other, table in per_query.items():
        if other != CANDIDATE:
            result = paired_bootstrap(
                candidate,
                table[compared].to_numpy()[keep],
                samples=samples,
                seed=seed,
                confidence=confidence,
            )
            comparisons[other] = {k: float(v) for k, v in result.as_dict().items()}
    return TruthEvaluation(true_metric(config), int(keep.sum()), out, comparisons)


def explicit_audit(test: pd.DataFrame, scores: np.ndarray, k: int) -> LeakAudit | None:
    """What listeners whose explicit-content filter applies would see in each search's top
    ``k``, ordered by ``scores`` under the policy the service applies
    (:mod:`searchrank.core.content`). Its ``withheld`` counts the explicit items the ranker
    itself placed in those top ``k``; ``leaked``, any that got through the policy.

    Returns:
        None when the rows carry no explicit flags or no listener settings (a LETOR set).
    """
    if not {T.EXPLICIT_COLUMN, T.EXPLICIT_FILTER_COLUMN} <= set(test.columns):
        return None
    audit = LeakAudit()
    bounds = S.search_bounds(test[S.SEARCH_ID].to_numpy())
    explicit = test[T.EXPLICIT_COLUMN].to_numpy(dtype=object)
    setting = test[T.EXPLICIT_FILTER_COLUMN].to_numpy(dtype=object)
    for start, end in itertools.pairwise(bounds):
        if not filter_applies(None, setting[start]):
            continue
        flags = explicit[start:end]
        order = np.argsort(-scores[start:end], kind="stable")
        shown = visible(order, flags, applies=True)[:k]
        audit.add(flags[shown], withheld=int(is_withheld(flags[order[:k]]).sum()))
    return audit


def evaluate(
    test_path: Path,
    candidate: Path,
    config: EvaluateConfig,
    *,
    lightgbm: Path | None = None,
    champion: Champion | None = None,
    train_path: Path | None = None,
    searches_path: Path | None = None,
    ground_truth_path: Path | None = None,
) -> tuple[EvaluationReport, pd.DataFrame]:
    """Score every system on the test split and decide whether the candidate is blessed.

    Args:
        test_path: the test split (never seen in training or selection).
        candidate: the trained ranker's model folder.
        config: metrics, bootstrap and blessing thresholds.
        lightgbm: the LambdaMART baseline's model folder.
        champion: the ranker in production, when there is one.
        train_path: the training split, whose item texts join the BM25 corpus.
        searches_path: the searches table (``search_id``, ``intent``) for the intent slice.
        ground_truth_path: simulated data only: the generator's ground truth (its data folder
            or ``ground_truth.parquet``), covering every test row. Every system then also gets
            NDCG@k against the true grades (:attr:`EvaluationReport.truth`), information that
            never enters the blessing.

    Returns:
        (the report, the test rows' keys with every system's score).

    Raises:
        InputError: a bad input, named; ``ground_truth`` when the ground truth is missing,
            unreadable or does not cover every test row.
    """
    test = read_parquet_input(test_path, "test")
    if test.empty:
        raise InputError("test", str(test_path), "the test split must have rows")
    # Read before any model is scored, so a wrong ground truth fails fast.
    grades = read_true_grades(ground_truth_path, test) if ground_truth_path is not None else None
    corpus = [test] + ([read_parquet_input(train_path, "train")] if train_path is not None else [])
    champion_dir = champion.model_dir if champion is not None else None
    systems = score_systems(test, candidate, lightgbm, champion_dir, corpus)
    labels, groups = test[S.LABEL].to_numpy(), test[S.SEARCH_ID].to_numpy()
    per_query = {
        name: per_query_metrics(
            labels, scores, groups, ks=config.ks, relevance_threshold=config.relevance_threshold
        )
        for name, scores in systems.items()
    }
    means = {name: mean_metrics(table) for name, table in per_query.items()}
    comparisons, results = compare(per_query, config)
    searches = read_parquet_input(searches_path, "searches") if searches_path is not None else None
    slices = slice_metrics(per_query, query_slices(test, searches), config)
    reasons = [
        f"{'ok' if c.passed else 'FAILS'}: {config.primary} − {c.other} = "
        f"{c.result['difference']:+.4f} [{c.result['difference_low']:+.4f}, "
        f"{c.result['difference_high']:+.4f}], needs lower bound > {c.required_low:+.4f}"
        for c in comparisons
    ]
    audit = explicit_audit(test, systems[CANDIDATE], max(config.ks))
    if audit is not None:
        reasons.append(
            f"{'ok' if not audit.leaked else 'FAILS'}: explicit-leak rate "
            f"{audit.leak_rate:.2%} in the top {max(config.ks)} of {audit.lists} searches by "
            f"listeners whose filter is on ({audit.withheld} explicit items withheld)"
        )
    candidate_means = means[CANDIDATE]
    report = EvaluationReport(
        primary=config.primary,
        queries=int(candidate_means["queries"]),
        queries_without_relevant=int(candidate_means["queries_without_relevant"]),
        systems={name: {k: float(v) for k, v in m.items()} for name, m in means.items()},
        comparisons=comparisons,
        slices=slices,
        blessed=all(c.passed for c in comparisons) and not (audit and audit.leaked),
        reasons=reasons,
        champion=champion.reference if champion is not None else "",
        confidence=config.confidence,
        explicit=audit.as_dict() if audit is not None else {},
        bootstrap={name: r.differences.tolist() for name, r in results.items()},
        truth=against_truth(grades, systems, groups, config) if grades is not None else None,
    )
    # The entity columns too: package_service replays these searches against the served model.
    scores = test[[c for c in S.ENTITY_COLUMNS if c in test.columns]].copy()
    for name, values in systems.items():
        scores[f"score_{name}"] = values
    return report, scores


def write_report_json(report: EvaluationReport, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=2, default=str))
