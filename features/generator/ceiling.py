"""The best any retriever could do on the generator's searches typed partway.

A prefix such as "mi" begins hundreds of names, and the generator drew the one meant from the
listener's taste and the day's popularity. Even a retriever that knew both exactly (the
generator's hidden truth, which no model sees) would sometimes rank the item meant below
others the same prefix begins: :class:`PrefixCeiling` ranks a prefix's candidates by the
generator's own chance that each is the one meant, so what it recalls bounds what any model can.
``bench_retrieval`` reports it beside the prefix slices.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from searchrank.core.completion import begun_by
from searchrank.core.text import normalize_text
from searchrank.features.generator.generate import World
from searchrank.features.generator.simulate import prefix_chance


class PrefixCeiling:
    """Ranks the items a prefix begins by the chance the generator meant each one: the chance a
    search by that listener on that day names it (:meth:`Simulator.target_weights`) times the
    chance its name is cut at that prefix (:func:`prefix_chance`)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.simulator = world.simulator()
        names = np.array([normalize_text(str(n)) for n in world.catalogue.name], dtype=object)
        self.order = np.argsort(names, kind="stable")
        self.names = names[self.order]
        self._day: int | None = None

    def best(self, user_id: int, at: pd.Timestamp, query: str, k: int) -> list[int]:
        """The ids of the (at most) ``k`` items most likely meant by ``user_id`` typing
        ``query`` (normalized) as a prefix at ``at``, most likely first; items it cannot be
        (not released, or not begun by ``query``) are left out."""
        day = (at - pd.Timestamp(self.world.window_start)) // timedelta(days=1)
        if day != self._day:
            self.simulator.begin_day(self.world.day(int(day))[0])
            self._day = int(day)
        begun = begun_by(self.names, query)
        rows = self.order[begun]
        typed = np.array([prefix_chance(name, query) for name in self.names[begun]])
        chance = self.simulator.target_weights(user_id - 1, rows) * typed
        ranked = np.argsort(-chance, kind="stable")[:k]
        return [int(rows[i]) + 1 for i in ranked if chance[i] > 0]
