"""``evaluate_retrieval``: routing fitted on validation searches, every system measured on the
test searches, and the retriever and intent routing blessed by their own rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.components.evaluate_retrieval.logic import (
    PREFIX_WEIGHTS,
    SYSTEMS,
    RetrievalConfig,
    evaluate_retrieval,
    fit_completion_bonus,
    fit_prefix_weight,
    ranked_lists,
    recall_gain,
    wanted_searches,
)
from searchrank.components.train_retriever.logic import RetrieverSummary
from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex, AnnParams
from searchrank.core.candidates import CandidateGenerator, DenseRetriever
from searchrank.core.completion import MARKET_WEIGHTS, TASTE_WEIGHTS, PrefixIndex
from searchrank.core.errors import InputError
from searchrank.core.intent import IntentModel
from searchrank.core.retrieval import (
    POPULARITY_WEIGHTS,
    TARGET_ITEM_ID,
    FusionRouting,
    item_streams,
    listener_streams,
    retrieval_metrics,
    route_key,
)
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
        "train": pd.read_parquet(splits["train"]),
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
    lists = ranked_lists(replace(generator, routing=routing), test, 100)  # as it was fitted
    assert lists.dense is not None and lists.generative is None
    assert generator.intent is not None
    predicted = generator.intent.predict([generator.rewrite(q).query for q in test[S.QUERY]])
    assert any(lists.partial)
    assert any(lists.described)
    pairs = zip(lists.dense, lists.lexical, predicted, lists.partial, lists.described, strict=True)
    routed = [routing.fuse(d, x, 100, p, partial=q, described=w) for d, x, p, q, w in pairs]
    assert retrieval_metrics(routed, test["relevant"].tolist()) == evaluation.systems["routed"]
    classes = set(generator.intent.classes)
    routes = (
        classes
        | {route_key(c, True) for c in classes}
        | {route_key(c, False, True) for c in classes}
    )
    assert set(routing.dense_share) <= routes and set(routing.dense_share) & (routes - classes)
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


def test_the_popularity_prior_is_fitted_on_streams_and_cold_start_is_measured(
    generator: CandidateGenerator, tables: dict[str, pd.DataFrame], catalogue: pd.DataFrame
) -> None:
    streams = item_streams(tables["train"])
    popular = replace(
        generator,
        log_streams=np.log1p(streams.reindex(generator.item_ids).fillna(0.0).to_numpy()),
    )
    evaluation, routing = evaluate_retrieval(
        tables["valid"],
        tables["test"],
        tables["searches"],
        popular,
        train=tables["train"],
        catalogue=catalogue,
    )
    assert routing.popularity_weight in POPULARITY_WEIGHTS
    assert evaluation.metrics()["popularity_weight"] == routing.popularity_weight
    # The prior moves popular items up BM25's lists, and only where the generator has streams.
    valid = wanted_searches(tables["valid"], 2, tables["searches"]).head(50)
    prior = FusionRouting(popularity_weight=0.5)
    plain = ranked_lists(replace(generator, routing=prior), valid, 100).lexical
    with_prior = ranked_lists(replace(popular, routing=prior), valid, 100).lexical
    assert plain == ranked_lists(generator, valid, 100).lexical
    assert with_prior != plain
    log_streams = pd.Series(popular.log_streams, index=generator.item_ids)
    top = [log_streams[found[:10]].mean() for found in with_prior if found]
    assert np.mean(top) > np.mean([log_streams[found[:10]].mean() for found in plain if found])
    cold = evaluation.cold_start["routed"]
    assert {"listener: known", "item: catalogue"} <= set(cold)
    assert set(cold) <= {"listener: known", "listener: new", "item: catalogue", "item: new"}
    assert set(evaluation.cold_start) == set(SYSTEMS)
    assert "by cold start" in evaluation.html()
    without = evaluate_retrieval(tables["valid"], tables["test"], tables["searches"], generator)[0]
    assert without.cold_start == {} and without.routing["popularity_weight"] == 0.0


def test_the_market_bonus_and_taste_are_fitted_where_the_splits_carry_them(
    generator: CandidateGenerator, tables: dict[str, pd.DataFrame], catalogue: pd.DataFrame
) -> None:
    valid = wanted_searches(tables["valid"], 2, tables["searches"])
    # The feature store joined each listener's market as of the search (none yet for a listener
    # newer than the day's snapshot).
    assert valid[T.MARKET_COLUMN].notna().mean() > 0.5
    train = tables["train"]
    tasted = replace(
        generator,
        prefix=PrefixIndex.from_catalogue(catalogue, item_streams(train), listener_streams(train)),
    )
    assert tasted.prefix is not None and len(tasted.prefix.taste.user_ids) > 0
    bonus, taste = fit_completion_bonus(tasted, valid, 100)
    print(f"fitted market bonus {bonus}, taste {taste}")
    assert bonus in MARKET_WEIGHTS and taste in TASTE_WEIGHTS
    evaluation, routing = evaluate_retrieval(
        tables["valid"], tables["test"], tables["searches"], tasted
    )
    assert routing.market_weight == bonus == evaluation.metrics()["market_weight"]
    assert routing.taste_weight == taste == evaluation.metrics()["taste_weight"]
    assert f"their taste {taste:g}" in evaluation.markdown()
    assert routing.prefix_weight in PREFIX_WEIGHTS
    assert routing.prefix_weight == evaluation.metrics()["prefix_weight"]
    # Without the column no listener's market is known: no bonus, and the lists read none;
    # without streams no listener has a taste.
    unknown = valid.drop(columns=T.MARKET_COLUMN)
    assert fit_completion_bonus(generator, unknown, 100) == (0.0, 0.0)
    favoured = replace(generator, routing=FusionRouting(market_weight=4.0))
    completing = [favoured.completes(favoured.rewrite(q)) for q in valid[S.QUERY].astype(str)]
    assert any(completing) and not all(completing)
    with_markets = ranked_lists(favoured, valid, 100).lexical
    without = ranked_lists(favoured, unknown, 100).lexical
    assert with_markets != without
    assert [a for a, c in zip(with_markets, completing, strict=True) if not c] == [
        b for b, c in zip(without, completing, strict=True) if not c
    ], "only queries that get prefix completions read the market"


def test_the_prefix_weight_is_the_least_that_puts_what_was_wanted_first() -> None:
    """ "song" begins fifty names whose trigrams tie in BM25 (which lists "Song 0" first); the
    prefix index lists the most streamed, "Song 37", first."""
    names = [f"Song {i}" for i in range(50)]
    catalogue = pd.DataFrame({S.ITEM_ID: np.arange(50), "name": names, "artist_name": "Owls"})
    generator = CandidateGenerator.from_catalogue(catalogue, streams=pd.Series({37: 900.0}))
    assert generator.lexical.retrieve("song", 1)[0].tolist() == [0]

    def fitted(wanted: int) -> float:
        tuning = pd.DataFrame({S.QUERY: ["song"], S.USER_ID: [1], "relevant": [[wanted]]})
        return fit_prefix_weight(generator, tuning, FusionRouting(), 1).prefix_weight

    assert fitted(37) == 2.0, "the completions must outweigh BM25 to put theirs first"
    assert fitted(0) == 1.0, "a tie goes to the smaller weight"
    whole = pd.DataFrame({S.QUERY: ["song 37"], S.USER_ID: [1], "relevant": [[37]]})
    routing = FusionRouting(market_weight=2.0)
    assert fit_prefix_weight(generator, whole, routing, 1) == routing, "no query typed partway"


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


def test_a_source_is_blessed_only_when_its_gain_is_more_than_noise() -> None:
    """Over 400 searches, one found only with the source is noise; forty are not."""
    relevant = [[i] for i in range(400)]
    without = [[1000 + i] for i in range(400)]
    one = [[0], *without[1:]]
    forty = [[i] for i in range(40)] + without[40:]
    noise = recall_gain(one, without, relevant, 10)
    assert noise.difference > 0 and noise.difference_low <= 0.0
    real = recall_gain(forty, without, relevant, 10)
    assert real.difference == pytest.approx(0.1) and real.difference_low > 0.0
