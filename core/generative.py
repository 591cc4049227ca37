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
that both give the same log-probabilities. :class:`GenerativeSource` is the trained model as
serving uses it: a folder ``train_generative_retriever`` writes, loaded and asked for items.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from searchrank.core.checkpoint import WEIGHTS
from searchrank.core.constrained_decoding import CodeTrie, Step, beam_search_batch
from searchrank.core.errors import InputError, check_int
from searchrank.core.retriever import IdVocabulary, hash_tokens
from searchrank.core.semantic_ids import SemanticIds

GENERATIVE_DESCRIPTION = "generative.json"
"""A saved :class:`GenerativeSource`'s format version, model shape and token settings."""
GENERATIVE_USERS = "users.npy"
"""The listener ids of a saved source's user vocabulary."""
SEMANTIC_IDS_FOLDER = "semantic_ids"
"""The folder of a saved source's :class:`~searchrank.core.semantic_ids.SemanticIds`."""
FORMAT_VERSION = 1
DECODE_BATCH = 32
"""Queries one beam search decodes together: at a beam of 100, some 3,200 beams a decoder call,
which keeps the memory each call gathers for its beams to tens of megabytes."""


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
    """The beam search's model for one query, and the reference that :class:`IncrementalDecoder`
    must match: its memory is computed once, then each call runs the whole decoder over the
    beams' whole prefixes (B, t) and returns the log-probabilities (B, codes) of the code at
    position t.

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
        return _log_probs(logits[:, -1])

    return step


def _log_probs(logits: Tensor) -> np.ndarray:
    return torch.log_softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)


def _heads(x: Tensor, heads: int) -> Tensor:
    """(B, L, d) → (B, heads, L, d / heads)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merged(x: Tensor) -> Tensor:
    """(B, heads, L, d / heads) → (B, L, d)."""
    return x.transpose(1, 2).flatten(-2)


class IncrementalDecoder:
    """:meth:`GenerativeRetriever.decode`'s last position, one position a call, for the beam
    search (a :data:`~searchrank.core.constrained_decoding.BatchStep`).

    The full decoder recomputes, at every depth and for every beam, the attention keys and
    values of all earlier positions and of the query's whole encoder memory. This one projects
    the memory's keys and values once per query, keeps each beam's self-attention keys and
    values (following the beams as the search reorders them, by the ``parents`` it is given)
    and, per call, runs only the newest position through the layers: the same arithmetic as the
    pre-norm ``nn.TransformerDecoderLayer`` in eval mode (a test compares the two).

    Args:
        model: the trained model (its decoder layers pre-norm, as :class:`GenerativeRetriever`
            builds them).
        memory, padding: :meth:`GenerativeRetriever.encode`'s output for Q queries.
    """

    def __init__(self, model: GenerativeRetriever, memory: Tensor, padding: Tensor) -> None:
        self.model = model
        self.layers = [cast(nn.TransformerDecoderLayer, layer) for layer in model.decoder.layers]
        self.heads = model.config.n_heads
        d = model.config.d_model
        self.memory_keys_values = []
        for layer in self.layers:
            attention = layer.multihead_attn
            keys, values = nn.functional.linear(
                memory, attention.in_proj_weight[d:], attention.in_proj_bias[d:]
            ).chunk(2, dim=-1)
            self.memory_keys_values.append((_heads(keys, self.heads), _heads(values, self.heads)))
        self.attends = ~padding[:, None, None, :]  # (Q, 1, 1, S): True where a beam may look
        self.cache: list[tuple[Tensor, Tensor]] = []

    @torch.no_grad()
    def __call__(
        self, queries: np.ndarray, prefixes: np.ndarray, parents: np.ndarray | None
    ) -> np.ndarray:
        model, t = self.model, prefixes.shape[1]
        device = self.attends.device
        rows = torch.as_tensor(queries, dtype=torch.int64, device=device)
        if t == 0:
            token = torch.zeros(len(queries), dtype=torch.int64, device=device)  # start token
            self.cache = []
        else:
            last = torch.as_tensor(prefixes[:, -1], dtype=torch.int64, device=device)
            token = last + 1 + (t - 1) * model.config.codes
            moved = torch.as_tensor(parents, dtype=torch.int64, device=device)
            self.cache = [(keys[moved], values[moved]) for keys, values in self.cache]
        x = (model.code(token) + model.position.weight[t])[:, None]  # (B, 1, d)
        cache: list[tuple[Tensor, Tensor]] = []
        for i, layer in enumerate(self.layers):
            x = x + self._self_attention(layer, layer.norm1(x), i, cache)
            x = x + self._memory_attention(layer, layer.norm2(x), i, rows)
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
        self.cache = cache
        final = cast(nn.LayerNorm, model.decoder.norm)  # GenerativeRetriever always gives one
        return _log_probs(model.heads[t](final(x[:, 0])))

    def _self_attention(
        self,
        layer: nn.TransformerDecoderLayer,
        x: Tensor,
        i: int,
        cache: list[tuple[Tensor, Tensor]],
    ) -> Tensor:
        attention = layer.self_attn
        projected = nn.functional.linear(x, attention.in_proj_weight, attention.in_proj_bias)
        query, keys, values = (_heads(part, self.heads) for part in projected.chunk(3, dim=-1))
        if self.cache:
            keys = torch.cat([self.cache[i][0], keys], dim=2)
            values = torch.cat([self.cache[i][1], values], dim=2)
        cache.append((keys, values))
        # The newest position attends to itself and every earlier one: no causal mask needed.
        seen = nn.functional.scaled_dot_product_attention(query, keys, values)
        return attention.out_proj(_merged(seen))

    def _memory_attention(
        self, layer: nn.TransformerDecoderLayer, x: Tensor, i: int, rows: Tensor
    ) -> Tensor:
        attention, d = layer.multihead_attn, self.model.config.d_model
        query = nn.functional.linear(x, attention.in_proj_weight[:d], attention.in_proj_bias[:d])
        keys, values = self.memory_keys_values[i]
        seen = nn.functional.scaled_dot_product_attention(
            _heads(query, self.heads), keys[rows], values[rows], attn_mask=self.attends[rows]
        )
        return attention.out_proj(_merged(seen))


