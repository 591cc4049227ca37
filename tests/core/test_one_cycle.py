"""The one-cycle learning-rate schedule every trainer shares (``core/raytrain/loop.py``)."""

from __future__ import annotations

import pytest
import torch

from searchrank.core.raytrain.loop import one_cycle


@pytest.mark.parametrize("examples", [1, 256 * 9, 256 * 10, 256 * 11, 256 * 20, 256 * 200])
def test_every_run_length_warms_up_then_decays(examples: int) -> None:
    """A run of 10 steps once made PyTorch's schedule divide by a warm-up of zero length."""
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    schedule = one_cycle(optimizer, 1e-2, 1, examples, 1, 256)
    rates = [schedule.get_last_lr()[0]]
    for _ in range(schedule.total_steps - 1):
        optimizer.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    peak = rates.index(max(rates))
    assert 0 < peak < len(rates) - 1, "it rises, then falls"
    assert max(rates) == pytest.approx(1e-2)
    assert rates[-1] < rates[0]
