"""The context-aware listwise ranker: self-attention across the candidates of one search.

As in allRank and "Context-Aware Learning to Rank with Self-Attention" (Pobrotyn et al., 2020):
every candidate's features (numeric features, categorical embeddings, and the user and query
context repeated per candidate) are projected to ``d_model``, a Transformer encoder lets each
candidate attend to the others of the same search (padding masked out, no positional encoding:
the logged position is not an input), and a linear head gives one score per candidate.

Trained on position-biased clicks, the ranker may carry a **position-bias tower** (PAL, Guo et
al., RecSys 2019): a small network from the logged position to an examination logit, used only
while training through :class:`PositionBiasedRanker`, which adds ``log_sigmoid`` of that logit to
the relevance score, so that the loss sees ``P(click) = P(seen | position) · P(relevant |
features)`` in log space. :meth:`ContextAwareRanker.forward`, which evaluation and serving call,
takes no position at all: a checkpoint keeps the tower's weights (the learned examination curve
travels with the model), and scores with the relevance head alone.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class RankerConfig:
    """Shape of the ranker.

    Attributes:
        n_numeric: numeric input features per candidate.
        cardinalities: size of each categorical feature's vocabulary (index 0: missing/unseen).
        embedding_dim: width of each categorical embedding.
        d_model: width of the encoder.
        n_layers: encoder layers.
        n_heads: attention heads.
        ff_dim: width of the encoder's feed-forward layers.
        dropout: dropout in the input projection and the encoder.
        list_context: also feed each numeric feature's difference from its slate's mean and
            maximum, so that "best match in this list" is one linear step away.
        rank_keys: learned sort keys whose soft rank within the slate is fed to the encoder
            (0 for none): where a candidate stands among the others, by a learned criterion.
        bias_positions: logged positions the training-only position-bias tower tells apart
            (positions from this one on share the last embedding); 0 for no tower. Scoring
            never reads it (see :class:`PositionBiasedRanker`).
    """

    n_numeric: int
    cardinalities: list[int] = field(default_factory=list)
    embedding_dim: int = 8
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    ff_dim: int = 128
    dropout: float = 0.1
    list_context: bool = True
    rank_keys: int = 4
    bias_positions: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class ContextAwareRanker(nn.Module):
    """Scores every candidate of a slate in the context of the others."""

    def __init__(self, config: RankerConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(
            nn.Embedding(cardinality, config.embedding_dim) for cardinality in config.cardinalities
        )
        numeric = config.n_numeric * (3 if config.list_context else 1)
        width = numeric + config.embedding_dim * len(config.cardinalities)
        self.rank_key = nn.Linear(width, config.rank_keys) if config.rank_keys else None
        self.project = nn.Sequential(
            nn.Linear(width + config.rank_keys, config.d_model),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_model, config.d_model),
        )
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.n_heads,
            config.ff_dim,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, 1))
        # Kept in the module so that checkpoints, resuming and the optimizer carry it; only
        # PositionBiasedRanker calls it, never forward.
        self.position_bias = (
            PositionBiasTower(config.bias_positions) if config.bias_positions else None
        )

    def forward(self, dense: Tensor, codes: Tensor, mask: Tensor) -> Tensor:
        """Score slates by relevance alone: the logged position is no input, whether or not the
        model was trained with a position-bias tower.

        Args:
            dense: (B, L, n_numeric) float features.
            codes: (B, L, n_categorical) int64 category codes.
            mask: (B, L) bool, True for real candidates.

        Returns:
            (B, L) scores; padded slots score 0.
        """
        numeric = [dense]
        if self.config.list_context:
            weight = mask.unsqueeze(-1).to(dense.dtype)
            count = weight.sum(dim=1, keepdim=True).clamp(min=1.0)
            mean = (dense * weight).sum(dim=1, keepdim=True) / count
            top = dense.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1, keepdim=True)
            top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
            numeric += [dense - mean, dense - top]
        parts = [*numeric, *(emb(codes[..., j]) for j, emb in enumerate(self.embeddings))]
        inputs = torch.cat(parts, dim=-1)
        if self.rank_key is not None:
            inputs = torch.cat([inputs, soft_rank(self.rank_key(inputs), mask)], dim=-1)
        hidden = self.project(inputs)
        # A slate made only of padding would make attention produce NaN: give it one key.
        keys = mask.clone()
        keys[:, 0] |= ~mask.any(dim=1)
        hidden = self.encoder(hidden, src_key_padding_mask=~keys)
        return self.head(hidden).squeeze(-1).masked_fill(~mask, 0.0)


class PositionBiasTower(nn.Module):
    """The examination logit of each logged position: an embedding per position, then a small
    layer to one logit; positions at or beyond ``n_positions`` share the last embedding.

    The embedding is wider than one logit because, with one learning rate for the whole model,
    a one-number table moves too slowly next to the relevance network, which would meanwhile
    explain position effects with whatever features the old ranker ordered by.
    """

    WIDTH = 8

    def __init__(self, n_positions: int) -> None:
        super().__init__()
        if n_positions < 1:
            raise ValueError(f"n_positions must be at least 1, got {n_positions}")
        self.n_positions = n_positions
        self.embedding = nn.Embedding(n_positions, self.WIDTH)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(self.WIDTH, 1))

    def forward(self, positions: Tensor) -> Tensor:
        """Examination logits.

        Args:
            positions: (B, L) int64 logged positions, 0 at the top.

        Returns:
            (B, L) logits of P(seen | position).
        """
        clipped = positions.clamp(min=0, max=self.n_positions - 1)
        return self.out(self.embedding(clipped)).squeeze(-1)

    @torch.no_grad()
    def examination(self) -> np.ndarray:
        """The learned examination curve, P(seen | position) / P(seen | top), shape
        (n_positions,): 1 at position 0."""
        logits = self(torch.arange(self.n_positions, device=self.embedding.weight.device))
        seen = torch.sigmoid(logits.float())
        return (seen / seen[0]).cpu().numpy()


class PositionBiasedRanker(nn.Module):
    """The training-time view of a ranker with a position-bias tower (PAL).

    ``forward`` gives ``relevance + log_sigmoid(examination logit)`` per candidate: the log of
    ``P(relevant | features) · P(seen | position)`` up to the listwise losses' indifference to a
    constant per slate. Its parameters are the ranker's own, so a (DDP-wrapped) instance of this
    module trains the ranker, whose ``forward`` then serves without positions.
    """

    def __init__(self, ranker: ContextAwareRanker) -> None:
        super().__init__()
        if ranker.position_bias is None:
            raise ValueError("the ranker has no position-bias tower (RankerConfig.bias_positions)")
        self.ranker = ranker

    def forward(self, dense: Tensor, codes: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
        """Click scores for training.

        Args:
            dense: (B, L, n_numeric) float features.
            codes: (B, L, n_categorical) int64 category codes.
            mask: (B, L) bool, True for real candidates.
            positions: (B, L) int64 logged positions (anything in padding).

        Returns:
            (B, L) scores; padded slots score 0.
        """
        tower = self.ranker.position_bias
        assert tower is not None  # checked at construction
        relevance = self.ranker(dense, codes, mask).float()
        seen = nn.functional.logsigmoid(tower(positions).float())
        return (relevance + seen).masked_fill(~mask, 0.0)


def soft_rank(keys: Tensor, mask: Tensor) -> Tensor:
    """Where each candidate stands in its slate by each key, in [0, 1] (0: highest).

    The share of other real candidates whose key is higher, with a sigmoid for "higher" so that
    it is differentiable.

    Args:
        keys: (B, L, K) sort keys.
        mask: (B, L) bool, True for real candidates.

    Returns:
        (B, L, K) soft ranks; 0 in padded slots.
    """
    above = torch.sigmoid(keys.unsqueeze(1) - keys.unsqueeze(2))  # (B, L_i, L_j, K): j above i
    real = mask.unsqueeze(1).unsqueeze(-1).to(keys.dtype)  # j must be a real candidate
    others = (real.sum(dim=2) - 1.0).clamp(min=1.0)
    ranks = ((above * real).sum(dim=2) - 0.5) / others  # minus i against itself: sigmoid(0)
    return ranks.masked_fill(~mask.unsqueeze(-1), 0.0)


Encoded = dict[str, np.ndarray]
"""One candidate list encoded for the model: ``dense`` (n, F) float32 and ``codes`` (n, C)
int64 (:class:`~searchrank.core.features.FeatureProcessor`'s outputs)."""


WARM_UP_CALLS = 2
"""Calls of a freshly traced ranker at load, so that no request pays TorchScript's first,
profiling runs."""


class InferenceRanker:
    """A trained ranker prepared for scoring requests: its forward pass traced and frozen by
    TorchScript.

    Freezing inlines the weights and the graph runs without Python's per-module calls, which
    weigh at the service's list sizes: on this 2-core CPU a list of 100 candidates scores in
    about half the eager model's time, lists of 60 to 200 in about three quarters, with the same
    scores (``tests/core/test_model_inputs.py`` checks them across list lengths, batch sizes and
    padding). ``trace=False`` keeps the eager
    model (for a model still training, or to compare).

    PyTorch now marks TorchScript deprecated in favour of ``torch.compile`` and ``torch.export``.
    Measured here on lists of 60 to 200 candidates, per 100 candidates: eager 3.5 ms, traced
    2.6 ms, ``torch.export`` 2.9 ms (4 s to export), ``torch.compile`` 2.5 ms (about 40 s to
    compile in every worker, and a C++ compiler in the image). Tracing stays while PyTorch
    ships it; ``torch.export`` is the replacement when it goes.
    """

    def __init__(self, model: ContextAwareRanker, trace: bool = True) -> None:
        self.device = next(model.parameters()).device
        self.forward: nn.Module = self._traced(model) if trace else model

    @torch.no_grad()
    def _traced(self, model: ContextAwareRanker) -> nn.Module:
        if model.training:
            raise ValueError("trace a ranker in eval mode: tracing would freeze its dropout")
        config = model.config
        example = (
            torch.zeros(1, 2, config.n_numeric, device=self.device),
            torch.zeros(1, 2, len(config.cardinalities), dtype=torch.int64, device=self.device),
            torch.ones(1, 2, dtype=torch.bool, device=self.device),
        )
        with warnings.catch_warnings():
            # PyTorch marks TorchScript deprecated; see the class docstring for why it is used.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced: nn.Module = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))
        for _ in range(WARM_UP_CALLS):  # TorchScript profiles its first calls: tens of ms each
            traced(*example)
        return traced

    @torch.no_grad()
    def score(self, requests: list[Encoded]) -> list[np.ndarray]:
        """Scores of several requests' candidate lists in one forward pass.

        The lists are padded to the longest and masked, so each list's scores are what it
        would get alone (up to float rounding): the model's attention never crosses lists. The
        inputs go to the model's device and the scores come back to the host.
        """
        longest = max(len(r["dense"]) for r in requests)
        width, n_codes = requests[0]["dense"].shape[1], requests[0]["codes"].shape[1]
        dense = np.zeros((len(requests), longest, width), dtype=np.float32)
        codes = np.zeros((len(requests), longest, n_codes), dtype=np.int64)
        mask = np.zeros((len(requests), longest), dtype=bool)
        for b, request in enumerate(requests):
            n = len(request["dense"])
            dense[b, :n], codes[b, :n], mask[b, :n] = request["dense"], request["codes"], True
        inputs = (
            torch.from_numpy(a).to(self.device, non_blocking=True) for a in (dense, codes, mask)
        )
        out = self.forward(*inputs).float().cpu().numpy()
        return [out[b, : len(r["dense"])] for b, r in enumerate(requests)]
