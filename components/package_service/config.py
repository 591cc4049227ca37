"""How ``package_service`` validates a Bento: the one definition of its defaults, which the op
and the pipeline follow (a test checks them)."""

from __future__ import annotations

from dataclasses import dataclass

from searchrank.core.errors import InputError


@dataclass(frozen=True)
class PackageConfig:
    """How a packaged Bento is validated before it may serve.

    Attributes:
        golden_searches: logged searches replayed against the served Bento.
        rounds: each golden search is sent this many times for the latency measurement.
        p99_budget_ms: the most the 99th percentile of ``/rank`` may take.
        tolerance: the largest difference between served and offline scores.
    """

    golden_searches: int = 30
    rounds: int = 3
    p99_budget_ms: float = 500.0
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if self.golden_searches < 1:
            raise InputError("golden_searches", self.golden_searches, "must be at least 1")
        if self.rounds < 1:
            raise InputError("rounds", self.rounds, "must be at least 1")
        if not self.p99_budget_ms > 0:
            raise InputError("p99_budget_ms", self.p99_budget_ms, "must be positive")
