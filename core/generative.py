"""The generative retriever's model: read a query and its listener, write an item's semantic ID.

A generative retriever (TIGER, Rajput et al. 2023; Spotify's Text2Tracks) does not score the
catalogue: it *writes* the answer. Every item has a semantic ID, a short tuple of codes from
:mod:`searchrank.core.semantic_ids`, coarse to fine, so that similar items share prefixes. A
small encoder–decoder transformer reads the query's hashed tokens (the two-tower's words and
character trigrams, :func:`~searchrank.core.retriever.hash_tokens`) with one token for the
listener, and decodes the ID one code at a time. Beam search over a trie of the catalogue's IDs
(:func:`~searchrank.core.constrained_decoding.beam_search`) turns that into a ranked list of
items, none of them invalid.

Token layout of the decoder: index 0 is the start token; code ``c`` at position ``t`` is
``1 + t * codes + c``, so the same code at different positions is a different token. Each
position has its own output layer over the ``codes`` values.

:meth:`GenerativeRetriever.forward` is the teacher-forced pass that training optimises;
:func:`decoding_step` wraps the same encoder and decoder for the beam search, and a test checks
that both give the same log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from searchrank.core.constrained_decoding import Step
from searchrank.core.errors import InputError, check_int


@dataclass(frozen=True)
class GenerativeConfig:
    """The model's shape.

    Attributes:
        depth: the semantic ID's length (levels plus the de-duplication code).
        codes: values per position (the largest code at any position + 1).
        users: known listeners (indices 1..users of an
            :class:`~searchrank.core.retriever.IdVocabulary`; 0 is an unknown listener).
        text_buckets: rows of the hashed query-token table (row 0 is padding).
        d_model, n_heads, encoder_layers, decoder_layers, ff_dim, dropout: the transformer.
    """

    depth: int
    codes: int
    users: int = 0
    text_buckets: int = 1 << 15
    d_model: int = 128
    n_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff_dim: int = 256
    dropout: float = 0.1

    def __post_init__(self) -> None:
        positive = ("depth", "codes", "text_buckets", "d_model", "n_heads", "ff_dim")
        for name in (*positive, "encoder_layers", "decoder_layers"):
            check_int(name, getattr(self, name), 1)
        check_int("users", self.users, 0)
        if self.d_model % self.n_heads:
            raise InputError("n_heads", self.n_heads, f"must divide d_model ({self.d_model})")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError("dropout", self.dropout, "must lie in [0, 1)")


class GenerativeRetriever(nn.Module):
    """Query tokens and a listener in, one semantic ID's code logits per position out."""

    def __init__(self, config: GenerativeConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.text = nn.Embedding(config.text_buckets, d, padding_idx=0)
        self.user = nn.Embedding(config.users + 1, d)
        self.code = nn.Embedding(1 + config.depth * config.codes, d)
        self.position = nn.Embedding(config.depth, d)
        layer: dict[str, Any] = {
            "d_model": d,
            "nhead": config.n_heads,
            "dim_feedforward": config.ff_dim,
            "dropout": config.dropout,
            "activation": "gelu",
            "batch_first": True,
            "norm_first": True,
        }
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**layer),
            config.encoder_layers,
            norm=nn.LayerNorm(d),
            enable_nested_tensor=False,
        )
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(**layer), config.decoder_layers, norm=nn.LayerNorm(d)
        )
        self.heads = nn.ModuleList(nn.Linear(d, config.codes) for _ in range(config.depth))

    def encode(self, tokens: Tensor, users: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's memory of each query: (B, 1 + T, d) and its padding mask (B, 1 + T).

        Args:
            tokens: (B, T) hashed query tokens, 0-padded.
            users: (B,) listener indices, 0 for an unknown listener.
        """
        inputs = torch.cat([self.user(users)[:, None], self.text(tokens)], dim=1)
        padding = torch.cat([torch.zeros_like(users, dtype=torch.bool)[:, None], tokens == 0], 1)
        memory = self.encoder(inputs, src_key_padding_mask=padding)
        return memory, padding

    def decode(self, memory: Tensor, padding: Tensor, prefixes: Tensor) -> Tensor:
        """Logits (B, t + 1, codes): after the start token and each of the ``t`` given codes,
        the next position's code.

        Args:
            memory, padding: :meth:`encode`'s output.
            prefixes: (B, t) codes already written, t < depth.
        """
        t = prefixes.shape[1]
        offsets = 1 + torch.arange(t, device=prefixes.device) * self.config.codes
        start = prefixes.new_zeros(len(prefixes), 1)
        tokens = torch.cat([start, prefixes + offsets], dim=1)
        steps = torch.arange(t + 1, device=prefixes.device)
        inputs = self.code(tokens) + self.position(steps)
        causal = nn.Transformer.generate_square_subsequent_mask(t + 1, device=prefixes.device)
        hidden = self.decoder(
            inputs,
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=padding,
        )
        return torch.stack([self.heads[i](hidden[:, i]) for i in range(t + 1)], dim=1)

    def forward(self, tokens: Tensor, users: Tensor, codes: Tensor) -> Tensor:
        """Teacher-forced logits (B, depth, codes) of every position of the given IDs.

        Args:
            tokens: (B, T) hashed query tokens; users: (B,) listener indices.
            codes: (B, depth) the semantic IDs of the items each query wanted.
        """
        memory, padding = self.encode(tokens, users)
        return self.decode(memory, padding, codes[:, :-1])


def generation_loss(logits: Tensor, codes: Tensor) -> Tensor:
    """Mean cross-entropy of every position's code: (B, depth, codes) logits, (B, depth) IDs."""
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), codes.flatten())


@torch.no_grad()
def decoding_step(model: GenerativeRetriever, tokens: Tensor, user: Tensor) -> Step:
    """The beam search's model for one query: its memory is computed once, then each call maps
    the beams' prefixes (B, t) to the log-probabilities (B, codes) of the code at position t.

    Args:
        tokens: (1, T) the query's hashed tokens; user: (1,) the listener's index.
    """
    model.eval()
    memory, padding = model.encode(tokens, user)

    @torch.no_grad()
    def step(prefixes: np.ndarray) -> np.ndarray:
        beams = torch.as_tensor(prefixes, dtype=torch.int64, device=memory.device)
        width = beams.shape[0]
        logits = model.decode(memory.expand(width, -1, -1), padding.expand(width, -1), beams)
        logits = logits[:, -1]
        return torch.log_softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)

    return step
