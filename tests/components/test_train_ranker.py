"""``train_ranker`` on real Ray: two CPU workers, a killed worker, and a Ray job on a cluster
started with ``ray start --head`` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from services import ray_head

from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_ranker.logic import TrainSummary, curves_html, train_ranker
from searchrank.core.checkpoint import load_ranker
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.metrics import ndcg_at_k
from searchrank.core.model import ContextAwareRanker, InferenceRanker
from searchrank.core.names import RANKER_FEATURE_SERVICE
from searchrank.core.raytrain.jobs import submit_and_follow
from searchrank.core.scoring import score_model
from searchrank.core.slates import scores_to_rows, to_slates
from searchrank.core.training import score_slates, slate_metrics, training_view
from searchrank.pipelines.console import EPOCH_LINE

CONFIG = TrainRankerConfig(
    d_model=32,
    ff_dim=64,
    n_layers=1,
    epochs=5,
    patience=5,
    batch_size=32,
    num_workers=2,
    max_failures=2,
    seed=3,
)
RUN = """
import json, sys
from pathlib import Path
from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_ranker.logic import train_ranker
from searchrank.core.contract import FeatureContract
train, valid, out, work, config, contract = sys.argv[1:7]
summary = train_ranker(Path(train), Path(valid), Path(out), TrainRankerConfig(**json.loads(config)),
                       contract=FeatureContract.load(Path(contract)), work_dir=Path(work))
