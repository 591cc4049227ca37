"""The search-ranking pipeline: a full kfp.local run on tiny data (rerun after its packaging
failed, reusing the steps before from kfp.local's cache), a planted validation failure that
stops the run before training, and its command line. The compiled YAML is checked task by
task in ``tests/cluster/test_compiled_pipeline.py``."""

from __future__ import annotations

import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from browser import render
from rich.console import Console

from searchrank.components.run_report.logic import SECTIONS
from searchrank.core.names import NAMESPACE, PIPELINE_SERVICE_ACCOUNT
from searchrank.features import tables as T
from searchrank.pipelines.run import StepFailedError, parse_arguments, run_local


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
        "searches_uri": str(dataset_dir / T.file_name(T.SEARCHES)),
        # The blessed ranker then meets LightGBM in the experiment step; the session's few
        # hundred test listeners can detect only a large effect.
        "ground_truth_uri": str(dataset_dir / T.file_name(T.GROUND_TRUTH)),
        "experiment_min_effect": 0.5,
        "feature_repo": str(fresh_repo),
        "materialize_until": "2026-11-02T00:00:00+00:00",
        "num_workers": 1,
        "epochs": 2,
        "d_model": 32,
        "retriever_epochs": 2,
        "generative_epochs": 2,
        "lightgbm_folds": 2,
        "lightgbm_num_leaves": [15],
        "lightgbm_min_data_in_leaf": [20],
        "lightgbm_feature_fraction": [1.0],
        "bootstrap_samples": 200,
        "min_gain_vs_baselines": -1.0,
        "p99_budget_ms": 10_000.0,
        **overrides,
    }


CACHED_STEPS = (
    "fetch-features-op",
    "validate-data-op",
    "split-dataset-op",
    "train-intent-op",
    "train-retriever-op",
    "build-index-op",
    "train-generative-retriever-op",
    "evaluate-retrieval-op",
    "train-lightgbm-op",
    "train-ranker-op",
    "evaluate-op",
)
"""The steps before the online store is written: a rerun with the same inputs reuses them."""


