"""Incremental materialization of every feature view into the online store.

A view materialized before continues from where it stopped; a view never materialized starts
``ttl`` before the end (the oldest values a point-in-time join at ``end`` would still use), or
at the beginning of time when it has no TTL. So the online store holds what training would see
at ``end``, and running the step twice leaves the same online state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from searchrank.core.names import MetadataKey

if TYPE_CHECKING:
    from feast import FeatureView

BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ViewWindow:
    """The interval one feature view was (or would be) materialized over."""

    feature_view: str
    start: datetime
    end: datetime

    @property
    def empty(self) -> bool:
        return self.start >= self.end


@dataclass(frozen=True)
class MaterializeSummary:
    """What ``materialize_features`` did."""

    end: datetime
    windows: list[ViewWindow]

    def metadata(self) -> dict[str, Any]:
        done = [w for w in self.windows if not w.empty]
        return {
            MetadataKey.MATERIALIZED_UNTIL: self.end.isoformat(),
            MetadataKey.FEATURE_VIEWS: [w.feature_view for w in done],
            "windows": {w.feature_view: [w.start.isoformat(), w.end.isoformat()] for w in done},
        }

    def markdown(self) -> str:
        lines = [
            f"### Online store materialized until {self.end.isoformat()}",
            "",
            "| feature view | from | to |",
            "| --- | --- | --- |",
        ]
        for w in self.windows:
            start = "(up to date)" if w.empty else w.start.isoformat()
            lines.append(f"| {w.feature_view} | {start} | {w.end.isoformat()} |")
        return "\n".join(lines) + "\n"


def window_for(view: FeatureView, end: datetime) -> ViewWindow:
    """Where materialization of ``view`` up to ``end`` starts (see the module docstring)."""
    if view.most_recent_end_time is not None:
        start = view.most_recent_end_time.astimezone(UTC)
    elif view.ttl and view.ttl.total_seconds() > 0:
        start = end - view.ttl
    else:
        start = BEGINNING
    return ViewWindow(view.name, start, end)


def materialize_features(feature_repo: Path, end: datetime | None = None) -> MaterializeSummary:
    """Bring every online feature view of the repository up to ``end`` (default: now)."""
    from searchrank.features.store import check_connections, open_store

    store = open_store(feature_repo)
    check_connections(store)
    until = (end or datetime.now(UTC)).astimezone(UTC)
    windows = [window_for(v, until) for v in store.list_feature_views() if v.online]
    for window in windows:
        if not window.empty:
            store.materialize(
                start_date=window.start, end_date=window.end, feature_views=[window.feature_view]
            )
    return MaterializeSummary(until, windows)
