"""Stopping ``searchrank serve``, a real process: every process it started goes, the port frees.

Each test starts the command as a user or a container runtime would, records the whole process
tree under it once the service is ready, signals the command alone, and then requires, within a
bounded time, that each recorded process has exited, that no process carrying the test's mark in
its environment is left (one started after the recording, or reparented, included), and that
the port can be listened on again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from services import command_line
from serving.conftest import LoggedDay

from searchrank.core.net import free_port

pytestmark = pytest.mark.slow

MARK_ENV = "SEARCHRANK_TEST_STOP_MARK"
"""An environment variable every process under a started command inherits (BentoML's workers
copy the server's environment): a test's own mark."""
READY_WITHIN = 240.0
GONE_WITHIN = 40.0
"""Bound on stopping: the server's own grace period (20 s) and then some."""


@dataclass
class Command:
    process: subprocess.Popen[bytes]
    port: int
    output: Path
    mark: str
    tree: list[psutil.Process] = field(default_factory=list)
    """The processes under the command, as last recorded."""

    def text(self) -> str:
        return self.output.read_text(errors="replace")[-4_000:]


@pytest.fixture
def start(bento: str, logged_day: LoggedDay, tmp_path: Path) -> Iterator[type[Command]]:
    """Starts ``searchrank serve`` (at most once per test); whatever of its tree is left at the
    end is killed, so that a failing test leaks no server."""
    started: list[Command] = []

    class Started(Command):
        def __init__(self) -> None:
            port = free_port()
            output = tmp_path / "searchrank-serve.out"
            mark = uuid.uuid4().hex
            # The root conftest set BENTOML_HOME, the session's own store that holds the Bento
            # and its models, in os.environ: the command must read the same store.
            assert os.environ.get("BENTOML_HOME"), "the root conftest sets the session's store"
            with output.open("wb") as sink:
                process = subprocess.Popen(
                    [
                        *(str(Path(sys.executable).parent / "searchrank"), "serve"),
                        *("--port", str(port), "--bento", bento),
                        *("--feature-repo", str(logged_day.repo)),
                    ],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, MARK_ENV: mark},
                    start_new_session=True,  # signals reach it only from this test
                )
            super().__init__(process, port, output, mark)
            started.append(self)

    yield Started
    for command in started:
        for process in marked(command.mark):
            with suppress(psutil.Error):
                process.kill()
        command.process.wait(timeout=30)


def marked(mark: str) -> list[psutil.Process]:
    """The running processes (zombies aside) whose environment carries ``mark``."""
    found = []
    for process in psutil.process_iter():
        with suppress(psutil.Error):  # gone, a zombie, or another user's
            if process.environ().get(MARK_ENV) == mark:
                found.append(process)
    return found


def wait_ready(command: Command) -> list[psutil.Process]:
    """Wait until the command says it is ready (after its own ``/readyz`` check: waiting on
    ``/readyz`` here could see the server ready before the command does, and a test that then
    kills the server would meet the command still starting); return every process under it."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        assert command.process.poll() is None, f"searchrank serve exited:\n{command.text()}"
        if "ready: POST" in command.text():
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"not ready within {READY_WITHIN:.0f} s:\n{command.text()}")
    assert httpx.get(f"http://127.0.0.1:{command.port}/readyz", timeout=5.0).status_code == 200
    command.tree = psutil.Process(command.process.pid).children(recursive=True)
    return command.tree


def can_listen(port: int) -> bool:
    """Whether a new server could listen on the port (as uvicorn does, with SO_REUSEADDR, so
    connections in TIME_WAIT do not count: only a process still listening does)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def stop_and_wait(
    command: Command, tree: list[psutil.Process], signum: int, pid: int | None = None
) -> float:
    """Send ``signum`` to the command alone (or to the process ``pid``); the seconds until the
    command, every process of ``tree`` and every process with the command's mark have exited.
    Fails past :data:`GONE_WITHIN`."""
    started = time.monotonic()
    os.kill(pid or command.process.pid, signum)
    try:
        command.process.wait(timeout=GONE_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"searchrank serve still runs {GONE_WITHIN:.0f} s after {signum}")
    _, alive = psutil.wait_procs(tree, timeout=max(0.0, started + GONE_WITHIN - time.monotonic()))
    assert not alive, [command_line(p) for p in alive]
    while (left := marked(command.mark)) and time.monotonic() < started + GONE_WITHIN:
        time.sleep(0.1)
    assert not left, [command_line(p) for p in left]
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("signum", "status"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM),
        (signal.SIGINT, 128 + signal.SIGINT),
        (signal.SIGHUP, 128 + signal.SIGHUP),
    ],
    ids=["SIGTERM", "SIGINT", "SIGHUP"],
)
def test_a_stop_signal_stops_every_process_and_frees_the_port(
    start: type[Command], signum: int, status: int
) -> None:
    command = start()
    tree = wait_ready(command)
    assert len(tree) >= 2, "bentoml serve and at least one worker"
    assert not can_listen(command.port)

    elapsed = stop_and_wait(command, tree, signum)

    assert command.process.returncode == status, command.text()
    assert can_listen(command.port)
    assert "stopped" in command.text()
    print(f"{signal.Signals(signum).name}: {len(tree)} processes gone in {elapsed:.1f} s")


def test_a_stop_signal_during_start_up_stops_what_already_started(start: type[Command]) -> None:
    """SIGTERM once ``bentoml serve`` has spawned its workers, before they are ready."""
    command = start()
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        assert command.process.poll() is None, command.text()
        command.tree = psutil.Process(command.process.pid).children(recursive=True)
        if any("_bentoml_impl.worker" in command_line(p) for p in command.tree):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no worker within {READY_WITHIN:.0f} s:\n{command.text()}")
    assert "ready:" not in command.text(), "too late: the service is already ready"

    elapsed = stop_and_wait(command, command.tree, signal.SIGTERM)

    assert command.process.returncode == 128 + signal.SIGTERM, command.text()
    assert can_listen(command.port)
    print(f"SIGTERM during start-up: {len(command.tree)} processes gone in {elapsed:.1f} s")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_server_does_not_outlive_a_killed_command(start: type[Command]) -> None:
    """SIGKILL runs no cleanup at all: the server still goes, because Linux sends it SIGTERM
    when the command's thread that started it ends (``PR_SET_PDEATHSIG``)."""
    command = start()
    tree = wait_ready(command)

    elapsed = stop_and_wait(command, tree, signal.SIGKILL)

    assert command.process.returncode == -signal.SIGKILL
    assert can_listen(command.port)
    print(f"SIGKILL: {len(tree)} processes gone in {elapsed:.1f} s")


def test_a_server_that_dies_takes_its_workers_and_the_command_with_it(
    start: type[Command],
) -> None:
    """SIGKILL of ``bentoml serve`` itself, which leaves its workers behind (they run in
    sessions of their own): the command sees it exit, stops the workers, and exits with 1."""
    command = start()
    tree = wait_ready(command)
    (server,) = psutil.Process(command.process.pid).children()
    assert server.children(), "bentoml serve has workers"

    elapsed = stop_and_wait(command, tree, signal.SIGKILL, pid=server.pid)

    assert command.process.returncode == 1, command.text()
    assert "exited on its own" in command.text()
    assert can_listen(command.port)
    print(f"server killed: {len(tree)} processes gone in {elapsed:.1f} s")
