"""A/B tests of a ranker with users randomized into two arms: the effect, the guardrails, the call.

The user is the unit of randomization and so the unit of analysis: one user's searches are not
independent of each other (the same tastes, the same device), so treating searches as units
would understate the variance and call noise significant. The caller reduces each user to one
value per metric (streams of 30 s or more per search during the experiment, say) and this module
compares the arms' per-user values:

* :func:`assign_arms` hashes each user id with a per-experiment salt: a user always lands in the
  same arm of an experiment, and experiments with different salts split users independently.
* :func:`srm_check` tests the arms' sizes against the intended split. A sample ratio mismatch
  means the assignment or the logging lost users unevenly, which biases every comparison, so no
  effect is trusted while it stands.
* :func:`ab_test` estimates the success metric's effect with Welch's t-test (no equal-variance
  assumption), after CUPED (:func:`cuped_adjust`) when a pre-period covariate is given. CUPED
  subtracts the part of each user's value that their own pre-experiment behaviour predicts: the
  estimate stays unbiased (the covariate predates the assignment) and its variance shrinks by
  about the squared correlation of metric and covariate.
* :func:`non_inferiority` and :func:`quantile_non_inferiority` check guardrails (leak rate,
  zero-result rate, p99 latency): a guardrail does not need to improve, only to show that it got
  no worse than its margin, a one-sided question.
* :func:`decide` combines the three into a ship decision with every reason spelled out.
* :func:`sessions_to_detect` sizes an experiment before it runs, for an A/B test or for
  interleaving (:mod:`searchrank.core.interleaving`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats

from searchrank.core.errors import InputError

QUANTILE_CHUNK_ELEMENTS = 1 << 22
"""Resampled latencies drawn at a time by :func:`quantile_non_inferiority` (32 MiB of float64),
which bounds the memory used whatever the number of requests."""


def assign_arms(user_ids: np.ndarray, salt: str, treatment_share: float = 0.5) -> np.ndarray:
    """Assign each user to control or treatment by hashing the user id with the salt.

    Each id is hashed as the text ``f"{salt}:{user_id}"`` with BLAKE2b (64 bits), and the user is
    in treatment when the hash, read as a fraction of 2^64, is below ``treatment_share``. The arm
    depends on nothing but the salt and the id, so it survives restarts and re-runs; a new salt
    per experiment keeps one experiment's split from carrying over into the next.

    Args:
        user_ids: (users,) integer or string user ids; an id's text form is what is hashed.
        salt: the experiment's salt, not empty.
        treatment_share: the intended share of users in treatment, strictly between 0 and 1.

    Returns:
        (users,) bool, True for treatment.

    Raises:
        InputError: user_ids is not a 1-D integer or string array, salt is empty or
            treatment_share is out of range.
    """
    ids = np.asarray(user_ids)
    if ids.ndim != 1 or not (
        np.issubdtype(ids.dtype, np.integer) or np.issubdtype(ids.dtype, np.str_)
    ):
        raise InputError("user_ids", user_ids, "must be a 1-D array of integer or string ids")
    if not isinstance(salt, str) or not salt:
        raise InputError("salt", salt, "must be a non-empty string")
    _check_share("treatment_share", treatment_share)
    digests = b"".join(
        hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
        for user_id in ids.tolist()
    )
    fractions = np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64
    return fractions < treatment_share


@dataclass(frozen=True)
class SrmResult:
    """The outcome of :func:`srm_check`."""

    n_control: int
    n_treatment: int
    expected_share: float
    """The intended share of units in treatment."""
    observed_share: float
    """The observed share of units in treatment."""
    chi2: float
    p_value: float
    threshold: float
    mismatch: bool
    """``p_value < threshold``: the split is off by more than chance explains."""

    def as_dict(self) -> dict[str, float]:
        """The fields by name, for logging and reports."""
        return dataclasses.asdict(self)


def srm_check(
    n_control: int, n_treatment: int, treatment_share: float, threshold: float = 0.001
) -> SrmResult:
    """Test the arms' sizes for a sample ratio mismatch (chi-square goodness of fit, 1 dof).

    The threshold is strict (0.001 by default) because the check runs on every experiment, and a
    real mismatch (a bot filter, a crash in one arm) is usually far beyond it.

    Args:
        n_control: the units (users) observed in control, at least 0.
        n_treatment: the units observed in treatment, at least 0, with at least one unit in all.
        treatment_share: the intended share of units in treatment, strictly between 0 and 1.
        threshold: the p-value below which the split is a mismatch, strictly between 0 and 1.

    Returns:
        The counts, the shares, the chi-square statistic, its p-value and the verdict.

    Raises:
        InputError: a count is negative or not an integer, both are 0, or a share is out of
            range.
    """
    for name, count in (("n_control", n_control), ("n_treatment", n_treatment)):
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise InputError(name, count, "must be a non-negative integer")
    total = int(n_control) + int(n_treatment)
    if total == 0:
        raise InputError("n_treatment", n_treatment, "the arms need at least one unit in all")
    _check_share("treatment_share", treatment_share)
    _check_share("threshold", threshold)
    observed = np.array([n_control, n_treatment], dtype=np.float64)
    expected = total * np.array([1.0 - treatment_share, treatment_share])
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(chi2, df=1))
    return SrmResult(
        n_control=int(n_control),
        n_treatment=int(n_treatment),
        expected_share=float(treatment_share),
        observed_share=int(n_treatment) / total,
        chi2=chi2,
        p_value=p_value,
        threshold=float(threshold),
        mismatch=p_value < threshold,
    )


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """CUPED (Deng et al. 2013): remove from each user's metric what their pre-period predicts.

    ``adjusted = y − θ·(x − mean(x))`` with ``θ = cov(y, x) / var(x)``, the least-squares slope,
    estimated on all users of both arms together: one θ for both arms keeps the adjustment the
    same in each, so the difference of the arms' adjusted means stays an unbiased estimate of
    the effect. The overall mean of y is unchanged.

    A user without a pre-period (new, or not active then) has x = NaN and is given the mean of
    the observed x: their adjustment is 0 and they keep their raw value, while every other user
    still gets the full adjustment. The assignment is independent of the pre-period, so which
    users lack one is the same in both arms up to chance and the estimate stays unbiased.

    Args:
        y: (users,) the metric of each user during the experiment, finite, at least 2 users.
        x: (users,) the pre-period covariate of the same users, finite or NaN.

    Returns:
        (adjusted, theta): the (users,) adjusted metric and θ; θ is 0 (nothing adjusted) when x
        does not vary, all NaN included.

    Raises:
        InputError: y or x is not a 1-D numeric array, they differ in length, y has fewer than
            2 users or a non-finite value, or x has an infinite value.
    """
    metric = _check_units("y", y)
    covariate = _check_units("x", x, missing=True, count=len(metric), of="y")
    observed = ~np.isnan(covariate)
    fill = float(covariate[observed].mean()) if observed.any() else 0.0
    covariate = np.where(observed, covariate, fill)
    centred = covariate - covariate.mean()
    variance = float(np.mean(centred**2))
    theta = float(np.mean(centred * (metric - metric.mean())) / variance) if variance > 0 else 0.0
    return metric - theta * centred, theta


@dataclass(frozen=True)
class EffectEstimate:
    """The outcome of :func:`ab_test`: the effect of treatment on a per-user metric."""

    mean_control: float
    """The unadjusted mean of control's per-user values, as is ``mean_treatment``."""
    mean_treatment: float
    difference: float
    """Treatment − control: of the CUPED-adjusted means when covariates were given (which
    differs from ``mean_treatment − mean_control`` by the arms' chance imbalance in the
    covariate), else of the raw means."""
    difference_low: float
    """The Welch interval of ``difference``; as is ``difference_high``."""
    difference_high: float
    relative: float
    """``difference / mean_control``; NaN when ``mean_control`` is 0."""
    relative_low: float
    """The interval of ``difference`` divided by ``mean_control`` (ends swapped when it is
    negative), as is ``relative_high``. It treats ``mean_control`` as known, which understates
    the width by the noise of the control mean (the delta method would add it): negligible for
    experiments with thousands of users per arm, not for small ones."""
    relative_high: float
    p_value: float
    """Two-sided Welch p-value of no difference."""
    users_control: int
    users_treatment: int
    variance_reduction: float
    """``1 − var(difference with CUPED) / var(difference without)``, the share of the
    estimate's variance CUPED removed (about the squared correlation of metric and covariate);
    0 without covariates."""
    confidence: float

    @property
    def significant(self) -> bool:
        """Whether the interval of ``difference`` excludes 0, on either side."""
        return self.difference_low > 0.0 or self.difference_high < 0.0

    def as_dict(self) -> dict[str, float]:
        """The fields and :attr:`significant` by name, for logging and reports."""
        return {**dataclasses.asdict(self), "significant": self.significant}


