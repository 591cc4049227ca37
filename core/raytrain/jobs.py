"""Training on an existing Ray cluster, submitted as a Ray job (the Jobs API).

The pipeline step writes the run's spec to shared storage, submits a job whose entrypoint runs
:mod:`searchrank.core.raytrain.job` on the cluster, streams the job's logs into the
step's log, and reads the result back from shared storage. If the step is cancelled (SIGTERM
from Kubernetes, or Ctrl-C) or fails, the job is stopped.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from searchrank.core.errors import InputError
from searchrank.core.ray_address import RayTarget, ray_target

SPEC = "job_spec.json"
RESULT = "job_result.json"
POLL_SECONDS = 1.0


class JobFailedError(RuntimeError):
    """The Ray job ended in any state but SUCCEEDED."""


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (Kubernetes cancelling the step) raises KeyboardInterrupt in
    the main thread, so the code that stops remote work runs; the old handler comes back after."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def submit_and_follow(
    address: str,
    spec: dict[str, Any],
    storage: Path,
    python: str = "python",
    log: Callable[[str], None] = print,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run the training as a Ray job on the cluster at ``address`` and wait for it.

    Args:
        address: the cluster's dashboard address, e.g. ``http://127.0.0.1:8265``.
        spec: the training spec (paths in it must be readable on the cluster).
        storage: shared storage for the spec, the checkpoints and the result.
        python: the interpreter on the cluster that has searchrank installed.
        log: where the job's log lines go (the step's log).
        timeout_s: stop the job and fail after this long; no limit when None.

    Returns:
        The job's result: the best checkpoint's path and the training history.
    """
    from ray.job_submission import JobStatus, JobSubmissionClient

    if ray_target(address) is not RayTarget.RAY_JOBS:
        raise InputError(
            "ray_address", address, "must be the cluster's dashboard URL, http://host:8265"
        )
    storage.mkdir(parents=True, exist_ok=True)
    (storage / SPEC).write_text(json.dumps(spec))
    (storage / RESULT).unlink(missing_ok=True)
    client = JobSubmissionClient(address)
    job_id = client.submit_job(
        entrypoint=f"{python} -m searchrank.core.raytrain.job {storage / SPEC}",
        runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}},
    )
    log(f"submitted Ray job {job_id} to {address}")
    with sigterm_as_interrupt():
        stop_tail = threading.Event()
        tail = threading.Thread(target=_tail, args=(client, job_id, log, stop_tail), daemon=True)
        tail.start()
        started = time.monotonic()
        try:
            while (status := client.get_job_status(job_id)) not in _final(JobStatus):
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"Ray job {job_id} ran longer than {timeout_s} s")
                time.sleep(POLL_SECONDS)
        except BaseException:
            log(f"stopping Ray job {job_id}")
            client.stop_job(job_id)
            raise
        finally:
            stop_tail.set()
            tail.join(timeout=10)
    if status != JobStatus.SUCCEEDED:
        raise JobFailedError(
            f"Ray job {job_id} ended {status}: {client.get_job_logs(job_id)[-4000:]}"
        )
    result: dict[str, Any] = json.loads((storage / RESULT).read_text())
    return result


def _final(job_status: Any) -> set[Any]:
    return {job_status.SUCCEEDED, job_status.FAILED, job_status.STOPPED}


def _tail(client: Any, job_id: str, log: Callable[[str], None], stop: threading.Event) -> None:
    """Copy the job's log into ``log`` as it arrives (in its own event loop and thread)."""

    async def follow() -> None:
        async for chunk in client.tail_job_logs(job_id):
            for line in chunk.splitlines():
                log(f"[ray job] {line}")
            if stop.is_set():
                return

    try:
        asyncio.run(follow())
    except Exception as error:  # the log stream is best effort; the status poll decides
        log(f"[ray job] log stream ended: {error}")
