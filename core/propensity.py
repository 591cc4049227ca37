"""Position bias estimated from click logs: how much less a listener looks at lower positions.

Logged clicks mix two things: whether the listener looked at an item (which falls with its
position) and whether they liked it. The **position-based model** (PBM) writes the chance of a
click as ``P(click) = θ[position] · γ(item, context)``: an examination curve θ times a
relevance γ. Unbiased learning to rank and off-policy evaluation both need θ.

Music search adds a **cascade**: after the first satisfying result (a stream) many listeners stop
looking, so a row below a stream is seen less again. Rows with no stream above them follow the
PBM; rows below one are kept with a probability ``keep``. :class:`PositionBias` carries both.

:func:`estimate_position_bias` is the regression EM of Wang et al. (WSDM 2018, "Position bias
estimation for unbiased learning to rank in personal search"): the E-step splits every non-click
into "not looked at" and "looked at, not liked"; the M-step re-estimates θ per position and refits
the relevance model γ on the soft labels. The relevance model is a parameter (any fitter of soft
labels: per-(query, item) means, or a gradient-boosted model on features), so this module needs
only numpy. It fits on rows without a stream above them, then reads ``keep`` from the rows below
one: their clicks against what θ and γ predict.

θ is identified by the same relevance seen at different positions. From one deterministic ranker
that comes only from natural variation (the same item moving as popularity changes), which is
confounded with relevance unless the relevance model sees what moved it; harvesting across
rankers (the same searches shown in two orders, as an A/B test or interleaving does) removes the
confounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from searchrank.core.errors import InputError

RelevanceFitter = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``fit(rows, soft_labels) -> predictions``: fit a model of P(liked | looked at) on the given
rows (indices into the logs) and their soft labels in [0, 1], and return its predictions for
every row of the logs (in (0, 1))."""

MIN_EXAMINATION = 1e-3
"""The smallest examination (or cascade keep) chance an estimate may hold, so that inverse
weights stay finite."""


@dataclass(frozen=True)
class PositionBias:
    """An examination curve and the cascade's continuation, relative to the top position.

    Attributes:
        examination: (positions,) chance of looking at each position, 1 at position 0.
            Positions beyond the curve use its last value.
        keep: chance that a listener keeps looking after a stream above (1 means no cascade).
        iterations: EM iterations run.
    """

    examination: np.ndarray
    keep: float
    iterations: int

    def __post_init__(self) -> None:
        """A propensity that is missing (NaN, or no curve at all) or outside (0, 1] would turn
        into infinite or NaN inverse weights downstream: refused here, by name."""
        curve = np.asarray(self.examination, dtype=np.float64)
        if curve.ndim != 1 or not len(curve):
            raise InputError("examination", curve.shape, "needs one propensity per position")
        bad = ~np.isfinite(curve) | (curve <= 0.0) | (curve > 1.0)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            rule = f"every position's propensity must lie in (0, 1] (position {first})"
            raise InputError("examination", float(curve[first]), rule)
        if not 0.0 < self.keep <= 1.0:
            raise InputError("keep", self.keep, "must lie in (0, 1]")

    def at(self, position: np.ndarray) -> np.ndarray:
        """θ of each position (0 = top); positions past the curve get its last value."""
        index = np.minimum(np.asarray(position, dtype=np.int64), len(self.examination) - 1)
        if (index < 0).any():
            raise InputError("position", int(index.min()), "positions start at 0 (the top)")
        return self.examination[index]

    def logged(self, position: np.ndarray, stream_above: np.ndarray) -> np.ndarray:
        """The chance that each logged row was looked at, given what the log shows above it."""
        return self.at(position) * np.where(stream_above, self.keep, 1.0)

    def as_dict(self) -> dict[str, object]:
        return {
            "examination": [round(float(v), 4) for v in self.examination],
            "keep": round(self.keep, 4),
            "iterations": self.iterations,
        }


def stream_above(satisfied: np.ndarray, list_starts: np.ndarray) -> np.ndarray:
    """Whether any row above each row of its list was satisfying.

    Args:
        satisfied: (n,) bool, rows of one list contiguous and in position order.
        list_starts: (lists,) the first row of each list.
    """
    n = len(satisfied)
    flags = np.asarray(satisfied, dtype=np.int64)
    lengths = np.diff(np.append(list_starts, n))
    first = np.repeat(list_starts, lengths)
    before = np.cumsum(flags) - flags
    return (before - before[first]) > 0


