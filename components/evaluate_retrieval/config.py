"""What ``evaluate_retrieval`` measures and the bars it blesses by: the one definition of its
defaults, which the op, the pipeline and ``build_index`` follow (a test checks them)."""

from __future__ import annotations

from dataclasses import dataclass

from searchrank.core.errors import InputError
from searchrank.core.schema import Grade


@dataclass(frozen=True)
class RetrievalConfig:
    """What the retriever and the intent routing are measured and blessed by.

    Attributes:
        k: the depth of the candidate lists (Recall@k); ``build_index`` measures its index's
            recall at the same depth.
        min_retrieval_gain: how much the routed fusion's Recall@k must exceed BM25's
            (relative; 0 = at least as good).
        min_intent_gain: how much the intent model's macro F1 must exceed the majority
            class's (relative).
        min_relevant_label: the least label a wanted item has.
    """

    k: int = 100
    min_retrieval_gain: float = 0.0
    min_intent_gain: float = 0.0
    min_relevant_label: int = int(Grade.STREAM)

    def __post_init__(self) -> None:
        if self.k < 10:
            raise InputError("k", self.k, "must be at least 10 (Recall@10 is reported)")
        if not self.min_retrieval_gain > -1.0:
            raise InputError("min_retrieval_gain", self.min_retrieval_gain, "must exceed -1")
        if not 0 <= self.min_intent_gain < 1:
            raise InputError("min_intent_gain", self.min_intent_gain, "must lie in [0, 1)")
        if self.min_relevant_label < 1:
            raise InputError("min_relevant_label", self.min_relevant_label, "must be at least 1")
