"""One definition per tunable: each step's config dataclass holds its defaults, and the op,
the pipeline and the command-line tool agree with it.

A KFP op's defaults must be literals in its signature (the step's source is copied into the
container without its module), so they are written twice; this test is what keeps the two equal.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest
from cluster.kfp_ir import CompiledPipeline
from typer.main import get_command

from searchrank.components.evaluate.config import EvaluateConfig
from searchrank.components.evaluate_retrieval.config import RetrievalConfig
from searchrank.components.experiment.config import ExperimentConfig
from searchrank.components.package_service.config import PackageConfig
from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.components.train_ranker.config import TrainRankerConfig
from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.validate_data.config import ValidationConfig
from searchrank.core.ann import AnnParams
from searchrank.core.intent import IntentParams
from searchrank.core.lambdamart import LambdaMartConfig
from searchrank.core.split import SplitConfig
from searchrank.pipelines.cli import app
from searchrank.pipelines.components import COMPONENTS
from searchrank.pipelines.ltr import LTR_RANKER
from searchrank.pipelines.run import compile_pipeline

CONFIGS: dict[str, type] = {
    "train_ranker": TrainRankerConfig,
    "train_retriever": TrainRetrieverConfig,
    "train_generative_retriever": TrainGenerativeConfig,
    "train_lightgbm": LambdaMartConfig,
    "train_intent": IntentParams,
    "build_index": AnnParams,
    "validate_data": ValidationConfig,
    "evaluate": EvaluateConfig,
    "evaluate_retrieval": RetrievalConfig,
    "package_service": PackageConfig,
    "split_dataset": SplitConfig,
    "experiment": ExperimentConfig,
}
"""Each component with tunables, and the config dataclass that defines them."""


def plain(value: Any) -> Any:
    """A default as KFP and the command line spell it: tuples as lists, None as ""."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return "" if value is None else value


def config_defaults(config: type) -> dict[str, Any]:
    made = config()
    return {f.name: plain(getattr(made, f.name)) for f in dataclasses.fields(config)}


RENAMED = {("build_index", "recall_k"): (RetrievalConfig, "k")}
"""Op parameters whose definition lives in another step's config, under another name."""


def op_defaults(name: str) -> dict[str, Any]:
    signature = inspect.signature(COMPONENTS[name].python_func)
    return {
        p.name: p.default
        for p in signature.parameters.values()
        if p.default is not inspect.Parameter.empty
    }


WIRING = {
    "ray_address",
    "work_dir",
    "reference",
    "champion",
    "run_id",
    *("lightgbm", "train", "searches", "retriever", "index", "intent", "routing"),
    *("retriever_blessed", "intent_blessed", "generative", "generative_blessed", "catalogue"),
    *("bento", "serving_summary", "retrieval_report", "intent_summary"),
    *("training_data", "reference_training_set"),
    *("ground_truth", "experiment_report", "champion_reference"),
    *("champion_name", "challenger_name"),
}
"""Defaulted op parameters that are no tunables: where to run and optional inputs."""


def test_every_defaulted_op_parameter_is_a_config_field_or_wiring() -> None:
    loose = {
        f"{name}.{p}"
        for name in COMPONENTS
        for p in op_defaults(name)
        if p not in WIRING
        and (name, p) not in RENAMED
        and (name not in CONFIGS or p not in config_defaults(CONFIGS[name]))
    }
    assert not loose, f"tunables without a config dataclass: {sorted(loose)}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_an_op_s_defaults_are_its_config_s(name: str) -> None:
    expected = config_defaults(CONFIGS[name])
    shared = set(op_defaults(name)) & set(expected)
    assert shared, f"{name} shares no parameter with {CONFIGS[name].__name__}"
    wrong = {
        p: (op_defaults(name)[p], expected[p])
        for p in shared
        if op_defaults(name)[p] != expected[p]
    }
    assert not wrong, f"{name}: op default != config default: {wrong}"


@pytest.mark.parametrize(("step", "parameter"), sorted(RENAMED))
def test_a_renamed_parameter_has_its_config_s_default(step: str, parameter: str) -> None:
    config, field = RENAMED[step, parameter]
    assert op_defaults(step)[parameter] == config_defaults(config)[field]


def test_the_pipeline_passes_each_step_its_own_default(tmp_path: Path) -> None:
    """A pipeline parameter that feeds a step's input has the step's default, so a run that
    leaves it unset trains what the step (and its config) would."""
    compiled = CompiledPipeline(compile_pipeline(tmp_path / "pipeline.yaml"))
    pipeline = compiled.defaults()
    checked, wrong = 0, {}
    for task in compiled.container_tasks():
        inputs = task.input_parameters
        for name in task.arguments:
            if name not in inputs:  # resource placeholders of the placement, not the step's
                continue
            kind, where = compiled.source(task, name)
            if kind != "pipeline" or where not in pipeline or "defaultValue" not in inputs[name]:
                continue
            checked += 1
            if pipeline[where] != inputs[name]["defaultValue"]:
                wrong[f"{task.name}.{name} <- {where}"] = (
                    pipeline[where],
                    inputs[name]["defaultValue"],
                )
    assert checked > 20
    assert not wrong, f"pipeline default != step default: {wrong}"


def test_the_command_line_defaults_are_the_configs() -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    options = {p.name: p.default for p in commands["validate"].params}
    expected = config_defaults(ValidationConfig)
    shared = set(options) & set(expected)
    assert shared >= {"max_list_length", "min_positive_share"}
    assert {p: options[p] for p in shared} == {p: expected[p] for p in shared}
    options = {p.name: p.default for p in commands["experiment"].params}
    expected = config_defaults(ExperimentConfig)
    assert {"minimum_detectable_effect", "power", "seed"} <= set(options)
    assert all(options[p] == expected[p] for p in set(options) & set(expected))
    workers = {p.name: p.default for p in commands["ltr"].params}["workers"]
    assert workers == LTR_RANKER.num_workers
