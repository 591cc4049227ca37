"""Real services on loopback for tests and rehearsals: Redis, PostgreSQL and an S3 API server.

Each starter is a context manager that starts the service on a free 127.0.0.1 port, waits until
it accepts connections, yields how to reach it and stops it afterwards. A starter whose program
is missing skips the calling test with the package to install (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NamedTuple

import psutil
import pyarrow.fs as pafs
import pytest

from searchrank.core import storage
from searchrank.core.net import free_port, free_ports

STARTUP_TIMEOUT_S = 60.0
POSTGRES_HOME = "/usr/lib/postgresql"
"""Where Debian installs each PostgreSQL version's programs (``<version>/bin``)."""
S3_TEST_KEY = "searchrank-test"
"""Access key and secret of the S3 test server, which accepts any credentials."""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on port {port}") from None
            time.sleep(0.05)


class RedisServer:
    """A ``redis-server`` without persistence on a fixed free 127.0.0.1 port, which a test may
    stop and start again (the online store going down and coming back).

    Args:
        password: required of clients (``requirepass``); None lets any client in.
    """

    def __init__(self, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._folder = tempfile.TemporaryDirectory(prefix="searchrank-redis-")
        self._command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self._command += ["--appendonly", "no", "--dir", self._folder.name]
        if password is not None:
            self._command += ["--requirepass", password]
        self._password = password
        self._server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it; it loads what the last :meth:`stop` saved."""
        self._server = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_port(self.port, self._server, "redis-server")

    def stop(self) -> None:
        """Save the data (``SAVE``, as a Redis with persistence would have it) and stop."""
        if self._server is not None:
            import redis

            client = redis.Redis("127.0.0.1", self.port, password=self._password)
            client.save()
            client.close()
            self._server.terminate()
            self._server.wait(timeout=30)
            self._server = None

    def close(self) -> None:
        self.stop()
        self._folder.cleanup()


@contextmanager
def redis_server(password: str | None = None) -> Iterator[str]:
    """A started :class:`RedisServer`; yields its ``host:port``."""
    server = RedisServer(password)
    try:
        server.start()
        yield server.address
    finally:
        server.close()


class DelayProxy:
    """A TCP proxy on a free 127.0.0.1 port that holds every answer of its target for
    ``delay_s`` seconds (0 passes them at once): a slow dependency on loopback.

    Each connection gets two threads, one per direction; setting ``delay_s`` takes effect for
    the next chunk of bytes.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.delay_s = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, delay: float | None) -> None:
        """Copy bytes; ``delay`` None means "the proxy's current delay" (the answers)."""
        with suppress(OSError):
            while chunk := source.recv(65536):
                time.sleep(self.delay_s if delay is None else delay)
                sink.sendall(chunk)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


