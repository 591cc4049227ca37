"""The demo's feature repository follows its data (generated again, the data gets a fresh
registry and online store instead of one that counts the earlier data as materialized), and each
run after the first is judged against the Bento the demo serves."""

from __future__ import annotations

import os
from pathlib import Path

from searchrank.features import tables as T
from searchrank.pipelines.demo import DemoPaths, Production, fresh_repo_for_data


def test_the_feature_repository_is_emptied_when_the_data_is_generated_again(
    tmp_path: Path,
) -> None:
    paths = DemoPaths(tmp_path)
    paths.data.mkdir(parents=True)
    manifest = paths.data / T.MANIFEST
    manifest.write_text("{}")
    repo = fresh_repo_for_data(paths)
    online = repo / "data" / "online_store.db"
    online.write_text("materialized")
    assert fresh_repo_for_data(paths) == repo and online.is_file(), "same data, same store"
    stat = manifest.stat()
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    fresh_repo_for_data(paths)
    assert not online.exists(), "new data must not be served from the old online store"
    assert (repo / "feature_store.yaml").is_file()


def test_the_next_run_is_judged_against_the_bento_in_production(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path)
    assert Production.load(paths) is None, "the first run has no champion"
    training_set = tmp_path / "training_set.parquet"
    training_set.write_bytes(b"parquet")
    production = Production("searchrank:nosuchversion", str(training_set))
    assert production.arguments() == {
        "champion": "searchrank:nosuchversion",
        "reference_training_set": str(training_set),
    }
    production.save(paths)
    assert Production.load(paths) is None, "a Bento that left the store is no champion"
    training_set.unlink()
    assert production.arguments()["reference_training_set"] == "", "no drift check without it"
