"""The distribution maps every top-level folder into the one ``searchrank`` import root."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"components", "pipelines", "features", "serving"}


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