def ab_test(
    y_control: np.ndarray,
    y_treatment: np.ndarray,
    x_control: np.ndarray | None = None,
    x_treatment: np.ndarray | None = None,
    confidence: float = 0.95,
) -> EffectEstimate:
    """Estimate the effect of treatment on a per-user metric with Welch's t-test.

    Args:
        y_control: (users_control,) one value per control user, finite, at least 2 users.
        y_treatment: (users_treatment,) one value per treatment user, likewise.
        x_control: (users_control,) the pre-period covariate of each control user, finite or
            NaN (see :func:`cuped_adjust`); None for no CUPED.
        x_treatment: (users_treatment,) the same for treatment; given exactly when x_control is.
        confidence: the coverage of the two-sided intervals, strictly between 0 and 1.

    Returns:
        The :class:`EffectEstimate`.

    Raises:
        InputError: an arm has fewer than 2 users or a non-finite value, only one arm has
            covariates, a covariate array does not match its arm's length, or confidence is out
            of range.
    """
    raw_control = _check_units("y_control", y_control)
    raw_treatment = _check_units("y_treatment", y_treatment)
    _check_share("confidence", confidence)
    control, treatment = raw_control, raw_treatment
    if (x_control is None) != (x_treatment is None):
        missing = "x_control" if x_control is None else "x_treatment"
        raise InputError(missing, None, "give pre-period covariates for both arms or neither")
    if x_control is not None and x_treatment is not None:
        covariates = [
            _check_units(name, x, missing=True, count=len(y), of=of)
            for name, x, y, of in (
                ("x_control", x_control, raw_control, "y_control"),
                ("x_treatment", x_treatment, raw_treatment, "y_treatment"),
            )
        ]
        adjusted, _ = cuped_adjust(
            np.concatenate([raw_control, raw_treatment]), np.concatenate(covariates)
        )
        control, treatment = adjusted[: len(raw_control)], adjusted[len(raw_control) :]

    difference, standard_error, dof = _welch(control, treatment)
    _, raw_standard_error, _ = _welch(raw_control, raw_treatment)
    half_width = float(stats.t.ppf((1.0 + confidence) / 2.0, dof)) * standard_error
    low, high = difference - half_width, difference + half_width
    if standard_error > 0.0:
        p_value = float(2.0 * stats.t.sf(abs(difference) / standard_error, dof))
    else:
        p_value = 1.0 if difference == 0.0 else 0.0

    mean_control = float(raw_control.mean())
    if mean_control != 0.0:
        relative = difference / mean_control
        relative_low, relative_high = sorted((low / mean_control, high / mean_control))
    else:
        relative = relative_low = relative_high = math.nan
    return EffectEstimate(
        mean_control=mean_control,
        mean_treatment=float(raw_treatment.mean()),
        difference=difference,
        difference_low=low,
        difference_high=high,
        relative=relative,
        relative_low=relative_low,
        relative_high=relative_high,
        p_value=p_value,
        users_control=len(raw_control),
        users_treatment=len(raw_treatment),
        variance_reduction=(
            1.0 - (standard_error / raw_standard_error) ** 2 if raw_standard_error > 0 else 0.0
        ),
        confidence=float(confidence),
    )


