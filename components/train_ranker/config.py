"""Configuration of ``train_ranker``: the model, the optimisation and where Ray runs it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from searchrank.core.errors import InputError


@dataclass(frozen=True)
class TrainRankerConfig:
    """Everything a ranker training run needs besides its data.

    Model: ``d_model``, ``n_layers``, ``n_heads``, ``ff_dim``, ``dropout``, ``embedding_dim``.
    Optimisation: ``loss`` (``listnet``, ``lambdaloss`` or ``neuralndcg``), AdamW with a one-cycle
    schedule peaking at ``learning_rate`` (10 % warm-up, cosine decay over all ``epochs``) and
    ``weight_decay``, ``batch_size`` slates per worker and step, at most
    ``epochs`` epochs, early stopping after ``patience`` epochs without a better validation
    NDCG@10, gradient clipping at ``grad_clip``, ``seed``. Slates longer than
    ``max_list_length`` are cut.
    Scaling: ``num_workers`` Ray Train workers, each with ``cpus_per_worker`` CPUs and, when
    ``use_gpu``, ``gpus_per_worker`` GPUs; ``max_failures`` worker failures survived by
    restarting from the latest checkpoint. ``bf16`` and ``compile`` apply on GPU only.
    Unbiased learning to rank: ``position_bias`` trains a position-bias tower beside the ranker
    (PAL) on the training split's logged ``position`` column, one embedding per position up to
    ``max_list_length``; scoring, in evaluation and serving, never reads the position.
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_dim: int = 128
    dropout: float = 0.1
    embedding_dim: int = 8
    loss: str = "lambdaloss"
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    epochs: int = 20
    patience: int = 4
    grad_clip: float = 1.0
    seed: int = 0
    max_list_length: int = 64
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    gpus_per_worker: float = 1.0
    max_failures: int = 2
    bf16: bool = True
    compile: bool = True
    position_bias: bool = False

    def __post_init__(self) -> None:
        positive = (
            "d_model",
            "n_layers",
            "n_heads",
            "ff_dim",
            "embedding_dim",
            "batch_size",
            "epochs",
            "patience",
            "max_list_length",
            "num_workers",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(name, getattr(self, name), "must be at least 1")
        if self.d_model % self.n_heads:
            raise InputError("n_heads", self.n_heads, f"must divide d_model ({self.d_model})")
        for name in ("dropout",):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(name, getattr(self, name), "must lie in [0, 1)")
        for name in ("learning_rate", "cpus_per_worker"):
            if getattr(self, name) <= 0:
                raise InputError(name, getattr(self, name), "must be positive")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.max_failures < 0:
            raise InputError(
                "weight_decay/grad_clip/max_failures",
                (self.weight_decay, self.grad_clip, self.max_failures),
                "must not be negative",
            )
        if not isinstance(self.position_bias, bool):
            raise InputError("position_bias", self.position_bias, "must be true or false")
        if self.loss not in ("listnet", "lambdaloss", "neuralndcg"):
            raise InputError("loss", self.loss, "must be listnet, lambdaloss or neuralndcg")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
