"""The generator's hidden truth written out: the chance a search names each item, the chance a
name is cut at a prefix, and the prefix ranking no retriever could beat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core.text import normalize_text
from searchrank.features import tables as T
from searchrank.features.generator.catalogue import TRACK
from searchrank.features.generator.ceiling import PrefixCeiling
from searchrank.features.generator.config import GeneratorConfig
from searchrank.features.generator.generate import World
from searchrank.features.generator.simulate import PREFIX, TRACK_I, prefix_chance

DRAWS = 200_000


def _total_variation_and_noise(counts: np.ndarray, chances: np.ndarray) -> tuple[float, float]:
    """The total variation between the observed shares and ``chances``, and what sampling
    alone gives it on average (half the sum of each share's mean absolute error)."""
    n = counts.sum()
    expected = chances / chances.sum()
    noise = 0.5 * np.sum(np.sqrt(2 / np.pi * expected * (1 - expected) / n))
    return 0.5 * float(np.abs(counts / n - expected).sum()), float(noise)


def test_target_weights_are_the_chances_the_generator_draws_targets_with(
    small_config: GeneratorConfig,
) -> None:
    world = World.of(small_config)
    simulator = world.simulator()
    day, _ = world.day(10)
    simulator.begin_day(day)
    market = world.users.market
    user = int(np.argmax((world.users.podcast_affinity > 0.3) & (market == market[0])))
    rng = np.random.default_rng(0)
    _, target, *_ = simulator._intents(np.full(DRAWS, user), rng)
    counts = np.bincount(target[target >= 0], minlength=len(world.catalogue)).astype(float)
    everything = np.arange(len(world.catalogue))

    chances = simulator.target_weights(user, everything)
    distance, noise = _total_variation_and_noise(counts, chances)
    assert distance < 1.5 * noise

    # Another listener's chances (another market, another taste) do not fit these draws.
    other = int(np.argmax(market != market[user]))
    wrong = simulator.target_weights(other, everything)
    assert _total_variation_and_noise(counts, wrong)[0] > 10 * noise


def test_prefix_chance_is_how_often_a_name_is_cut_there(small_config: GeneratorConfig) -> None:
    world = World.of(small_config)
    simulator = world.simulator()
    names = [normalize_text(str(n)) for n in world.catalogue.name]
    track = next(
        i for i, n in enumerate(names) if world.catalogue.item_type[i] == TRACK and len(n) > 8
    )
    rng = np.random.default_rng(1)
    typed = pd.Series(
        [simulator._typed_query(TRACK_I, PREFIX, track, -1, -1, -1, rng) for _ in range(20_000)]
    )
    shares = typed.value_counts(normalize=True)
    chances = pd.Series({q: prefix_chance(names[track], q) for q in shares.index})
    assert np.allclose(shares.sort_index(), chances.sort_index(), atol=0.02)
    assert np.isclose(
        sum(prefix_chance(names[track], names[track][:n]) for n in range(len(names[track]) + 1)),
        1.0,
    )
    assert prefix_chance("abc", "abc") == 1.0
    assert prefix_chance("abc", "ab") == 0.0
    assert prefix_chance(names[track], names[track]) == 0.0


def test_the_ceiling_lists_every_prefix_searchs_target_among_the_names_it_begins(
    dataset_dir: Path, small_config: GeneratorConfig
) -> None:
    searches = pd.read_parquet(dataset_dir / T.file_name(T.SEARCHES))
    catalogue = pd.read_parquet(dataset_dir / T.file_name(T.CATALOGUE))
    names = catalogue.set_index("item_id")["name"].map(normalize_text)
    ceiling = PrefixCeiling(World.of(small_config))
    prefixes = searches[searches["query_form"] == "prefix"]
    assert len(prefixes) > 20
    for search in prefixes.itertuples():
        ranked = ceiling.best(int(search.user_id), search.event_timestamp, search.query, 10**6)
        assert all(names[i].startswith(search.query) for i in ranked)
        # The generator drew the target, so its chance was not 0: it is always listed.
        assert int(search.target_item_id) in ranked
        first = ceiling.best(int(search.user_id), search.event_timestamp, search.query, 3)
        assert first == ranked[:3]
