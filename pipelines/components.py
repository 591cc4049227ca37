"""The registry of searchrank's KFP components and the compiler of their YAML files.

Every component folder carries its compiled YAML (``components/<name>/<name>.yaml``) so that
other teams can ``kfp.components.load_component_from_file`` it without installing searchrank's
Python code. A test recompiles each component and compares it with the committed file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfp import compiler

import searchrank.components as components_package
from searchrank.components.build_index import build_index_op
from searchrank.components.evaluate import evaluate_op
from searchrank.components.evaluate_retrieval import evaluate_retrieval_op
from searchrank.components.experiment import experiment_op
from searchrank.components.fetch_features import fetch_features_op
from searchrank.components.materialize_features import materialize_features_op
from searchrank.components.package_service import package_service_op
from searchrank.components.plan_training import plan_training_op
from searchrank.components.run_report import run_report_op
from searchrank.components.split_dataset import split_dataset_op
from searchrank.components.train_generative_retriever import train_generative_retriever_op
from searchrank.components.train_intent import train_intent_op
from searchrank.components.train_lightgbm import train_lightgbm_op
from searchrank.components.train_ranker import train_ranker_op
from searchrank.components.train_retriever import train_retriever_op
from searchrank.components.validate_data import validate_data_op

COMPONENTS: dict[str, Any] = {
    "fetch_features": fetch_features_op,
    "materialize_features": materialize_features_op,
    "validate_data": validate_data_op,
    "split_dataset": split_dataset_op,
    "train_ranker": train_ranker_op,
    "train_lightgbm": train_lightgbm_op,
    "evaluate": evaluate_op,
    "package_service": package_service_op,
    "run_report": run_report_op,
    "train_retriever": train_retriever_op,
    "build_index": build_index_op,
    "train_intent": train_intent_op,
    "evaluate_retrieval": evaluate_retrieval_op,
    "plan_training": plan_training_op,
    "experiment": experiment_op,
    "train_generative_retriever": train_generative_retriever_op,
}

COMPONENTS_DIR = Path(components_package.__file__).resolve().parent


def component_yaml(name: str, root: Path = COMPONENTS_DIR) -> Path:
    """Where the compiled YAML of component ``name`` lives."""
    return root / name / f"{name}.yaml"


def compile_component(name: str, path: Path) -> Path:
    """Compile one component to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(COMPONENTS[name], str(path))
    return path


def compile_all(root: Path = COMPONENTS_DIR) -> list[Path]:
    """Recompile every component's YAML in place (or under another ``root``)."""
    return [compile_component(name, component_yaml(name, root)) for name in COMPONENTS]
