"""The production path, rehearsed: the search-ranking pipeline in the cluster configuration.

Everything a Kubeflow run on the cluster touches runs for real on loopback: Redis as Feast's
online store, PostgreSQL as its SQL registry, an S3 API server holding the offline feature data,
the champion and the reference training set, and a Ray head that every trainer submits to
through the Ray Jobs API. ``feature_store.cluster.yaml`` is used unchanged, as kustomize puts it
in the ``searchrank-feast`` config map; only the endpoint values of the ``searchrank-storage``
config map and the secrets are this machine's. The pipeline is the compiled one, run by
kfp.local, and each step gets exactly the variables and config-map volumes that the compiled
platform spec gives its pod (:mod:`cluster.pod_shim`), so a step the YAML forgets fails here as
it would on the cluster. What cannot run here (pod scheduling, the KubeRay operator, Kubeflow's
backend) is checked by the compiled-pipeline and manifest tests.

The run goes fetch → validate (drift against the reference) → train (Ray jobs) → evaluate
against the champion → package → materialize into Redis; then the Bento it built serves
``/search`` from Redis and the PostgreSQL registry with the Deployment's environment, and its
scores equal the offline ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from cluster.fake_cluster import FakeCluster, install_shim, mounted
from cluster.kfp_ir import CompiledPipeline
from cluster.pod_shim import PLAN_ENV
from infra.test_infra import build as build_manifests
from infra.test_infra import jobs
from services import S3_TEST_KEY, postgres_server, ray_head, redis_server, s3_server, use_s3

from searchrank.core import names, storage
from searchrank.core import schema as S
from searchrank.features import tables as T

FEATURE_BUCKET, MODEL_BUCKET = "searchrank-features", "searchrank-models"
REDIS_PASSWORD = "rehearsal-redis-password"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Rehearsal:
    cluster: FakeCluster
    ray_address: str
    s3_endpoint: str
    manifests: list[dict[str, Any]]


def config_maps(manifests: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: dict(d["data"]) for d in manifests if d["kind"] == "ConfigMap"}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    """The services on loopback, and the cluster's secrets and config maps that point at them."""
    manifests = build_manifests("dev")
    with (
        redis_server(REDIS_PASSWORD) as redis,
        postgres_server() as postgres,
        s3_server() as s3,
        ray_head() as head,
    ):
        maps = config_maps(manifests)
        # A platform team points the storage config map at its object store; the Feast
        # configuration is the manifests' own.
        maps[names.STORAGE_CONFIG_MAP].update(
            {
                "feature-data-uri": f"s3://{FEATURE_BUCKET}/data",
                "endpoint-url": s3,
                "region": storage.DEFAULT_REGION,
            }
        )
        secrets = {
            names.ONLINE_STORE_SECRET: {
                "redis-address": redis,
                "redis-password": REDIS_PASSWORD,
                "registry-address": postgres.address,
                "registry-user": postgres.user,
                "registry-password": postgres.password,
            },
            names.OBJECT_STORE_SECRET: {
                "access-key-id": S3_TEST_KEY,
                "secret-access-key": S3_TEST_KEY,
            },
        }
        cluster = FakeCluster(secrets, maps, tmp_path_factory.mktemp("pods"))
        yield Rehearsal(cluster, head.dashboard, s3, manifests)


def upload(path: Path, uri: str, endpoint: str) -> str:
    """Put ``path`` at ``uri`` as the test (the steps never see these credentials)."""
    with pytest.MonkeyPatch.context() as patch:
        use_s3(patch, endpoint, uri.removeprefix("s3://").split("/")[0])
        return storage.upload(path, uri)


