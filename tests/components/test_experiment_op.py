"""The ``experiment`` op through kfp.local, fed files as the pipeline's earlier steps make them.

No ``from __future__ import annotations`` here: KFP reads the test pipeline's annotations.
"""

import json
from pathlib import Path

from kfp import dsl
from kfp_ops import file_dataset_op, folder_model_op

from searchrank.components.experiment import experiment_op
from searchrank.features import tables as T


@dsl.pipeline(name="experiment")
def _experiment(test: str, train: str, truth: str, champion: str, challenger: str) -> None:
    experiment_op(
        test=file_dataset_op(source=test).outputs["data"],
        pre_period=file_dataset_op(source=train).outputs["data"],
        ground_truth=file_dataset_op(source=truth).outputs["data"],
        champion=folder_model_op(source=champion).outputs["model"],
        challenger=folder_model_op(source=challenger).outputs["model"],
        champion_name="noise",
        challenger_name="truth",
        minimum_detectable_effect=0.5,
    )


def test_experiment_op_runs_in_kfp_local_and_writes_its_report(
    kfp_local: Path,
    splits: dict[str, Path],
    dataset_dir: Path,
    experiment_pair: tuple[Path, Path],
) -> None:
    champion, challenger = experiment_pair
    _experiment(
        test=str(splits["test"]),
        train=str(splits["train"]),
        truth=str(dataset_dir / T.file_name(T.GROUND_TRUTH)),
        champion=str(champion),
        challenger=str(challenger),
    )
    (experiment,) = [p for p in kfp_local.rglob("experiment") if p.is_file()]
    outcome = json.loads(experiment.read_text())
    assert outcome["interleaving"]["preference_low"] > 0
    (page,) = [p for p in kfp_local.rglob("report") if p.is_file()]
    text = page.read_text()
    assert "Interleaving (team-draft)" in text and "data:image/png;base64" in text
    assert "Guardrails" in text and outcome["decision"]["verdict"] in text
