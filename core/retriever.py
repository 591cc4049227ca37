"""The two-tower retriever: a query tower and an item tower that meet in one embedding space.

Both towers read text the same way: the normalized words and the padded character trigrams of
every word (:func:`~searchrank.core.text.analyze`), each hashed into one shared
embedding table and averaged. Sharing the table means a misspelled query ("beyonse") and the
item it means share most of their trigram vectors before any training, and an item that never
appeared in the logs still lands near the words of its name, artist and tags.

The query tower adds the listener's learned embedding, the item tower the item's; listeners and
items the training data did not contain get index 0, whose embedding is fixed at zero, and
training drops ids at random (``id_dropout``) so that the towers also work from text alone.
Each tower ends in a small MLP with a linear skip from the text and an L2 normalization, so a
dot product is a cosine similarity (the Voyager index's metric).

Training is a softmax over the batch (:func:`sampled_softmax_loss`): every other row's positive
item is a negative, corrected by the log of its sampling probability (the "log-Q correction" of
Yi et al., RecSys 2019) so that popular items are not pushed down merely for being frequent in
batches, and each row may bring a hard negative: an item that was shown for the search and
skipped.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from searchrank.core import schema as S
from searchrank.core.checkpoint import WEIGHTS
from searchrank.core.dense_prior import DensePrior
from searchrank.core.errors import InputError
from searchrank.core.text import analyze

DESCRIPTION = "retriever.json"
VOCABULARIES = "ids.npz"
ITEM_TOKENS = "item_tokens.npy"
FORMAT_VERSION = 1
ITEM_TEXT_COLUMNS = ("name", "artist_name", "keywords")
"""Catalogue columns joined into the item tower's text; missing ones are skipped."""
ITEM_METADATA_COLUMNS = ("item_type", "market", "language")
"""Catalogue columns that become metadata tokens of the item tower (``"item_type track"``)."""


@dataclass(frozen=True)
class TwoTowerConfig:
    """Shape of the two-tower model.

    Attributes:
        text_buckets: rows of the hashed token table (row 0 is padding).
        max_tokens: tokens kept per text (words first, then trigrams).
        text_dim: width of a token embedding.
        id_dim: width of a listener or item embedding.
        hidden: width of each tower's MLP.
        out_dim: width of the shared embedding space.
        temperature: softmax temperature of the training loss.
        id_dropout: share of listener and item ids replaced by "unknown" while training.
        n_users: listeners with an embedding (plus row 0 for unknown).
        n_items: items with an embedding (plus row 0 for unknown).
    """

    text_buckets: int = 1 << 17
    max_tokens: int = 48
    text_dim: int = 128
    id_dim: int = 32
    hidden: int = 512
    out_dim: int = 128
    temperature: float = 0.05
    id_dropout: float = 0.1
    n_users: int = 0
    n_items: int = 0

    def __post_init__(self) -> None:
        for name in ("text_buckets", "max_tokens", "text_dim", "id_dim", "hidden", "out_dim"):
            if getattr(self, name) < 1:
                raise InputError(name, getattr(self, name), "must be a positive integer")
        if not 0 < self.temperature <= 1:
            raise InputError("temperature", self.temperature, "must lie in (0, 1]")
        if not 0 <= self.id_dropout < 1:
            raise InputError("id_dropout", self.id_dropout, "must lie in [0, 1)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def two_tower_item_text(
    catalogue: pd.DataFrame,
) -> tuple[np.ndarray, list[str], list[list[str]]]:
    """What the item tower reads of each catalogue item: its text and its metadata tokens.

    The text is the item's name, artist and tags (:data:`ITEM_TEXT_COLUMNS`, those the catalogue
    has, joined by spaces); the metadata tokens name the item type, market and language
    (:data:`ITEM_METADATA_COLUMNS`). The served BM25 reads less
    (:func:`searchrank.core.candidates.lexical_text`).

    Args:
        catalogue: one row per item with ``item_id`` and at least one text column; a repeated
            item keeps its first row.

    Returns:
        (item ids (m,), one text per item, metadata tokens per item such as
        ``["item_type track", "market SE"]``).

    Raises:
        InputError: the catalogue has no ``item_id`` or no text column at all.
    """
    text_columns = [c for c in ITEM_TEXT_COLUMNS if c in catalogue.columns]
    if S.ITEM_ID not in catalogue.columns or not text_columns:
        raise InputError(
            "catalogue columns",
            list(catalogue.columns),
            f"must include {S.ITEM_ID} and at least one of {list(ITEM_TEXT_COLUMNS)}",
        )
    items = catalogue.drop_duplicates(S.ITEM_ID)
    texts = items[text_columns].fillna("").astype(str).agg(" ".join, axis=1).tolist()
    metadata = [c for c in ITEM_METADATA_COLUMNS if c in items.columns]
    values = items[metadata].fillna("").astype(str).to_numpy()
    extra = [
        [f"{column} {value}" for column, value in zip(metadata, row, strict=True) if value]
        for row in values
    ]
    return items[S.ITEM_ID].to_numpy(dtype=np.int64), texts, extra


