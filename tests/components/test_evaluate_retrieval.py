"""``evaluate_retrieval``: routing fitted on validation searches, every system measured on the
test searches, and the retriever and intent routing blessed by their own rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from searchrank.components.evaluate_retrieval.logic import (
    SYSTEMS,
    RetrievalConfig,
    evaluate_retrieval,
    ranked_lists,
    wanted_searches,
)
from searchrank.components.train_retriever.logic import RetrieverSummary
from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex, AnnParams
from searchrank.core.candidates import CandidateGenerator, DenseRetriever
from searchrank.core.errors import InputError
from searchrank.core.intent import IntentModel
from searchrank.core.retrieval import TARGET_ITEM_ID, retrieval_metrics
from searchrank.core.retriever import Retriever
from searchrank.features import tables as T


@pytest.fixture(scope="module")
def generator(
    retriever_model: RetrieverSummary, intent_splits: dict[str, Path], catalogue: pd.DataFrame
) -> CandidateGenerator:
    retriever = Retriever.load(Path(retriever_model.model_dir))
    index = AnnIndex.build(retriever.item_ids, retriever.embed_items(), AnnParams())
    return CandidateGenerator.from_catalogue(
        catalogue, DenseRetriever(retriever, index), IntentModel.load(intent_splits["model"])
    )


@pytest.fixture(scope="module")
def tables(splits: dict[str, Path], dataset_dir: Path) -> dict[str, pd.DataFrame]:
    return {
        "valid": pd.read_parquet(splits["valid"]),
        "test": pd.read_parquet(splits["test"]),
        "searches": pd.read_parquet(dataset_dir / T.file_name(T.SEARCHES)),
    }


def test_every_system_is_measured_and_the_routed_one_is_what_the_routing_fuses(
    generator: CandidateGenerator, tables: dict[str, pd.DataFrame]
) -> None:
    evaluation, routing = evaluate_retrieval(
        tables["valid"], tables["test"], tables["searches"], generator
    )
    assert set(evaluation.systems) == set(SYSTEMS) == set(evaluation.by_intent)
    test = wanted_searches(tables["test"], RetrievalConfig().min_relevant_label, tables["searches"])
    assert evaluation.systems["bm25"]["searches"] == len(test)
    dense, lexical = ranked_lists(generator, test, 100)
    assert generator.intent is not None
    predicted = generator.intent.predict([generator.rewrite(q).query for q in test[S.QUERY]])
    routed = [routing.fuse(d, x, 100, p) for d, x, p in zip(dense, lexical, predicted, strict=True)]
    assert retrieval_metrics(routed, test["relevant"].tolist()) == evaluation.systems["routed"]
    assert set(routing.dense_share) <= set(generator.intent.classes)
    assert set(evaluation.by_intent["bm25"]) == set(tables["searches"]["intent"])
    intent = evaluation.intent
    assert intent["accuracy"] > intent["majority_accuracy"]
    assert evaluation.intent_blessed, "the intent model beats the majority class"
    assert evaluation.retriever_blessed == (evaluation.recall_ratio >= 1.0)
    assert "Recall@100" in evaluation.markdown()
    assert 'src="data:image/png;base64,' in evaluation.html()

    forms = set(tables["searches"]["query_form"])
    assert {s.split(" × ")[1] for s in evaluation.by_slice["routed"]} == forms
    assert set(evaluation.by_slice) == set(SYSTEMS)
    rewrites = evaluation.rewrites
    assert rewrites["misspelled"]["corrected"] > 0.5 and rewrites["prefix"]["completed"] > 0.3
    assert rewrites["exact"]["changed"] == rewrites["descriptive"]["changed"] == 0.0
    assert "by intent × how the query was typed" in evaluation.html()


def test_the_blessing_rules_follow_their_margins(
    generator: CandidateGenerator, tables: dict[str, pd.DataFrame]
) -> None:
    strict = RetrievalConfig(min_retrieval_gain=100.0, min_intent_gain=0.99)
    evaluation, _ = evaluate_retrieval(
        tables["valid"], tables["test"], tables["searches"], generator, strict
    )
    assert not evaluation.retriever_blessed and not evaluation.intent_blessed
    assert any("keeps BM25 alone" in r for r in evaluation.reasons)
    assert any("not routed" in r for r in evaluation.reasons)
    lenient = replace(strict, min_retrieval_gain=-0.99, min_intent_gain=0.0)
    evaluation, _ = evaluate_retrieval(
        tables["valid"], tables["test"], tables["searches"], generator, lenient
    )
    assert evaluation.retriever_blessed and not evaluation.reasons


def test_missing_parts_and_bad_margins_are_refused(
    generator: CandidateGenerator, tables: dict[str, pd.DataFrame]
) -> None:
    without_intent = replace(generator, intent=None)
    with pytest.raises(InputError, match="intent model"):
        evaluate_retrieval(tables["valid"], tables["test"], tables["searches"], without_intent)
    # No test search wanted anything: nothing streamed, and no query named an item.
    skipped = tables["test"].assign(**{S.LABEL: 0})
    unnamed = tables["searches"].assign(**{TARGET_ITEM_ID: pd.NA})
    with pytest.raises(InputError, match="test"):
        evaluate_retrieval(tables["valid"], skipped, unnamed, generator)
    with pytest.raises(InputError, match="min_retrieval_gain"):
        RetrievalConfig(min_retrieval_gain=-1.0)
    with pytest.raises(InputError, match="k"):
        RetrievalConfig(k=5)
