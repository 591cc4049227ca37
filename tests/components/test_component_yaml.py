"""Every component compiles to the committed YAML, which other teams can load on its own."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from kfp import components

from searchrank.core.names import COMPONENT_IMAGE
from searchrank.pipelines.components import (
    COMPONENTS,
    COMPONENTS_DIR,
    compile_component,
    component_yaml,
)

ALLOWED_MODULE_IMPORTS = {"kfp", "searchrank.core.names"}


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_committed_yaml_is_up_to_date(name: str, tmp_path: Path) -> None:
    fresh = compile_component(name, tmp_path / f"{name}.yaml").read_text()
    committed = component_yaml(name).read_text()
    assert fresh == committed, f"run `searchrank components compile` to refresh {name}.yaml"


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_yaml_loads_without_searchrank_code(name: str) -> None:
    loaded = components.load_component_from_file(str(component_yaml(name)))
    spec = loaded.component_spec
    assert spec.name == f"{name}-op".replace("_", "-")
    assert spec.implementation.container.image == COMPONENT_IMAGE
    python_op = COMPONENTS[name].component_spec
    assert set(spec.inputs or {}) == set(python_op.inputs or {})
    assert set(spec.outputs or {}) == set(python_op.outputs or {})


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_module_imports_nothing_heavy_at_module_level(name: str) -> None:
    source = (COMPONENTS_DIR / name / "component.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            root = module.split(".")[0]
            assert (
                root in sys.stdlib_module_names or module in ALLOWED_MODULE_IMPORTS or root == "kfp"
            ), f"{name}/component.py imports {module} at module level"
