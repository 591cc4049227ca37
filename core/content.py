"""The explicit-content policy: what a listener whose explicit-content filter is on may be shown.

A listener can turn on a filter of explicit content. The service learns it from two places: the
listener's stored setting (a user feature in Feast) and, optionally, the request. The policy
takes the stricter of the two, and fails safe where it lacks information:

- the filter applies when the request asks for it, or the stored setting is on, or the store
  has no setting for the listener (a new or unknown account) and the request does not say off;
- under the filter an item is withheld when it is flagged explicit **or has no flag**.

It is applied after ranking and before the top k, whatever the ranker scored, by the service
(:mod:`searchrank.serving.engine`) and by the two places that measure what listeners would
see: ``evaluate`` and ``package_service``'s infra validation. Both report an explicit-leak rate
(:class:`LeakAudit`), and any leak refuses the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _unknown(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def filter_applies(requested: bool | None, setting: object) -> bool:
    """Whether a listener's results must be free of explicit content.

    Args:
        requested: the request's ``explicit_filter``, or None when it carries none.
        setting: the listener's stored setting (``True``/``False``), or None/NaN when the store
            has none.
    """
    if requested:
        return True
    if _unknown(setting):
        return requested is None
    return bool(setting)


def is_withheld(explicit: Sequence[object] | np.ndarray | pd.Series) -> np.ndarray:
    """A mask of the items a filtered listener must not see: flagged explicit, or unflagged."""
    flags = pd.Series(np.asarray(explicit, dtype=object), dtype=object)
    unknown = flags.isna().to_numpy()
    return unknown | flags.where(~unknown, False).astype(bool).to_numpy()


def visible(order: np.ndarray, explicit: np.ndarray | pd.Series, applies: bool) -> np.ndarray:
    """The ranked positions a listener may see, best first.

    Args:
        order: candidate indices, best first (for example ``np.argsort(-scores)``).
        explicit: each candidate's explicit flag (None/NaN when unknown), by candidate index.
        applies: whether the listener's filter applies (:func:`filter_applies`).
    """
    if not applies:
        return order
    return order[~is_withheld(np.asarray(explicit, dtype=object)[order])]


@dataclass
class LeakAudit:
    """Explicit items in the lists shown to filtered listeners (the explicit-leak rate).

    Attributes:
        lists: lists shown to listeners whose filter applied.
        shown: items in those lists.
        leaked: of those, items flagged explicit or unflagged. Anything above zero is a bug.
        withheld: items the policy removed from those lists before the top k.
    """

    lists: int = 0
    shown: int = 0
    leaked: int = 0
    withheld: int = 0

    def add(self, shown_explicit: np.ndarray | Sequence[object], withheld: int = 0) -> None:
        """Count one list shown to a filtered listener, by its items' explicit flags."""
        flags = np.asarray(shown_explicit, dtype=object)
        self.lists += 1
        self.shown += len(flags)
        self.leaked += int(is_withheld(flags).sum())
        self.withheld += withheld

    @property
    def leak_rate(self) -> float:
        """Leaked items per item shown to a filtered listener; 0 when nothing was shown."""
        return self.leaked / self.shown if self.shown else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "filtered_lists": self.lists,
            "shown": self.shown,
            "leaked": self.leaked,
            "withheld": self.withheld,
            "leak_rate": self.leak_rate,
        }
