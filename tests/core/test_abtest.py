"""A/B analysis: stable hashed arms, the sample ratio check, CUPED, Welch's test against scipy
and its calibration on A/A tests, guardrails, the ship decision and experiment sizing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from searchrank.core.abtest import (
    EffectEstimate,
    GuardrailResult,
    SrmResult,
    ab_test,
    assign_arms,
    cuped_adjust,
    decide,
    non_inferiority,
    quantile_non_inferiority,
    sessions_to_detect,
    srm_check,
)
from searchrank.core.errors import InputError


def _users(
    rng: np.random.Generator, users: int, correlation: float, effect: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user metric y (sd 1, shifted by ``effect``) and a pre-period covariate x correlated
    with it by ``correlation``."""
    x = rng.normal(5.0, 1.0, users)
    noise = rng.normal(0.0, 1.0, users)
    y = 2.0 + effect + correlation * (x - 5.0) + np.sqrt(1.0 - correlation**2) * noise
    return y, x


# --- assignment and sample ratio -----------------------------------------------------------------


def test_arms_are_stable_balanced_and_salt_specific() -> None:
    ids = np.arange(20_000)
    arms = assign_arms(ids, "exp-42")

    # Independent fair splits: a share is 0.5 ± 0.0035 (one sd), so ±0.02 is over 5 sd.
    assert abs(arms.mean() - 0.5) < 0.02
    shuffled = np.random.default_rng(0).permutation(ids)
    assert np.array_equal(assign_arms(shuffled, "exp-42"), arms[shuffled])
    agreement = np.mean(assign_arms(ids, "exp-43") == arms)
    assert abs(agreement - 0.5) < 0.02  # another salt: a new, independent split
    assert abs(assign_arms(ids, "exp-42", treatment_share=0.2).mean() - 0.2) < 0.02
    names = np.array([f"user-{i}" for i in range(1000)])
    assert np.array_equal(assign_arms(names, "exp-42"), assign_arms(names, "exp-42"))


def test_srm_flags_a_lopsided_split_only() -> None:
    lopsided = srm_check(4800, 5200, 0.5)
    assert lopsided.chi2 == pytest.approx(16.0)
    assert lopsided.p_value == pytest.approx(6.33e-5, rel=1e-2)
    assert lopsided.mismatch
    assert lopsided.observed_share == 0.52

    assert not srm_check(4980, 5020, 0.5).mismatch
    uneven = srm_check(9000, 1000, 0.1)  # exactly the intended 90/10 split
    assert uneven.chi2 == pytest.approx(0.0)
    assert uneven.p_value == pytest.approx(1.0)


# --- CUPED and Welch's test ----------------------------------------------------------------------


def test_cuped_removes_what_the_covariate_predicts() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, 1000)
    y = 3.0 * x + rng.normal(0.0, 0.5, 1000)
    adjusted, theta = cuped_adjust(y, x)

    assert theta == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)  # the least-squares slope
    assert adjusted.mean() == pytest.approx(y.mean(), abs=1e-12)
    assert adjusted.var() < 0.1 * y.var()

    with_missing = x.copy()
    with_missing[:100] = np.nan
    adjusted, _ = cuped_adjust(y, with_missing)
    assert np.array_equal(adjusted[:100], y[:100])  # imputed at the mean: adjusted by 0
    assert adjusted[100:].var() < 0.1 * y[100:].var()

    same, theta = cuped_adjust(y, np.full(1000, 7.0))
    assert theta == 0.0
    assert np.array_equal(same, y)


def test_welch_without_covariates_agrees_with_scipy() -> None:
    rng = np.random.default_rng(2)
    control = rng.exponential(2.0, 300)
    treatment = rng.exponential(2.3, 500)
    result = ab_test(control, treatment, confidence=0.9)

    reference = stats.ttest_ind(treatment, control, equal_var=False)
    interval = reference.confidence_interval(0.9)
    assert result.difference == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.difference_low == pytest.approx(interval.low, rel=1e-9)
    assert result.difference_high == pytest.approx(interval.high, rel=1e-9)
    assert result.relative == pytest.approx(result.difference / control.mean(), rel=1e-12)
    assert result.relative_low == pytest.approx(interval.low / control.mean(), rel=1e-9)
    assert result.relative_high == pytest.approx(interval.high / control.mean(), rel=1e-9)
    assert (result.users_control, result.users_treatment) == (300, 500)
    assert result.variance_reduction == 0.0
    assert result.as_dict()["significant"] == result.significant


def test_false_positive_rate_on_a_a_tests_is_about_alpha() -> None:
    # 300 A/A tests at 95 %: the share of significant ones is 0.05 ± 0.0126 (one binomial sd);
    # [0.02, 0.09] is about -2.4 to +3.2 sd around it.
    rng = np.random.default_rng(3)
    raw, cuped = 0, 0
    for _ in range(300):
        y, x = _users(rng, 400, correlation=0.7)
        y = np.exp(y / 2)  # skewed, as engagement metrics are
        raw += ab_test(y[:200], y[200:]).significant
        cuped += ab_test(y[:200], y[200:], x[:200], x[200:]).significant
    assert 0.02 <= raw / 300 <= 0.09
    assert 0.02 <= cuped / 300 <= 0.09


