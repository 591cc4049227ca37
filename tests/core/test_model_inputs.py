"""Feature encoding, slates and the context-aware ranker."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from searchrank.core.contract import ContractColumn, FeatureContract, Role
from searchrank.core.domain import Domain, count, one_of, rate
from searchrank.core.errors import InputError
from searchrank.core.features import PRESENCE_SUFFIX, FeatureProcessor, infer_roles
from searchrank.core.model import ContextAwareRanker, InferenceRanker, RankerConfig, soft_rank
from searchrank.core.slates import concat_slates, scores_to_rows, to_slates

CONTRACT = FeatureContract(
    "v_service",
    tuple(
        ContractColumn(f"v__{name}", "v", name, dtype, domain, role, ("item",))
        for name, dtype, domain, role in (
            ("plays", "Int64", count(), Role.FEATURE),
            ("share", "Float32", rate(), Role.FEATURE),
            ("genre", "String", one_of(["pop", "rock"]), Role.FEATURE),
            ("name", "String", Domain(required=True), Role.FEATURE),
            ("feature_timestamp", "UnixTimestamp", Domain(audit=True), Role.AUDIT),
        )
    ),
)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "search_id": [1, 1, 1, 2, 2],
            "item_id": [10, 11, 12, 10, 13],
            "label": [2, 0, 1, 0, 3],
            "v__plays": [0.0, 10.0, np.nan, 100.0, 3.0],
            "v__share": [0.1, 0.5, np.nan, 0.9, 0.2],
            "v__genre": ["pop", "rock", None, "pop", "jazz"],
            "v__name": ["a", "b", "c", "d", "e"],
            "v__feature_timestamp": pd.to_datetime(
                ["2026-01-01"] * 2 + [None] + ["2026-01-01"] * 2, utc=True
            ),
        }
    )


def test_roles_follow_the_feature_domains() -> None:
    roles = {r.column: r for r in infer_roles(list(frame().columns), CONTRACT)}
    assert roles["v__plays"].kind == "numeric" and roles["v__plays"].log1p
    assert roles["v__share"].kind == "numeric" and not roles["v__share"].log1p
    assert roles["v__genre"].kind == "categorical"
    assert "v__name" not in roles, "free text is no model input"
    assert roles[f"v{PRESENCE_SUFFIX}"].kind == "presence"


def test_processor_standardizes_with_training_statistics_and_round_trips() -> None:
    train = frame().iloc[:4]  # no "jazz" in training
    processor = FeatureProcessor.fit(train, infer_roles(list(train.columns), CONTRACT))
    dense, codes = processor.transform(frame())
    plays = processor.numeric_names.index("v__plays")
    present = ~np.isnan(train["v__plays"].to_numpy())
    assert abs(dense[:4][present, plays].mean()) < 1e-6  # standardized over the training rows
    assert dense[:4][~present, plays].tolist() == [0.0]  # missing → the mean
    presence = processor.numeric_names.index(f"v{PRESENCE_SUFFIX}")
    assert dense[2, presence] < 0 < dense[0, presence]
    genre = processor.categorical.index("v__genre")
    assert codes[:, genre].tolist() == [1, 2, 0, 1, 0]  # pop, rock, missing, pop, unseen jazz
    again = FeatureProcessor.from_json(processor.to_json())
    assert np.array_equal(again.transform(frame())[0], dense)
    assert json.loads(processor.to_json())["vocabularies"]["v__genre"] == ["pop", "rock"]


def test_encoding_in_parts_from_lists_equals_transform() -> None:
    """The service encodes item columns once and request columns per request, from lists of
    stored values (None when missing): the parts must equal the whole frame's encoding."""
    data = frame()
    processor = FeatureProcessor.fit(data.iloc[:4], infer_roles(list(data.columns), CONTRACT))
    dense, codes = processor.transform(data)

    def as_list(column: str) -> list[object]:
        values = data[column].astype(object)
        return [None if pd.isna(v) else v for v in values]

    sources = [as_list(role.source) for role in processor.numeric]
    for part in ([0], [1, 2], list(range(len(sources)))):
        encoded = processor.dense_columns(part, [sources[j] for j in part], len(data))
        assert encoded.dtype == np.float32
        assert np.array_equal(encoded, dense[:, part])
    for j, column in enumerate(processor.categorical):
        assert np.array_equal(processor.code_column(j, as_list(column)), codes[:, j])
    text = processor.dense_columns([0], [["3", "x", None, 1, True]], 5)
    assert np.isfinite(text).all(), "text where a number belongs is missing, not an error"


def test_processor_names_a_missing_feature() -> None:
    processor = FeatureProcessor.fit(frame(), infer_roles(list(frame().columns), CONTRACT))
    with pytest.raises(InputError, match="v__share"):
        processor.transform(frame().drop(columns=["v__share"]))