@dataclass(frozen=True)
class GuardrailResult:
    """The outcome of a non-inferiority check of one guardrail metric."""

    name: str
    control: float
    """Control's statistic: the mean of its per-user values, or its quantile of latencies."""
    treatment: float
    """Treatment's statistic, the same one."""
    difference: float
    """``treatment − control``."""
    bound: float
    """The one-sided confidence bound of ``difference`` on the side that could breach the
    margin: the upper bound when lower is better, the lower bound when higher is better."""
    margin: float
    """How much worse than control treatment may be, in the metric's units, at least 0."""
    passed: bool
    """``bound`` lies within the margin: treatment is shown to be no worse than it."""
    rule: str
    """The check in words, e.g. "treatment − control ≤ 0.002 at 95 % one-sided"."""

    def as_dict(self) -> dict[str, float | str]:
        """The fields by name, for logging and reports."""
        return dataclasses.asdict(self)


def non_inferiority(
    control: np.ndarray,
    treatment: np.ndarray,
    margin: float,
    name: str,
    confidence: float = 0.95,
    lower_is_better: bool = True,
) -> GuardrailResult:
    """Check that treatment's mean per-user value is no worse than control's beyond a margin.

    A one-sided Welch test: the guardrail passes when the one-sided ``confidence`` bound of
    treatment − control stays within the margin (upper bound ≤ margin when lower is better,
    lower bound ≥ −margin when higher is better), which rejects "worse by the margin or more"
    at level ``1 − confidence``. Too few users gives a wide bound and a failed guardrail:
    absence of evidence of harm is not evidence of its absence.

    Args:
        control: (users_control,) per-user values of the guardrail metric in control (a user's
            explicit-leak rate, say), finite, at least 2 users.
        treatment: (users_treatment,) the same in treatment.
        margin: the tolerated worsening in the metric's units, at least 0.
        name: the guardrail's name for reports.
        confidence: the one-sided coverage of the bound, strictly between 0 and 1.
        lower_is_better: True for a metric that should not rise (leaks, errors), False for one
            that should not fall.

    Returns:
        The :class:`GuardrailResult` with the means as ``control`` and ``treatment``.

    Raises:
        InputError: an arm has fewer than 2 users or a non-finite value, margin is negative or
            not finite, or confidence is out of range.
    """
    values_control = _check_units("control", control)
    values_treatment = _check_units("treatment", treatment)
    _check_margin("margin", margin)
    _check_share("confidence", confidence)
    difference, standard_error, dof = _welch(values_control, values_treatment)
    reach = float(stats.t.ppf(confidence, dof)) * standard_error
    bound = difference + reach if lower_is_better else difference - reach
    return _guardrail(
        name=name,
        control=float(values_control.mean()),
        treatment=float(values_treatment.mean()),
        bound=bound,
        margin=margin,
        lower_is_better=lower_is_better,
        how=f"{100 * confidence:g} % one-sided",
    )