class GenerativeSource:
    """A trained generative retriever as a candidate source: queries in, catalogue items out.

    It decodes each (query, listener) by beam search over the trie of the catalogue's semantic IDs
    (:func:`~searchrank.core.constrained_decoding.beam_search_batch`), so every item it returns
    exists. The query's tokens are hashed as in training
    (:func:`~searchrank.core.retriever.hash_tokens` with the saved ``max_tokens``); a listener
    outside the training vocabulary is index 0, the unknown listener, which training taught by
    dropping listeners at random.

    A folder (:meth:`save`, :meth:`load`) holds ``model.pt`` (the weights),
    :data:`GENERATIVE_DESCRIPTION` (format version, :class:`GenerativeConfig`, ``max_tokens``),
    :data:`GENERATIVE_USERS` (the listener ids of the vocabulary) and the
    :class:`~searchrank.core.semantic_ids.SemanticIds` in :data:`SEMANTIC_IDS_FOLDER`.

    Args:
        model: the encoder–decoder; it decodes on the device its weights lie on.
        users: the listener vocabulary of the model's user embedding.
        semantic_ids: the catalogue's semantic IDs (the trie's codes and items).
        max_tokens: hashed tokens kept per query, as in training.
        trie: the codes that may be decoded; ``None``: every item of ``semantic_ids``.
    """

    def __init__(
        self,
        model: GenerativeRetriever,
        users: IdVocabulary,
        semantic_ids: SemanticIds,
        max_tokens: int,
        trie: CodeTrie | None = None,
    ) -> None:
        self.model = model
        self.users = users
        self.semantic_ids = semantic_ids
        self.max_tokens = max_tokens
        if trie is None:
            trie = CodeTrie.from_codes(semantic_ids.codes, semantic_ids.item_ids)
        self.trie = trie

    def without(self, item_ids: Iterable[int]) -> GenerativeSource:
        """The same source that never returns ``item_ids`` (the model and IDs are shared)."""
        trie = self.trie.without(item_ids)
        return GenerativeSource(self.model, self.users, self.semantic_ids, self.max_tokens, trie)

    def retrieve(
        self, queries: list[str], user_ids: list[int], n: int, beam_size: int | None = None
    ) -> list[list[int]]:
        """Up to ``n`` item ids per (query, listener), best first (as ``DenseRetriever``).

        Args:
            queries: raw query texts.
            user_ids: one listener id per query; unknown ones decode as the unknown listener.
            n: items per query (fewer when the trie holds fewer).
            beam_size: beams kept at each depth, at least ``n``; ``None``: ``n``. A wider beam
                finds better-scoring IDs at a cost linear in its width.
        """
        tokens = hash_tokens(queries, self.model.config.text_buckets, self.max_tokens)
        users = self.users.index(np.asarray(user_ids, dtype=np.int64))
        return self.decode(tokens, users, n, beam_size)

    @torch.inference_mode()
    def decode(
        self, tokens: np.ndarray, users: np.ndarray, n: int, beam_size: int | None = None
    ) -> list[list[int]]:
        """:meth:`retrieve` for queries already hashed: tokens (B, T) and listener indices (B,).

        The queries are decoded :data:`DECODE_BATCH` at a time: the encoder reads them in one
        pass, and each depth of their beam searches is one decoder call
        (:func:`~searchrank.core.constrained_decoding.beam_search_batch`).
        """
        check_int("n", n, 1)
        beam = n if beam_size is None else beam_size
        check_int("beam_size", beam, n)
        if len(tokens) != len(users):
            raise InputError(
                "user_ids", len(users), f"must hold one listener per query ({len(tokens)})"
            )
        self.model.eval()
        device = next(self.model.parameters()).device
        found: list[list[int]] = []
        for start in range(0, len(tokens), DECODE_BATCH):
            batch = slice(start, start + DECODE_BATCH)
            memory, padding = self.model.encode(
                torch.as_tensor(tokens[batch], device=device),
                torch.as_tensor(users[batch], device=device),
            )
            step = IncrementalDecoder(self.model, memory, padding)
            decoded = beam_search_batch(step, self.trie, len(memory), beam, n)
            found += [[item for item, _ in items] for items in decoded]
        return found

    def save(self, folder: Path) -> None:
        """Write what :meth:`load` needs, and nothing else, into ``folder`` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / WEIGHTS)
        np.save(folder / GENERATIVE_USERS, self.users.ids)
        self.semantic_ids.save(folder / SEMANTIC_IDS_FOLDER)
        description = {
            "format_version": FORMAT_VERSION,
            "model": asdict(self.model.config),
            "max_tokens": self.max_tokens,
        }
        (folder / GENERATIVE_DESCRIPTION).write_text(json.dumps(description, indent=2))

    @classmethod
    def load(cls, folder: Path) -> GenerativeSource:
        """The source saved in ``folder``, on the CPU, with the whole catalogue's trie.

        Raises:
            InputError: ``folder`` lacks a file :meth:`save` writes, or has another format.
        """
        files = (WEIGHTS, GENERATIVE_DESCRIPTION, GENERATIVE_USERS)
        if (
            not all((folder / name).is_file() for name in files)
            or not (folder / SEMANTIC_IDS_FOLDER).is_dir()
        ):
            raise InputError(
                "generative model",
                str(folder),
                f"must be a folder with {[*files, SEMANTIC_IDS_FOLDER]}",
            )
        description = json.loads((folder / GENERATIVE_DESCRIPTION).read_text())
        if description.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"{GENERATIVE_DESCRIPTION} format_version",
                description.get("format_version"),
                f"must be {FORMAT_VERSION}",
            )
        model = GenerativeRetriever(GenerativeConfig(**description["model"]))
        model.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu"))
        return cls(
            model.eval(),
            IdVocabulary(np.load(folder / GENERATIVE_USERS)),
            SemanticIds.load(folder / SEMANTIC_IDS_FOLDER),
            int(description["max_tokens"]),
        )
