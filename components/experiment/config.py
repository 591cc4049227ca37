"""Configuration of ``experiment``: how the simulated online test runs and what ships."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from searchrank.core.errors import InputError


@dataclass(frozen=True)
class ExperimentConfig:
    """How champion and challenger meet simulated traffic, and the decision rule.

    Attributes:
        cutoff: the length of the list a listener is shown (the top ``cutoff`` after the
            explicit-content policy).
        treatment_share: the share of listeners the A/B test sends to the challenger.
        salt: the A/B test's assignment salt: another salt splits listeners anew.
        confidence: of every interval, and one minus the tests' significance level.
        power: the chance the A/B test must have to detect ``minimum_detectable_effect``; the
            experiment refuses to run on fewer listeners than that needs.
        minimum_detectable_effect: the smallest relative change of the success metric worth
            detecting (0.05 = 5 %), for the power check.
        leak_margin: the explicit-leak rate (leaked items per item shown to filtered listeners)
            may grow by at most this much.
        zero_result_margin: the share of searches with nothing to show may grow by at most this.
        latency_margin_ms: the model stage's p99 latency may grow by at most this many ms.
        latency_searches: searches timed one by one per arm for the latency guardrail.
        sensitivity_replicates: fresh simulations of the same searches that measure each
            method's effect for the sessions-to-detect figures.
        seed: of the simulated reactions and the interleaving's coin flips.
    """

    cutoff: int = 10
    treatment_share: float = 0.5
    salt: str = "searchrank-experiment"
    confidence: float = 0.95
    power: float = 0.8
    minimum_detectable_effect: float = 0.05
    leak_margin: float = 0.0
    zero_result_margin: float = 0.005
    latency_margin_ms: float = 5.0
    latency_searches: int = 300
    sensitivity_replicates: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cutoff < 1:
            raise InputError("cutoff", self.cutoff, "must be at least 1")
        if self.sensitivity_replicates < 1:
            raise InputError(
                "sensitivity_replicates", self.sensitivity_replicates, "must be at least 1"
            )
        if self.latency_searches < 10:
            raise InputError("latency_searches", self.latency_searches, "must be at least 10")
        for name in ("treatment_share", "confidence", "power", "minimum_detectable_effect"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise InputError(name, value, "must lie strictly between 0 and 1")
        for name in ("leak_margin", "zero_result_margin", "latency_margin_ms"):
            if getattr(self, name) < 0:
                raise InputError(name, getattr(self, name), "must not be negative")
        if not self.salt:
            raise InputError("salt", self.salt, "must not be empty")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
