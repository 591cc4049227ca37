"""The distribution maps every top-level folder into the one ``searchrank`` import root."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"core", "components", "pipelines", "features", "serving"}


def test_every_python_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["package-dir"].values()) == MAPPED
    listed = set(config["packages"])
    on_disk = {
        "searchrank." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in MAPPED
        for init in (ROOT / folder).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk == listed


def test_component_yaml_and_feature_store_files_ship_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["*"]
    assert {"*.yaml", ".feastignore", "py.typed"} <= set(patterns)


PIPELINE_ONLY = {"kfp", "kfp-kubernetes", "ray", "great-expectations", "lightgbm", "uv"}
"""Only pipeline steps need these (uv: for BentoML, as package_service builds a Bento); the
search service's environment, which a Bento derives from the base requirements, does not."""


def test_pipeline_only_packages_are_in_the_pipelines_extra_not_the_base() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in requirements}

    extras = project["optional-dependencies"]
    assert names(project["dependencies"]).isdisjoint(PIPELINE_ONLY)
    assert names(extras["pipelines"]) >= PIPELINE_ONLY
    assert "searchrank[pipelines]" in extras["dev"]
