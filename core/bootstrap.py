"""Paired bootstrap over queries: is system A better than system B on the same queries?

Both systems are scored on the same queries, so their per-query values are paired: resampling
queries (with replacement) and recomputing both means on each resample keeps the pairing, and
the spread of the resampled differences reflects how much the comparison depends on which
queries happened to be in the test set (Efron & Tibshirani; Sakai 2006 for IR evaluation).
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
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
        raise InputError("samples", samples, "must be a positive integer")
    if not 0.0 < confidence < 1.0:
        raise InputError("confidence", confidence, "must lie strictly between 0 and 1")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError("seed", seed, "must be a non-negative integer")

    means_a, means_b = _resampled_means(values_a, values_b, int(samples), seed)
    differences = means_a - means_b
    differences.setflags(write=False)
    mean_a, mean_b = float(values_a.mean()), float(values_b.mean())
    difference = mean_a - mean_b
    tails = 100.0 * np.array([(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
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


def _resampled_means(
    a: np.ndarray, b: np.ndarray, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Means of a and b (n,) over the same resampled queries; two (samples,) arrays."""
    rng = np.random.default_rng(seed)
    n = len(a)
    per_chunk = max(1, CHUNK_ELEMENTS // n)
    means_a = np.empty(samples)
    means_b = np.empty(samples)
    for start in range(0, samples, per_chunk):
        stop = min(start + per_chunk, samples)
        picks = rng.integers(0, n, size=(stop - start, n))
        means_a[start:stop] = a[picks].mean(axis=1)
        means_b[start:stop] = b[picks].mean(axis=1)
    return means_a, means_b


def _p_value(differences: np.ndarray, difference: float) -> float:
    """Two-sided bootstrap p-value of a zero difference; see :attr:`BootstrapResult.p_value`."""
    if difference > 0:
        beyond = float(np.mean(differences <= 0.0))
    elif difference < 0:
        beyond = float(np.mean(differences >= 0.0))
    else:
        return 1.0
    return min(1.0, 2.0 * beyond)


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
