"""Benchmark datasets: synthetic music-search training sets, generated once and cached.

Benchmarks share this so that each builds its data the same way: generate the logs, apply the
Feast definitions into a repository beside them, and fetch the ``ranker_v1`` training set.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from searchrank.core.contract import contract_beside
from searchrank.features.generator.retriever import POPULARITY_WEIGHT

if TYPE_CHECKING:
    from searchrank.features.generator.config import GeneratorConfig

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".searchrank" / "bench"
END_DATE = date(2026, 11, 1)
SEARCHES_PER_ROW = 1 / 19.5
"""About 19.5 impressions per search with the generator's defaults."""


def logs_config(searches: int, seed: int) -> GeneratorConfig:
    """The generator's configuration of :func:`logs` (and of the hidden truth behind them,
    :class:`~searchrank.features.generator.generate.World`)."""
    from searchrank.features.generator.config import GeneratorConfig

    return GeneratorConfig(searches=searches, seed=seed, end_date=END_DATE)


def logs(searches: int, seed: int, cache: Path = CACHE) -> Path:
    """The generator's tables for ``searches`` searches (cached by size and seed)."""
    from searchrank.features import tables
    from searchrank.features.generator.generate import generate

    folder = cache / f"logs-{searches}-{seed}"
    # Folders cached before the generator wrote its ground truth are regenerated.
    if not all((folder / tables.file_name(t)).exists() for t in tables.ALL_TABLES):
        generate(logs_config(searches, seed), folder)
    return folder


def training_set(
    rows: int, seed: int, cache: Path = CACHE, old_ranker_popularity: float = POPULARITY_WEIGHT
) -> Path:
    """A ``ranker_v1`` training set of ``rows`` rows, in time order (cached by size and seed).

    ``old_ranker_popularity`` is the generator's field of that name (cached by it too).
    """
    import pyarrow.parquet as pq

    from searchrank.components.fetch_features.logic import fetch_features
    from searchrank.core.names import RANKER_FEATURE_SERVICE
    from searchrank.features import tables
    from searchrank.features.generator.config import GeneratorConfig
    from searchrank.features.generator.generate import generate
    from searchrank.features.store import apply_definitions, create_repo, open_store

    folder = cache / f"training-{rows}-{seed}"
    if old_ranker_popularity != POPULARITY_WEIGHT:
        folder = folder.with_name(f"{folder.name}-popularity-{old_ranker_popularity:g}")
    out = folder / "training_set.parquet"
    truth = folder / "data" / tables.file_name(tables.GROUND_TRUTH)
    if (
        out.exists()
        and contract_beside(out).exists()
        and truth.exists()
        and pq.read_metadata(out).num_rows >= rows
    ):
        return out
    searches = int(rows * SEARCHES_PER_ROW * 1.03) + 100
    config = GeneratorConfig(
        searches=searches,
        seed=seed,
        end_date=END_DATE,
        old_ranker_popularity=old_ranker_popularity,
    )
    generate(config, folder / "data")
    repo = create_repo(folder / "repo", folder / "data")
    apply_definitions(open_store(repo))
    entities = folder / "entities.parquet"
    impressions = pq.read_table(folder / "data" / tables.file_name(tables.IMPRESSIONS))
    pq.write_table(impressions.slice(0, rows), entities)
    fetch_features(entities, repo, RANKER_FEATURE_SERVICE, out)
    return out


def time_split(path: Path, parts: int = 2) -> list[Path]:
    """Cut a training set into ``parts`` consecutive periods of whole searches (cached beside
    it), each with the training set's feature contract beside it."""
    import shutil

    import numpy as np
    import pyarrow.parquet as pq

    from searchrank.core.io import write_parquet_atomically
    from searchrank.core.schema import SEARCH_ID, search_bounds

    table = pq.read_table(path)
    starts = search_bounds(table[SEARCH_ID].to_numpy())
    # Each cut at the first search that starts at or after an equal share of the rows.
    cuts = [int(starts[np.searchsorted(starts, k * table.num_rows // parts)]) for k in range(parts)]
    cuts.append(table.num_rows)
    pieces = [path.with_name(f"{path.stem}-searches{k}-of{parts}.parquet") for k in range(parts)]
    for k, piece in enumerate(pieces):
        if not piece.exists():
            write_parquet_atomically(table.slice(cuts[k], cuts[k + 1] - cuts[k]), piece)
        shutil.copyfile(contract_beside(path), contract_beside(piece))
    return pieces
