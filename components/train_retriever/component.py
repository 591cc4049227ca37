"""The ``train_retriever`` KFP component: a thin wrapper over :mod:`.logic`."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_retriever_op(
    train: Input[Dataset],
    valid: Input[Dataset],
    catalogue: Input[Dataset],
    model: Output[Model],
    embeddings: Output[Dataset],
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
    batch_size: int = 1024,
    learning_rate: float = 0.005,
    temperature: float = 0.05,
    hard_negatives: bool = True,
    seed: int = 0,
    refit: bool = True,
    catch_up_epochs: int = 2,
    catch_up_learning_rate: float = 0.0012,
) -> None:
    """Train the two-tower retriever with Ray Train and embed the catalogue with it.

    Args:
        train: the train split (logged search × candidate rows with labels).
        valid: the validation split: early stopping and checkpoint selection by Recall@100.
        catalogue: one row per item with its texts and metadata.
        model: the best checkpoint (weights, vocabularies, item tokens, retriever.json).
        embeddings: every catalogue item's vector (``item_id``, ``embedding``) for build_index.
        metrics: best validation Recall@100, Recall@10, MRR, its epoch, throughput.
        curves: training loss and validation metrics by epoch.
        ray_address: empty for a local Ray inside the step; a Ray dashboard URL or
            ``kuberay://NAMESPACE`` to train on a cluster.
        work_dir: shared storage for encoded data and checkpoints (required with ray_address);
            the step works in its ``retriever/`` folder, so one work_dir serves a whole run and a
            rerun resumes from the checkpoints there.
        num_workers: Ray Train workers.
        cpus_per_worker: CPUs per worker.
        use_gpu: train on GPUs.
        gpus_per_worker: GPUs per worker.
        epochs: the most epochs to run.
        patience: epochs without a better validation Recall@100 before stopping.
        batch_size: pairs per worker and step; the other rows' positives are the negatives.
        learning_rate: AdamW peak learning rate.
        temperature: softmax temperature over cosine similarities.
        hard_negatives: add one shown-and-skipped item of the same search per positive.
        seed: seed of initialisation, data order and id dropout.
        refit: serve a second run trained from scratch on train and valid together for the
            epochs validation chose (its last epoch), rather than the first run's best (about
            twice the training time; off: the catch-up below).
        catch_up_epochs: unless refit, the first run's best trains this many more epochs on
            train and valid together and the last is served (0: the best as it is).
        catch_up_learning_rate: the catch-up's peak learning rate.
    """
    from pathlib import Path

    from searchrank.components.train_retriever.config import TrainRetrieverConfig
    from searchrank.components.train_retriever.logic import curves_html, train_retriever
    from searchrank.core.errors import InputError
    from searchrank.core.io import log_metrics

    if ray_address and not work_dir:
        raise InputError("work_dir", work_dir, "must name shared storage when ray_address is set")
    config = TrainRetrieverConfig(
        num_workers=num_workers,
        cpus_per_worker=cpus_per_worker,
        use_gpu=use_gpu,
        gpus_per_worker=gpus_per_worker,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        learning_rate=learning_rate,
        temperature=temperature,
        hard_negatives=hard_negatives,
        seed=seed,
        refit=refit,
        catch_up_epochs=catch_up_epochs,
        catch_up_learning_rate=catch_up_learning_rate,
    )
    summary = train_retriever(
        Path(train.path),
        Path(valid.path),
        Path(catalogue.path),
        Path(model.path),
        Path(embeddings.path),
        config,
        ray_address=ray_address,
        work_dir=Path(work_dir) / "retriever" if work_dir else None,
    )
    log_metrics(metrics, summary.metrics())
    model.metadata.update(
        {"framework": "pytorch", "checkpoint": summary.checkpoint, **summary.metrics()}
    )
    Path(curves.path).write_text(curves_html(summary))