def test_cuped_narrows_the_interval_by_the_squared_correlation() -> None:
    rng = np.random.default_rng(4)
    y_control, x_control = _users(rng, 5000, correlation=0.7)
    y_treatment, x_treatment = _users(rng, 5000, correlation=0.7, effect=0.05)
    raw = ab_test(y_control, y_treatment)
    cuped = ab_test(y_control, y_treatment, x_control, x_treatment)

    # ρ² = 0.49; its estimate from 10,000 users is within ±0.02, the bounds are wider.
    assert 0.4 < cuped.variance_reduction < 0.58
    raw_width = raw.difference_high - raw.difference_low
    cuped_width = cuped.difference_high - cuped.difference_low
    assert cuped_width == pytest.approx(raw_width * np.sqrt(1 - cuped.variance_reduction), rel=1e-3)
    # Both estimate the same effect: they differ by the arms' chance imbalance in x.
    assert abs(cuped.difference - 0.05) < 4 * (cuped_width / 2 / 1.96)
    assert (cuped.mean_control, cuped.mean_treatment) == (raw.mean_control, raw.mean_treatment)


def test_a_real_effect_is_significant() -> None:
    rng = np.random.default_rng(5)
    y_control, _ = _users(rng, 2000, correlation=0.0)
    y_treatment, _ = _users(rng, 2000, correlation=0.0, effect=0.2)
    result = ab_test(y_control, y_treatment)  # z ≈ 0.2 / √(2 / 2000) ≈ 6.3
    assert result.significant
    assert result.difference_low > 0.0
    assert result.p_value < 1e-4
    assert result.relative_low < 0.2 / 2.0 < result.relative_high  # the true +10 %


# --- guardrails ----------------------------------------------------------------------------------


def test_non_inferiority_passes_equal_arms_and_fails_a_worsening() -> None:
    rng = np.random.default_rng(6)
    # Per-user leak rates around 1 % (sd ≈ 1 %), 20,000 users per arm: the bound sits about
    # 1.645 · 0.0001 above the difference, far inside a margin of 0.002.
    control = rng.beta(1, 99, 20_000)
    equal = non_inferiority(control, rng.beta(1, 99, 20_000), margin=0.002, name="leak rate")
    worse = non_inferiority(control, rng.beta(1, 99, 20_000) + 0.004, 0.002, "leak rate")
    assert equal.passed
    assert not worse.passed
    assert worse.difference == pytest.approx(0.004, abs=0.0005)
    assert equal.rule == "treatment − control ≤ 0.002 at 95 % one-sided"

    small_c, small_t = rng.beta(1, 99, 300), rng.beta(1, 99, 300)
    result = non_inferiority(small_c, small_t, 0.002, "leak rate", confidence=0.9)
    reference = stats.ttest_ind(small_t, small_c, equal_var=False, alternative="less")
    assert result.bound == pytest.approx(reference.confidence_interval(0.9).high, rel=1e-9)


def test_non_inferiority_when_higher_is_better() -> None:
    rng = np.random.default_rng(7)
    control = rng.normal(0.8, 0.2, 20_000)  # e.g. a per-user result-found rate
    worse = non_inferiority(
        control, rng.normal(0.8, 0.2, 20_000) - 0.02, 0.01, "found rate", lower_is_better=False
    )
    better = non_inferiority(
        control, rng.normal(0.8, 0.2, 20_000) + 0.02, 0.01, "found rate", lower_is_better=False
    )
    assert not worse.passed
    assert better.passed
    assert worse.rule == "treatment − control ≥ -0.01 at 95 % one-sided"

    small_c, small_t = rng.normal(0.8, 0.2, 300), rng.normal(0.8, 0.2, 300)
    result = non_inferiority(small_c, small_t, 0.01, "found rate", lower_is_better=False)
    reference = stats.ttest_ind(small_t, small_c, equal_var=False, alternative="greater")
    assert result.bound == pytest.approx(reference.confidence_interval(0.95).low, rel=1e-9)


def test_p99_latency_guardrail() -> None:
    rng = np.random.default_rng(8)
    # p99 of this lognormal is ≈ 175 ms; with 20,000 requests per arm the bootstrap sd of the
    # difference of p99s is ≈ 3.3 ms, so a 20 ms margin is 6 sd from an equal arm and a 40 ms
    # slowdown 6 sd beyond the margin.
    control = rng.lognormal(4.0, 0.5, 20_000)
    treatment = rng.lognormal(4.0, 0.5, 20_000)

    def check(latencies: np.ndarray) -> GuardrailResult:
        return quantile_non_inferiority(
            control, latencies, margin_ms=20.0, name="p99 latency", samples=500
        )

    equal, slower = check(treatment), check(treatment + 40.0)
    assert equal.passed
    assert not slower.passed
    assert slower.control == pytest.approx(np.quantile(control, 0.99))
    assert slower.difference == pytest.approx(40.0 + equal.difference)
    assert slower.bound > slower.difference
    assert check(treatment) == equal  # the same seed, the same resamples


