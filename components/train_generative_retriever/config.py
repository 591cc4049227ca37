"""Configuration of ``train_generative_retriever``: the semantic IDs, the encoder–decoder, the
optimisation, the validation and where Ray runs it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from searchrank.core.errors import InputError, check_int
from searchrank.core.generative import GenerativeConfig
from searchrank.core.schema import Grade
from searchrank.core.semantic_ids import MAX_CODES, SemanticIdConfig


@dataclass(frozen=True)
class TrainGenerativeConfig:
    """Everything a generative retriever training run needs besides its data.

    Semantic IDs: ``id_levels`` residual k-means levels of ``id_codes`` codes each (plus the
    de-duplication code), fit with ``seed`` on the two-tower item embeddings.
    Model: the :class:`~searchrank.core.generative.GenerativeConfig` fields ``text_buckets``,
    ``d_model`` … ``dropout``; ``max_tokens`` hashed tokens per query.
    Data: items with ``label >= min_label`` are a search's targets; validation counts items
    with ``label >= min_relevant_label`` as wanted; ``user_dropout`` is the share of training
    rows whose listener is replaced by the unknown listener, so that listeners outside the
    vocabulary decode sensibly.
    Optimisation: AdamW with a one-cycle schedule peaking at ``learning_rate``, gradients
    clipped to norm 1, ``batch_size`` (search, item) pairs per worker and step, at most
    ``epochs`` epochs, early stopping after ``patience`` epochs without a better validation
    log-likelihood.
    Validation: every epoch, the teacher-forced log-likelihood of every validation search's
    wanted items (cheap, and the early-stopping score) and Recall@{10,100} by constrained beam
    search (beam 100) on a fixed sample of ``decode_searches`` validation searches.
    Scaling: as ``train_retriever``: ``num_workers`` Ray Train workers with ``cpus_per_worker``
    CPUs and, when ``use_gpu``, ``gpus_per_worker`` GPUs (bf16 autocast); ``max_failures``
    restarts.
    """

    id_levels: int = 3
    id_codes: int = 256
    text_buckets: int = GenerativeConfig.text_buckets
    max_tokens: int = 32
    d_model: int = GenerativeConfig.d_model
    n_heads: int = GenerativeConfig.n_heads
    encoder_layers: int = GenerativeConfig.encoder_layers
    decoder_layers: int = GenerativeConfig.decoder_layers
    ff_dim: int = GenerativeConfig.ff_dim
    dropout: float = GenerativeConfig.dropout
    min_label: int = int(Grade.CLICK)
    min_relevant_label: int = int(Grade.STREAM)
    user_dropout: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 256
    epochs: int = 10
    patience: int = 3
    decode_searches: int = 200
    seed: int = 0
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    gpus_per_worker: float = 1.0
    max_failures: int = 2

    def __post_init__(self) -> None:
        for name in ("max_tokens", "batch_size", "epochs", "patience", "decode_searches"):
            check_int(name, getattr(self, name), 1)
        check_int("num_workers", self.num_workers, 1)
        for name in ("seed", "max_failures"):
            check_int(name, getattr(self, name), 0)
        for name in ("learning_rate", "cpus_per_worker", "gpus_per_worker"):
            if not getattr(self, name) > 0:
                raise InputError(name, getattr(self, name), "must be positive")
        if not self.weight_decay >= 0:
            raise InputError("weight_decay", self.weight_decay, "must not be negative")
        if not 0.0 <= self.user_dropout < 1.0:
            raise InputError("user_dropout", self.user_dropout, "must lie in [0, 1)")
        if not 0 <= self.min_label <= self.min_relevant_label:
            raise InputError(
                "min_label",
                (self.min_label, self.min_relevant_label),
                "must satisfy 0 <= min_label <= min_relevant_label",
            )
        check_int("id_levels", self.id_levels, 1)
        check_int("id_codes", self.id_codes, 2, MAX_CODES)
        self.model(users=0, depth=self.id_levels + 1, codes=self.id_codes)  # the model fields

    def semantic_ids(self) -> SemanticIdConfig:
        """How the items' semantic IDs are fit."""
        return SemanticIdConfig(levels=self.id_levels, codes=self.id_codes, seed=self.seed)

    def model(self, users: int, depth: int, codes: int) -> GenerativeConfig:
        """The model's shape, with the listener count and the IDs' shape from the data."""
        return GenerativeConfig(
            depth=depth,
            codes=codes,
            users=users,
            text_buckets=self.text_buckets,
            d_model=self.d_model,
            n_heads=self.n_heads,
            encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers,
            ff_dim=self.ff_dim,
            dropout=self.dropout,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
