"""Lazy export of a component's op from its package.

Inside a running KFP step (``_KFP_RUNTIME=true``) ``kfp.dsl`` has no ``component`` decorator,
so the step's ``from searchrank.components.<name>.logic import ...`` must not import the
package's ``component.py``. Packages therefore export their op through a module ``__getattr__``
that imports ``component.py`` only when the op itself is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_export(package: str, op_name: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``op_name`` from ``<package>.component``."""

    def module_getattr(name: str) -> Any:
        if name == op_name:
            return getattr(importlib.import_module(f"{package}.component"), op_name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return module_getattr
