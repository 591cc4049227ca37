"""Test components that turn a local file into a KFP artifact, so a test pipeline can feed a
component the outputs an earlier step would have made.

No ``from __future__ import annotations`` here: KFP reads the components' annotations.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def file_dataset_op(source: str, data: Output[Dataset]) -> None:
    """``source`` as a Dataset (a training set, entities, a split)."""
    import shutil

    shutil.copyfile(source, data.path)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def file_artifact_op(source: str, artifact: Output[Artifact]) -> None:
    """``source`` as an Artifact (a feature contract)."""
    import shutil

    shutil.copyfile(source, artifact.path)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def folder_model_op(source: str, model: Output[Model]) -> None:
    """The folder ``source`` as a Model (a trained ranker or baseline)."""
    import shutil

    shutil.copytree(source, model.path)
