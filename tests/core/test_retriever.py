"""The two-tower retriever's pieces: hashing, vocabularies, the loss, the towers, save/load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from searchrank.core.errors import InputError
from searchrank.core.retriever import (
    IdVocabulary,
    Retriever,
    TwoTower,
    TwoTowerConfig,
    hash_tokens,
    sampled_softmax_loss,
    text_tokens,
)


def test_text_tokens_are_words_then_trigrams_of_the_normalized_text() -> None:
    tokens = text_tokens("Beyoncé")
    assert tokens[0] == "w beyonce"
    assert {"  b", " be", "bey", "ce "} <= set(tokens[1:])
    assert text_tokens("BEYONCE") == tokens


def test_hash_tokens_pads_with_zero_and_puts_metadata_first() -> None:
    ids = hash_tokens(["halo", ""], buckets=1000, max_tokens=12, extra=[["type track"], []])
    assert ids.shape == (2, 12)
    assert (ids[1] == 0).all(), "an empty text has no tokens"
    assert ids[0, 0] == hash_tokens([""], 1000, 1, extra=[["type track"]])[0, 0]
    n_tokens = 1 + len(text_tokens("halo"))
    assert (ids[0, :n_tokens] > 0).all() and (ids[0, n_tokens:] == 0).all()
    again = hash_tokens(["halo", ""], buckets=1000, max_tokens=12, extra=[["type track"], []])
    assert (ids == again).all(), "hashing is stable"


def test_id_vocabulary_maps_unknown_ids_to_zero() -> None:
    vocabulary = IdVocabulary(np.array([30, 10, 20, 10]))
    assert len(vocabulary) == 3
    assert vocabulary.index([10, 20, 30, 5, 99]).tolist() == [1, 2, 3, 0, 0]


def _unit(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_sampled_softmax_matches_the_formula_with_log_q_and_hard_negatives() -> None:
    queries = positives = _unit([[1.0, 0.0], [0.0, 1.0]])
    ids = torch.tensor([1, 2])
    log_q = torch.log(torch.tensor([0.9, 0.1]))
    loss = sampled_softmax_loss(queries, positives, ids, log_q, temperature=1.0)
    row0 = [1 - math.log(0.9), 0 - math.log(0.1)]
    row1 = [0 - math.log(0.9), 1 - math.log(0.1)]
    expected = np.mean(
        [
            -row0[0] + math.log(sum(math.exp(v) for v in row0)),
            -row1[1] + math.log(sum(math.exp(v) for v in row1)),
        ]
    )
    assert float(loss) == pytest.approx(expected, rel=1e-5)

    # A hard negative counts for every row, except the row whose positive it is.
    hard = _unit([[0.0, 1.0]])
    uniform = torch.log(torch.tensor([0.5, 0.5]))
    with_hard = sampled_softmax_loss(
        queries, positives, ids, uniform, 1.0, hard=hard, hard_ids=torch.tensor([2])
    )
    shift = math.log(2.0)
    row0 = -(1 + shift) + math.log(math.exp(1 + shift) + math.exp(shift) + math.exp(0.0))
    row1 = -(1 + shift) + math.log(math.exp(shift) + math.exp(1 + shift))
    assert float(with_hard) == pytest.approx((row0 + row1) / 2, rel=1e-5)


def test_the_same_item_positive_twice_is_not_its_own_negative() -> None:
    queries = _unit([[1.0, 0.0], [0.0, 1.0]])
    positives = _unit([[1.0, 0.0], [0.0, 1.0]])
    loss = sampled_softmax_loss(
        queries,
        positives,
        torch.tensor([3, 3]),
        torch.zeros(2),
        1.0,
        hard=_unit([[1.0, 0.0]]),
        hard_ids=torch.tensor([0]),
    )
    assert float(loss) == pytest.approx(0.0, abs=1e-6), "only each row's own column remains"


def test_untrained_towers_already_match_names_by_their_trigrams() -> None:
    """The towers start as a lexical retriever: the query of a name, even misspelled, finds
    that name among others before any training (the skip path carries the token overlap)."""
    torch.manual_seed(0)
    names = [
        "midnight city",
        "halo",
        "bohemian rhapsody",
        "blinding lights",
        "levitating",
        "bad guy",
        "shape of you",
        "rolling in the deep",
        "take on me",
        "hey jude",
    ]
    config = TwoTowerConfig(text_buckets=1 << 14, n_users=1, n_items=len(names))
    model = TwoTower(config).eval()
    items = torch.from_numpy(hash_tokens(names, config.text_buckets, config.max_tokens))
    queries = torch.from_numpy(
        hash_tokens(["midnite city", "bohemian rapsody", "levitatin"], 1 << 14, config.max_tokens)
    )
    with torch.no_grad():
        item_vectors = model.encode_items(items, torch.zeros(len(names), dtype=torch.long))
        query_vectors = model.encode_queries(queries, torch.zeros(3, dtype=torch.long))
    assert torch.allclose(item_vectors.norm(dim=1), torch.ones(len(names)))
    assert (query_vectors @ item_vectors.T).argmax(dim=1).tolist() == [0, 2, 4]


def test_retriever_round_trips_through_its_folder(tmp_path: Path) -> None:
    torch.manual_seed(1)
    config = TwoTowerConfig(text_buckets=1 << 12, hidden=16, n_users=2, n_items=3)
    tokens = hash_tokens(["a b", "c d", "e f"], config.text_buckets, config.max_tokens)
    retriever = Retriever(
        TwoTower(config).eval(),
        IdVocabulary(np.array([7, 8])),
        IdVocabulary(np.array([1, 2, 3])),
        np.array([1, 2, 3]),
        tokens,
        {"metrics": {"val_recall@100": 0.5}},
    )
    retriever.save(tmp_path / "retriever")
    loaded = Retriever.load(tmp_path / "retriever")
    assert np.allclose(loaded.embed_items(), retriever.embed_items())
    assert np.allclose(
        loaded.embed_queries(["a"], [7]), retriever.embed_queries(["a"], [7]), atol=1e-6
    )
    assert loaded.description["metrics"] == {"val_recall@100": 0.5}


def test_a_folder_without_the_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="retriever"):
        Retriever.load(tmp_path)


@pytest.mark.parametrize(("field", "value"), [("temperature", 0.0), ("id_dropout", 1.0)])
def test_bad_model_shapes_are_refused(field: str, value: float) -> None:
    with pytest.raises(InputError, match=field):
        TwoTowerConfig(**{field: value})
