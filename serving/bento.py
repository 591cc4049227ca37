"""Models into the BentoML store, the Bento build, and ``bentoml serve`` as a managed process.

Used by the ``package_service`` component, ``searchrank serve``, the tests and the benchmark,
so that every one of them builds and starts the service the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from searchrank.components.core import checkpoint as ckpt
from searchrank.components.core.errors import InputError
from searchrank.components.core.net import free_port
from searchrank.serving.candidates import CandidateGenerator, RetrieverParts
from searchrank.serving.engine import lexical_retriever
from searchrank.serving.service import (
    FEATURE_REPO_ENV,
    RANKER_MODEL_NAME,
    RETRIEVER_MODEL_NAME,
)

BENTO_NAME = "searchrank"
ENTRY_MODULE = "searchrank_bento.py"
RUNTIME_PACKAGES = (
    "searchrank",
    "torch",
    "feast",
    "bm25s",
    "pandas",
    "numpy",
    "pyarrow",
)
"""Distributions the Bento's environment pins at the versions installed here."""


def _label(value: object) -> str:
    """A BentoML label value: printable, at most 63 characters (Kubernetes label rules)."""
    text = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(value))
    return text[-63:].strip("-_.") or "none"


def save_ranker(folder: Path, labels: Mapping[str, object], metadata: Mapping[str, Any]) -> str:
    """Copy a ranker checkpoint (``model.pt`` and ``ranker.json``) into the model store.

    Returns:
        The model's tag, ``searchrank-ranker:<version>``.
    """
    import bentoml

    ckpt.read_description(folder)  # refuse anything that is not a ranker checkpoint
    with bentoml.models.create(
        RANKER_MODEL_NAME,
        labels={k: _label(v) for k, v in labels.items()},
        metadata=dict(metadata),
    ) as model:
        for name in (ckpt.WEIGHTS, ckpt.DESCRIPTION):
            shutil.copyfile(folder / name, model.path_of(name))
    return str(model.tag)


def save_retriever(
    catalogue: pd.DataFrame,
    labels: Mapping[str, object],
    parts: RetrieverParts | None = None,
) -> str:
    """Save the service's candidate generator into the store: BM25 over the catalogue's names
    and artists (character trigrams) and, when ``parts`` gives them, the two-tower checkpoint
    with its index, the query-intent model and the intent routing of the fusion.

    Args:
        catalogue: one row per item with ``item_id``, ``name`` and ``artist_name``.
        labels: lineage labels of the model.
        parts: ``train_retriever``'s checkpoint and ``build_index``'s folder (both or neither),
            ``train_intent``'s model, ``evaluate_retrieval``'s routing.

    Returns:
        The model's tag, ``searchrank-retriever:<version>``.
    """
    import bentoml

    parts = parts or RetrieverParts()
    generator = CandidateGenerator(lexical_retriever(catalogue))
    with bentoml.models.create(
        RETRIEVER_MODEL_NAME,
        labels={k: _label(v) for k, v in labels.items()},
        metadata={
            "items": len(generator.item_ids),
            "analyzer": generator.lexical.analyzer,
            "dense": parts.two_tower is not None,
            "intent": parts.intent is not None,
            "routed": parts.routing is not None,
        },
    ) as model:
        generator.save(Path(model.path), parts)
    return str(model.tag)


def build_bento(ranker_tag: str, retriever_tag: str, labels: Mapping[str, object]) -> str:
    """Build the Bento whose entry module pins ``ranker_tag`` and ``retriever_tag``.

    The build works offline: requirements are the installed versions, not re-resolved.

    Returns:
        The Bento's tag.
    """
    import bentoml

    packages = [f"{name}=={metadata.version(name)}" for name in RUNTIME_PACKAGES]
    with tempfile.TemporaryDirectory(prefix="searchrank-bento-") as context:
        entry = Path(context) / ENTRY_MODULE
        entry.write_text(
            '"""The Bento entry point: the searchrank service with its models pinned."""\n'
            "import os\n\n"
            f'os.environ["SEARCHRANK_RANKER_MODEL"] = "{ranker_tag}"\n'
            f'os.environ["SEARCHRANK_RETRIEVER_MODEL"] = "{retriever_tag}"\n\n'
            "from searchrank.serving.service import RankerModel, Search  # noqa: E402,F401\n"
        )
        bento = bentoml.bentos.build(
            service=f"{entry.stem}:Search",
            name=BENTO_NAME,
            labels={k: _label(v) for k, v in labels.items()},
            include=[f"/{ENTRY_MODULE}"],
            python={"packages": packages, "lock_packages": False},
            build_ctx=context,
        )
    return str(bento.tag)


