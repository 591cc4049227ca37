"""The embedded demo: synthetic music-search logs to a point-in-time training set, on one machine.

Steps: generate the data, create and apply a Feast repository over it, materialize the online
store, fetch the ``ranker_v1`` training set for every logged impression, and summarize it. Each
step is the same logic the KFP components run.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from searchrank.components.core import schema as S
from searchrank.components.core.names import RANKER_FEATURE_SERVICE
from searchrank.features import tables as T
from searchrank.features.generator.config import GeneratorConfig


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps its data, feature repository and outputs."""

    workdir: Path

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def feature_repo(self) -> Path:
        return self.workdir / "feature_repo"

    @property
    def training_set(self) -> Path:
        return self.workdir / "training_set.parquet"


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_demo(workdir: Path, config: GeneratorConfig, console: Console) -> Path:
    """Run the demo in ``workdir``; returns the training set's path."""
    from searchrank.components.fetch_features.logic import fetch_features
    from searchrank.components.materialize_features.logic import materialize_features
    from searchrank.features.generator.generate import generate
    from searchrank.features.store import apply_definitions, create_repo, open_store

    paths = DemoPaths(workdir)
    with _progress(console) as progress:
        task = progress.add_task("generate music-search logs", total=config.days)
        generate(
            config,
            paths.data,
            lambda done, total: progress.update(task, completed=done, total=total),
        )
        task = progress.add_task("feast apply", total=1)
        apply_definitions(open_store(create_repo(paths.feature_repo, paths.data)))
        progress.update(task, completed=1)
        task = progress.add_task("materialize online store", total=1)
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints its own progress lines
            materialize_features(paths.feature_repo)
        progress.update(task, completed=1)
        task = progress.add_task(f"fetch {RANKER_FEATURE_SERVICE} training set", total=1)
        summary = fetch_features(
            paths.data / T.file_name(T.IMPRESSIONS),
            paths.feature_repo,
            RANKER_FEATURE_SERVICE,
            paths.training_set,
        )
        progress.update(task, completed=1)
    console.print(summary_table(paths, summary.missing_by_feature))
    return paths.training_set


def summary_table(paths: DemoPaths, missing: dict[str, int]) -> Table:
    """A short description of the training set the demo produced."""
    data = pq.read_table(paths.training_set)
    labels = data.column(S.LABEL).to_pandas().value_counts().sort_index()
    features = [c for c in data.column_names if c not in S.ENTITY_COLUMNS]
    manifest = json.loads((paths.data / T.MANIFEST).read_text())
    table = Table(title="searchrank demo: point-in-time training set", show_header=False)
    table.add_row("training set", str(paths.training_set))
    table.add_row("window", f"{manifest['window_start']} → {manifest['window_end']}")
    table.add_row("searches", f"{data.column(S.SEARCH_ID).to_pandas().nunique():,}")
    table.add_row("rows (search × candidate)", f"{data.num_rows:,}")
    table.add_row("users / items", f"{manifest['users']:,} / {manifest['items']:,}")
    table.add_row("features", f"{len(features)} from {RANKER_FEATURE_SERVICE}")
    table.add_row("labels 0/1/2/3", " / ".join(f"{int(labels.get(g, 0)):,}" for g in S.GRADES))
    worst = sorted(missing.items(), key=lambda kv: -kv[1])[:3]
    table.add_row(
        "most often missing",
        ", ".join(f"{k} {v / max(data.num_rows, 1):.0%}" for k, v in worst) or "none",
    )
    return table
