"""Another team's pipeline, built from the compiled component YAML files alone.

The point of the components is reuse: this test loads ``components/<name>/<name>.yaml`` with
``kfp.components.load_component_from_file`` (it never imports searchrank's op functions),
assembles a pipeline that differs from searchrank's own — fetch → validate → split → the
LightGBM baseline and the transformer ranker, trained on the plain splits (no intent model, no
retriever, no packaging) → evaluate — compiles it to a file, loads that file back and runs it
under ``kfp.local``'s subprocess runner.

``evaluate`` scores its ``candidate`` as a transformer checkpoint (``ranker.json`` and
``model.pt``) and takes LightGBM only as the ``lightgbm`` baseline, so a pipeline that ends in
a blessing trains the ranker too: a pipeline without the transformer can use ``train_lightgbm``
but cannot end in ``evaluate``.

The components are wired by the names of their inputs and outputs, read from the YAML files:
an input takes a pipeline parameter or an earlier step's output of the same name unless the
pipeline names its source, so a new artifact passed between steps (say a feature contract)
is wired without touching this test, and a required input nobody provides fails with its name.

No ``from __future__ import annotations``: KFP reads the pipeline's annotations.
"""

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from kfp import compiler, components, dsl

from searchrank.features import tables as T

COMPONENTS_DIR = Path(__file__).resolve().parents[1] / "components"
STEPS = (
    "fetch_features",
    "validate_data",
    "split_dataset",
    "train_lightgbm",
    "train_ranker",
    "evaluate",
)
"""The components the other team's pipeline uses, in the order it calls them."""


def _load(name: str) -> Any:
    return components.load_component_from_file(str(COMPONENTS_DIR / name / f"{name}.yaml"))


class _Wiring:
    """Calls YAML components, feeding each input by name from what came before."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.available: dict[str, Any] = dict(parameters)

    def call(self, component: Any, **given: Any) -> Any:
        spec = component.component_spec
        inputs = spec.inputs or {}
        unknown = set(given) - set(inputs)
        assert not unknown, (
            f"{spec.name} has no inputs {sorted(unknown)}; it takes {sorted(inputs)}"
        )
        arguments: dict[str, Any] = {}
        for name, declared in inputs.items():
            if name in given:
                arguments[name] = given[name]
            elif name in self.available:
                arguments[name] = self.available[name]
            elif not declared.optional:
                raise AssertionError(
                    f"{spec.name} requires {name!r}, which neither the pipeline nor an earlier "
                    f"step provides (available: {sorted(self.available)})"
                )
        task = component(**arguments)
        for name in spec.outputs or {}:
            if name != "Output":
                self.available[name] = task.outputs[name]
        return task


class Outcome(NamedTuple):
    blessed: bool
    evaluation: dsl.Artifact
    lightgbm: dsl.Model
    ranker: dsl.Model
    validation: dsl.Artifact


def _build_pipeline() -> Any:
    ops = {name: _load(name) for name in STEPS}

    @dsl.pipeline(
        name="other-team-ranking",
        description="LightGBM and a small transformer on the plain splits, no intent model.",
    )
    def other_team_ranking(
        entities_uri: str, feature_repo: str, feature_service: str = "ranker_v1"
    ) -> Outcome:
        entities = dsl.importer(artifact_uri=entities_uri, artifact_class=dsl.Dataset)
        wiring = _Wiring({"feature_repo": feature_repo, "feature_service": feature_service})
        wiring.call(ops["fetch_features"], entities=entities.output)
        validated = wiring.call(ops["validate_data"])
        wiring.call(ops["split_dataset"]).after(validated)
        lightgbm = wiring.call(
            ops["train_lightgbm"],
            folds=2,
            num_leaves=[15],
            min_data_in_leaf=[20],
            feature_fraction=[1.0],
            num_threads=1,
        )
        ranker = wiring.call(ops["train_ranker"], epochs=2, num_workers=1, d_model=32, n_layers=1)
        verdict = wiring.call(
            ops["evaluate"],
            candidate=ranker.outputs["model"],
            lightgbm=lightgbm.outputs["model"],
            bootstrap_samples=200,
            min_gain_vs_baselines=-1.0,
        )
        return Outcome(
            blessed=verdict.outputs["Output"],
            evaluation=verdict.outputs["evaluation"],
            lightgbm=lightgbm.outputs["model"],
            ranker=ranker.outputs["model"],
            validation=validated.outputs["result"],
        )

    return other_team_ranking


@pytest.mark.slow
def test_another_pipeline_from_the_component_yaml_runs_under_kfp_local(
    dataset_dir: Path, feature_repo: Path, kfp_local: Path, tmp_path: Path, capfd: Any
) -> None:
    package = tmp_path / "other_team_ranking.yaml"
    compiler.Compiler().compile(_build_pipeline(), str(package))

    # The compiled file is self-contained: every step runs a component's image and code.
    compiled = _load_pipeline_spec(package)
    executors = compiled["deploymentSpec"]["executors"].values()
    images = {e["container"]["image"] for e in executors if "container" in e}
    assert len(images) == 1 and next(iter(images)).startswith("searchrank/components:")
    tasks = compiled["root"]["dag"]["tasks"]
    expected = {f"{name}-op".replace("_", "-") for name in STEPS}
    assert expected <= set(tasks), sorted(tasks)

    # Run the compiled file itself. The subprocess runner never pulls that image (it does not
    # exist here): it warns and runs each step's embedded code with this interpreter.
    reloaded = components.load_component_from_file(str(package))
    with pytest.warns(RuntimeWarning, match="searchrank/components"):
        run = reloaded(
            entities_uri=str(dataset_dir / T.file_name(T.IMPRESSIONS)),
            feature_repo=str(feature_repo),
        )

    log = capfd.readouterr()
    text = log.out + log.err
    plain = _plain(text)
    for task in tasks:
        assert f"Task '{task}' finished with status SUCCESS" in plain, task
    assert "Pipeline 'other-team-ranking' finished with status SUCCESS" in plain

    # The run's artifacts sit under the pipeline root kfp.local was given.
    runs = [p for p in kfp_local.iterdir() if p.name.startswith("other-team-ranking")]
    assert len(runs) == 1
    for task in expected:
        assert (runs[0] / task).is_dir(), task

    validation = json.loads(Path(run.outputs["validation"].path).read_text())
    assert validation["success"] is True

    booster = Path(run.outputs["lightgbm"].path) / "model.txt"
    assert booster.is_file() and booster.read_text().startswith("tree")
    assert run.outputs["lightgbm"].metadata["kind"] == "lambdamart"
    ranker = Path(run.outputs["ranker"].path)
    assert (ranker / "ranker.json").is_file()

    blessed = run.outputs["blessed"]
    assert isinstance(blessed, bool)
    evaluation = json.loads(Path(run.outputs["evaluation"].path).read_text())
    assert evaluation["blessed"] is blessed
    assert {"candidate", "lightgbm"} <= set(evaluation["systems"])
    assert evaluation["queries"] > 0
    # A margin of -1 NDCG@10 over every baseline, and no champion: the candidate passes.
    assert blessed is True, evaluation["reasons"]


def _load_pipeline_spec(path: Path) -> dict[str, Any]:
    import yaml

    return next(d for d in yaml.safe_load_all(path.read_text()) if d and "root" in d)


def _plain(text: str) -> str:
    """The log without the terminal colours kfp.local puts around names and statuses."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
