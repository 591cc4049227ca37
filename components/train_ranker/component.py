"""The ``train_ranker`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_ranker_op(
    train: Input[Dataset],
    valid: Input[Dataset],
    feature_contract: Input[Artifact],
    model: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    ray_address: str = "",
    work_dir: str = "",
    num_workers: int = 2,
    cpus_per_worker: float = 1.0,
    use_gpu: bool = False,
    gpus_per_worker: float = 1.0,
    loss: str = "lambdaloss",
    epochs: int = 20,
    patience: int = 4,
    batch_size: int = 64,
    learning_rate: float = 0.002,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    seed: int = 0,
    position_bias: bool = False,
) -> None:
    """Train the context-aware ranker with Ray Train and keep its best checkpoint.

    Args:
        train: the train split (parquet).
        valid: the validation split: early stopping and checkpoint selection.
        feature_contract: the data's feature contract from fetch_features (its types and
            domains decide the encoding); the checkpoint keeps it.
        model: the best checkpoint (weights, a self-describing ranker.json and the feature
            contract).
        metrics: best validation NDCG@10, its epoch, epochs run, throughput.
        curves: training loss and validation metrics by epoch.
        ray_address: empty for a local Ray inside the step; a Ray dashboard URL to submit
            the training to that cluster as a Ray job.
        work_dir: shared storage for encoded data and checkpoints (required with ray_address);
            the step works in its ``ranker/`` folder, so one work_dir serves a whole run and a
            rerun resumes from the checkpoints there.
        num_workers: Ray Train workers.
        cpus_per_worker: CPUs per worker.
        use_gpu: train on GPUs (bf16 autocast and torch.compile).
        gpus_per_worker: GPUs per worker.
        loss: listnet, lambdaloss or neuralndcg.
        epochs: the most epochs to run.
        patience: epochs without a better validation NDCG@10 before stopping.
        batch_size: slates per worker and step.
        learning_rate: AdamW learning rate.
        d_model: encoder width.
        n_layers: encoder layers.
        n_heads: attention heads.
        seed: seed of initialisation, data order and dropout.
        position_bias: learn from position-biased clicks (PAL): a tower on the train split's
            logged ``position`` column explains how much less lower positions are looked at,
            during training only; the model scores, and serves, without positions.
    """
    from pathlib import Path

    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import curves_html, train_ranker
    from searchrank.core.contract import FeatureContract
    from searchrank.core.errors import InputError
    from searchrank.core.io import log_metrics

    if ray_address and not work_dir:
        raise InputError("work_dir", work_dir, "must name shared storage when ray_address is set")
    contract = FeatureContract.load(Path(feature_contract.path))
    config = TrainRankerConfig(
        num_workers=num_workers,
        cpus_per_worker=cpus_per_worker,
        use_gpu=use_gpu,
        gpus_per_worker=gpus_per_worker,
        loss=loss,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        learning_rate=learning_rate,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        seed=seed,
        position_bias=position_bias,
    )
    summary = train_ranker(
        Path(train.path),
        Path(valid.path),
        Path(model.path),
        config,
        contract=contract,
        ray_address=ray_address,
        work_dir=Path(work_dir) / "ranker" if work_dir else None,
    )
    log_metrics(metrics, summary.metrics())
    model.metadata.update(
        {
            "framework": "pytorch",
            "checkpoint": summary.checkpoint,
            "feature_service": contract.feature_service,
            "best_epoch": summary.best_epoch,
            "best_val_ndcg@10": summary.best_val_ndcg10,
            "position_bias": position_bias,
        }
    )
    Path(curves.path).write_text(curves_html(summary))
