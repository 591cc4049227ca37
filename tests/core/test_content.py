"""The explicit-content policy on its own: who is filtered, what is withheld, what is counted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchrank.core.content import LeakAudit, filter_applies, is_withheld, visible

UNKNOWN = (None, float("nan"))


@pytest.mark.parametrize(
    ("requested", "setting", "applies"),
    [
        (None, True, True),
        (None, False, False),
        (True, False, True),  # the stricter of request and setting
        (False, True, True),
        (False, False, False),
        *((None, unknown, True) for unknown in UNKNOWN),  # fails safe for an unknown listener
        *((False, unknown, False) for unknown in UNKNOWN),  # unless the request says off
        *((True, unknown, True) for unknown in UNKNOWN),
    ],
)
def test_the_stricter_of_request_and_setting_applies(
    requested: bool | None, setting: object, applies: bool
) -> None:
    assert filter_applies(requested, setting) is applies


def test_explicit_and_unflagged_items_are_withheld() -> None:
    flags = np.array([True, False, None, float("nan"), np.bool_(True), np.bool_(False)], object)
    assert is_withheld(flags).tolist() == [True, False, True, True, True, False]


flags_and_scores = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([True, False, None]), min_size=n, max_size=n),
        st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n),
    )
)


@given(flags_and_scores, st.booleans())
def test_visible_keeps_the_ranked_order_of_exactly_the_clean_items(
    case: tuple[list[bool | None], list[float]], applies: bool
) -> None:
    flags, scores = np.array(case[0], dtype=object), np.array(case[1])
    order = np.argsort(-scores, kind="stable")
    shown = visible(order, flags, applies)
    if not applies:
        assert shown.tolist() == order.tolist()
        return
    assert not is_withheld(flags[shown]).any()
    assert shown.tolist() == [j for j in order if flags[j] is False]


def test_the_audit_counts_leaks_per_item_shown() -> None:
    audit = LeakAudit()
    assert audit.leak_rate == 0.0
    audit.add(np.array([False, False, False]), withheld=2)
    audit.add(np.array([False, True, None, False], dtype=object))
    assert audit.as_dict() == {
        "filtered_lists": 2,
        "shown": 7,
        "leaked": 2,
        "withheld": 2,
        "leak_rate": 2 / 7,
    }
