"""Off-policy evaluation: a new ranker's click metric, estimated from the old ranker's logs.

Showing a new ranking to listeners is the only way to measure it for sure, and it costs
traffic. Off-policy evaluation reuses what the old ranker already logged: every logged row says
whether a listener who saw an item at a position reacted to it. Under the click model of
:mod:`searchrank.core.propensity` (examination θ by position, relevance γ, a cascade that keeps
looking after a stream with probability ``keep``), a list's expected number of rewarded rows is

    V(list) = Σ_rows θ(new position) · κ(row) · γ(row),
    κ(row) = 1 − (1 − keep) · (1 − Π_{rows above it} (1 − θ · s)),

where s is a row's chance of being streamed once looked at, and κ the chance that the listener
has not stopped before reaching it. The estimators differ in where γ comes from:

- **IPS**: ``γ = reward / p`` with ``p`` the logged row's examination chance given what the log
  shows above it (:meth:`PositionBias.logged`), the inverse weight clipped at ``max_weight``.
  Unbiased for the click term when p is right and nothing is clipped.
- **SNIPS**: IPS rescaled so that, on the logging ranker's own rows, it reproduces the rewards
  observed (Σ reward / Σ p · γ_IPS): the known value of the logging ranker serves as the control
  variate. With deterministic logging this restores what clipping removed; unclipped, it equals
  IPS.
- **DM** (direct method): γ from a reward model fitted on the logs.
- **DR** (doubly robust): ``γ = γ_model + w · (reward − p · γ_model)``: the model, corrected by
  the clipped inverse weights where the log disagrees with it. It is right when either the
  propensities or the model are.

The stopping term κ always uses the reward model's s (an inverse-weighted s inside a product is
noisy enough to bias the product). Intervals are percentile bootstrap intervals over lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from searchrank.core.bootstrap import mean_intervals
from searchrank.core.errors import InputError
from searchrank.core.propensity import PositionBias, stream_above

ESTIMATORS: tuple[str, ...] = ("ips", "snips", "dm", "dr")


@dataclass(frozen=True)
class LoggedLists:
    """The old ranker's logs, one row per shown candidate.

    Attributes:
        list_id: (n,) the search each row belongs to; rows of one list contiguous and in logged
            position order.
        position: (n,) logged position, 0 = top.
        reward: (n,) bool, the reward whose total per list is estimated (for example a click).
        satisfied: (n,) bool, whether the row satisfied the listener (a stream ≥ 30 s), which
            drives the cascade.
    """

    list_id: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    satisfied: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.list_id)
        for name in ("position", "reward", "satisfied"):
            if len(getattr(self, name)) != n:
                raise InputError(name, len(getattr(self, name)), f"must have {n} rows (list_id)")

    @property
    def starts(self) -> np.ndarray:
        ids = np.asarray(self.list_id)
        return np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, int)

    @property
    def list_of_row(self) -> np.ndarray:
        """(n,) each row's list as an index 0, 1, … into :attr:`starts`."""
        starts = self.starts
        return np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(self.list_id))))


@dataclass(frozen=True)
class RewardModel:
    """A reward model's per-row chances once a row is looked at.

    Attributes:
        reward: (n,) P(reward | looked at), the γ of the direct method.
        satisfy: (n,) P(satisfied | looked at), the s of the stopping term.
    """

    reward: np.ndarray
    satisfy: np.ndarray


@dataclass(frozen=True)
class PolicyEstimate:
    """One estimator's estimate of a ranking's mean reward per list, with its interval."""

    estimator: str
    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high


def estimate_policy(
    logs: LoggedLists,
    new_position: np.ndarray,
    bias: PositionBias,
    model: RewardModel,
    *,
    cutoff: int = 10,
    max_weight: float = 100.0,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, PolicyEstimate]:
    """Estimate the mean reward per list of a new ranking of the logged candidates.

    Args:
        logs: the old ranker's rows (:class:`LoggedLists`).
        new_position: (n,) the new ranking's position of each logged row, 0 = top, negative
            when the new ranking does not show it.
        bias: the estimated position bias
            (:func:`~searchrank.core.propensity.estimate_position_bias`).
        model: the reward model's per-row chances (:class:`RewardModel`).
        cutoff: only the new ranking's top ``cutoff`` positions count.
        max_weight: inverse propensity weights are clipped at this value (at least 1).
        samples, seed, confidence: of the bootstrap over lists.

    Returns:
        :data:`ESTIMATORS` to their :class:`PolicyEstimate`.

    Raises:
        InputError: an array has the wrong length, a model chance lies outside [0, 1], or
            ``cutoff`` or ``max_weight`` is out of range.
    """
    n = len(logs.list_id)
    new = np.asarray(new_position, dtype=np.int64)
    for name, values in (
        ("new_position", new),
        ("model.reward", model.reward),
        ("model.satisfy", model.satisfy),
    ):
        if len(values) != n:
            raise InputError(name, len(values), f"must have one entry per logged row ({n})")
    for name, values in (("model.reward", model.reward), ("model.satisfy", model.satisfy)):
        if len(values) and not (np.min(values) >= 0.0 and np.max(values) <= 1.0):
            raise InputError(name, float(np.min(values)), "chances must lie in [0, 1]")
    if cutoff < 1:
        raise InputError("cutoff", cutoff, "must be at least 1")
    if max_weight < 1.0:
        raise InputError("max_weight", max_weight, "must be at least 1 (no weight below 1)")

    starts = logs.starts
    reward = np.asarray(logs.reward, dtype=np.float64)
    logged = bias.logged(logs.position, stream_above(logs.satisfied, starts))
    weight = np.minimum(1.0 / logged, max_weight)
    ips = reward * weight
    gamma = {
        "ips": ips,
        "snips": ips * (reward.sum() / max(float((logged * ips).sum()), 1e-12)),
        "dm": np.asarray(model.reward, dtype=np.float64),
        "dr": model.reward + weight * (reward - logged * model.reward),
    }
    list_of_row = logs.list_of_row
    looked = _new_examination(logs, list_of_row, new, bias, np.asarray(model.satisfy), cutoff)
    per_list = np.stack(
        [
            np.bincount(list_of_row, weights=looked * gamma[name], minlength=len(starts))
            for name in ESTIMATORS
        ]
    )
    low, high = mean_intervals(per_list, samples=samples, seed=seed, confidence=confidence)
    return {
        name: PolicyEstimate(name, float(per_list[i].mean()), float(low[i]), float(high[i]))
        for i, name in enumerate(ESTIMATORS)
    }


def _new_examination(
    logs: LoggedLists,
    list_of_row: np.ndarray,
    new: np.ndarray,
    bias: PositionBias,
    satisfy: np.ndarray,
    cutoff: int,
) -> np.ndarray:
    """θ(new position) · κ of every logged row under the new ranking (0 where not shown)."""
    n = len(new)
    shown = (new >= 0) & (new < cutoff)
    order = np.lexsort((np.where(shown, new, cutoff), list_of_row))
    theta = np.where(shown[order], bias.at(np.where(shown, new, 0)[order]), 0.0)
    # log P(no stream so far) accumulates down each list; subtracting each list's value at its
    # first row leaves the product over the rows above.
    missed = np.log(np.clip(1.0 - theta * satisfy[order], 1e-12, 1.0))
    before = np.cumsum(missed) - missed
    first = logs.starts[list_of_row]
    none_above = np.exp(before - before[first])
    kept = 1.0 - (1.0 - bias.keep) * (1.0 - none_above)
    looked = np.empty(n)
    looked[order] = theta * kept
    return looked
