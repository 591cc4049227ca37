"""Paired bootstrap over queries: is system A better than system B on the same queries?

Both systems are scored on the same queries, so their per-query values are paired: resampling
queries (with replacement) and recomputing both means on each resample keeps the pairing, and
the spread of the resampled differences reflects how much the comparison depends on which
queries happened to be in the test set (Efron & Tibshirani; Sakai 2006 for IR evaluation).

:func:`mean_intervals` resamples the same way to put an interval on each system's mean alone
(the error bars of metrics by slice); :func:`format_p` prints a p-value no finer than the
resampling resolves it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from searchrank.core.errors import InputError

CHUNK_ELEMENTS = 1 << 22
"""Resampled query indices drawn at a time (32 MiB of int64), which bounds the memory used."""


@dataclass(frozen=True)
class BootstrapResult:
    """The outcome of :func:`paired_bootstrap`; intervals are percentile intervals."""

    mean_a: float
    mean_b: float
    difference: float
    """``mean_a − mean_b``."""
    difference_low: float
    difference_high: float
    ratio: float
    """``mean_a / mean_b``; NaN where ``mean_b`` is 0."""
    ratio_low: float
    """NaN when a resample has a mean of b of 0, as does ``ratio_high``."""
    ratio_high: float
    p_value: float
    """Two-sided: twice the share of resampled differences at or beyond 0 on the side opposite
    to ``difference``, capped at 1 (1 when ``difference`` is 0). Its resolution is
    ``2 / samples``: 0 means below it, not impossible."""
    samples: int
    confidence: float
    differences: np.ndarray = field(repr=False, compare=False)
    """(samples,) the resampled differences of means, read-only, for plotting."""

    def as_dict(self) -> dict[str, float]:
        """The scalar fields by name (without ``differences``), for logging and reports."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "differences"
        }


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Compare two systems' per-query metric values by resampling queries.

    Args:
        a: (n,) per-query values of system A, finite (the caller drops undefined queries).
        b: (n,) per-query values of system B on the same queries, in the same order.
        samples: the number of bootstrap resamples, at least 1.
        seed: the seed of the resampling; the result is a function of the inputs and the seed.
        confidence: the coverage of the intervals, strictly between 0 and 1.

    Returns:
        The means, their difference and ratio with percentile intervals, a two-sided p-value
        and the bootstrap distribution of the difference.

    Raises:
        InputError: a or b is not a 1-D numeric array, they differ in length, are empty or hold
            a non-finite value, or samples, seed or confidence is out of range.
    """
    values_a = _check_values("a", a)
    values_b = _check_values("b", b)
    if len(values_b) != len(values_a):
        raise InputError(
            "b", len(values_b), f"must hold one value per query of a ({len(values_a)} queries)"
        )
    _check_resampling(samples, seed, confidence)

    means_a, means_b = _resampled_means(np.stack([values_a, values_b]), int(samples), seed)
    differences = means_a - means_b
    differences.setflags(write=False)
    mean_a, mean_b = float(values_a.mean()), float(values_b.mean())
    difference = mean_a - mean_b
    tails = _tails(confidence)
    difference_low, difference_high = np.percentile(differences, tails)

    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(means_b != 0.0, means_a / means_b, np.nan)
    ratio_low, ratio_high = np.percentile(ratios, tails)

    return BootstrapResult(
        mean_a=mean_a,
        mean_b=mean_b,
        difference=difference,
        difference_low=float(difference_low),
        difference_high=float(difference_high),
        ratio=mean_a / mean_b if mean_b != 0.0 else float("nan"),
        ratio_low=float(ratio_low),
        ratio_high=float(ratio_high),
        p_value=_p_value(differences, difference),
        samples=int(samples),
        confidence=float(confidence),
        differences=differences,
    )


def mean_intervals(
    values: np.ndarray,
    *,
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap intervals of the mean of each system's per-query values.

    Every system is resampled over the same resampled queries, as :func:`paired_bootstrap`
    does, so the intervals of a group of queries (a slice) are comparable with each other.

    Args:
        values: (systems, n) per-query values, one row per system, finite.
        samples: the number of bootstrap resamples, at least 1.
        seed: the seed of the resampling; the result is a function of the inputs and the seed.
        confidence: the coverage of the intervals, strictly between 0 and 1.

    Returns:
        (low, high): two (systems,) arrays, the interval's ends for each row of ``values``.

    Raises:
        InputError: values is not a 2-D numeric array with at least one query and only finite
            values, or samples, seed or confidence is out of range.
    """
    array = np.asarray(values)
    if array.ndim != 2:
        raise InputError("values", array.shape, "must be a (systems, queries) array")
    rows = np.stack([_check_values(f"values[{k}]", row) for k, row in enumerate(array)])
    _check_resampling(samples, seed, confidence)
    means = _resampled_means(rows, int(samples), seed)
    low, high = np.percentile(means, _tails(confidence), axis=1)
    return low, high


def _resampled_means(values: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Means of each row of ``values`` (systems, n) over the same resampled queries; returns
    (systems, samples)."""
    rng = np.random.default_rng(seed)
    n = values.shape[1]
    per_chunk = max(1, CHUNK_ELEMENTS // n)
    means = np.empty((len(values), samples))
    for start in range(0, samples, per_chunk):
        stop = min(start + per_chunk, samples)
        picks = rng.integers(0, n, size=(stop - start, n))
        for row, system in enumerate(values):
            means[row, start:stop] = system[picks].mean(axis=1)
    return means


def _tails(confidence: float) -> np.ndarray:
    """The percentiles (0-100) at the ends of a central interval of ``confidence``."""
    return 100.0 * np.array([(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])


def _p_value(differences: np.ndarray, difference: float) -> float:
    """Two-sided bootstrap p-value of a zero difference; see :attr:`BootstrapResult.p_value`."""
    if difference > 0:
        beyond = float(np.mean(differences <= 0.0))
    elif difference < 0:
        beyond = float(np.mean(differences >= 0.0))
    else:
        return 1.0
    return min(1.0, 2.0 * beyond)


def format_p(p_value: float, samples: int) -> str:
    """A :func:`paired_bootstrap` p-value for a report, never claiming more than it resolves.

    The p-value is twice a share of ``samples`` resamples, so the smallest one above 0 is
    ``2 / samples``: a p-value of 0 means "below that", printed as ``< 2/samples`` (``< 0.001``
    with 2,000 resamples). Others print with four decimals, or in scientific notation below
    0.0001, where four decimals would round them to 0.
    """
    if p_value <= 0.0:
        return f"< {2.0 / samples:.2g}"
    return f"{p_value:.4f}" if p_value >= 1e-4 else f"{p_value:.1e}"


def _check_resampling(samples: int, seed: int, confidence: float) -> None:
    """Validate the resampling arguments of :func:`paired_bootstrap` and :func:`mean_intervals`."""
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
        raise InputError("samples", samples, "must be a positive integer")
    if not 0.0 < confidence < 1.0:
        raise InputError("confidence", confidence, "must lie strictly between 0 and 1")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError("seed", seed, "must be a non-negative integer")


def _check_values(name: str, values: np.ndarray) -> np.ndarray:
    """Validate one system's per-query values; returns them as float64."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(name, array.shape, "must be a one-dimensional array of per-query values")
    if len(array) == 0:
        raise InputError(name, array, "needs at least one query")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(name, str(array.dtype), "must be an integer or float array")
    if not np.isfinite(array).all():
        raise InputError(
            name,
            array[~np.isfinite(array)][0],
            "per-query values must be finite; drop queries without a defined metric first",
        )
    return array.astype(np.float64)
