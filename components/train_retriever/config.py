"""Configuration of ``train_retriever``: the towers, the optimisation and where Ray runs it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from searchrank.core.errors import InputError
from searchrank.core.retriever import TwoTowerConfig
from searchrank.core.schema import Grade


@dataclass(frozen=True)
class TrainRetrieverConfig:
    """Everything a retriever training run needs besides its data.

    Model: the :class:`~searchrank.core.retriever.TwoTowerConfig` fields
    ``text_buckets`` … ``id_dropout``.
    Data: items with ``label >= min_label`` are a search's positives; validation counts items
    with ``label >= min_relevant_label`` as wanted; ``hard_negatives`` adds one skipped item of
    the same search per positive.
    Optimisation: AdamW with a one-cycle schedule peaking at ``learning_rate``,
    ``batch_size`` pairs per worker and step (each other row's positive is a negative), at most
    ``epochs`` epochs, early stopping after ``patience`` epochs without a better validation
    Recall@100, ``seed``.
    Serving what is most recent: the validation rows are the most recent searches, and the
    chosen checkpoint never trained on them. With ``refit`` (the default), once validation has
    chosen the number of epochs (the best epoch), the model is trained again from scratch on
    the training and validation rows together for that many epochs and its last epoch is
    served (about twice the training time). Otherwise the chosen checkpoint trains
    ``catch_up_epochs`` more epochs on those rows (its vocabularies kept, a one-cycle schedule
    peaking at ``catch_up_learning_rate``) and the last is served: a catch-up, at the cost of
    a few epochs (0: the chosen checkpoint is served as it is). ``bench_retrain`` chose these
    defaults on searches no run trained on (the later half of validation, the first run
    selecting on the earlier half): the refit recalled the most on both its datasets, the
    two-epoch catch-up at 1.2e-3 the most of the catch-ups.
    Scaling: as ``train_ranker``: ``num_workers`` Ray Train workers with ``cpus_per_worker``
    CPUs and, when ``use_gpu``, ``gpus_per_worker`` GPUs; ``max_failures`` restarts.
    """

    # The model's fields, defaulting to the model's own defaults (one place to change them).
    text_buckets: int = TwoTowerConfig.text_buckets
    max_tokens: int = TwoTowerConfig.max_tokens
    text_dim: int = TwoTowerConfig.text_dim
    id_dim: int = TwoTowerConfig.id_dim
    hidden: int = TwoTowerConfig.hidden
    out_dim: int = TwoTowerConfig.out_dim
    temperature: float = TwoTowerConfig.temperature
    id_dropout: float = TwoTowerConfig.id_dropout
    min_label: int = int(Grade.CLICK)
    min_relevant_label: int = int(Grade.STREAM)
    hard_negatives: bool = True
    learning_rate: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 1024
    epochs: int = 10
    patience: int = 3
    seed: int = 0
    refit: bool = True
    catch_up_epochs: int = 2
    catch_up_learning_rate: float = 1.2e-3
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    gpus_per_worker: float = 1.0
    max_failures: int = 2

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "patience", "num_workers"):
            if getattr(self, name) < 1:
                raise InputError(name, getattr(self, name), "must be at least 1")
        if self.catch_up_epochs < 0:
            raise InputError("catch_up_epochs", self.catch_up_epochs, "must not be negative")
        for name in ("learning_rate", "catch_up_learning_rate", "cpus_per_worker"):
            if getattr(self, name) <= 0:
                raise InputError(name, getattr(self, name), "must be positive")
        if self.weight_decay < 0 or self.max_failures < 0:
            raise InputError(
                "weight_decay/max_failures",
                (self.weight_decay, self.max_failures),
                "must not be negative",
            )
        if not 0 <= self.min_label <= self.min_relevant_label:
            raise InputError(
                "min_label",
                (self.min_label, self.min_relevant_label),
                "must satisfy 0 <= min_label <= min_relevant_label",
            )
        self.towers()  # checks the model fields

    def towers(self, n_users: int = 0, n_items: int = 0) -> TwoTowerConfig:
        """The model's shape, with vocabulary sizes from the data."""
        names = {f.name for f in fields(TwoTowerConfig)} - {"n_users", "n_items"}
        shape = {name: getattr(self, name) for name in names}
        return TwoTowerConfig(**shape, n_users=n_users, n_items=n_items)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
