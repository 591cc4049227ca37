"""Vectorized weighted sampling of items within groups (type × genre, optionally × market)."""

from __future__ import annotations

import numpy as np


class GroupSampler:
    """Draws item indices within integer groups, proportionally to per-item weights.

    Groups are fixed at construction; weights change every simulated day (popularity trends,
    releases becoming available) through :meth:`set_weights`.
    """

    def __init__(self, group_of_item: np.ndarray, n_groups: int) -> None:
        self.order = np.argsort(group_of_item, kind="stable")
        sorted_groups = group_of_item[self.order]
        self.start = np.searchsorted(sorted_groups, np.arange(n_groups), side="left")
        self.stop = np.searchsorted(sorted_groups, np.arange(n_groups), side="right")
        self.cumulative = np.zeros(len(group_of_item))

    def set_weights(self, weights: np.ndarray) -> None:
        self.cumulative = np.cumsum(weights[self.order])

    def totals(self, groups: np.ndarray) -> np.ndarray:
        """Total weight of each requested group."""
        return self._at(self.stop[groups]) - self._at(self.start[groups])

    def _at(self, positions: np.ndarray) -> np.ndarray:
        """Cumulative weight strictly before each sorted position."""
        padded = np.concatenate([[0.0], self.cumulative])
        return padded[positions]

    def sample(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item index per requested group; -1 where the group has no weight."""
        low = self._at(self.start[groups])
        total = self._at(self.stop[groups]) - low
        target = low + rng.random(len(groups)) * total
        positions = np.searchsorted(self.cumulative, target, side="right")
        positions = np.clip(positions, self.start[groups], np.maximum(self.stop[groups] - 1, 0))
        picked = self.order[np.minimum(positions, len(self.order) - 1)]
        return np.where(total > 0, picked, -1)


def sample_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row of a (n, k) matrix of row probabilities."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities)) * cumulative[:, -1]
    return np.minimum((cumulative < u[:, None]).sum(axis=1), probabilities.shape[1] - 1)