def test_slates_pad_cut_and_map_back() -> None:
    groups = np.array([5, 5, 5, 7, 9, 9])
    dense = np.arange(12, dtype=np.float32).reshape(6, 2)
    slates = to_slates(dense, np.zeros((6, 1), np.int64), np.arange(6.0), groups, max_length=2)
    assert slates.mask.tolist() == [[True, True], [True, False], [True, True]]
    assert slates.rows.tolist() == [[0, 1], [3, -1], [4, 5]]
    scores = np.array([[1.0, 2.0], [3.0, 0.0], [5.0, 6.0]])
    assert scores_to_rows(scores, slates, 6, fill=-1).tolist() == [1, 2, -1, 3, 5, 6]
    with pytest.raises(InputError, match="groups"):
        to_slates(
            dense, np.zeros((6, 1), np.int64), np.arange(6.0), np.array([1, 1, 2, 1, 3, 3]), 4
        )


def test_slates_carry_positions_only_when_given() -> None:
    groups = np.array([5, 5, 5, 7, 9, 9])
    dense, codes = np.zeros((6, 2), np.float32), np.zeros((6, 1), np.int64)
    plain = to_slates(dense, codes, np.arange(6.0), groups, max_length=2)
    assert plain.positions is None and plain.take(np.array([1])).positions is None
    positions = np.array([0, 1, 2, 0, 1, 0])
    slates = to_slates(dense, codes, np.arange(6.0), groups, 2, positions=positions)
    assert slates.positions is not None
    assert slates.positions.tolist() == [[0, 1], [0, 0], [1, 0]]  # cut, padded with 0
    taken = slates.take(np.array([2, 0]))
    assert taken.positions is not None and taken.positions.tolist() == [[1, 0], [0, 1]]
    both = concat_slates([slates, taken])
    assert both.positions is not None and len(both) == 5 == len(both.positions)
    assert concat_slates([plain, plain]).positions is None
    with pytest.raises(ValueError, match="positions"):
        concat_slates([slates, plain])
    with pytest.raises(InputError, match="positions"):
        to_slates(dense, codes, np.arange(6.0), groups, 2, positions=positions[:5])


def ranker(**overrides: object) -> ContextAwareRanker:
    torch.manual_seed(0)
    config = RankerConfig(n_numeric=4, cardinalities=[3, 5], dropout=0.0, **overrides)  # type: ignore[arg-type]
    return ContextAwareRanker(config).eval()


def inputs(batch: int = 2, length: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    dense = torch.randn(batch, length, 4, generator=generator)
    codes = torch.randint(0, 3, (batch, length, 2), generator=generator)
    return dense, codes, torch.ones(batch, length, dtype=torch.bool)


def test_scores_are_permutation_equivariant_and_ignore_padding() -> None:
    model = ranker()
    dense, codes, mask = inputs()
    with torch.no_grad():
        scores = model(dense, codes, mask)
        order = torch.tensor([3, 0, 5, 1, 4, 2])
        permuted = model(dense[:, order], codes[:, order], mask[:, order])
        padded = model(
            torch.cat([dense, torch.randn(2, 3, 4)], 1),
            torch.cat([codes, torch.zeros(2, 3, 2, dtype=torch.long)], 1),
            torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1),
        )
    assert torch.allclose(permuted, scores[:, order], atol=1e-5)
    assert torch.allclose(padded[:, :6], scores, atol=1e-5)
    assert (padded[:, 6:] == 0).all()


def test_an_all_padding_slate_gives_no_nan_and_gradients_flow() -> None:
    model = ranker()
    model.train()
    dense, codes, mask = inputs()
    mask[1] = False
    scores = model(dense, codes, mask)
    assert torch.isfinite(scores).all() and (scores[1] == 0).all()
    scores[0].sum().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.rank_key is not None and model.rank_key.weight.grad is not None


def test_the_traced_scorer_gives_the_eager_models_scores_at_any_list_shape() -> None:
    model = ranker()
    traced, eager = InferenceRanker(model), InferenceRanker(model, trace=False)
    assert isinstance(traced.forward, torch.jit.ScriptModule)
    rng = np.random.default_rng(2)
    lists = [  # lengths unlike the trace's example, batched together, and one alone
        {"dense": rng.normal(size=(n, 4)).astype(np.float32), "codes": rng.integers(0, 3, (n, 2))}
        for n in (1, 7, 130)
    ]
    for requests in (lists, lists[2:]):
        for got, want in zip(traced.score(requests), eager.score(requests), strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=1e-5)
    dense, codes, mask = inputs(batch=3, length=9)
    mask[0, 5:] = False
    mask[1] = False  # a list made only of padding
    with torch.no_grad():
        np.testing.assert_allclose(
            traced.forward(dense, codes, mask), model(dense, codes, mask), atol=1e-5
        )
    with pytest.raises(ValueError, match="eval mode"):
        InferenceRanker(ranker().train())


def test_soft_rank_orders_candidates_by_their_keys() -> None:
    keys = torch.tensor([[[3.0], [-2.0], [10.0], [0.0]]]) * 20  # sharp: nearly hard ranks
    mask = torch.tensor([[True, True, True, False]])
    ranks = soft_rank(keys, mask)[0, :, 0]
    assert torch.allclose(ranks[:3], torch.tensor([0.5, 1.0, 0.0]), atol=1e-3)
    assert ranks[3] == 0.0
