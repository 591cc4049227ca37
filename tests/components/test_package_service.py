"""``package_service``: refuse the unblessed, save with lineage, build, export, infra-validate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from searchrank.components.package_service.config import PackageConfig
from searchrank.components.package_service.logic import (
    CANDIDATE_SCORE,
    Lineage,
    package_service,
    retriever_parts,
)
from searchrank.core.candidates import RetrieverParts
from searchrank.core.champion import resolve_champion
from searchrank.core.checkpoint import DESCRIPTION, WEIGHTS
from searchrank.core.errors import InputError
from searchrank.core.scoring import score_model
from searchrank.features import tables as T


@pytest.fixture(scope="module")
def golden(
    tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path], ranker_checkpoint: Path
) -> Path:
    """What evaluate's scores Dataset holds: the test rows and the candidate's offline scores."""
    test = pd.read_parquet(splits["test"])
    test[CANDIDATE_SCORE] = score_model(test, ranker_checkpoint)
    path = tmp_path_factory.mktemp("golden") / "scores.parquet"
    test.to_parquet(path, index=False)
    return path


def _assert_refused(
    model: Path,
    blessed: bool,
    golden: Path,
    dataset_dir: Path,
    feature_repo: Path,
    tmp_path: Path,
    match: str,
) -> None:
    """package_service refuses with an error matching ``match`` and writes no Bento."""
    with pytest.raises(InputError, match=match):
        package_service(
            model,
            blessed,
            golden,
            dataset_dir / T.file_name(T.CATALOGUE),
            feature_repo,
            tmp_path / "bento",
            tmp_path,
        )
    assert not (tmp_path / "bento").exists()


def test_an_unblessed_model_is_refused_before_anything_is_saved(
    ranker_checkpoint: Path, golden: Path, dataset_dir: Path, feature_repo: Path, tmp_path: Path
) -> None:
    _assert_refused(
        ranker_checkpoint, False, golden, dataset_dir, feature_repo, tmp_path, "blessed"
    )


@pytest.mark.slow
def test_the_blessed_model_is_packaged_with_lineage_and_passes_infra_validation(
    ranker_checkpoint: Path, golden: Path, dataset_dir: Path, feature_repo: Path, tmp_path: Path
) -> None:
    import bentoml

    result = package_service(
        ranker_checkpoint,
        True,
        golden,
        dataset_dir / T.file_name(T.CATALOGUE),
        feature_repo,
        tmp_path / "bento",
        tmp_path / "work",
        PackageConfig(golden_searches=10, rounds=2, p99_budget_ms=5_000),
        Lineage(
            kfp_run="run-42",
            training_dataset_uri="s3://bucket/train",
            checkpoint_uri="s3://bucket/run-42/train-ranker/model",
        ),
    )
    validation = result.validation
    assert validation.passed, validation.reasons
    assert validation.searches == 10 and validation.requests == 20
    assert validation.max_abs_diff <= 1e-4
    # Every golden search is also sent with the filter on, to /rank and to /search.
    assert validation.explicit["filtered_lists"] >= 20 and validation.explicit["leaked"] == 0
    assert (tmp_path / "bento").stat().st_size > 0
    model = bentoml.models.get(result.ranker_tag)
    assert model.info.labels["feature_service"] == "ranker_v1"
    assert model.info.labels["kfp_run"] == "run-42"
    assert len(model.info.labels["feature_service_version"]) == 12
    assert model.info.metadata["training_dataset_uri"] == "s3://bucket/train"
    assert model.info.metadata["checkpoint_uri"] == "s3://bucket/run-42/train-ranker/model"
    assert bentoml.bentos.get(result.bento_tag).info.labels["kfp_run"] == "run-42"
    assert "PASSED" in result.markdown()
    # The archive is what `bentoml import` reads (an xz tar, as BentoML's own export writes).
    bentoml.bentos.delete(result.bento_tag)
    imported = bentoml.bentos.import_bento(str(tmp_path / "bento"))
    assert str(imported.tag) == result.bento_tag
    # The next run can name this Bento as its champion, exported or by its tag.
    for number, reference in enumerate((str(tmp_path / "bento"), result.bento_tag)):
        champion = resolve_champion(reference, tmp_path / f"champion-{number}")
        for name in (WEIGHTS, DESCRIPTION):
            assert (champion.model_dir / name).read_bytes() == (
                ranker_checkpoint / name
            ).read_bytes(), (reference, name)


def test_only_blessed_retrieval_parts_join_the_service(tmp_path: Path) -> None:
    two_tower, index, intent, routing = (tmp_path / n for n in ("tt", "ann", "intent", "r.json"))
    everything = retriever_parts(two_tower, index, intent, routing, True, True)
    assert everything == RetrieverParts(two_tower, index, intent, routing)
    assert retriever_parts(two_tower, index, intent, routing, False, True) == RetrieverParts(
        intent=intent
    ), "an unblessed retriever leaves BM25 alone, and routing has nothing to route"
    assert retriever_parts(two_tower, index, intent, routing, True, False) == RetrieverParts(
        two_tower, index, intent
    ), "an unblessed intent model still feeds the ranker but does not route"
    assert retriever_parts(None, None, None, None, True, True) == RetrieverParts()
    generative, train = tmp_path / "generative", tmp_path / "train.parquet"
    third = retriever_parts(two_tower, index, intent, routing, True, True, generative, True, train)
    assert third == RetrieverParts(two_tower, index, intent, routing, generative, train)
    assert retriever_parts(
        two_tower, index, intent, routing, True, False, generative, True, train
    ) == RetrieverParts(two_tower, index, intent, train=train), (
        "without the routing, which holds its weights, the generative retriever stays out"
    )
    assert retriever_parts(two_tower, index, intent, routing, True, True, generative, False) == (
        everything
    ), "an unblessed generative retriever stays out"


def test_a_ranker_that_reads_intent_is_not_packaged_without_the_intent_model(
    ranker_checkpoint: Path,
    golden: Path,
    dataset_dir: Path,
    feature_repo: Path,
    tmp_path: Path,
) -> None:
    import shutil

    from searchrank.core.checkpoint import DESCRIPTION, read_description
    from searchrank.core.intent import intent_column

    model = tmp_path / "model"
    shutil.copytree(ranker_checkpoint, model)
    description = read_description(model)
    processor = description["processor"]
    processor["numeric"].append({"column": intent_column("track"), "kind": "numeric"})
    processor["mean"].append(0.0)
    processor["std"].append(1.0)
    (model / DESCRIPTION).write_text(json.dumps(description))
    _assert_refused(model, True, golden, dataset_dir, feature_repo, tmp_path, "intent")
