"""Residual k-means semantic IDs on clustered synthetic vectors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from searchrank.core.errors import InputError
from searchrank.core.semantic_ids import SemanticIdConfig, SemanticIds, fit_semantic_ids

CENTRES = 40
SMALL = SemanticIdConfig(levels=3, codes=16, iterations=10, seed=3)


def _clustered(n: int = 2_000, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, d), centre of each) around ``CENTRES`` well separated centres."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.normal(size=(CENTRES, d))
    labels = rng.integers(0, CENTRES, n)
    return (centres[labels] + 0.3 * rng.normal(size=(n, d))).astype(np.float32), labels


@pytest.fixture(scope="module")
def fitted() -> tuple[SemanticIds, np.ndarray, np.ndarray]:
    vectors, centres = _clustered()
    return fit_semantic_ids(np.arange(100, 2_100), vectors, SMALL), vectors, centres


def _same_code_share(codes: np.ndarray, centres: np.ndarray, same_centre: bool) -> float:
    """The share of item pairs with the same level-1 code among pairs of the same centre (or
    of different centres)."""
    pairs = np.triu(np.ones((len(codes), len(codes)), dtype=bool), k=1)
    wanted = pairs & ((centres[:, None] == centres[None, :]) == same_centre)
    return float((codes[:, None] == codes[None, :])[wanted].mean())


def test_items_of_one_centre_share_their_first_code(
    fitted: tuple[SemanticIds, np.ndarray, np.ndarray],
) -> None:
    ids, _, centres = fitted
    together = _same_code_share(ids.codes[:, 0], centres, same_centre=True)
    apart = _same_code_share(ids.codes[:, 0], centres, same_centre=False)
    assert together > 0.9 and apart < 0.15, (together, apart)


def test_codes_are_in_range_and_the_dedup_column_makes_them_unique(
    fitted: tuple[SemanticIds, np.ndarray, np.ndarray],
) -> None:
    ids, _, _ = fitted
    assert ids.codes.shape == (2_000, 4) and ids.codes.dtype == np.int64
    for level, codebook in enumerate(ids.codebooks):
        assert codebook.shape == (16, 16) and codebook.dtype == np.float32
        assert ids.codes[:, level].min() >= 0 and ids.codes[:, level].max() < len(codebook)
    assert len(np.unique(ids.codes, axis=0)) == 2_000
    report = ids.report()
    assert ids.codes[:, -1].min() == 0 and ids.codes[:, -1].max() + 1 == report["max_duplicates"]


def test_the_dedup_column_numbers_shared_codes_by_ascending_item_id() -> None:
    vectors = np.array([[0.0, 0.0]] * 3 + [[5.0, 5.0]] * 2, dtype=np.float32)
    config = SemanticIdConfig(levels=1, codes=2)
    ids = fit_semantic_ids(np.array([30, 10, 20, 7, 3]), vectors, config)
    assert ids.codes[:, -1].tolist() == [2, 0, 1, 1, 0]
    assert ids.report()["collisions"] == 1.0 and ids.report()["max_duplicates"] == 3


def test_encoding_the_training_vectors_gives_their_codes(
    fitted: tuple[SemanticIds, np.ndarray, np.ndarray],
) -> None:
    ids, vectors, _ = fitted
    np.testing.assert_array_equal(ids.encode(vectors), ids.codes[:, :3])
    with pytest.raises(InputError, match="vectors"):
        ids.encode(vectors[:, :5])


def test_lookup_goes_both_ways(fitted: tuple[SemanticIds, np.ndarray, np.ndarray]) -> None:
    ids, _, _ = fitted
    for row in (0, 17, 1_999):
        code = ids.codes[row]
        assert ids.item_of(tuple(code.tolist())) == ids.item_ids[row]
        np.testing.assert_array_equal(ids.code_of(int(ids.item_ids[row])), code)
    assert ids.item_of((99, 99, 99, 99)) is None
    with pytest.raises(InputError, match="item_id"):
        ids.code_of(5)


def test_the_report_is_sane(fitted: tuple[SemanticIds, np.ndarray, np.ndarray]) -> None:
    ids, _, _ = fitted
    report = ids.report()
    assert report["items"] == 2_000 and report["levels"] == 3
    assert report["codes_per_level"] == [16, 16, 16]
    assert all(0.0 < usage <= 1.0 for usage in report["code_usage"])
    assert all(1.0 <= p <= 16.0 for p in report["perplexity"])
    assert 0.0 <= report["collisions"] <= 1.0
    assert 0.0 <= report["reconstruction_error"] < 1.0


def test_more_levels_reconstruct_better() -> None:
    vectors, _ = _clustered(600, seed=1)
    errors = [
        fit_semantic_ids(
            np.arange(600), vectors, SemanticIdConfig(levels=levels, codes=8)
        ).report()["reconstruction_error"]
        for levels in (1, 2, 3)
    ]
    assert errors[0] > errors[1] > errors[2], errors


def test_save_and_load_round_trip(
    fitted: tuple[SemanticIds, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ids, vectors, _ = fitted
    ids.save(tmp_path / "ids")
    again = SemanticIds.load(tmp_path / "ids")
    assert again.config == ids.config and again.report() == ids.report()
    np.testing.assert_array_equal(again.item_ids, ids.item_ids)
    np.testing.assert_array_equal(again.codes, ids.codes)
    for loaded, saved in zip(again.codebooks, ids.codebooks, strict=True):
        np.testing.assert_array_equal(loaded, saved)
    np.testing.assert_array_equal(again.encode(vectors[:50]), ids.encode(vectors[:50]))


def test_a_seed_fixes_the_fit_and_sampling_still_codes_every_item() -> None:
    vectors, _ = _clustered(800, seed=2)
    config = SemanticIdConfig(levels=2, codes=8, sample=300, seed=5)
    first = fit_semantic_ids(np.arange(800), vectors, config)
    second = fit_semantic_ids(np.arange(800), vectors, config)
    np.testing.assert_array_equal(first.codes, second.codes)
    for a, b in zip(first.codebooks, second.codebooks, strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.codes.shape == (800, 3) and len(np.unique(first.codes, axis=0)) == 800


def test_fewer_distinct_vectors_than_codes_shrink_k() -> None:
    vectors = np.repeat(np.eye(3, 4, dtype=np.float32), [4, 3, 3], axis=0)
    ids = fit_semantic_ids(np.arange(10), vectors, SemanticIdConfig(levels=2, codes=8))
    assert ids.report()["codes_per_level"] == [3, 1]
    assert len(np.unique(ids.codes[:, 0])) == 3 and ids.report()["reconstruction_error"] == 0.0
    assert ids.report()["max_duplicates"] == 4


@pytest.mark.parametrize(
    ("field", "fit"),
    [
        ("levels", lambda: SemanticIdConfig(levels=0)),
        ("codes", lambda: SemanticIdConfig(codes=1)),
        ("codes", lambda: SemanticIdConfig(codes=70_000)),
        ("iterations", lambda: SemanticIdConfig(iterations=0)),
        ("sample", lambda: SemanticIdConfig(sample=1)),
        ("item_ids", lambda: fit_semantic_ids(np.arange(3), np.ones((4, 2)), SMALL)),
        ("vectors", lambda: fit_semantic_ids(np.arange(1), np.ones((1, 2)), SMALL)),
        ("vectors", lambda: fit_semantic_ids(np.arange(2), np.array([[0.0], [np.nan]]), SMALL)),
        ("item_ids", lambda: fit_semantic_ids(np.array([4, 4]), np.eye(2), SMALL)),
        ("vectors", lambda: fit_semantic_ids(np.arange(2), np.ones(2), SMALL)),
    ],
)
def test_bad_input_is_refused_naming_the_field(field: str, fit: Callable[[], object]) -> None:
    with pytest.raises(InputError, match=field):
        fit()
