"""The generative retriever's model: training and decoding agree, and it learns to write IDs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchrank.core.constrained_decoding import CodeTrie, beam_search, beam_search_batch
from searchrank.core.errors import InputError
from searchrank.core.generative import (
    DECODE_BATCH,
    GenerativeConfig,
    GenerativeRetriever,
    GenerativeSource,
    IncrementalDecoder,
    decoding_step,
    generation_loss,
)
from searchrank.core.retriever import IdVocabulary, hash_tokens
from searchrank.core.semantic_ids import SemanticIdConfig, fit_semantic_ids

TINY = {"d_model": 32, "n_heads": 4, "ff_dim": 64, "encoder_layers": 1, "decoder_layers": 1}
WORDS = ("amber", "blue", "cosmic", "delta", "ember", "frost", "golden", "harbor", "iron", "jade")


def catalogue(n: int, seed: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Item ids, a distinct two-word name each, and semantic IDs (2 levels × 8 codes + de-dup)."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in WORDS for b in WORDS if a < b]  # distinct bags of words
    names = [" ".join(pairs[i]) for i in rng.choice(len(pairs), n, replace=False)]
    ids = np.arange(100, 100 + n, dtype=np.int64)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    semantic = fit_semantic_ids(ids, vectors, SemanticIdConfig(levels=2, codes=8, seed=seed))
    return ids, names, semantic.codes


def test_decoding_steps_give_the_teacher_forced_log_probabilities() -> None:
    torch.manual_seed(0)
    _, names, codes = catalogue(12, seed=1)
    config = GenerativeConfig(depth=codes.shape[1], codes=int(codes.max()) + 1, users=3, **TINY)
    model = GenerativeRetriever(config).eval()
    tokens = torch.as_tensor(hash_tokens(names[:1], config.text_buckets, 16))
    user = torch.tensor([2])
    code = torch.as_tensor(codes[:1])
    with torch.no_grad():
        forced = torch.log_softmax(model(tokens, user, code), dim=-1)[0]
    want = [float(forced[t, code[0, t]]) for t in range(config.depth)]
    step = decoding_step(model, tokens, user)
    got = [float(step(codes[:1, :t])[0, codes[0, t]]) for t in range(config.depth)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    wide = step(codes[:3, :1])
    assert wide.shape == (3, config.codes)
    np.testing.assert_allclose(np.exp(wide).sum(axis=1), 1.0, atol=1e-6)


def test_it_learns_to_write_the_ids_of_the_items_a_query_names() -> None:
    torch.manual_seed(0)
    ids, names, codes = catalogue(40, seed=2)
    config = GenerativeConfig(depth=codes.shape[1], codes=int(codes.max()) + 1, dropout=0.0, **TINY)
    model = GenerativeRetriever(config)
    tokens = torch.as_tensor(hash_tokens(names, config.text_buckets, 16))
    users = torch.zeros(len(ids), dtype=torch.int64)
    targets = torch.as_tensor(codes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss = generation_loss(model(tokens, users, targets), targets)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first

    trie = CodeTrie.from_codes(codes, ids)
    found = [
        beam_search(decoding_step(model, tokens[i : i + 1], users[i : i + 1]), trie, beam_size=5)
        for i in range(len(ids))
    ]
    assert all(len(results) == 5 for results in found)
    assert all(item in set(ids.tolist()) for results in found for item, _ in results)
    top1 = np.mean([results[0][0] == item for results, item in zip(found, ids, strict=True)])
    assert top1 >= 0.9, f"top-1 {top1:.2f}"


def test_the_incremental_decoder_gives_the_full_decoders_log_probabilities() -> None:
    torch.manual_seed(1)
    ids, names, codes = catalogue(40, seed=4)
    config = GenerativeConfig(depth=codes.shape[1], codes=int(codes.max()) + 1, users=3, **TINY)
    model = GenerativeRetriever(config).eval()
    tokens = torch.as_tensor(hash_tokens(names[:5], config.text_buckets, 16))
    users = torch.tensor([0, 1, 2, 3, 1])
    memory, padding = model.encode(tokens, users)
    incremental = IncrementalDecoder(model, memory, padding)
    calls = []

    def both(queries: np.ndarray, prefixes: np.ndarray, parents: np.ndarray | None) -> np.ndarray:
        fast = incremental(queries, prefixes, parents)
        full = [
            decoding_step(model, tokens[q : q + 1], users[q : q + 1])(prefix[None])
            for q, prefix in zip(queries, prefixes, strict=True)
        ]
        np.testing.assert_allclose(fast, np.concatenate(full), atol=1e-4)
        calls.append(len(prefixes))
        return fast

    beam_search_batch(both, CodeTrie.from_codes(codes, ids), len(tokens), beam_size=4)
    assert calls[0] == len(tokens) and len(calls) == config.depth and max(calls) > len(tokens)


def test_the_source_decodes_a_batch_of_queries_as_each_query_alone() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    ids = np.arange(100, 130, dtype=np.int64)
    vectors = rng.normal(size=(len(ids), 8)).astype(np.float32)
    semantic = fit_semantic_ids(ids, vectors, SemanticIdConfig(levels=2, codes=8, seed=3))
    config = GenerativeConfig(depth=3, codes=int(semantic.codes.max()) + 1, users=4, **TINY)
    source = GenerativeSource(GenerativeRetriever(config), IdVocabulary(np.arange(4)), semantic, 16)
    queries = [f"{WORDS[i % 10]} {WORDS[i * 7 % 10]}" for i in range(DECODE_BATCH + 5)]
    users = [i % 6 for i in range(len(queries))]  # 4 and 5 are unknown listeners
    found = source.retrieve(queries, users, n=4, beam_size=6)

    tokens = torch.as_tensor(hash_tokens(queries, config.text_buckets, 16))
    indices = torch.as_tensor(source.users.index(users))
    for i, items in enumerate(found):
        step = decoding_step(source.model, tokens[i : i + 1], indices[i : i + 1])
        assert items == [item for item, _ in beam_search(step, source.trie, 6, 4)]


@pytest.mark.parametrize(
    ("field", "value"), [("depth", 0), ("codes", 0), ("n_heads", 5), ("dropout", 1.0)]
)
def test_bad_shapes_are_named(field: str, value: float) -> None:
    with pytest.raises(InputError, match=field):
        GenerativeConfig(**{"depth": 3, "codes": 8, **TINY, field: value})
