"""The ``train_generative_retriever`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_generative_retriever_op(
    train: Input[Dataset],
    valid: Input[Dataset],
    catalogue: Input[Dataset],
    embeddings: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    curves: Output[HTML],
    ray_address: str = "",
    work_dir: str = "",
    num_workers: int = 2,
    cpus_per_worker: float = 1.0,
    use_gpu: bool = False,
    gpus_per_worker: float = 1.0,
    epochs: int = 10,
    patience: int = 3,
    batch_size: int = 256,
    learning_rate: float = 0.001,
    id_levels: int = 3,
    id_codes: int = 256,
    d_model: int = 128,
    n_heads: int = 4,
    encoder_layers: int = 2,
    decoder_layers: int = 2,
    ff_dim: int = 256,
    dropout: float = 0.1,
    decode_searches: int = 200,
    seed: int = 0,
) -> None:
    """Fit semantic IDs on the two-tower item embeddings and train a generative retriever that
    writes them, with Ray Train.

    Args:
        train: the train split (logged search × candidate rows with labels).
        valid: the validation split: early stopping and checkpoint selection by the
            teacher-forced log-likelihood of the wanted items' IDs; Recall@{10,100} by beam
            search on a sample of it.
        catalogue: one row per item; its items with an embedding are the ones it can return.
        embeddings: train_retriever's item embeddings (``item_id``, ``embedding``).
        model: the best checkpoint: weights, ``generative.json`` (shape, token settings), the
            listener vocabulary, ``semantic_ids/`` and ``training.json`` (history).
        metrics: best validation log-likelihood, Recall@100, Recall@10, MRR, its epoch,
            throughput and the semantic IDs' collision share.
        curves: training loss and validation metrics by epoch, and the semantic IDs' report.
        ray_address: empty for a local Ray inside the step; a Ray dashboard URL or
            ``kuberay://NAMESPACE`` to train on a cluster.
        work_dir: shared storage for encoded data and checkpoints (required with ray_address);
            the step works in its ``generative_retriever/`` folder, and a rerun with the same
            configuration and data resumes from the checkpoints there.
        num_workers: Ray Train workers.
        cpus_per_worker: CPUs per worker.
        use_gpu: train on GPUs (bf16 autocast).
        gpus_per_worker: GPUs per worker.
        epochs: the most epochs to run.
        patience: epochs without a better validation log-likelihood before stopping.
        batch_size: (search, item) pairs per worker and step.
        learning_rate: AdamW peak learning rate.
        id_levels: residual k-means levels of the semantic IDs (a de-duplication code follows).
        id_codes: codes per level.
        d_model: the transformer's width.
        n_heads: attention heads (must divide d_model).
        encoder_layers: layers reading the query and listener.
        decoder_layers: layers writing the ID.
        ff_dim: the feed-forward width of each layer.
        dropout: dropout inside the transformer.
        decode_searches: validation searches decoded by beam search every epoch.
        seed: seed of the semantic IDs, initialisation, data order and listener dropout.
    """
    from pathlib import Path

    from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
    from searchrank.components.train_generative_retriever.logic import (
        curves_html,
        train_generative_retriever,
    )
    from searchrank.core.errors import InputError
    from searchrank.core.io import log_metrics

    if ray_address and not work_dir:
        raise InputError("work_dir", work_dir, "must name shared storage when ray_address is set")
    config = TrainGenerativeConfig(
        num_workers=num_workers,
        cpus_per_worker=cpus_per_worker,
        use_gpu=use_gpu,
        gpus_per_worker=gpus_per_worker,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        learning_rate=learning_rate,
        id_levels=id_levels,
        id_codes=id_codes,
        d_model=d_model,
        n_heads=n_heads,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        ff_dim=ff_dim,
        dropout=dropout,
        decode_searches=decode_searches,
        seed=seed,
    )
    summary = train_generative_retriever(
        Path(train.path),
        Path(valid.path),
        Path(catalogue.path),
        Path(embeddings.path),
        Path(model.path),
        config,
        ray_address=ray_address,
        work_dir=Path(work_dir) / "generative_retriever" if work_dir else None,
    )
    log_metrics(metrics, summary.metrics())
    model.metadata.update(
        {"framework": "pytorch", "checkpoint": summary.checkpoint, **summary.metrics()}
    )
    Path(curves.path).write_text(curves_html(summary))