def export_bento(tag: str, path: Path) -> Path:
    """Write the Bento ``tag`` as one ``.bento`` archive at exactly ``path``."""
    import bentoml

    with tempfile.TemporaryDirectory() as folder:
        written = Path(bentoml.bentos.export_bento(tag, str(Path(folder) / "service.bento")))
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written, path)
    return path


def latest_bento() -> str:
    """The newest Bento called ``searchrank`` in the store.

    Raises:
        InputError: there is none (package one first, for example with ``make demo``).
    """
    import bentoml

    bentos = [b for b in bentoml.bentos.list() if b.tag.name == BENTO_NAME]
    if not bentos:
        raise InputError("bento", BENTO_NAME, "no searchrank Bento is packaged in the store yet")
    return str(max(bentos, key=lambda b: b.info.creation_time).tag)


def preflight(tag: str, feature_repo: Path) -> None:
    """Check, before starting a server, that ``tag`` exists and the feature repository can feed
    its ranker (the check the service repeats at start-up).

    Raises:
        InputError: unknown Bento or repository, or a feature service that does not match.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    from searchrank.components.core.features import FeatureProcessor
    from searchrank.features.store import open_store
    from searchrank.serving.checks import SchemaMismatchError, check_feature_service

    try:
        info = bentoml.bentos.get(tag).info
    except NotFound as error:
        raise InputError("bento", tag, "must be a Bento in the store (bentoml list)") from error
    models = [m for service in info.services for m in service.models]
    ranker = next((m for m in models if m.tag.name == RANKER_MODEL_NAME), None)
    if ranker is None:
        raise InputError("bento", tag, f"must contain a {RANKER_MODEL_NAME} model")
    description = ckpt.read_description(Path(bentoml.models.get(ranker.tag).path))
    processor = FeatureProcessor.from_json(json.dumps(description["processor"]))
    try:
        check_feature_service(open_store(feature_repo), description["feature_service"], processor)
    except SchemaMismatchError as error:
        raise InputError("feature_repo", str(feature_repo), str(error)) from error


STARTUP_FAILED = "Application startup failed"
ADDRESS = ("--host", "127.0.0.1", "--port")


@dataclass(frozen=True)
class RunningService:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def serve(
    target: str,
    feature_repo: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 180.0,
    working_dir: Path | None = None,
) -> Iterator[RunningService]:
    """Run ``bentoml serve target`` on 127.0.0.1 until the block ends, whatever happens.

    Args:
        target: a Bento tag, or ``module:Service`` importable from ``working_dir``.
        feature_repo: the Feast repository the service reads.

    Raises:
        RuntimeError: the server exited or was not ready within ``start_timeout``; the message
            ends with its log.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, FEATURE_REPO_ENV: str(feature_repo.resolve()), **(env or {})}
    environment["BENTOML_DO_NOT_TRACK"] = "true"
    log_path = Path(tempfile.mkstemp(prefix="bentoml-serve-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", target, *ADDRESS, str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=working_dir,
            start_new_session=True,
        )
    try:
        _wait_ready(url, process, log_path, start_timeout)
        yield RunningService(url, process, log_path)
    finally:
        _stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{_tail(log)}")
        if STARTUP_FAILED in log.read_text(errors="replace"):
            # BentoML keeps restarting a worker whose service cannot start: give up at once.
            raise RuntimeError(f"the service failed to start:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"bentoml serve was not ready within {timeout:.0f} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers (its own process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _tail(path: Path, chars: int = 4_000) -> str:
    return path.read_text(errors="replace")[-chars:]
