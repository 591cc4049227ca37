"""A Bento installed the way its image installs it, then served from that environment.

The slow tests build a Bento, create a fresh virtual environment (no system site packages,
nothing from the source tree), install the CPU torch as the README documents, and then do what
the Bento's own Dockerfile does up to its Python install: copy the files it copies from the
Bento first and run its install instruction (``install.sh``: ``uv pip install -r
requirements.txt`` and the bundled wheel). ``bentoml serve`` then answers ``/search`` from that
environment. Installing downloads from the package index into uv's cache (install time); the
service itself may download nothing, so its proxy variables point at a closed port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from serving.conftest import LoggedDay, StoredModels

from searchrank.core.errors import InputError
from searchrank.core.names import RANKER_FEATURE_SERVICE, RANKER_MODEL_NAME
from searchrank.serving.bento import (
    TORCH_INDEX_ENV,
    WHEEL_ENV,
    build_bento,
    bundle_wheel,
    known_build_notices_silenced,
    runtime_requirements,
    save_ranker,
    serve,
    this_process_store,
)
from searchrank.serving.settings import RANKER_MODEL_ENV, RETRIEVER_MODEL_ENV

PIPELINE_ONLY = {"kfp", "kfp-kubernetes", "ray", "great-expectations", "lightgbm"}
PIPELINE_MODULES = ("kfp", "ray", "great_expectations", "lightgbm")
SERVICE_NEEDS = {"torch", "bentoml", "voyager", "scikit-learn", "bm25s"}
FEAST_EXTRAS = {"duckdb", "postgres", "redis"}
CLOSED_PORT_PROXY = "http://127.0.0.1:9"
"""The discard port: nothing listens there, so any download the service tries fails."""


def check_pins(requirements: list[Requirement]) -> None:
    """What the serving environment must pin: the service's packages and Feast with the extras
    the cluster needs, each at one public version (an index serves no local label), and no
    package that only the pipeline steps use."""
    names = {canonicalize_name(r.name) for r in requirements}
    assert names >= SERVICE_NEEDS
    assert names.isdisjoint(PIPELINE_ONLY)
    (feast,) = [r for r in requirements if r.name == "feast"]
    assert feast.extras >= FEAST_EXTRAS
    for requirement in requirements:
        (pin,) = requirement.specifier
        assert pin.operator == "==" and "+" not in pin.version, requirement


def test_runtime_requirements_pin_the_base_requirements_at_public_versions() -> None:
    pins = [Requirement(line) for line in runtime_requirements()]
    check_pins(pins)
    torch = next(r for r in pins if r.name == "torch")
    assert str(torch.specifier) == f"=={metadata.version('torch').split('+')[0]}"


def test_a_named_wheel_must_be_the_installed_searchrank_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = metadata.version("searchrank")
    for name, rule in (
        ("searchrank.tar.gz", "must name a wheel"),
        (f"other-{version}-py3-none-any.whl", "must be the installed searchrank"),
        ("searchrank-0.0.0-py3-none-any.whl", "must be the installed searchrank"),
        (f"searchrank-{version}-py3-none-any.whl", "must be an existing file"),
    ):
        monkeypatch.setenv(WHEEL_ENV, str(tmp_path / name))
        with pytest.raises(InputError, match=rule) as refused:
            bundle_wheel(tmp_path / "bundled")
        assert refused.value.field == WHEEL_ENV
    dist = tmp_path / "dist"
    dist.mkdir()
    monkeypatch.setenv(WHEEL_ENV, str(dist))
    with pytest.raises(InputError, match=f"must hold the installed searchrank {version}"):
        bundle_wheel(tmp_path / "bundled")
    wheel = dist / f"searchrank-{version}-py3-none-any.whl"
    wheel.write_bytes(b"a wheel the image build left behind")
    for named in (wheel, dist):
        monkeypatch.setenv(WHEEL_ENV, str(named))
        bundled = bundle_wheel(tmp_path / "bundled")
        assert bundled == tmp_path / "bundled" / wheel.name
        assert bundled.read_bytes() == wheel.read_bytes()


def test_the_torch_index_must_be_one_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TORCH_INDEX_ENV, "file:///srv/torch-cpu file:///srv/other")
    with pytest.raises(InputError, match="one index URL") as refused:
        build_bento("searchrank-ranker:any", "searchrank-retriever:any", {})
    assert refused.value.field == TORCH_INDEX_ENV


def test_only_the_known_build_notice_is_silenced(caplog: pytest.LogCaptureFixture) -> None:
    # Through the logger object BentoML's image settings log on, so a renamed logger fails here.
    from _bentoml_sdk.images import logger

    with caplog.at_level("WARNING"), known_build_notices_silenced():
        logger.warning("python.wheels is not supported by bento v2, %s", "fallback to bento v1")
        logger.warning("docker.cuda_version is not supported by bento v2, %s", "a real notice")
    assert [r.getMessage() for r in caplog.records] == [
        "docker.cuda_version is not supported by bento v2, a real notice"
    ]


@dataclass(frozen=True)
class BuiltBento:
    tag: str
    path: Path
    """The Bento's folder in this session's store (``BENTOML_HOME``)."""

    @property
    def python_env(self) -> Path:
        return self.path / "env" / "python"

    def requirement_lines(self) -> list[str]:
        text = (self.python_env / "requirements.txt").read_text()
        return [line.strip() for line in text.splitlines() if line.strip()]


def built(tag: str) -> BuiltBento:
    import bentoml

    return BuiltBento(tag, Path(bentoml.bentos.get(tag).path))


@pytest.fixture(scope="session")
def image_bento(stored_models: StoredModels) -> BuiltBento:
    return built(build_bento(stored_models.ranker, stored_models.retriever, {"kfp_run": "image"}))


@dataclass(frozen=True)
class ImageInstall:
    """What a Bento's Dockerfile does up to installing its Python packages."""

    bento_path: str
    """The image's ``BENTO_PATH``, its working directory."""
    copies: list[tuple[str, str]]
    """(path in the Bento, path under ``BENTO_PATH``) copied before the install."""
    command: str
    """The install instruction's shell command."""

    @classmethod
    def read(cls, dockerfile: Path) -> ImageInstall:
        instructions = dockerfile.read_text().replace("\\\n", " ").splitlines()
        (bento_path,) = [
            i.split("=", 1)[1] for i in instructions if i.startswith("ARG BENTO_PATH=")
        ]
        copies = []
        for instruction in instructions:
            keyword, *words = instruction.split() or [""]
            if keyword == "COPY":
                source, target = [w for w in words if not w.startswith("--")]
                copies.append((source, target))
            elif keyword == "RUN" and "env/python" in instruction:
                return cls(bento_path, copies, instruction.removeprefix("RUN").strip())
        raise AssertionError(f"{dockerfile} installs nothing from env/python")

    def run(self, bento: Path, root: Path, environment: dict[str, str]) -> None:
        """Lay out at ``root`` what the image holds at the install, then run the install."""
        for source, target in self.copies:
            shutil.copytree(bento / source, root / target, dirs_exist_ok=True)
        command = self.command.replace(self.bento_path, str(root))
        environment = {**environment, "BENTO_PATH": str(root)}
        subprocess.run(["bash", "-c", command], cwd=root, env=environment, check=True)


