"""The ``train_lightgbm`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_lightgbm_op(
    train: Input[Dataset],
    valid: Input[Dataset],
    feature_contract: Input[Artifact],
    model: Output[Model],
    metrics: Output[Metrics],
    folds: int = 3,
    num_threads: int = 0,
    num_leaves: list = [15, 31, 63],  # noqa: B006 (KFP reads the default)
    min_data_in_leaf: list = [20, 100],  # noqa: B006
    feature_fraction: list = [0.7, 1.0],  # noqa: B006
) -> None:
    """Tune LightGBM LambdaMART by grouped cross-validation on the train split.

    Args:
        train: the train split (parquet).
        valid: the validation split; its NDCG is reported, never used for selection.
        feature_contract: the data's feature contract from fetch_features.
        model: the tuned model, its tuning table, the feature processor and the feature
            contract (a folder).
        metrics: cross-validated and validation NDCG@10, rounds, grid size.
        folds: cross-validation folds over searches.
        num_threads: LightGBM threads; 0 for all cores.
        num_leaves, min_data_in_leaf, feature_fraction: the tuning grid (every combination).
    """
    from pathlib import Path

    import pandas as pd

    from searchrank.components.train_lightgbm.logic import train_lightgbm
    from searchrank.core.contract import FeatureContract
    from searchrank.core.io import log_metrics
    from searchrank.core.lambdamart import LambdaMartConfig

    contract = FeatureContract.load(Path(feature_contract.path))
    summary = train_lightgbm(
        pd.read_parquet(train.path),
        pd.read_parquet(valid.path),
        Path(model.path),
        LambdaMartConfig(
            num_leaves=tuple(int(v) for v in num_leaves),
            min_data_in_leaf=tuple(int(v) for v in min_data_in_leaf),
            feature_fraction=tuple(float(v) for v in feature_fraction),
            folds=folds,
            num_threads=num_threads,
        ),
        contract,
    )
    log_metrics(metrics, summary.metrics())
    model.metadata.update(
        {
            "kind": "lambdamart",
            "feature_service": contract.feature_service,
            "rounds": summary.rounds,
            **{k: str(v) for k, v in summary.params.items()},
        }
    )
