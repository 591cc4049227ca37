"""Models into the BentoML store, the Bento build, and ``bentoml serve`` as a managed process.

Used by the ``package_service`` component, ``searchrank serve``, the tests and the benchmark,
so that every one of them builds and starts the service the same way.

A Bento carries the searchrank wheel (``env/python/wheels``) and pins searchrank's own base
requirements at the versions installed here, so its image (``bentoml containerize``, whose
Dockerfile copies ``env/python`` and runs its ``install.sh``: ``uv pip install -r
requirements.txt``) installs searchrank from the Bento and the rest from an index.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from searchrank.core import checkpoint as ckpt
from searchrank.core import schema as S
from searchrank.core.candidates import CandidateGenerator, RetrieverParts
from searchrank.core.contract import CONTRACT_FILE, FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.names import BENTO_NAME, RANKER_MODEL_NAME, RETRIEVER_MODEL_NAME
from searchrank.core.net import free_port
from searchrank.core.retrieval import item_streams, listener_streams
from searchrank.serving.settings import FEATURE_REPO_ENV, RANKER_MODEL_ENV, RETRIEVER_MODEL_ENV

ENTRY_MODULE = "searchrank_bento.py"
DISTRIBUTION = "searchrank"
WHEEL_ENV = "SEARCHRANK_WHEEL"
"""Names the searchrank wheel to bundle, or a folder holding it, where searchrank is not
installed editable from its sources (in an image: the wheel its build installed)."""
TORCH_INDEX_ENV = "SEARCHRANK_TORCH_INDEX_URL"
"""When set, the Bento's extra index (PyTorch's CPU wheels, or a mirror of them): the Bento pins
``torch==<version>`` without the local label, and the index decides which build that is."""


def _label(value: object) -> str:
    """A BentoML label value: printable, at most 63 characters (Kubernetes label rules)."""
    text = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(value))
    return text[-63:].strip("-_.") or "none"


def save_ranker(folder: Path, labels: Mapping[str, object], metadata: Mapping[str, Any]) -> str:
    """Copy a ranker checkpoint (``model.pt``, ``ranker.json`` and its feature contract) into the
    model store.

    Returns:
        The model's tag, ``searchrank-ranker:<version>``.
    """
    import bentoml

    # Refuse anything that is not a ranker checkpoint with the feature contract it trained on.
    ckpt.read_description(folder)
    FeatureContract.load(folder)
    with bentoml.models.create(
        RANKER_MODEL_NAME,
        labels={k: _label(v) for k, v in labels.items()},
        metadata=dict(metadata),
    ) as model:
        for name in (ckpt.WEIGHTS, ckpt.DESCRIPTION, CONTRACT_FILE):
            shutil.copyfile(folder / name, model.path_of(name))
    return str(model.tag)


def save_retriever(
    catalogue: pd.DataFrame,
    labels: Mapping[str, object],
    parts: RetrieverParts | None = None,
) -> str:
    """Save the service's candidate generator into the store: BM25 over the catalogue's names
    and artists (character trigrams), the query rewriter over the catalogue's vocabulary and,
    when ``parts`` gives them, the two-tower checkpoint with its index, the query-intent model,
    the generative retriever, the routing of the fusion and the items' streams.

    Args:
        catalogue: one row per item with ``item_id``, ``name`` and ``artist_name``.
        labels: lineage labels of the model.
        parts: ``train_retriever``'s checkpoint and ``build_index``'s folder (both or neither),
            ``train_intent``'s model, ``train_generative_retriever``'s model,
            ``evaluate_retrieval``'s routing, the training split.

    Returns:
        The model's tag, ``searchrank-retriever:<version>``.
    """
    import bentoml

    parts = parts or RetrieverParts()
    streams = listeners = None
    if parts.train is not None:
        trained = pd.read_parquet(parts.train, columns=[S.USER_ID, S.ITEM_ID, S.LABEL])
        streams, listeners = item_streams(trained), listener_streams(trained)
    generator = CandidateGenerator.from_catalogue(catalogue, streams=streams, listeners=listeners)
    with bentoml.models.create(
        RETRIEVER_MODEL_NAME,
        labels={k: _label(v) for k, v in labels.items()},
        metadata={
            "items": len(generator.item_ids),
            "analyzer": generator.lexical.analyzer,
            "lexicon_words": len(generator.rewriter.lexicon.words) if generator.rewriter else 0,
            "dense": parts.two_tower is not None,
            "intent": parts.intent is not None,
            "routed": parts.routing is not None,
            "generative": parts.generative is not None,
            "streams": streams is not None,
        },
    ) as model:
        generator.save(Path(model.path), parts)
    return str(model.tag)


def runtime_requirements() -> list[str]:
    """searchrank's base requirements (none of its extras'), each pinned at the installed version.

    Extras stay (``feast[duckdb,postgres,redis]==...``); local version labels go (``torch==2.13.0``,
    not ``+cpu``), because no index serves a local version: the index chooses the build.

    Raises:
        InputError: a base requirement is not installed, so there is no version to pin.
    """
    pins = []
    for line in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(line)
        # False for an extra's requirement (pipelines, dev) and for another platform's.
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = Version(metadata.version(requirement.name)).public
        except metadata.PackageNotFoundError as error:
            raise InputError(
                "requirement", line, "must be installed: the Bento pins the installed version"
            ) from error
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pins.append(f"{requirement.name}{extras}=={installed}")
    return pins


def bundle_wheel(folder: Path) -> Path:
    """Put the searchrank wheel of the installed version into ``folder``.

    The wheel is the one ``SEARCHRANK_WHEEL`` names (a file, or a folder holding it) or, when
    searchrank is installed editable, built from its source checkout (offline, a few seconds).

    Returns:
        The wheel's path in ``folder``.

    Raises:
        InputError: ``SEARCHRANK_WHEEL`` names no searchrank wheel of the installed version, or
            it is unset and searchrank is not installed editable.
    """
    version = metadata.version(DISTRIBUTION)
    folder.mkdir(parents=True, exist_ok=True)
    named = os.environ.get(WHEEL_ENV)
    if named:
        return Path(shutil.copy2(_named_wheel(Path(named), version), folder))
    source = _editable_source()
    if source is None:
        raise InputError(
            WHEEL_ENV,
            None,
            f"must name the searchrank {version} wheel to bundle in the Bento where searchrank "
            "is not installed editable from its sources",
        )
    return _build_wheel(source, folder)


def _named_wheel(named: Path, version: str) -> Path:
    """The wheel ``SEARCHRANK_WHEEL`` names: that file, or the ``version`` wheel in that folder
    (so an image need not repeat the package version)."""
    if named.is_dir():
        found = sorted(named.glob(f"{DISTRIBUTION}-{version}-*.whl"))
        if not found:
            raise InputError(
                WHEEL_ENV, str(named), f"must hold the installed {DISTRIBUTION} {version}'s wheel"
            )
        return found[0]
    _check_wheel(named, version)
    return named


def _check_wheel(wheel: Path, version: str) -> None:
    try:
        name, built, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as error:
        raise InputError(WHEEL_ENV, str(wheel), "must name a wheel (.whl) file") from error
    if name != canonicalize_name(DISTRIBUTION) or built != Version(version):
        raise InputError(
            WHEEL_ENV, str(wheel), f"must be the installed {DISTRIBUTION} {version}'s wheel"
        )
    if not wheel.is_file():
        raise InputError(WHEEL_ENV, str(wheel), "must be an existing file")


def _editable_source() -> Path | None:
    """The source checkout searchrank runs from (an editable install), if it does: the folder
    with ``pyproject.toml`` above the ``core`` package.

    Read from where the code lives rather than from the distribution's metadata: an editable
    install leaves a ``searchrank.egg-info`` in the checkout, which shadows the installed
    metadata (and its PEP 610 record) for any process started there, as kfp.local's steps are.
    """
    import searchrank.core

    root = Path(next(iter(searchrank.core.__path__))).resolve().parent
    return root if (root / "pyproject.toml").is_file() else None


def _build_wheel(source: Path, folder: Path) -> Path:
    """``pip wheel`` of ``source`` into ``folder``: no dependencies, no isolated build
    environment (the installed setuptools), so nothing is downloaded.

    Raises:
        RuntimeError: the build failed; the message ends with pip's output.
    """
    with tempfile.TemporaryDirectory(prefix="searchrank-wheel-") as scratch:
        # setuptools builds in the checkout's build/ and packs whatever an earlier build left
        # there, deleted modules included; a config of our own (DIST_EXTRA_CONFIG) moves its
        # build and egg-info folders here, so the wheel holds the sources as they are now.
        config = Path(scratch) / "setup.cfg"
        config.write_text(
            f"[build]\nbuild_base = {scratch}/build\n[egg_info]\negg_base = {scratch}\n"
        )
        result = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
                *("--quiet", "--wheel-dir", str(folder), str(source)),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "DIST_EXTRA_CONFIG": str(config)},
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"building the searchrank wheel from {source} failed:\n{result.stderr}")
    (wheel,) = folder.glob(f"{DISTRIBUTION}-*.whl")
    return wheel


BENTOML_BUILD_LOGGER = "bentoml.build"


class _DropMessages(logging.Filter):
    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


@contextmanager
def known_build_notices_silenced() -> Iterator[None]:
    """Silence, during a build or a read of a Bento from the store, the two notices every
    searchrank Bento build gets and that ask nothing of anyone: BentoML's fallback to its v1
    layout for the bundled wheel (chosen on purpose, see :func:`build_bento`) and pathspec's
    deprecation of the pattern style BentoML uses (it parses a stored Bento's include patterns
    whenever it reads one, so exporting or listing shows it too). Any other warning still
    shows."""
    # Feast, when first imported (a build imports it through the service module), turns every
    # DeprecationWarning on ("once") ahead of the filters set before it: imported first, it
    # leaves the filter below the last word.
    import feast  # noqa: F401

    notice = _DropMessages("python.wheels is not supported by bento v2")
    # A logger's filters see only the records created on it, not its children's: this is the
    # logger BentoML's image settings log on (``_bentoml_sdk.images``).
    logger = logging.getLogger(BENTOML_BUILD_LOGGER)
    logger.addFilter(notice)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "GitWildMatchPattern", DeprecationWarning)
            yield
    finally:
        logger.removeFilter(notice)


def build_bento(ranker_tag: str, retriever_tag: str, labels: Mapping[str, object]) -> str:
    """Build the Bento whose entry module pins ``ranker_tag`` and ``retriever_tag``.

    The build works offline: requirements are the installed versions, not re-resolved
    (:func:`runtime_requirements`), and searchrank itself is a bundled wheel
    (:func:`bundle_wheel`). ``SEARCHRANK_TORCH_INDEX_URL``, when set, becomes the Bento's extra
    index. BentoML runs in a fresh Python process (:func:`_build_in_a_fresh_process`), so the
    Bento carries these models whatever this process imported before; that costs the build
    about 7 seconds of imports.

    Returns:
        The Bento's tag.

    Raises:
        InputError: see :func:`bundle_wheel` and :func:`runtime_requirements`.
        RuntimeError: BentoML's build failed (for example, a model is not in the store).
    """
    options: dict[str, Any] = {"lock_packages": False}
    torch_index = os.environ.get(TORCH_INDEX_ENV)
    if torch_index:
        if any(c.isspace() for c in torch_index):
            raise InputError(TORCH_INDEX_ENV, torch_index, "must be one index URL, no spaces")
        options["extra_index_url"] = [torch_index]
    pins = {RANKER_MODEL_ENV: ranker_tag, RETRIEVER_MODEL_ENV: retriever_tag}
    with tempfile.TemporaryDirectory(prefix="searchrank-bento-") as context:
        entry = Path(context) / ENTRY_MODULE
        entry.write_text(
            '"""The Bento entry point: the searchrank service with its models pinned."""\n'
            "import os\n\n"
            + "".join(f'os.environ["{name}"] = "{tag}"\n' for name, tag in pins.items())
            + "\nfrom searchrank.serving.service import RankerModel, Search  # noqa: E402,F401\n"
        )
        # The wheel stays out of src/: BentoML copies it to env/python/wheels beside
        # requirements.txt, whose link ./wheels/<file> the image's install.sh resolves from
        # there. BentoML logs that this falls back to its v1 layout; its v2 layout, unlocked,
        # copies a wheel bundled in src/ into the image only after installing requirements.
        wheel = bundle_wheel(Path(context) / "dist")
        options["wheels"] = [str(wheel.relative_to(context))]
        options["packages"] = [*runtime_requirements(), f"./wheels/{wheel.name}"]
        build = {
            "service": f"{entry.stem}:Search",
            "name": BENTO_NAME,
            "labels": {k: _label(v) for k, v in labels.items()},
            "include": [f"/{ENTRY_MODULE}"],
            "python": options,
            "build_ctx": context,
        }
        return _build_in_a_fresh_process(build, pins)


def this_process_store() -> dict[str, str]:
    """``BENTOML_HOME`` for the processes this one starts: the store it saves models and Bentos
    in (empty where it has not loaded BentoML, and the environment's setting holds).

    BentoML fixes its home when it first reads ``BENTOML_HOME``; the variable may have changed
    since (a notebook's or a test's setting), and a child that read it would look in another
    store than the one its parent saved in."""
    containers = sys.modules.get("bentoml._internal.configuration.containers")
    if containers is None:
        return {}
    return {"BENTOML_HOME": str(containers.BentoMLContainer.bentoml_home.get())}


def _build_in_a_fresh_process(build: dict[str, Any], pins: Mapping[str, str]) -> str:
    """``bentoml.bentos.build(**build)`` in a new Python process whose environment holds
    ``pins``; returns the Bento's tag.

    BentoML imports the entry module to find the service and the models it declares, and
    :mod:`searchrank.serving.service` reads the model tags when it is first imported. A process
    that imported it before (a notebook, a test session, a pipeline step) keeps the tags that
    import read, and its Bento would carry those models instead of the pinned ones.

    Raises:
        RuntimeError: the build failed; the message ends with the build's own error output.
    """
    result = Path(build["build_ctx"]) / "bento-tag.txt"
    done = subprocess.run(
        [sys.executable, "-c", f"from {__name__} import _build_here; _build_here()"],
        input=json.dumps({"build": build, "result": str(result)}),
        env={**os.environ, **this_process_store(), **pins},
        # BentoML accepts a wheel only below the working directory, whatever the build context.
        cwd=build["build_ctx"],
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"building the Bento failed (exit {done.returncode}):\n{tail}")
    return result.read_text()


def _build_here() -> None:
    """The build process of :func:`_build_in_a_fresh_process`: the build's arguments come on
    standard input, and the Bento's tag goes into the result file."""
    import bentoml

    request = json.load(sys.stdin)
    with known_build_notices_silenced():
        bento = bentoml.bentos.build(**request["build"])
    Path(request["result"]).write_text(str(bento.tag))


EXPORT_XZ_PRESET = 0
"""The xz preset of exported Bentos. A ``.bento`` is an xz-compressed tar, which BentoML writes
at xz's default preset 6: 49 s for the demo's 88 MB Bento (its two-tower's embedding table is
most of it and barely compresses). Preset 0 writes it in 12 s, 1 % larger."""


def export_bento(tag: str, path: Path) -> Path:
    """Write the Bento ``tag`` (with its models) as one ``.bento`` archive at exactly ``path``;
    ``bentoml import`` reads it like one BentoML exported."""
    import lzma

    import bentoml

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        with known_build_notices_silenced():
            tar = bentoml.bentos.export_bento(tag, str(Path(folder) / "service.tar"), "tar")
        with (
            Path(tar).open("rb") as plain,
            lzma.open(path, "wb", preset=EXPORT_XZ_PRESET) as packed,
        ):
            shutil.copyfileobj(plain, packed, 1 << 20)
    return path


def latest_bento() -> str:
    """The newest Bento called ``searchrank`` in the store.

    Raises:
        InputError: there is none (package one first, for example with ``make demo``).
    """
    import bentoml

    with known_build_notices_silenced():
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
    from searchrank.core.champion import ranker_in_bento
    from searchrank.features.store import open_store
    from searchrank.serving.checks import check_feature_service

    folder = ranker_in_bento(tag, "bento")
    processor = ckpt.read_processor(ckpt.read_description(folder))
    check_feature_service(open_store(feature_repo), FeatureContract.load(folder), processor)


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
    python: str = sys.executable,
) -> Iterator[RunningService]:
    """Run ``bentoml serve target`` on 127.0.0.1 until the block ends, whatever happens.

    The block's end stops the server and every process it started: SIGTERM, then SIGKILL for
    what is left after a grace period (see :func:`_stop`). On Linux the server also gets SIGTERM
    when the thread that started it ends, so that not even a SIGKILL of this process leaves it
    running (and holding the port): start it from a thread that lives as long as the block.

    Args:
        target: a Bento tag, or ``module:Service`` importable from ``working_dir``.
        feature_repo: the Feast repository the service reads.
        python: the interpreter whose environment runs the server (another one than this
            process's, for instance a Bento's environment installed on its own).

    Raises:
        RuntimeError: the server exited or was not ready within ``start_timeout``; the message
            ends with its log.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        **this_process_store(),
        FEATURE_REPO_ENV: str(feature_repo.resolve()),
        **(env or {}),
    }
    environment["BENTOML_DO_NOT_TRACK"] = "true"
    environment[SERVE_ID_ENV] = serve_id = uuid.uuid4().hex
    log_path = Path(tempfile.mkstemp(prefix="bentoml-serve-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*_with_parent(python), "-m", "bentoml", "serve", target, *ADDRESS, str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=working_dir,
            # A session of its own: a terminal's Ctrl-C reaches this process only, which then
            # stops the server and its workers in order (_stop).
            start_new_session=True,
        )
    ready = False
    try:
        _wait_ready(url, process, log_path, start_timeout)
        ready = True
        yield RunningService(url, process, log_path)
    finally:
        # Before it is ready the server has no request to finish: no need to wait long.
        _stop(process, serve_id, STOP_GRACE_SECONDS if ready else START_UP_STOP_GRACE_SECONDS)


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


STOP_GRACE_SECONDS = 20.0
"""How long the server and its workers have to exit after SIGTERM before SIGKILL."""
START_UP_STOP_GRACE_SECONDS = 5.0
"""The same for a server stopped before it was ready (its workers may finish loading models
before they look at SIGTERM)."""
SERVE_ID_ENV = "SEARCHRANK_SERVE_ID"
"""Marks the environment of a server that :func:`serve` started, and so of all its workers,
with an id of its own: how :func:`_stop` finds every one of them."""


def _stop(
    process: subprocess.Popen[bytes], serve_id: str, grace: float = STOP_GRACE_SECONDS
) -> None:
    """Stop the server and every process it started, then return.

    SIGTERM to the server (its process group), which stops its workers itself. Its workers run
    in sessions of their own (circus calls ``setsid``), and become orphans if the server dies
    first (killed, or stopped while it starts up); so whatever still carries the server's id
    once the server has exited gets SIGTERM directly, and whatever is left after ``grace``
    seconds, SIGKILL.
    """
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    orphans_told = False
    while (left := _started_by(serve_id)) and time.monotonic() < deadline:
        if process.poll() is not None and not orphans_told:
            for orphan in left:
                with suppress(psutil.Error):
                    orphan.terminate()
            orphans_told = True
        time.sleep(0.1)
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    for straggler in _started_by(serve_id):
        with suppress(psutil.Error):
            straggler.kill()
    process.wait(timeout=10)


def _started_by(serve_id: str) -> list[psutil.Process]:
    """The running processes (zombies aside) whose environment carries ``serve_id``: the server
    and its workers, wherever they were reparented."""
    found = []
    for candidate in psutil.process_iter():
        with suppress(psutil.Error):  # gone, a zombie, or another user's
            if candidate.environ().get(SERVE_ID_ENV) == serve_id:
                found.append(candidate)
    return found


_PDEATHSIG_LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""
"""Asks Linux to send this process SIGTERM when the thread that started it ends (or exits at
once if it already has), then becomes the command in its arguments: ``execve`` keeps the
setting. A launcher rather than a ``preexec_fn``, which is unsafe in a process with threads."""


def _with_parent(python: str) -> list[str]:
    """The start of a command line running ``python`` that gets SIGTERM when the calling thread
    ends: through :data:`_PDEATHSIG_LAUNCHER` on Linux, directly elsewhere."""
    if not sys.platform.startswith("linux"):
        return [python]
    return [python, "-c", _PDEATHSIG_LAUNCHER, str(os.getpid()), python]


def _tail(path: Path, chars: int = 4_000) -> str:
    return path.read_text(errors="replace")[-chars:]