@pytest.fixture(scope="session")
def image_python(image_bento: BuiltBento, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding exactly what the Bento's image installs; its interpreter."""
    from uv import find_uv_bin

    folder = tmp_path_factory.mktemp("bento-image")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The README's CPU torch, first: the requirements pin the public version, which an index
    # would otherwise serve as its default (CUDA) build.
    (torch,) = [line for line in image_bento.requirement_lines() if line.startswith("torch==")]
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", torch], check=True)
    ImageInstall.read(image_bento.path / "env" / "docker" / "Dockerfile").run(
        image_bento.path,
        folder / "image",
        {
            **os.environ,
            # The image's Dockerfile activates its venv through these two; uv is the project's.
            "VIRTUAL_ENV": str(venv),
            "PATH": os.pathsep.join(
                [str(Path(find_uv_bin()).parent), str(venv / "bin"), os.defpath]
            ),
        },
    )
    return python


@pytest.mark.slow
def test_the_bento_installs_searchrank_from_its_wheel_and_the_rest_pinned(
    image_bento: BuiltBento,
) -> None:
    lines = image_bento.requirement_lines()
    wheels = [line for line in lines if line.endswith(".whl")]
    assert wheels == [f"./wheels/searchrank-{metadata.version('searchrank')}-py3-none-any.whl"]
    assert (image_bento.python_env / wheels[0]).is_file()
    pins = [Requirement(line) for line in lines if line not in wheels]
    assert "searchrank" not in {r.name for r in pins}
    check_pins(pins)


@pytest.mark.slow
def test_the_torch_index_becomes_the_bentos_extra_index(
    stored_models: StoredModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = "file:///srv/torch-cpu/simple"
    monkeypatch.setenv(TORCH_INDEX_ENV, index)
    bento = built(build_bento(stored_models.ranker, stored_models.retriever, {}))
    assert f"--extra-index-url {index}" in (bento.python_env / "install.sh").read_text()


@pytest.mark.slow
def test_a_build_around_a_model_the_store_lacks_fails_naming_it(
    stored_models: StoredModels,
) -> None:
    with pytest.raises(
        RuntimeError, match=r"(?s)building the Bento failed.*searchrank-ranker:absent"
    ):
        build_bento("searchrank-ranker:absent", stored_models.retriever, {})


@pytest.mark.slow
def test_a_bento_pins_the_models_it_is_given_whatever_this_process_imported_before(
    stored_models: StoredModels,
    ranker_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import bentoml

    from searchrank.serving import service

    # The service module reads the model tags once, when first imported (here or earlier in
    # this process): the stored models, or "latest". A ranker saved after the wanted one makes
    # "latest" another model too, so only the tags given to the build can pin the wanted one.
    monkeypatch.setenv(RANKER_MODEL_ENV, stored_models.ranker)
    monkeypatch.setenv(RETRIEVER_MODEL_ENV, stored_models.retriever)
    assert service.RANKER_MODEL in (stored_models.ranker, f"{RANKER_MODEL_NAME}:latest")
    labels = {"feature_service": RANKER_FEATURE_SERVICE}
    wanted = save_ranker(ranker_checkpoint, labels, {})
    assert save_ranker(ranker_checkpoint, labels, {}) != wanted
    # BENTOML_HOME changed after this process saved the models: the build still reads (and
    # writes to) the store they are in, and so does a server started for the Bento.
    store = this_process_store()
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "another-store"))
    assert this_process_store() == store and store["BENTOML_HOME"] != os.environ["BENTOML_HOME"]
    bento = bentoml.bentos.get(build_bento(wanted, stored_models.retriever, {}))
    assert {str(m.tag) for m in bento.info.all_models} == {wanted, stored_models.retriever}
    # The build process's output comes through without the notice every build gets.
    assert "GitWildMatchPattern" not in capsys.readouterr().err


@pytest.mark.slow
def test_the_bento_serves_search_from_an_environment_of_its_own(
    image_bento: BuiltBento, image_python: Path, logged_day: LoggedDay, tmp_path: Path
) -> None:
    found = subprocess.run(
        [
            str(image_python),
            "-c",
            "import importlib.util, searchrank.serving.service as s; print(s.__file__); "
            f"print([m for m in {PIPELINE_MODULES!r} if importlib.util.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert Path(found[0]).is_relative_to(image_python.parents[1]), found
    assert found[1] == "[]", f"pipeline-only packages in the service's environment: {found[1]}"
    offline = {
        "http_proxy": CLOSED_PORT_PROXY,
        "https_proxy": CLOSED_PORT_PROXY,
        "HTTP_PROXY": CLOSED_PORT_PROXY,
        "HTTPS_PROXY": CLOSED_PORT_PROXY,
        "no_proxy": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "VIRTUAL_ENV": str(image_python.parents[1]),
        "PATH": os.pathsep.join([str(image_python.parent), os.defpath]),
    }
    # BENTOML_HOME stays this session's store (the root conftest), which holds the Bento and
    # its models.
    with serve(
        image_bento.tag,
        logged_day.repo,
        env=offline,
        working_dir=tmp_path,
        python=str(image_python),
    ) as running:
        assert httpx.get(f"{running.url}/readyz", timeout=10).status_code == 200
        searched = httpx.post(
            f"{running.url}/search", json={"query": "chill vibes", "user_id": 3, "k": 5}, timeout=60
        )
    assert searched.status_code == 200, searched.text
    results = searched.json()["results"]
    assert len(results) == 5 and all(r["name"] for r in results)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
