"""train_ranker's RayJob mode against a fake Kubernetes API of our own: just the calls it makes
(create, get and delete a RayJob; list pods; read a pod's log), over real HTTP through the
official ``kubernetes`` client and a kubeconfig."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.core.contract import FeatureContract
from searchrank.core.names import COMPONENT_IMAGE, RANKER_FEATURE_SERVICE
from searchrank.core.raytrain.jobs import RESULT, JobFailedError
from searchrank.core.raytrain.kuberay import run_rayjob
from searchrank.core.raytrain.rayjob import RayJobSpec

RAYJOBS = re.compile(r"^/apis/ray\.io/v1/namespaces/([^/]+)/rayjobs(?:/([^/?]+))?")


class FakeKubernetes(BaseHTTPRequestHandler):
    """A RayJob 'runs' for two polls, then ends as ``outcome`` says; SUCCEEDED writes the
    result a real job would write to shared storage."""

    outcome: ClassVar[str] = "SUCCEEDED"
    checkpoint: ClassVar[str] = ""
    jobs: ClassVar[dict[str, dict[str, Any]]] = {}
    polls: ClassVar[dict[str, int]] = {}
    deleted: ClassVar[list[str]] = []

    def _json(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = body["metadata"]["name"]
        body["status"] = {"jobStatus": "PENDING"}
        self.jobs[name] = body
        self.polls[name] = 0
        self._json(body, 201)

    def do_GET(self) -> None:
        if match := RAYJOBS.match(self.path):
            name = match.group(2)
            job = self.jobs[name]
            self.polls[name] += 1
            if self.polls[name] >= 2 and self.outcome != "RUNNING":
                if self.outcome == "SUCCEEDED":
                    spec_path = Path(job["spec"]["entrypoint"].split()[-1])
                    history = [{"epoch": 0, "val_ndcg@10": 0.5, "train_loss": 1.0}]
                    result = {"best_checkpoint": self.checkpoint, "history": history}
                    (spec_path.parent / RESULT).write_text(json.dumps(result))
                job["status"] = {"jobStatus": self.outcome}
            else:
                job["status"] = {"jobStatus": "RUNNING"}
            self._json(job)
        elif self.path.startswith("/api/v1/namespaces/") and "/log" in self.path:
            data = b"loading data\nepoch 0 val_ndcg@10=0.5\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path.startswith("/api/v1/namespaces/"):
            pod = {"metadata": {"name": "submitter-1"}}
            self._json({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]})
        else:
            self._json({"kind": "Status", "code": 404}, 404)

    def do_DELETE(self) -> None:
        match = RAYJOBS.match(self.path)
        assert match
        self.deleted.append(match.group(2))
        self._json({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_kubernetes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[type[FakeKubernetes]]:
    FakeKubernetes.jobs, FakeKubernetes.polls, FakeKubernetes.deleted = {}, {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKubernetes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {"server": f"http://127.0.0.1:{server.server_port}"},
                    }
                ],
                "users": [{"name": "fake", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    yield FakeKubernetes
    server.shutdown()


JOB = RayJobSpec(name="placeholder", entrypoint="python", image=COMPONENT_IMAGE, num_workers=2)


def test_train_ranker_creates_a_rayjob_follows_it_and_returns_its_checkpoint(
    fake_kubernetes: type[FakeKubernetes],
    splits: dict[str, Path],
    ranker_checkpoint: Path,
    tmp_path: Path,
) -> None:
    from searchrank.components.train_ranker.logic import train_ranker

    fake_kubernetes.outcome, fake_kubernetes.checkpoint = "SUCCEEDED", str(ranker_checkpoint)
    lines: list[str] = []
    summary = train_ranker(
        splits["train"],
        splits["valid"],
        tmp_path / "model",
        replace(TrainRankerConfig(), num_workers=3),
        contract=FeatureContract.load(splits["contract"]),
        ray_address="kuberay://ml-team",
        work_dir=tmp_path / "work",
        log=lines.append,
    )
    assert (tmp_path / "model" / "ranker.json").is_file(), "the checkpoint is the Model"
    assert summary.best_val_ndcg10 == 0.5
    (job,) = fake_kubernetes.jobs.values()
    assert job["kind"] == "RayJob" and job["spec"]["shutdownAfterJobFinishes"] is True
    spec_path = Path(job["spec"]["entrypoint"].split()[-1])
    assert json.loads(spec_path.read_text())["data_dir"].startswith(str(tmp_path / "work"))
    assert FeatureContract.load(tmp_path / "model").feature_service == RANKER_FEATURE_SERVICE
    workers = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert workers["replicas"] == 3
    assert workers["template"]["spec"]["containers"][0]["image"] == COMPONENT_IMAGE
    assert "[rayjob] epoch 0 val_ndcg@10=0.5" in lines
    assert lines.count("[rayjob] loading data") == 1, "each log line is copied once"
    assert fake_kubernetes.deleted == [], "a finished RayJob cleans itself up after its TTL"


def test_a_failed_rayjob_is_deleted_and_fails_the_step(
    fake_kubernetes: type[FakeKubernetes], tmp_path: Path
) -> None:
    fake_kubernetes.outcome = "FAILED"
    with pytest.raises(JobFailedError, match="FAILED"):
        run_rayjob("kuberay://ml", {}, tmp_path, JOB, log=lambda _: None, poll_seconds=0.05)
    assert fake_kubernetes.deleted == list(fake_kubernetes.jobs)


def test_a_cancelled_step_deletes_its_rayjob(
    fake_kubernetes: type[FakeKubernetes], tmp_path: Path
) -> None:
    fake_kubernetes.outcome = "RUNNING"
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run_rayjob("kuberay://ml", {}, tmp_path, JOB, log=lambda _: None, poll_seconds=0.05)
    assert fake_kubernetes.deleted == list(fake_kubernetes.jobs)
    with pytest.raises(TimeoutError):
        run_rayjob(
            "kuberay://ml", {}, tmp_path, JOB, log=lambda _: None, timeout_s=0.2, poll_seconds=0.05
        )
    assert len(fake_kubernetes.deleted) == 2


def test_a_bad_kuberay_address_is_refused(tmp_path: Path) -> None:
    from searchrank.core.errors import InputError

    with pytest.raises(InputError, match="kuberay://NAMESPACE"):
        run_rayjob("kuberay://", {}, tmp_path, JOB)