# --- the decision and sizing ---------------------------------------------------------------------

SHIPPABLE = (
    EffectEstimate(
        mean_control=2.0,
        mean_treatment=2.04,
        difference=0.036,
        difference_low=0.012,
        difference_high=0.06,
        relative=0.018,
        relative_low=0.006,
        relative_high=0.03,
        p_value=0.003,
        users_control=50_000,
        users_treatment=50_000,
        variance_reduction=0.4,
        confidence=0.95,
    ),
    GuardrailResult(
        name="p99 latency",
        control=180.0,
        treatment=183.0,
        difference=3.0,
        bound=8.0,
        margin=20.0,
        passed=True,
        rule="treatment − control ≤ 20 at 95 % one-sided",
    ),
    srm_check(50_000, 50_000, 0.5),
)


def test_ship_when_every_condition_holds() -> None:
    success, guardrail, srm = SHIPPABLE
    decision = decide(success, [guardrail], srm)
    assert decision.ship
    assert decision.verdict == "ship"
    assert len(decision.reasons) == 3
    assert "success metric +1.8 % [+0.6 %, +3.0 %] is significant" in decision.reasons[1]
    assert decision.reasons[2].startswith("guardrail p99 latency passed")


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (lambda s, g, r: (s, g, srm_check(48_000, 52_000, 0.5)), "sample ratio mismatch (p = "),
        (
            lambda s, g, r: (dataclasses.replace(s, difference_low=-0.01), g, r),
            "is not significant",
        ),
        (
            lambda s, g, r: (
                dataclasses.replace(
                    s, difference=-0.03, difference_low=-0.05, difference_high=-0.01
                ),
                g,
                r,
            ),
            "is significantly worse",
        ),
        (
            lambda s, g, r: (s, dataclasses.replace(g, bound=25.0, passed=False), r),
            "guardrail p99 latency failed",
        ),
    ],
)
def test_do_not_ship_when_a_condition_fails(
    broken: Callable[
        [EffectEstimate, GuardrailResult, SrmResult],
        tuple[EffectEstimate, GuardrailResult, SrmResult],
    ],
    reason: str,
) -> None:
    success, guardrail, srm = broken(*SHIPPABLE)
    decision = decide(success, [guardrail], srm)
    assert not decision.ship
    assert decision.verdict == "do not ship"
    assert any(reason in line for line in decision.reasons)


def test_sessions_to_detect_matches_the_closed_form() -> None:
    # z_{0.975} + z_{0.8} = 2.8016; 2.8016² · 1² / 0.1² = 784.9.
    assert sessions_to_detect(0.1, 1.0) == 3140  # 1570 per arm
    assert sessions_to_detect(-0.1, 1.0) == 3140
    assert sessions_to_detect(0.1, 1.0, arms=1) == 785
    assert sessions_to_detect(0.05, 1.0, arms=1) == 3140  # half the effect, four times the units
    assert sessions_to_detect(0.1, 1.0, alpha=0.01, power=0.9, arms=1) == 1488  # 3.8573²·100


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: assign_arms(np.array([1.5, 2.5]), "exp"), "user_ids"),
        (lambda: assign_arms(np.arange(3), ""), "salt"),
        (lambda: assign_arms(np.arange(3), "exp", treatment_share=1.0), "treatment_share"),
        (lambda: srm_check(-1, 10, 0.5), "n_control"),
        (lambda: srm_check(10, 10, 0.5, threshold=0.0), "threshold"),
        (lambda: cuped_adjust(np.ones(3), np.ones(4)), "x"),
        (lambda: cuped_adjust(np.ones(3), np.array([1.0, np.inf, 2.0])), "x"),
        (lambda: ab_test(np.ones(1), np.ones(5)), "y_control"),
        (lambda: ab_test(np.ones(5), np.array([1.0, np.nan])), "y_treatment"),
        (lambda: ab_test(np.ones(5), np.ones(5), x_control=np.ones(5)), "x_treatment"),
        (lambda: ab_test(np.ones(5), np.ones(5), np.ones(4), np.ones(5)), "x_control"),
        (lambda: ab_test(np.ones(5), np.ones(5), confidence=0.0), "confidence"),
        (lambda: non_inferiority(np.ones(5), np.ones(5), -0.1, "leak"), "margin"),
        (
            lambda: quantile_non_inferiority(
                np.ones(5), np.ones(5), margin_ms=5, name="p", seed=-1
            ),
            "seed",
        ),
        (lambda: sessions_to_detect(0.0, 1.0), "effect"),
        (lambda: sessions_to_detect(0.1, -1.0), "sd"),
        (lambda: sessions_to_detect(0.1, 1.0, alpha=1.5), "alpha"),
        (lambda: sessions_to_detect(0.1, 1.0, arms=3), "arms"),
    ],
)
def test_bad_input_names_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InputError) as error:
        call()
    assert error.value.field == field