def online_rows(repo: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the SQLite online store, per table, without the write time."""
    import sqlite3

    with sqlite3.connect(repo / "data" / "online_store.db") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: sorted(
                db.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{table}"')
            )
            for table in tables
        }


@pytest.mark.slow
def test_the_whole_pipeline_runs_locally_and_a_rerun_after_failed_packaging_reuses_the_rest(
    dataset_dir: Path, fresh_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    # The first run's packaging cannot write the model store (a path under a file cannot exist).
    with monkeypatch.context() as first_run:
        first_run.setenv("BENTOML_HOME", "/dev/null/bentoml")
        with pytest.raises(StepFailedError) as failed:
            run_local(_arguments(dataset_dir, fresh_repo), root)
    assert failed.value.step == "package-service-op"
    online = online_rows(fresh_repo)
    assert online and all(online.values()), "the failed run materialized the online store"

    shown = io.StringIO()
    run = run_local(_arguments(dataset_dir, fresh_repo), root, Console(file=shown, width=200))

    for step in CACHED_STEPS:
        assert (run / step).is_symlink(), f"{step} ran again instead of coming from the cache"
        assert re.search(rf"↺ {step} +cached: outputs of search-ranking-", shown.getvalue())
        assert (run / "logs" / f"{step}.log").read_text().startswith("cached:")
    for step in ("materialize-features-op", "package-service-op", "run-report-op"):
        # run-report-op is the report of the experiment branch, the first one defined.
        assert not (run / step).is_symlink() and (run / step).is_dir(), f"{step} must run again"
    # Materialized twice, the online store holds the same rows: none duplicated, none stale.
    assert online_rows(fresh_repo) == online
    for table, rows in online.items():
        assert len({(key, feature) for key, feature, _, _ in rows}) == len(rows), table
    bento = next(run.glob("package-service-op*/bento"))
    assert bento.stat().st_size > 0
    summary = next(run.glob("package-service-op*/summary")).read_text()
    assert "infra validation PASSED" in summary
    # The Bento's retriever carries what evaluate_retrieval blessed, and always the intent
    # model, whose probabilities the ranker was trained on (served scores matched offline).
    import bentoml

    retrieval = json.loads(next(run.glob("evaluate-retrieval-op*/evaluation")).read_text())
    tag = re.search(r"retriever `([^`]+)`", summary)
    assert tag is not None
    stored = bentoml.models.get(tag.group(1)).info.metadata
    assert stored["dense"] == retrieval["retriever_blessed"]
    assert stored["routed"] == (retrieval["retriever_blessed"] and retrieval["intent_blessed"])
    assert stored["intent"] is True
    ranker = json.loads(next(run.glob("train-ranker-op*/model/ranker.json")).read_text())
    assert any(c.startswith("query_intent__") for c in ranker["numeric_features"])
    assert any(c.startswith("query_rewrite__") for c in ranker["numeric_features"]), (
        "train_intent gave the splits the rewriter's features, and the served scores matched"
    )
    report = next(run.glob("run-report-op*/report"))
    page = tmp_path / "report.html"
    page.write_text(report.read_text())
    dom = render(page, tmp_path / "report.png")
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    plots = re.search(r'data-plots="(\d+)" data-plots-rendered="(\d+)"', dom)
    assert plots and int(plots.group(1)) >= 4, "curves, slices and bootstrap plots"
    assert plots.group(1) == plots.group(2), "every plot must render"
    assert "searchrank:" in dom, "the lineage names the Bento"
    assert "Interleaving (team-draft)" in dom, "the experiment's page is the experiment section"
    outcome = json.loads(next(run.glob("experiment-op*/experiment")).read_text())
    assert outcome["champion"] == "LightGBM" and outcome["decision"]["verdict"] in dom


@pytest.mark.slow
def test_a_validation_failure_stops_the_run_before_training(
    dataset_dir: Path, fresh_repo: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    with pytest.raises(RuntimeError):
        run_local(_arguments(dataset_dir, fresh_repo, min_positive_share=1.0), root)
    assert not list(root.rglob("train-ranker-op*")), "training must not start"
    assert list(root.rglob("validate-data-op*"))


def test_searchrank_compile_and_run_refuse_or_write_as_documented(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from searchrank.pipelines.cli import app

    runner = CliRunner()
    compiled = runner.invoke(app, ["compile", "-o", str(tmp_path / "p.yaml")])
    assert compiled.exit_code == 0 and (tmp_path / "p.yaml").is_file()
    neither = runner.invoke(app, ["run", "-p", "epochs=1"])
    assert neither.exit_code == 2 and "--host/--local" in neither.output
    bad = runner.invoke(app, ["run", "--local", "-p", "epochs"])
    assert bad.exit_code == 2 and "name=value" in bad.output


class _FakePipelinesApi(BaseHTTPRequestHandler):
    """Just the Kubeflow Pipelines v2beta1 calls ``kfp.Client`` makes to submit a run."""

    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.received.append(("GET", self.path, {}))
        self._reply({})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.received.append(("POST", self.path, body))
        if self.path.endswith("/experiments"):
            self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
        else:
            self._reply({"run_id": "run-1", "display_name": body.get("display_name", "")})

    def log_message(self, *args: Any) -> None:
        pass


def test_searchrank_run_submits_the_compiled_pipeline_to_the_pipelines_api() -> None:
    from typer.testing import CliRunner

    from searchrank.pipelines.cli import app

    server = HTTPServer(("127.0.0.1", 0), _FakePipelinesApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = CliRunner().invoke(
            app,
            [
                *("run", "--host", f"http://127.0.0.1:{server.server_port}", "--no-cache"),
                *("-p", "entities_uri=s3://b/impressions.parquet", "-p", "epochs=3"),
                *("-p", "catalogue_uri=s3://b/catalogue.parquet"),
                *("-p", "searches_uri=s3://b/searches.parquet"),
            ],
        )
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert "run-1" in result.output
    runs = [body for method, path, body in _FakePipelinesApi.received if path.endswith("/runs")]
    assert len(runs) == 1
    run = runs[0]
    # In the namespace of the manifests' secrets, under the account that may manage RayJobs.
    assert run["service_account"] == PIPELINE_SERVICE_ACCOUNT
    experiments = [b for _, path, b in _FakePipelinesApi.received if path.endswith("/experiments")]
    assert experiments and experiments[0]["namespace"] == NAMESPACE
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "search-ranking"
    assert "kubernetes" in run["pipeline_spec"]["platform_spec"]["platforms"]
    assert run["runtime_config"]["parameters"] == {
        "entities_uri": "s3://b/impressions.parquet",
        "catalogue_uri": "s3://b/catalogue.parquet",
        "searches_uri": "s3://b/searches.parquet",
        "epochs": 3,
    }
    tasks = spec["root"]["dag"]["tasks"]
    assert all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())