def quantile_non_inferiority(
    control_latencies_ms: np.ndarray,
    treatment_latencies_ms: np.ndarray,
    *,
    margin_ms: float,
    name: str,
    quantile: float = 0.99,
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> GuardrailResult:
    """Check that treatment's latency quantile (p99) is no worse than control's beyond a margin.

    A quantile has no simple standard error, so the arms are bootstrapped: each resample draws
    each arm's latencies with replacement (independently: the arms hold different requests) and
    takes the difference of the quantiles. The guardrail passes when the ``confidence``
    percentile of those differences, the one-sided upper bound, is at most ``margin_ms``. A
    tail quantile is estimated from the few requests beyond it (100 in 10,000 for p99), so give
    each arm thousands of requests; with fewer the bound is wide and the guardrail fails.

    Args:
        control_latencies_ms: (requests_control,) control's request latencies in ms, finite,
            at least 2.
        treatment_latencies_ms: (requests_treatment,) treatment's, likewise.
        margin_ms: the tolerated increase of the quantile in ms, at least 0.
        name: the guardrail's name for reports, e.g. "p99 latency".
        quantile: the quantile compared, strictly between 0 and 1.
        samples: the number of bootstrap resamples, at least 1.
        seed: the seed of the resampling; the result is a function of the inputs and the seed.
        confidence: the one-sided coverage of the bound, strictly between 0 and 1.

    Returns:
        The :class:`GuardrailResult` with the arms' quantiles as ``control`` and ``treatment``.

    Raises:
        InputError: an arm has fewer than 2 latencies or a non-finite one, margin_ms is
            negative, or quantile, samples, seed or confidence is out of range.
    """
    control = _check_units("control_latencies_ms", control_latencies_ms)
    treatment = _check_units("treatment_latencies_ms", treatment_latencies_ms)
    _check_margin("margin_ms", margin_ms)
    _check_share("quantile", quantile)
    _check_share("confidence", confidence)
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
        raise InputError("samples", samples, "must be a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError("seed", seed, "must be a non-negative integer")

    rng = np.random.default_rng(seed)
    differences = _resampled_quantiles(
        treatment, quantile, int(samples), rng
    ) - _resampled_quantiles(control, quantile, int(samples), rng)
    return _guardrail(
        name=name,
        control=float(np.quantile(control, quantile)),
        treatment=float(np.quantile(treatment, quantile)),
        bound=float(np.quantile(differences, confidence)),
        margin=margin_ms,
        lower_is_better=True,
        how=f"{100 * confidence:g} % one-sided, bootstrap of {samples} resamples",
    )


@dataclass(frozen=True)
class Decision:
    """The ship decision of :func:`decide`."""

    ship: bool
    reasons: list[str]
    """One line per condition, met or not: the sample ratio, the success metric, each
    guardrail."""

    @property
    def verdict(self) -> str:
        """``"ship"`` or ``"do not ship"``."""
        return "ship" if self.ship else "do not ship"


def decide(
    success: EffectEstimate, guardrails: Sequence[GuardrailResult], srm: SrmResult
) -> Decision:
    """Ship only when the split is sound, the success metric improves and no guardrail fails.

    Args:
        success: the effect on the success metric, higher is better.
        guardrails: the guardrail checks, all of which must pass; may be empty.
        srm: the sample ratio check of the experiment's arms.

    Returns:
        The :class:`Decision` with a reason for every condition, met or not.
    """
    reasons = []
    if srm.mismatch:
        reasons.append(
            f"sample ratio mismatch (p = {srm.p_value:.2g}): {100 * srm.observed_share:.2f} % of "
            f"units in treatment, {100 * srm.expected_share:g} % intended; no effect can be trusted"
        )
    else:
        reasons.append(f"no sample ratio mismatch (p = {srm.p_value:.2g})")

    improves = success.difference_low > 0.0
    if math.isfinite(success.relative):
        effect = (
            f"{_percent(success.relative)} "
            f"[{_percent(success.relative_low)}, {_percent(success.relative_high)}]"
        )
    else:
        effect = (
            f"{success.difference:+.4g} [{success.difference_low:+.4g}, "
            f"{success.difference_high:+.4g}]"
        )
    if improves:
        outcome = "is significant"
    elif success.significant:
        outcome = "is significantly worse"
    else:
        outcome = "is not significant"
    reasons.append(f"success metric {effect} {outcome} (p = {success.p_value:.2g})")

    for guardrail in guardrails:
        verdict = "passed" if guardrail.passed else "failed"
        reasons.append(
            f"guardrail {guardrail.name} {verdict}: {guardrail.rule} "
            f"(difference {guardrail.difference:+.4g}, bound {guardrail.bound:+.4g})"
        )

    ship = not srm.mismatch and improves and all(g.passed for g in guardrails)
    return Decision(ship=ship, reasons=reasons)


def sessions_to_detect(
    effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, arms: int = 2
) -> int:
    """The number of units needed to detect a mean difference with a two-sided z-test.

    With ``z = z_{1−α/2} + z_{power}``:

    * ``arms=2``, an A/B test comparing two independent arms (users, or whatever is randomized)
      of equal size: ``2·z²·sd²/effect²`` units per arm, where ``sd`` is the per-unit standard
      deviation of the metric. The returned total is twice the per-arm count, rounded up.
    * ``arms=1``, a one-sample test of a mean against 0, as in interleaving, where each query's
      credit is itself a comparison of the two rankers: ``z²·sd²/effect²`` queries, where ``sd``
      is the standard deviation of the per-query credit (at most 1) and ``effect`` the
      preference to detect.

    Args:
        effect: the smallest difference worth detecting, not 0 (its sign does not matter).
        sd: the per-unit standard deviation, at least 0.
        alpha: the two-sided significance level, strictly between 0 and 1.
        power: the probability of detecting the effect, strictly between 0 and 1.
        arms: 2 for an A/B test, 1 for a one-sample (interleaving) test.

    Returns:
        The units needed in all: over both arms for ``arms=2``, queries for ``arms=1``.

    Raises:
        InputError: effect is 0 or not finite, sd is negative or not finite, alpha or power is
            out of range, or arms is neither 1 nor 2.
    """
    if not math.isfinite(effect) or effect == 0.0:
        raise InputError("effect", effect, "must be a finite, non-zero difference")
    if not math.isfinite(sd) or sd < 0.0:
        raise InputError("sd", sd, "must be a finite standard deviation, at least 0")
    _check_share("alpha", alpha)
    _check_share("power", power)
    if arms not in (1, 2):
        raise InputError("arms", arms, "must be 2 (A/B test) or 1 (one-sample, interleaving)")
    normal = NormalDist()
    z = normal.inv_cdf(1.0 - alpha / 2.0) + normal.inv_cdf(power)
    one_sample = (z * sd / effect) ** 2
    if arms == 1:
        return math.ceil(one_sample)
    return 2 * math.ceil(2.0 * one_sample)


def _welch(control: np.ndarray, treatment: np.ndarray) -> tuple[float, float, float]:
    """Welch's difference of means (treatment − control), its standard error and the
    Welch–Satterthwaite degrees of freedom (infinite when the standard error is 0, where any
    value gives a zero-width interval)."""
    var_control = float(control.var(ddof=1)) / len(control)
    var_treatment = float(treatment.var(ddof=1)) / len(treatment)
    variance = var_control + var_treatment
    difference = float(treatment.mean() - control.mean())
    if variance == 0.0:
        return difference, 0.0, math.inf
    dof = variance**2 / (
        var_control**2 / (len(control) - 1) + var_treatment**2 / (len(treatment) - 1)
    )
    return difference, math.sqrt(variance), dof


def _resampled_quantiles(
    values: np.ndarray, quantile: float, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """The ``quantile`` of each of ``samples`` resamples of ``values``; returns (samples,)."""
    n = len(values)
    per_chunk = max(1, QUANTILE_CHUNK_ELEMENTS // n)
    quantiles = np.empty(samples)
    for start in range(0, samples, per_chunk):
        stop = min(start + per_chunk, samples)
        picks = rng.integers(0, n, size=(stop - start, n))
        quantiles[start:stop] = np.quantile(values[picks], quantile, axis=1)
    return quantiles


def _guardrail(
    *,
    name: str,
    control: float,
    treatment: float,
    bound: float,
    margin: float,
    lower_is_better: bool,
    how: str,
) -> GuardrailResult:
    """The :class:`GuardrailResult` of a bound on ``treatment − control``, with its rule."""
    if lower_is_better:
        passed, rule = bound <= margin, f"treatment − control ≤ {margin:g}"
    else:
        passed, rule = bound >= -margin, f"treatment − control ≥ {-margin:g}"
    return GuardrailResult(
        name=name,
        control=control,
        treatment=treatment,
        difference=treatment - control,
        bound=bound,
        margin=float(margin),
        passed=passed,
        rule=f"{rule} at {how}",
    )


def _percent(fraction: float) -> str:
    """A signed relative change as a percentage with one decimal, e.g. "+1.8 %"."""
    return f"{100.0 * fraction:+.1f} %"


def _check_share(name: str, value: float) -> None:
    """Validate a probability-like parameter (a share, a level, a quantile): in (0, 1)."""
    if not 0.0 < value < 1.0:
        raise InputError(name, value, "must lie strictly between 0 and 1")


def _check_margin(name: str, value: float) -> None:
    """Validate a non-inferiority margin: finite and at least 0."""
    if not math.isfinite(value) or value < 0.0:
        raise InputError(name, value, "must be a finite margin, at least 0")


def _check_units(
    name: str,
    values: np.ndarray,
    *,
    missing: bool = False,
    count: int | None = None,
    of: str = "",
) -> np.ndarray:
    """Validate per-unit values; returns them as float64.

    Args:
        name: the field named in errors.
        values: (units,) the values.
        missing: whether NaN (a missing covariate) is allowed; infinities never are.
        count: the number of units required (one per unit of the array named ``of``); None
            requires at least 2, the fewest that have a variance.
        of: the name of the array that ``count`` comes from, for the error message.
    """
    array = np.asarray(values)
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.bool_)
    ):
        raise InputError(name, values, "must be a 1-D numeric array of per-unit values")
    array = array.astype(np.float64)
    if count is not None and len(array) != count:
        raise InputError(name, len(array), f"must hold one value per unit of {of} ({count})")
    if count is None and len(array) < 2:
        raise InputError(name, len(array), "needs at least 2 units to estimate a variance")
    bad = np.isinf(array) if missing else ~np.isfinite(array)
    if bad.any():
        rule = "must be finite or NaN (missing)" if missing else "must be finite"
        raise InputError(name, array[bad][0], rule)
    return array