def container(manifests: list[dict[str, Any]], kind: str, name: str) -> tuple[dict, dict]:
    """A manifest's pod spec and first container (``name`` or ``generateName``)."""
    doc = next(
        d
        for d in manifests
        if d["kind"] == kind
        and name in (d["metadata"].get("name"), d["metadata"].get("generateName"))
    )
    pod = doc["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def register_definitions(cluster: FakeCluster) -> None:
    """Runbook: the feast-apply Job, its command run with its pod's variables and volume."""
    pod, apply = container(jobs(), "Job", "feast-apply-")
    repo = cluster.host_path(names.FEAST_REPO_MOUNT)
    command = [*apply["command"], *apply["args"]]
    command = [str(repo) if part == names.FEAST_REPO_MOUNT else part for part in command]
    with mounted(cluster.container_files(pod, apply)):
        applied = subprocess.run(
            [str(Path(sys.executable).parent / command[0]), *command[1:]],
            env={**os.environ, **cluster.container_env(apply)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert applied.returncode == 0, applied.stdout + applied.stderr


@dataclass(frozen=True)
class Run:
    folder: Path
    champion: str
    repo: Path

    def artifact(self, task: str, name: str) -> Path:
        return self.folder / task / name

    def output(self, task: str, name: str) -> Any:
        executor = json.loads(self.artifact(task, "executor_output.json").read_text())
        return executor["parameterValues"][name]


@pytest.fixture(scope="module")
def run(
    rehearsal: Rehearsal,
    dataset_dir: Path,
    splits: dict[str, Path],
    ranker_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    """The compiled pipeline, run by kfp.local with each step in its pod's environment."""
    from kfp import local

    from searchrank.pipelines.run import compile_pipeline
    from searchrank.pipelines.search_ranking import search_ranking_pipeline

    cluster, endpoint = rehearsal.cluster, rehearsal.s3_endpoint
    folder = tmp_path_factory.mktemp("rehearsal")
    # The offline data, the champion and the reference training set live on object storage.
    upload(dataset_dir, f"s3://{FEATURE_BUCKET}/data", endpoint)
    champion = upload(ranker_checkpoint, f"s3://{MODEL_BUCKET}/champion", endpoint)
    reference = upload(
        splits["full"], f"s3://{MODEL_BUCKET}/reference/training_set.parquet", endpoint
    )
    register_definitions(cluster)
    # The online store is loaded until just after the last logged search, so it holds what the
    # last day's searches saw offline (package_service's golden searches).
    impressions = dataset_dir / T.file_name(T.IMPRESSIONS)
    last = pd.read_parquet(impressions, columns=[S.EVENT_TIMESTAMP])[S.EVENT_TIMESTAMP].max()
    compiled = CompiledPipeline(compile_pipeline(folder / "pipeline.yaml"))
    shim = install_shim(cluster, compiled, folder / "shim")
    repo = cluster.host_path(names.FEAST_REPO_MOUNT)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(folder / "root"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PLAN_ENV, str(shim.parent / "plan.json"))
        patch.setattr(sys, "executable", str(shim))
        search_ranking_pipeline(
            entities_uri=str(impressions),
            catalogue_uri=str(dataset_dir / T.file_name(T.CATALOGUE)),
            searches_uri=str(dataset_dir / T.file_name(T.SEARCHES)),
            feature_repo=str(repo),
            champion=champion,
            reference_training_set=reference,
            materialize_until=(last + pd.Timedelta(seconds=1)).isoformat(),
            ray_address=rehearsal.ray_address,
            work_dir=str(folder / "work"),
            # As small as the models get: the rehearsal is about where things run, not quality.
            num_workers=1,
            epochs=1,
            d_model=32,
            retriever_epochs=1,
            generative_epochs=1,
            lightgbm_folds=2,
            lightgbm_num_leaves=[15],
            lightgbm_min_data_in_leaf=[20],
            lightgbm_feature_fraction=[1.0],
            bootstrap_samples=100,
            min_gain_vs_baselines=-1.0,
            min_gain_vs_champion=-1.0,
            p99_budget_ms=10_000.0,
        )
    (run_folder,) = list((folder / "root").glob("search-ranking-*"))
    return Run(run_folder, champion, repo)


def test_every_trainer_submitted_a_ray_job_and_asked_for_no_gpu(
    run: Run, rehearsal: Rehearsal
) -> None:
    """The ranker, the two-tower (its first run and its refit) and the generative retriever
    each trained as a Ray job."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    assert run.output("plan-training-op", "target") == "ray-jobs"
    assert run.output("plan-training-op", "gpus") == "0"
    jobs = JobSubmissionClient(rehearsal.ray_address).list_jobs()
    trained = [j for j in jobs if "raytrain.job" in j.entrypoint]
    assert len(trained) == 4 and all(j.status == JobStatus.SUCCEEDED for j in trained)


def test_the_data_was_checked_for_drift_and_the_candidate_faced_the_champion(run: Run) -> None:
    validation = json.loads(run.artifact("validate-data-op", "result").read_text())
    assert validation["success"] and validation["drift"], "drift against the reference"
    evaluation = json.loads(run.artifact("evaluate-op", "evaluation").read_text())
    assert evaluation["champion"] == run.champion and "champion" in evaluation["systems"]
    # Without a ground truth the blessed run's report is the no-experiment branch's.
    (report_path,) = [p for p in run.folder.glob("run-report-op*/report") if p.is_file()]
    report = report_path.read_text()
    assert run.champion in report and "drift reference" in report


def test_the_bento_serves_from_redis_and_the_postgres_registry_as_deployed(
    run: Run, rehearsal: Rehearsal, catalogue: pd.DataFrame
) -> None:
    from searchrank.components.package_service.config import PackageConfig
    from searchrank.components.package_service.logic import (
        golden_searches,
        replay,
    )
    from searchrank.serving.bento import serve
    from searchrank.serving.settings import FEATURE_REPO_ENV

    assert "infra validation PASSED" in run.artifact("package-service-op", "summary").read_text()
    bento = run.output("package-service-op", "Output")
    # The Deployment's environment and volumes, from the manifests, serve the Bento.
    cluster = rehearsal.cluster
    pod, service = container(rehearsal.manifests, "Deployment", "search-service")
    env = cluster.container_env(service)
    assert env[FEATURE_REPO_ENV] == names.FEAST_REPO_MOUNT
    scores = pd.read_parquet(run.artifact("evaluate-op", "scores"))
    with (
        mounted(cluster.container_files(pod, service)),
        serve(bento, run.repo, env={**env, FEATURE_REPO_ENV: str(run.repo)}) as running,
    ):
        found = httpx.post(
            f"{running.url}/search", json={"query": "rock", "user_id": 1, "k": 5}, timeout=60
        )
        assert found.status_code == 200 and found.json()["results"]
        explicit = catalogue.set_index(S.ITEM_ID)["explicit"]
        golden = golden_searches(scores, 10)
        served = replay(running.url, golden, PackageConfig(rounds=1), explicit)
        # A catalogue that flags every item explicit, as if the online store's flags were
        # stale: whatever reaches a filtered listener now counts as a leak, which refuses it.
        every_item_explicit = pd.Series(True, index=explicit.index)
        stale = replay(running.url, golden, PackageConfig(rounds=1), every_item_explicit)
    assert served.max_abs_diff <= 1e-4, "the online store serves what training saw"
    assert served.explicit["leaked"] == 0 and served.explicit["filtered_lists"] >= 20
    assert not any("explicit" in r for r in served.reasons), served.reasons
    assert not stale.passed and any("explicit-leak rate" in r for r in stale.reasons)
