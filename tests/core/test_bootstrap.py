"""Paired bootstrap: clear wins, ties, determinism, coverage and bad input; the intervals of
several systems' means; p-values printed within their resolution."""

from __future__ import annotations

import numpy as np
import pytest

from searchrank.core import bootstrap
from searchrank.core.bootstrap import BootstrapResult, format_p, mean_intervals, paired_bootstrap
from searchrank.core.errors import InputError


def _systems(seed: int, queries: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Per-query values of two systems where A beats B by 0.05 on every query, up to noise."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 0.9, queries)
    b = a - 0.05 + rng.normal(0.0, 0.01, queries)
    return a, b


def test_a_clear_improvement_is_significant() -> None:
    a, b = _systems(seed=1)
    result = paired_bootstrap(a, b)

    assert result.difference == pytest.approx(a.mean() - b.mean(), abs=1e-15)
    assert result.difference == pytest.approx(0.05, abs=0.005)
    assert 0.0 < result.difference_low < result.difference < result.difference_high
    assert result.p_value < 0.01
    assert result.ratio == pytest.approx(a.mean() / b.mean(), abs=1e-15)
    assert 1.0 < result.ratio_low < result.ratio < result.ratio_high
    assert result.differences.shape == (2000,)
    assert result.samples == 2000


def test_the_sign_of_the_comparison_flips_with_the_order() -> None:
    a, b = _systems(seed=1)
    forward, backward = paired_bootstrap(a, b), paired_bootstrap(b, a)
    assert backward.difference == pytest.approx(-forward.difference, abs=1e-15)
    assert backward.difference_high == pytest.approx(-forward.difference_low, abs=1e-12)
    assert backward.p_value == forward.p_value


def test_identical_systems_differ_by_nothing() -> None:
    a, _ = _systems(seed=2)
    result = paired_bootstrap(a, a.copy())

    assert result.difference == 0.0
    assert result.difference_low <= 0.0 <= result.difference_high
    assert result.ratio == 1.0
    assert result.ratio_low <= 1.0 <= result.ratio_high
    assert result.p_value == 1.0


def test_noise_alone_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.0, 1.0, 400)
    b = a + rng.normal(0.0, 0.1, 400)
    b -= b.mean() - a.mean()  # same mean, different per-query values
    result = paired_bootstrap(a, b)
    assert result.difference_low < 0.0 < result.difference_high
    assert result.p_value > 0.5


def test_deterministic_for_a_seed() -> None:
    a, b = _systems(seed=4, queries=100)
    first = paired_bootstrap(a, b, samples=500, seed=7)
    again = paired_bootstrap(a, b, samples=500, seed=7)
    other = paired_bootstrap(a, b, samples=500, seed=8)

    assert first == again
    assert first.as_dict() == again.as_dict()
    np.testing.assert_array_equal(first.differences, again.differences)
    assert not np.array_equal(first.differences, other.differences)


def test_interval_covers_the_true_difference_in_most_draws() -> None:
    # A population where the true mean difference is 0.05, with skewed per-query noise; a 95 %
    # interval should cover it in about 95 % of test sets. 200 draws: the binomial standard
    # error is 1.5 points, so 90 % leaves room for the percentile interval's small-n shortfall.
    rng = np.random.default_rng(5)
    true_difference = 0.05
    covered = 0
    draws = 200
    for draw in range(draws):
        base = rng.uniform(0.0, 1.0, 200)
        a = base + rng.exponential(0.2, 200) - 0.2
        b = base - true_difference + rng.normal(0.0, 0.1, 200)
        result = paired_bootstrap(a, b, samples=1000, seed=draw)
        covered += result.difference_low <= true_difference <= result.difference_high
    assert covered / draws >= 0.90


def test_as_dict_holds_the_scalars_only() -> None:
    a, b = _systems(seed=6, queries=50)
    result = paired_bootstrap(a, b, samples=100, confidence=0.9)
    scalars = result.as_dict()

    assert "differences" not in scalars
    assert set(scalars) == {
        "mean_a",
        "mean_b",
        "difference",
        "difference_low",
        "difference_high",
        "ratio",
        "ratio_low",
        "ratio_high",
        "p_value",
        "samples",
        "confidence",
    }
    assert scalars["confidence"] == 0.9
    assert all(np.isscalar(v) for v in scalars.values())


def test_result_is_frozen() -> None:
    a, b = _systems(seed=6, queries=50)
    result = paired_bootstrap(a, b, samples=100)
    with pytest.raises(AttributeError):
        result.difference = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        result.differences[0] = 0.0
    assert isinstance(result, BootstrapResult)