class Postgres(NamedTuple):
    """How to reach a :func:`postgres_server`: ``address`` is ``host:port``."""

    address: str
    user: str
    password: str
    database: str


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster with a database ``feast``, reached over TCP with a password.

    Debian's binaries (``/usr/lib/postgresql/<version>/bin``, the newest) run as the current
    user, or as the ``postgres`` system user when that is root, which PostgreSQL refuses to be.
    """
    versions = sorted(Path(POSTGRES_HOME).glob("*/bin"), key=lambda b: int(b.parent.name))
    if not versions:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = versions[-1]
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        pytest.skip("running as root needs runuser to start PostgreSQL as the postgres user")
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    user, password, database = "feast", secrets.token_hex(8), "feast"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="searchrank-postgres-") as folder:
        root = Path(folder)
        (root / "password").write_text(password)
        if as_root:
            for path in (root, root / "password"):
                shutil.chown(path, "postgres", "postgres")
        data = root / "data"

        def run(*command: str) -> None:
            done = subprocess.run(
                [*run_as, *command], capture_output=True, text=True, timeout=120, check=False
            )
            if done.returncode:
                raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")

        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "--pwfile",
            str(root / "password"),
            "--auth=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
            "-c fsync=off -c shared_buffers=16MB -c max_connections=30"
        )
        pg_ctl = str(bin_dir / "pg_ctl")
        run(pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start")
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user=user,
                password=password,
                dbname="postgres",
                autocommit=True,
                connect_timeout=10,
            ) as connection:
                connection.execute(f'CREATE DATABASE "{database}"')
            yield Postgres(f"127.0.0.1:{port}", user, password, database)
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 API server (in a thread of this process); yields its endpoint URL.

    It keeps its buckets in this process's memory and accepts any credentials.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("moto is not installed (pip install 'moto[server]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def use_s3(monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str) -> str:
    """Point the AWS variables at the S3 server ``endpoint`` and create ``bucket`` there.

    Returns:
        ``s3://<bucket>``.
    """
    for name, value in {
        storage.ACCESS_KEY_ENV: S3_TEST_KEY,
        storage.SECRET_KEY_ENV: S3_TEST_KEY,
        storage.ENDPOINT_ENV: endpoint,
        storage.REGION_ENV: storage.DEFAULT_REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(storage.SESSION_TOKEN_ENV, raising=False)
    admin = pafs.S3FileSystem(
        access_key=S3_TEST_KEY,
        secret_key=S3_TEST_KEY,
        endpoint_override=endpoint,
        region=storage.DEFAULT_REGION,
        allow_bucket_creation=True,
    )
    if admin.get_file_info(bucket).type == pafs.FileType.NotFound:
        admin.create_dir(bucket)
    return f"s3://{bucket}"


class RayHead(NamedTuple):
    """A started Ray head's addresses.

    Attributes:
        dashboard: the dashboard URL (its Jobs API), which ``train_ranker``'s ``ray_address``
            takes.
        client: the Ray Client address (``ray://…``), which Feast's ``ray_address`` takes.
        temp: the head's temporary folder (its logs lie under ``session_latest/logs``).
    """

    dashboard: str
    client: str
    temp: Path

    def client_server_errors(self) -> str:
        """The end of each Ray Client server's error log: why a client could not connect."""
        logs = sorted((self.temp / "session_latest" / "logs").glob("ray_client_server*.err"))
        return "\n".join(f"{log.name}:\n{log.read_text()[-2000:]}" for log in logs)


@contextmanager
def ray_head(num_cpus: int = 4) -> Iterator[RayHead]:
    """A Ray cluster of one head node (``ray start --head``) with its dashboard's Jobs API and
    its Ray Client server, started with this process's environment (its workers inherit it).

    Args:
        num_cpus: logical CPUs the head offers to jobs (more than the machine has is fine).
    """
    import sys

    ray = str(Path(sys.executable).parent / "ray")
    # Ray's Unix sockets live under --temp-dir, whose path must stay short (107 bytes at most).
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    agents = (
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "metrics-export-port",
        "runtime-env-agent-port",
        "ray-client-server-port",
        "node-manager-port",
        "object-manager-port",
    )
    head, dashboard, *ports = free_ports(2 + len(agents))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={head}",
            # Ports of its own for every agent, not Ray's fixed defaults: another Ray on this
            # machine (another test's, another pytest worker's) may hold those, and a head
            # whose job agent cannot bind answers every job with "No available agent". All
            # distinct: picked one at a time, two agents once got the same port.
            *(f"--{name}={port}" for name, port in zip(agents, ports, strict=True)),
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--num-cpus={num_cpus}",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=180,
    )
    client = dict(zip(agents, ports, strict=True))["ray-client-server-port"]
    try:
        yield RayHead(f"http://127.0.0.1:{dashboard}", f"ray://127.0.0.1:{client}", temp)
    finally:
        stop_processes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def stop_processes_under(folder: Path, grace_s: float = 10.0) -> None:
    """Stop every process whose command line names ``folder``: a Ray started with it as its
    temporary folder (head, raylet, dashboard, workers). Unlike ``ray stop``, which stops every
    Ray on the machine, it leaves alone the Rays other tests (or another pytest worker) run."""
    mine = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(str(folder) in part for part in (p.info["cmdline"] or []))
    ]
    for process in mine:
        with suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(mine, timeout=grace_s)
    for process in alive:
        with suppress(psutil.NoSuchProcess):
            process.kill()


def command_line(process: psutil.Process) -> str:
    """A process's command line, or "" once it has exited (a zombie not yet reaped by its
    parent included: its command line can no longer be read)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""