def estimate_position_bias(
    position: np.ndarray,
    clicked: np.ndarray,
    satisfied_above: np.ndarray,
    fit_relevance: RelevanceFitter,
    *,
    positions: int = 20,
    iterations: int = 30,
    tolerance: float = 1e-4,
) -> PositionBias:
    """Fit θ (and the cascade's ``keep``) by regression EM on logged clicks.

    Args:
        position: (n,) logged position of each row, 0 = top.
        clicked: (n,) bool, whether the row got the reward whose bias is estimated (a click).
        satisfied_above: (n,) bool, whether a row above it in its list was satisfying
            (:func:`stream_above`).
        fit_relevance: the relevance model (:data:`RelevanceFitter`).
        positions: the length of the curve; rows further down share its last entry.
        iterations: at most this many EM rounds.
        tolerance: stop when no θ moves by more than this.

    Returns:
        The estimated :class:`PositionBias`.

    Raises:
        InputError: the arrays differ in length, a position is negative, or no row is free of a
            stream above it at the top position (θ cannot be anchored).
    """
    k = np.minimum(np.asarray(position, dtype=np.int64), positions - 1)
    c = np.asarray(clicked, dtype=bool)
    above = np.asarray(satisfied_above, dtype=bool)
    if not len(k) == len(c) == len(above):
        raise InputError(
            "clicked",
            (len(k), len(c), len(above)),
            "position, clicked and satisfied_above must have one entry per row",
        )
    if (k < 0).any():
        raise InputError("position", int(k.min()), "positions start at 0 (the top)")
    free = np.flatnonzero(~above)
    if not (k[free] == 0).any():
        raise InputError("position", "no top rows", "the logs need rows shown at position 0")
    shown = np.bincount(k[free], minlength=positions).astype(np.float64)
    # Start from the naive curve, click-through rates by position relative to the top: EM on
    # the position-based model moves slowly, and this start is already the curve's shape.
    rates = np.bincount(k[free], weights=c[free], minlength=positions) / np.maximum(shown, 1.0)
    theta = np.clip(
        _fill_forward(np.where(shown > 0, rates, np.nan) / max(rates[0], 1e-12)),
        MIN_EXAMINATION,
        1.0,
    )
    gamma = np.full(len(k), max(float(c.mean()), MIN_EXAMINATION))
    rounds = 0
    while rounds < iterations:
        rounds += 1
        t, g = theta[k[free]], gamma[free]
        missed = 1.0 - t * g
        looked_not_liked = np.where(c[free], 0.0, t * (1.0 - g) / missed)
        liked_not_looked = np.where(c[free], 0.0, (1.0 - t) * g / missed)
        looked = np.bincount(k[free], weights=c[free] + looked_not_liked, minlength=positions)
        new = np.where(shown > 0, looked / np.maximum(shown, 1.0), np.nan)
        new = _fill_forward(new / new[0])
        new = np.clip(new, MIN_EXAMINATION, 1.0)
        gamma = np.clip(fit_relevance(free, c[free] + liked_not_looked), 1e-6, 1 - 1e-6)
        moved = float(np.max(np.abs(new - theta)))
        theta = new
        if moved < tolerance:
            break
    below = np.flatnonzero(above)
    expected = float((theta[k[below]] * gamma[below]).sum())
    keep = float(np.clip(c[below].sum() / expected, MIN_EXAMINATION, 1.0)) if expected > 0 else 1.0
    return PositionBias(examination=theta, keep=keep, iterations=rounds)


def _fill_forward(values: np.ndarray) -> np.ndarray:
    """Positions never shown take the value of the nearest shown position above them."""
    out = values.copy()
    for i in range(1, len(out)):
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return out


def unit_means(unit: np.ndarray, prior_strength: float = 1.0) -> RelevanceFitter:
    """The simplest relevance model: one γ per unit (a (query, item) pair, or a (search, item)
    row shown by several rankers), the mean of its soft labels shrunk towards the overall mean
    with ``prior_strength`` pseudo-rows."""
    units = np.asarray(unit)

    def fit(rows: np.ndarray, soft: np.ndarray) -> np.ndarray:
        size = int(units.max()) + 1 if len(units) else 0
        prior = float(soft.mean()) if len(soft) else 0.5
        total = np.bincount(units[rows], weights=soft, minlength=size)
        count = np.bincount(units[rows], minlength=size)
        return ((total + prior_strength * prior) / (count + prior_strength))[units]

    return fit