def text_tokens(text: str) -> list[str]:
    """A text's words, then the padded trigrams of its words, in a fixed order."""
    analyzed = analyze(text)
    words = sorted(analyzed.words)
    return [*(f"w {w}" for w in words), *sorted(analyzed.trigrams)]


def hash_tokens(
    texts: Sequence[str], buckets: int, max_tokens: int, extra: Sequence[Sequence[str]] = ()
) -> np.ndarray:
    """Hashed token ids of each text, shape (n, max_tokens), 0-padded.

    Args:
        texts: raw texts (normalized here).
        buckets: size of the hashed table; ids lie in [1, buckets).
        max_tokens: tokens kept per text.
        extra: per text, metadata tokens (for example ``"type track"``) put first.
    """
    out = np.zeros((len(texts), max_tokens), dtype=np.int64)
    cache: dict[str, int] = {}
    for row, text in enumerate(texts):
        tokens = [*(extra[row] if extra else ()), *text_tokens(text)][:max_tokens]
        for col, token in enumerate(tokens):
            code = cache.get(token)
            if code is None:
                code = cache[token] = zlib.crc32(token.encode()) % (buckets - 1) + 1
            out[row, col] = code
    return out


class IdVocabulary:
    """Dense indices 1..n of known ids (listeners or items); 0 for any other id."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.unique(np.asarray(ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        asked = np.asarray(ids, dtype=np.int64)
        at = np.searchsorted(self.ids, asked)
        found = (at < len(self.ids)) & (self.ids[np.minimum(at, len(self.ids) - 1)] == asked)
        return np.where(found, at + 1, 0).astype(np.int64)


class _Tower(nn.Module):
    """Text bag + id embedding -> MLP with a linear skip from the text -> unit vector."""

    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        width = config.text_dim + config.id_dim
        last = nn.Linear(config.hidden, config.out_dim)
        self.mlp = nn.Sequential(nn.Linear(width, config.hidden), nn.GELU(), last)
        self.skip = nn.Linear(config.text_dim, config.out_dim, bias=False)
        # At initialization the tower is a rotation of the mean token vector (the two towers
        # share the rotation), so query-item similarity starts as token overlap, a lexical
        # retriever, and training refines it.
        nn.init.orthogonal_(self.skip.weight)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, text: Tensor, ident: Tensor) -> Tensor:
        return F.normalize(self.skip(text) + self.mlp(torch.cat([text, ident], dim=-1)), dim=-1)


class TwoTower(nn.Module):
    """Query and item towers over one shared hashed-token table."""

    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.text = nn.EmbeddingBag(
            config.text_buckets, config.text_dim, mode="mean", padding_idx=0
        )
        nn.init.normal_(self.text.weight, std=config.text_dim**-0.5)
        with torch.no_grad():
            self.text.weight[0].zero_()
        self.users = nn.Embedding(config.n_users + 1, config.id_dim, padding_idx=0)
        self.items = nn.Embedding(config.n_items + 1, config.id_dim, padding_idx=0)
        self.query_tower = _Tower(config)
        self.item_tower = _Tower(config)
        with torch.no_grad():  # one rotation for both: initial similarity is token overlap
            self.item_tower.skip.weight.copy_(self.query_tower.skip.weight)

    def _ids(self, ids: Tensor) -> Tensor:
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(ids.shape, device=ids.device) >= self.config.id_dropout
            ids = ids * keep
        return ids

    def encode_queries(self, tokens: Tensor, users: Tensor) -> Tensor:
        """(n, out_dim) unit vectors of queries: hashed tokens (n, T) and user indices (n,)."""
        return self.query_tower(self.text(tokens), self.users(self._ids(users)))

    def encode_items(self, tokens: Tensor, items: Tensor) -> Tensor:
        """(n, out_dim) unit vectors of items: hashed tokens (n, T) and item indices (n,)."""
        return self.item_tower(self.text(tokens), self.items(self._ids(items)))

    def forward(
        self, query_tokens: Tensor, users: Tensor, item_tokens: Tensor, items: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Both towers at once (what DistributedDataParallel wraps): query and item vectors."""
        return self.encode_queries(query_tokens, users), self.encode_items(item_tokens, items)


