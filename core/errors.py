"""One error type for bad input, so every layer reports it the same way.

A search team meets bad input in many places (a component parameter, a dataset, a config file, an
HTTP request). Each gets an :class:`InputError` that names the field, the value and the rule it
broke, which the command-line tool turns into exit code 2 and the service into a 4xx response.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class InputError(ValueError):
    """Raised when user-supplied input breaks a documented rule.

    Args:
        field: the name of the offending field, column, parameter or file.
        value: the offending value (shortened in the message when long).
        rule: the rule it broke, phrased so that the user knows what to change.
    """

    def __init__(self, field: str, value: Any, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        super().__init__(f"{field}: {shown} is invalid: {rule}")


def check_int(field: str, value: Any, low: int, high: int | None = None) -> None:
    """Raise :class:`InputError` unless ``value`` is an integer (not a bool) in ``[low, high]``
    (no upper bound when ``high`` is None)."""
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if not in_range or (high is not None and value > high):
        rule = f"must be an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        raise InputError(field, value, rule)


def require_columns(present: Iterable[str], name: str, needed: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the columns of ``needed`` missing from ``present`` (a
    DataFrame's ``columns`` or an Arrow table's ``column_names``; ``name`` says whose)."""
    have = list(present)
    missing = [c for c in needed if c not in have]
    if missing:
        raise InputError(f"{name} columns", have, f"must include {missing}")
