"""The search-ranking pipeline: its compiled YAML, a full kfp.local run on tiny data, and a
planted validation failure that stops the run before training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from searchrank.features import tables as T
from searchrank.pipelines.run import compile_pipeline, parse_arguments, run_local


def test_the_compiled_pipeline_carries_gpu_placement_secrets_and_caching(tmp_path: Path) -> None:
    spec, platform = yaml.safe_load_all(
        compile_pipeline(tmp_path / "p.yaml", "s3://b/root").read_text()
    )
    assert spec["defaultPipelineRoot"] == "s3://b/root"
    train = spec["deploymentSpec"]["executors"]["exec-train-ranker-op"]["container"]["resources"]
    assert "gpu_type" in train["accelerator"]["resourceType"]
    assert "gpu_limit" in train["accelerator"]["resourceCount"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    ranker = executors["exec-train-ranker-op"]
    assert (
        ranker["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"] == "gpu_node_selector"
    )
    assert ranker["tolerations"][0]["tolerationJson"]["componentInputParameter"] == "gpu_toleration"
    for task in (
        "exec-fetch-features-op",
        "exec-materialize-features-op",
        "exec-package-service-op",
    ):
        secret = executors[task]["secretAsEnv"][0]
        # Inside dsl.If the parameter arrives as a pipeline channel of the same name.
        name = secret["secretNameParameter"]["componentInputParameter"]
        assert name.endswith("online_store_secret")
        assert {"REDIS_HOST", "REDIS_PASSWORD"} <= {e["envVar"] for e in secret["keyToEnv"]}
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["fetch-features-op"]["cachingOptions"]["enableCache"] is True
    assert tasks["materialize-features-op"]["cachingOptions"].get("enableCache") is not True


def test_pipeline_parameters_parse_as_json_where_they_can() -> None:
    assert parse_arguments(["epochs=3", "feature_service=ranker_v1", 'x={"a": 1}']) == {
        "epochs": 3,
        "feature_service": "ranker_v1",
        "x": {"a": 1},
    }


def _arguments(dataset_dir: Path, fresh_repo: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "entities_uri": str(dataset_dir / T.file_name(T.IMPRESSIONS)),
        "catalogue_uri": str(dataset_dir / T.file_name(T.CATALOGUE)),
        "feature_repo": str(fresh_repo),
        "materialize_until": "2026-11-02T00:00:00+00:00",
        "num_workers": 1,
        "epochs": 2,
        "d_model": 32,
        "lightgbm_folds": 2,
        "bootstrap_samples": 200,
        "min_gain_vs_baselines": -1.0,
        "p99_budget_ms": 10_000.0,
        **overrides,
    }


@pytest.mark.slow
def test_the_whole_pipeline_runs_locally_and_packages_a_bento(
    dataset_dir: Path, fresh_repo: Path, tmp_path: Path
) -> None:
    run = run_local(_arguments(dataset_dir, fresh_repo), tmp_path / "root")
    bento = next(run.glob("package-service-op*/bento"))
    assert bento.stat().st_size > 0
    summary = next(run.glob("package-service-op*/summary")).read_text()
    assert "infra validation PASSED" in summary


@pytest.mark.slow
def test_a_validation_failure_stops_the_run_before_training(
    dataset_dir: Path, fresh_repo: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    with pytest.raises(RuntimeError):
        run_local(_arguments(dataset_dir, fresh_repo, min_positive_share=1.0), root)
    assert not list(root.rglob("train-ranker-op*")), "training must not start"
    assert list(root.rglob("validate-data-op*"))