def sampled_softmax_loss(
    queries: Tensor,
    positives: Tensor,
    positive_ids: Tensor,
    log_q: Tensor,
    temperature: float,
    hard: Tensor | None = None,
    hard_ids: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of each row's positive against the batch's other positives and hard
    negatives.

    Args:
        queries: (B, d) query vectors.
        positives: (B, d) vectors of each row's positive item.
        positive_ids: (B,) item indices of the positives; a column holding the row's own item
            again (the same item positive for two rows) is masked out, not counted as negative.
        log_q: (B,) log sampling probability of each positive, subtracted from its column's
            logits (in-batch negatives are drawn in proportion to an item's frequency).
        temperature: logits are cosine similarities divided by this.
        hard: (H, d) vectors of hard negatives, shared by every row (no log-Q correction: they
            are not drawn by frequency).
        hard_ids: (H,) item indices of ``hard``; 0 marks a missing negative.
    """
    logits = queries @ positives.T / temperature - log_q.unsqueeze(0)
    rows = torch.arange(len(queries), device=queries.device)
    repeat = positive_ids.unsqueeze(0) == positive_ids.unsqueeze(1)
    repeat[rows, rows] = False
    logits = logits.masked_fill(repeat, float("-inf"))
    if hard is not None and hard_ids is not None:
        hard_logits = queries @ hard.T / temperature
        invalid = (hard_ids.unsqueeze(0) == positive_ids.unsqueeze(1)) | (hard_ids == 0)
        logits = torch.cat([logits, hard_logits.masked_fill(invalid, float("-inf"))], dim=1)
    return F.cross_entropy(logits, rows)


Encoder = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def encode_in_batches(
    encode: Encoder,
    tokens: np.ndarray,
    ids: np.ndarray,
    batch_size: int = 4096,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Vectors (n, d) of rows of hashed ``tokens`` (n, T) and vocabulary ``ids`` (n,) through
    one tower's ``encode``, in evaluation mode."""
    parts = [
        encode(
            torch.from_numpy(tokens[start : start + batch_size]).to(device),
            torch.from_numpy(ids[start : start + batch_size]).to(device),
        )
        .float()
        .cpu()
        .numpy()
        for start in range(0, len(tokens), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


@dataclass
class Retriever:
    """A trained two-tower retriever with everything needed to embed queries and items.

    Attributes:
        model: the towers (eval mode).
        users: the listener vocabulary of the user embedding.
        items: the item vocabulary of the item embedding.
        item_ids: the catalogue items known at training time, in ``item_tokens`` order.
        item_tokens: (m, T) hashed tokens of each item's text and metadata.
        description: what training recorded (config, metrics, data).
        prior: the items' recent popularity that retrieval adds to the scores
            (:mod:`searchrank.core.dense_prior`); ``None``: none (a model saved before it).
    """

    model: TwoTower
    users: IdVocabulary
    items: IdVocabulary
    item_ids: np.ndarray
    item_tokens: np.ndarray
    description: dict[str, Any]
    prior: DensePrior | None = None

    def embed_queries(
        self, queries: Sequence[str], user_ids: Sequence[int], batch_size: int = 4096
    ) -> np.ndarray:
        """(n, d) float32 unit vectors of (query text, listener id) pairs."""
        config = self.model.config
        tokens = hash_tokens(queries, config.text_buckets, config.max_tokens)
        users = self.users.index(np.asarray(user_ids, dtype=np.int64))
        return encode_in_batches(self.model.encode_queries, tokens, users, batch_size)

    def embed_items(self, batch_size: int = 4096) -> np.ndarray:
        """(m, d) float32 unit vectors of every item in ``item_ids``."""
        indices = self.items.index(self.item_ids)
        return encode_in_batches(self.model.encode_items, self.item_tokens, indices, batch_size)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / WEIGHTS)
        np.savez(
            folder / VOCABULARIES, users=self.users.ids, items=self.items.ids, order=self.item_ids
        )
        np.save(folder / ITEM_TOKENS, self.item_tokens)
        description = {
            **self.description,
            "format_version": FORMAT_VERSION,
            "model": self.model.config.as_dict(),
        }
        (folder / DESCRIPTION).write_text(json.dumps(description, indent=2, default=str))
        if self.prior is not None:
            self.prior.save(folder)

    @classmethod
    def load(cls, folder: Path) -> Retriever:
        files = (WEIGHTS, DESCRIPTION, VOCABULARIES, ITEM_TOKENS)
        if not all((folder / name).is_file() for name in files):
            raise InputError("retriever", str(folder), f"must be a folder with {list(files)}")
        description: dict[str, Any] = json.loads((folder / DESCRIPTION).read_text())
        if description.get("format_version") != FORMAT_VERSION:
            raise InputError(
                "retriever.json format_version",
                description.get("format_version"),
                f"must be {FORMAT_VERSION}",
            )
        model = TwoTower(TwoTowerConfig(**description["model"]))
        model.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu"))
        model.eval()
        ids = np.load(folder / VOCABULARIES)
        vocab_users, vocab_items = IdVocabulary(ids["users"]), IdVocabulary(ids["items"])
        tokens = np.load(folder / ITEM_TOKENS)
        prior = DensePrior.load(folder)
        return cls(model, vocab_users, vocab_items, ids["order"], tokens, description, prior)