def test_resampling_in_many_chunks_fills_every_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _systems(seed=7, queries=40)
    monkeypatch.setattr(bootstrap, "CHUNK_ELEMENTS", 3 * 40)  # 3 resamples per chunk
    result = paired_bootstrap(a, b, samples=10)
    # Every resampled difference is a mean of per-query differences, so it lies within them.
    gaps = a - b
    assert result.differences.shape == (10,)
    assert (result.differences >= gaps.min() - 1e-12).all()
    assert (result.differences <= gaps.max() + 1e-12).all()


def test_ratio_is_nan_when_b_averages_zero() -> None:
    result = paired_bootstrap(np.array([0.5, 0.2, 0.1]), np.zeros(3), samples=50)
    assert np.isnan(result.ratio)
    assert np.isnan(result.ratio_low)
    assert np.isnan(result.ratio_high)
    assert result.difference_low > 0.0


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "field"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], {}, "b"),
        ([0.1, np.nan, 0.3], [0.1, 0.2, 0.3], {}, "a"),
        ([0.1, 0.2, 0.3], [0.1, np.inf, 0.3], {}, "b"),
        ([[0.1, 0.2]], [[0.1, 0.2]], {}, "a"),
        ([], [], {}, "a"),
        (["x", "y"], [0.1, 0.2], {}, "a"),
        ([0.1, 0.2], [0.1, 0.2], {"samples": 0}, "samples"),
        ([0.1, 0.2], [0.1, 0.2], {"samples": 10.0}, "samples"),
        ([0.1, 0.2], [0.1, 0.2], {"confidence": 1.0}, "confidence"),
        ([0.1, 0.2], [0.1, 0.2], {"confidence": 0.0}, "confidence"),
        ([0.1, 0.2], [0.1, 0.2], {"seed": -1}, "seed"),
    ],
)
def test_bad_input_names_the_field(a: list, b: list, kwargs: dict, field: str) -> None:
    with pytest.raises(InputError) as caught:
        paired_bootstrap(np.array(a), np.array(b), **kwargs)
    assert caught.value.field == field


def test_each_mean_gets_an_interval_as_wide_as_its_standard_error_says() -> None:
    a, b = _systems(seed=8, queries=400)
    low, high = mean_intervals(np.stack([a, b]), samples=2000, seed=1, confidence=0.95)
    for k, values in enumerate((a, b)):
        assert low[k] < values.mean() < high[k]
        # A 95 % interval of a mean spans about 2 × 1.96 standard errors.
        standard_error = values.std() / np.sqrt(len(values))
        assert high[k] - low[k] == pytest.approx(2 * 1.96 * standard_error, rel=0.1)


def test_every_system_is_resampled_over_the_same_queries() -> None:
    a, _ = _systems(seed=9, queries=100)
    low, high = mean_intervals(np.stack([a, a + 0.1, a]), samples=300, seed=2)
    np.testing.assert_allclose(low[1] - low[0], 0.1)
    np.testing.assert_allclose(high[1] - high[0], 0.1)
    assert (low[2], high[2]) == (low[0], high[0])


def test_mean_intervals_are_deterministic_for_a_seed() -> None:
    a, b = _systems(seed=10, queries=50)
    values = np.stack([a, b])
    first = mean_intervals(values, samples=200, seed=3)
    np.testing.assert_array_equal(first, mean_intervals(values, samples=200, seed=3))
    assert not np.array_equal(first, mean_intervals(values, samples=200, seed=4))


@pytest.mark.parametrize(
    ("values", "kwargs", "field"),
    [
        ([0.1, 0.2], {}, "values"),
        ([[0.1, 0.2], [0.1, np.nan]], {}, "values[1]"),
        (np.empty((1, 0)), {}, "values[0]"),
        ([[0.1, 0.2]], {"samples": 0}, "samples"),
        ([[0.1, 0.2]], {"confidence": 1.0}, "confidence"),
    ],
)
def test_bad_values_for_mean_intervals_name_the_field(
    values: list, kwargs: dict, field: str
) -> None:
    with pytest.raises(InputError) as caught:
        mean_intervals(np.array(values), **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("p_value", "samples", "printed"),
    [
        (0.0, 1000, "< 0.002"),
        (0.0, 2000, "< 0.001"),
        (0.0, 300, "< 0.0067"),
        (0.002, 1000, "0.0020"),
        (0.046, 2000, "0.0460"),
        (1.0, 2000, "1.0000"),
        (4e-5, 50_000, "4.0e-05"),
    ],
)
def test_a_p_value_prints_no_finer_than_the_resampling_resolves(
    p_value: float, samples: int, printed: str
) -> None:
    # The smallest p-value above 0 is 2 / samples (twice a share of the resamples), so 0 means
    # "below 2 / samples", never "0".
    assert format_p(p_value, samples) == printed


def test_a_clear_improvement_prints_its_p_value_as_a_bound() -> None:
    a, b = _systems(seed=1)
    result = paired_bootstrap(a, b, samples=2000)
    assert result.p_value == 0.0
    assert format_p(result.p_value, result.samples) == "< 0.001"
