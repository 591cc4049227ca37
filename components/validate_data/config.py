"""What a training set must satisfy beyond its feature service's schema: the ranking rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from searchrank.core.errors import InputError
from searchrank.core.schema import GRADES


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds and windows of the data contract.

    Attributes:
        window_start: earliest allowed event time (inclusive); not checked when None.
        window_end: latest allowed event time (exclusive); not checked when None.
        min_list_length: fewest candidates a search may have.
        max_list_length: most candidates a search may have (the impression list's length).
        positive_label: labels at or above this count as positive (1 = a click).
        min_positive_share: least share of searches with at least one positive label.
        max_null_rate: largest share of missing values of a feature without its own limit.
        drift_warning: population stability index (PSI) above which a feature's shift warns.
        drift_error: PSI above which a feature's shift fails the validation.
        drift_sample: rows sampled from each dataset for the drift check.
        reference_slack: how far (as a share of the reference's range) values may stray beyond
            the reference's minimum and maximum before a warning, for features without a domain.
    """

    window_start: datetime | None = None
    window_end: datetime | None = None
    min_list_length: int = 2
    max_list_length: int = 20
    positive_label: int = 1
    min_positive_share: float = 0.5
    max_null_rate: float = 0.5
    drift_warning: float = 0.1
    drift_error: float = 0.25
    drift_sample: int = 100_000
    reference_slack: float = 0.1

    def __post_init__(self) -> None:
        for name in ("window_start", "window_end"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InputError(name, moment.isoformat(), "must carry a time zone (UTC)")
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise InputError(
                "window_end", self.window_end.isoformat(), "must be after window_start"
            )
        if not 1 <= self.min_list_length <= self.max_list_length:
            raise InputError(
                "min_list_length",
                self.min_list_length,
                f"must be at least 1 and at most max_list_length ({self.max_list_length})",
            )
        if self.positive_label not in GRADES or self.positive_label == 0:
            raise InputError("positive_label", self.positive_label, f"must be one of {GRADES[1:]}")
        for name in ("min_positive_share", "max_null_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(name, value, "must lie in [0, 1]")
        if not 0.0 < self.drift_warning <= self.drift_error:
            raise InputError(
                "drift_warning",
                self.drift_warning,
                f"must be positive and at most drift_error ({self.drift_error})",
            )
        if self.drift_sample < 1_000:
            raise InputError("drift_sample", self.drift_sample, "must be at least 1000 rows")
        if self.reference_slack < 0:
            raise InputError("reference_slack", self.reference_slack, "must not be negative")