Path(out, "summary.json").write_text(json.dumps(summary.as_dict()))
"""


def _train(splits: dict[str, Path], folder: Path) -> subprocess.Popen[bytes]:
    """Train in a child process (as a pipeline step would), so a worker can be killed meanwhile."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUN,
            str(splits["train"]),
            str(splits["valid"]),
            str(folder / "model"),
            str(folder / "work"),
            json.dumps(asdict(CONFIG)),
            str(splits["contract"]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _summary(folder: Path) -> TrainSummary:
    return TrainSummary(**json.loads((folder / "model" / "summary.json").read_text()))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    run = _train(splits, folder)
    _, errors = run.communicate(timeout=900)
    assert run.returncode == 0, errors.decode()[-3000:]
    return folder


def test_two_workers_train_and_the_loss_falls(uninterrupted: Path, splits: dict[str, Path]) -> None:
    summary = _summary(uninterrupted)
    losses = [h["train_loss"] for h in summary.history]
    assert summary.epochs_run == CONFIG.epochs and losses[-1] < losses[0]
    valid = pd.read_parquet(splits["valid"])
    random = ndcg_at_k(
        valid["label"].to_numpy(),
        np.random.default_rng(0).random(len(valid)),
        valid["search_id"].to_numpy(),
        10,
    )
    assert summary.best_val_ndcg10 > random + 0.05
    assert all(h["candidates_per_s"] > 0 for h in summary.history)
    assert "<img" in curves_html(summary)


def test_the_checkpoint_describes_itself_and_scores_as_in_training(
    uninterrupted: Path, splits: dict[str, Path]
) -> None:
    summary = _summary(uninterrupted)
    model_dir = uninterrupted / "model"
    model, processor, description = load_ranker(model_dir)
    assert FeatureContract.load(model_dir).feature_service == RANKER_FEATURE_SERVICE
    assert description["epoch"] == summary.best_epoch
    assert description["train_config"]["seed"] == CONFIG.seed
    assert len(processor.mean) == model.config.n_numeric
    valid = pd.read_parquet(splits["valid"])
    scores = score_model(valid, model_dir)
    again = ndcg_at_k(valid["label"].to_numpy(), scores, valid["search_id"].to_numpy(), 10)
    assert again == pytest.approx(summary.best_val_ndcg10, abs=1e-6)


def _train_workers(run: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The Ray Train workers of ``run``'s own Ray (its descendants), never another test's."""
    found = []
    for process in psutil.Process(run.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("RayTrainWorker" in part for part in process.cmdline()):
                found.append(process)
    return found


def test_a_killed_worker_costs_an_epoch_not_the_run(
    tmp_path: Path, splits: dict[str, Path], uninterrupted: Path
) -> None:
    run = _train(splits, tmp_path)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "work" / "ray").glob("*/checkpoint_*")):
        assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.5)
    workers = _train_workers(run)
    assert workers, "no Ray Train worker process found"
    victim = workers[-1]
    victim.send_signal(signal.SIGKILL)
    _, errors = run.communicate(timeout=900)
    assert run.returncode == 0, errors.decode()[-3000:]
    assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE
    resumed, clean = _summary(tmp_path), _summary(uninterrupted)
    assert [h["epoch"] for h in resumed.history] == list(range(CONFIG.epochs))
    assert abs(resumed.best_val_ndcg10 - clean.best_val_ndcg10) <= 0.01


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A real local Ray cluster (head only) with the Jobs API, on loopback."""
    with ray_head() as head:
        yield head.dashboard


def test_training_runs_as_a_ray_job_on_an_existing_cluster(
    ray_cluster: str, tmp_path: Path, splits: dict[str, Path]
) -> None:
    lines: list[str] = []
    config = TrainRankerConfig(**{**asdict(CONFIG), "epochs": 2})
    summary = train_ranker(
        splits["train"],
        splits["valid"],
        tmp_path / "model",
        config,
        contract=FeatureContract.load(splits["contract"]),
        ray_address=ray_cluster,
        work_dir=tmp_path / "work",
        job_python=sys.executable,
        log=lines.append,
    )
    assert summary.epochs_run == 2 and (tmp_path / "model" / "model.pt").is_file()
    assert any(line.startswith("submitted Ray job") for line in lines)
    assert any(line.startswith("[ray job]") for line in lines), "the job's log was not streamed"
    # Each epoch's one line reaches the step through the job's log, as the console shows it.
    epochs = [m.group(0).split()[1] for line in lines if (m := EPOCH_LINE.search(line))]
    assert epochs == ["1/2", "2/2"], lines


def test_a_cancelled_step_stops_its_ray_job(ray_cluster: str, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    lines: list[str] = []
    spec = {"run_name": "never", "config": {}, "data_dir": str(tmp_path)}
    # The entrypoint sleeps instead of training: this test is about the job's lifecycle.
    with pytest.raises(TimeoutError):
        submit_and_follow(
            ray_cluster,
            spec,
            tmp_path,
            python=f"sleep 600 && {sys.executable}",
            log=lines.append,
            timeout_s=5,
        )
    job_id = next(line.split()[3] for line in lines if line.startswith("submitted Ray job"))
    client = JobSubmissionClient(ray_cluster)
    deadline = time.monotonic() + 60
    while client.get_job_status(job_id) != JobStatus.STOPPED:
        assert time.monotonic() < deadline, client.get_job_status(job_id)
        time.sleep(1)


def test_a_bad_cluster_address_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ray_address"):
        submit_and_follow("127.0.0.1:6379", {}, tmp_path)


def test_training_slates_survive_the_parquet_round_trip(tmp_path: Path) -> None:
    from searchrank.components.train_ranker.data import read_train_slates, write_train_slates
    from searchrank.core.slates import to_slates

    rng = np.random.default_rng(0)
    searches = np.repeat(np.arange(4), [3, 1, 4, 2])
    rows = (
        rng.normal(size=(10, 3)).astype(np.float32),
        rng.integers(0, 5, size=(10, 2)),
        rng.integers(0, 4, size=10).astype(np.float32),
        searches,
    )
    slates = to_slates(*rows, 4)
    write_train_slates(slates, tmp_path / "slates.parquet")
    back = read_train_slates(tmp_path / "slates.parquet")
    for field in ("dense", "codes", "labels", "mask", "rows"):
        np.testing.assert_array_equal(getattr(back, field), getattr(slates, field), err_msg=field)
    assert back.positions is None
    positioned = to_slates(*rows, 4, positions=np.array([0, 1, 2, 0, 0, 1, 2, 3, 0, 1]))
    write_train_slates(positioned, tmp_path / "positions.parquet")
    back = read_train_slates(tmp_path / "positions.parquet")
    assert back.positions is not None and positioned.positions is not None
    np.testing.assert_array_equal(back.positions, positioned.positions)
    assert back.positions.tolist()[1] == [0, 0, 0, 0]  # padding holds 0


def test_position_bias_must_be_a_bool() -> None:
    with pytest.raises(InputError, match="position_bias"):
        TrainRankerConfig(position_bias="yes")


POSITION_BIAS = replace(CONFIG, epochs=1, patience=1, position_bias=True)


@pytest.fixture(scope="module")
def position_bias_run(
    tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path]
) -> tuple[Path, TrainSummary]:
    """A short run of two workers with the position-bias tower (its view is what DDP wraps)."""
    folder = tmp_path_factory.mktemp("position_bias")
    summary = train_ranker(
        splits["train"],
        splits["valid"],
        folder / "model",
        POSITION_BIAS,
        contract=FeatureContract.load(splits["contract"]),
        work_dir=folder / "work",
        log=lambda _: None,
    )
    return folder / "model", summary


def test_a_position_bias_checkpoint_scores_as_its_relevance_head_alone(
    position_bias_run: tuple[Path, TrainSummary], splits: dict[str, Path]
) -> None:
    model_dir, summary = position_bias_run
    model, processor, description = load_ranker(model_dir)
    assert description["train_config"]["position_bias"] is True
    assert model.position_bias is not None
    assert model.config.bias_positions == POSITION_BIAS.max_list_length
    curve = description["examination"]
    assert len(curve) == POSITION_BIAS.max_list_length and curve[0] == 1.0
    assert curve != [1.0] * len(curve), "the tower never trained"

    valid = pd.read_parquet(splits["valid"])
    scores = score_model(valid, model_dir)  # evaluation's own path
    labels, groups = valid["label"].to_numpy(), valid["search_id"].to_numpy()
    dense, codes = processor.transform(valid)
    # Early stopping validated the click model: relevance plus examination at logged positions.
    logged = to_slates(
        dense,
        codes,
        labels.astype(np.float32),
        groups,
        POSITION_BIAS.max_list_length,
        valid["position"].to_numpy(),
    )
    clicks = slate_metrics(score_slates(training_view(model), logged), logged)["ndcg@10"]
    assert clicks == pytest.approx(summary.best_val_ndcg10, abs=1e-6)
    assert ndcg_at_k(labels, scores, groups, 10) != pytest.approx(clicks, abs=1e-6)
    # Positions shuffled or gone: the same scores.
    moved = valid.assign(position=np.random.default_rng(0).permutation(valid["position"]))
    np.testing.assert_array_equal(score_model(moved, model_dir), scores)
    np.testing.assert_array_equal(score_model(valid.drop(columns="position"), model_dir), scores)

    # The same weights without the tower score the same, bit for bit.
    alone = ContextAwareRanker(replace(model.config, bias_positions=0)).eval()
    alone.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("position_bias.")}
    )
    longest = int(valid.groupby("search_id").size().max())
    slates = to_slates(dense, codes, labels.astype(np.float32), groups, longest)
    np.testing.assert_array_equal(
        scores_to_rows(score_slates(alone, slates), slates, len(valid)), scores
    )
    # And serving's traced scorer, given the model with its tower, agrees.
    requests = [
        {"dense": dense[groups == g], "codes": codes[groups == g]} for g in np.unique(groups)[:5]
    ]
    for got, want in zip(
        InferenceRanker(model).score(requests),
        InferenceRanker(alone, trace=False).score(requests),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("split", ["train", "valid"])
def test_position_bias_without_positions_fails_before_training(
    tmp_path: Path, splits: dict[str, Path], split: str
) -> None:
    paths = dict(splits)
    paths[split] = tmp_path / f"{split}.parquet"
    pd.read_parquet(splits[split]).drop(columns="position").to_parquet(paths[split], index=False)
    with pytest.raises(InputError) as raised:
        train_ranker(
            paths["train"],
            paths["valid"],
            tmp_path / "model",
            POSITION_BIAS,
            work_dir=tmp_path / "work",
            log=lambda _: None,
        )
    error = raised.value
    assert error.field == f"{split} columns" and "position" not in error.value
    assert "'position' column" in error.rule and "position_bias" in error.rule
    assert not (tmp_path / "work" / "data").exists(), "nothing may be encoded or trained"
    assert not (tmp_path / "model").exists()
