"""Thresholds of the evaluation and of the blessing decision."""

from __future__ import annotations

from dataclasses import dataclass

from searchrank.core.errors import InputError


@dataclass(frozen=True)
class EvaluateConfig:
    """How candidates are compared and when one is blessed.

    Attributes:
        ks: cut-offs of NDCG@k and recall@k.
        primary: the metric the blessing decision compares.
        bootstrap_samples: resamples of the paired bootstrap over queries.
        confidence: level of the bootstrap intervals.
        min_gain_vs_baselines: the lower bound of the interval of (candidate − baseline) must
            exceed this for every baseline: 0 means "significantly better".
        min_gain_vs_champion: the same against the champion, the ranker in production: 0 means
            "significantly better"; a small negative value accepts a statistical tie.
        relevance_threshold: labels at or above this are relevant (1: a click).
        seed: seed of the bootstrap.
    """

    ks: tuple[int, ...] = (1, 5, 10)
    primary: str = "ndcg@10"
    bootstrap_samples: int = 2_000
    confidence: float = 0.95
    min_gain_vs_baselines: float = 0.0
    min_gain_vs_champion: float = 0.0
    relevance_threshold: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise InputError("ks", self.ks, "must be positive cut-offs")
        valid = {f"ndcg@{k}" for k in self.ks} | {f"recall@{k}" for k in self.ks} | {"mrr", "map"}
        if self.primary not in valid:
            raise InputError("primary", self.primary, f"must be one of {sorted(valid)}")
        if self.bootstrap_samples < 100:
            raise InputError("bootstrap_samples", self.bootstrap_samples, "must be at least 100")
        if not 0.5 < self.confidence < 1.0:
            raise InputError("confidence", self.confidence, "must lie in (0.5, 1)")
