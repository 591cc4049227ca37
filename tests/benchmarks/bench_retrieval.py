"""Benchmark: the two-tower retriever against BM25, Recall@{10,100} and MRR, on two datasets.

1. Synthetic music search (the generator, ``--searches`` searches): searches cut by time into
   70 % train, 10 % validation, 20 % test. A test search's wanted items are those of
   :func:`~searchrank.core.retrieval.wanted_items`: every item streamed and the item a named
   search meant (the generator knows it, even when the logged retriever did not show it).
2. Last.fm tag search (``../shared/datasets/hetrec2011-lastfm-2k``): each (listener, tag, date)
   is a search whose query is the tag and whose wanted items are the artists the listener gave
   that tag that day; cut by date the same way. An artist's text is its name and the 10 tags
   most given to it before the test period.

The systems are measured by ``evaluate_retrieval``'s own code (the component that blesses the
retriever), so these figures and a pipeline's blessing measure the same thing. All search the
whole catalogue: BM25 as the service's lexical retriever (character trigrams over names and
artists, :func:`~searchrank.core.candidates.lexical_retriever`); the two-tower retriever trained
by ``train_retriever`` (Ray Train, 2 workers) and served through its Voyager index; their even
reciprocal rank fusion; and, on the synthetic logs (which carry each search's intent), the fusion
routed by the query-intent model as ``/search`` does it: the intent model fitted on the train
searches, each predicted intent's fusion weight fitted on the validation searches, both measured
on the test searches (:func:`evaluate_retrieval`). One more baseline is the benchmark's own:
BM25 in character trigrams over the text the item tower reads (names, artists and tags,
:func:`~searchrank.core.retriever.two_tower_item_text`). Target: Recall@100 at least 1.2 × BM25's
on both (the stronger BM25 is the baseline); reported for the retriever alone (``ratio``) and for
what ``/search`` retrieves (``routed_ratio``).

Query understanding (synthetic, whose searches record how the query was typed): ``/search``
reads a :class:`~searchrank.core.query_rewrite.QueryRewriter`'s correction or completion beside
the query. ``rewrite`` reports the correction's exact match on misspelled named searches, the
completion's on prefixes, the share of correctly typed queries left unchanged (target ≥ 0.995)
and the milliseconds per query; ``slices`` the routed Recall@100 per intent × typing form, with
the same without query understanding (no rewriter and no prefix completions); ``typo_gaps``
how far each misspelled or prefix slice falls behind the same intent typed exactly (target
≤ 0.03). BM25 in ``/search`` re-orders its candidates by popularity (streams in the train
split, the weight fitted on validation), and a query typed partway adds the items whose name
it begins (:class:`~searchrank.core.completion.PrefixIndex`), the listener's market ahead by
the bonus fitted on validation (``market_weight``; the generator's users table gives each
search its listener's market, as the feature store does in the pipeline) and the genres the
listener streamed in the train split ahead by ``taste_weight`` (fitted with it), weighted
against BM25's list by ``prefix_weight`` (fitted on validation too), and takes its own route.
``taste`` compares the routed fusion with the same routing without the taste, overall and on
the prefix slices, and the completions alone on the test searches that get them.
``prefix_ceiling`` sets the prefix slices beside the best possible: the generator's
:class:`~searchrank.features.generator.ceiling.PrefixCeiling` ranks a test prefix's names by
the hidden chance that each is the one meant (the day's popularity, the listener's true taste
and market: what no model sees). It and the routed fusion count the test prefixes whose item
meant is among their first 100, by intent; ``least_gaps`` is each prefix slice's gap to exact
typing less the ceiling's lead: the gap left were the fusion as good as the ceiling.

That lexical side is the baseline the ratios divide by (when it beats BM25 over the tags), so
it gains with every improvement of its own: ``routed_ceiling`` is the ratio a perfect
retriever would reach (1 / the baseline's recall), and ``routed_ratio_over_plain_bm25`` divides
by the service's BM25 as it was before query understanding and the prior (``bm25_plain``,
queries as typed), the baseline of the issue's "today 1.20×".

Generative retrieval (synthetic): ``train_generative_retriever`` fits semantic IDs on the
two-tower's item vectors and trains the encoder–decoder on the train split; ``evaluate_retrieval``
routes it as a third source. ``generative`` reports its own Recall@{10,100} and MRR, the routed
fusion with and without it and the paired-bootstrap interval of that gain, its weight by intent,
whether it was blessed (the interval above 0), Recall@100 by cold
start (new listeners, searches for items released inside the window) against the two-tower's,
and its decode milliseconds per query (constrained beam search, one query at a time as
``/search`` runs it). Routed target: ≥ 1.35 × BM25 (synthetic), and the two-tower ≥ 2.6 × BM25
on Last.fm. The last line is the JSON result.

The two-tower serves with its popularity prior (:mod:`searchrank.core.dense_prior`: the items'
streams over the most recent period, weighted by what ``train_retriever`` fitted on
validation), so ``two_tower`` and every fusion include it; ``dense_prior`` reports the weight,
the validation recall at each weight tried, and the two-tower's test metrics without it.

Both two-towers are what ``train_retriever`` serves by default: its refit, retrained from
scratch on the training and validation rows together for the epochs validation chose (the test
period follows validation, so the served model has seen the most recent searches). With
``--catch-up`` they are its catch-up instead: the chosen checkpoint trained a few more epochs
on those rows (``bench_retrain`` compares the two without the test split).

Each dataset's splits and trained models stay in ``$TMPDIR/bench-retrieval-<dataset>-*``
(about 300 MB each) for experiments with the same models; Ray's checkpoints do not (they
took 3 GB a dataset, and a few runs filled the disk).

Usage: python tests/benchmarks/bench_retrieval.py [--quick] [--searches N] [--catch-up]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _data import logs, logs_config
from shared_data import SHARED_DATASETS

from searchrank.components.evaluate_retrieval.config import RetrievalConfig
from searchrank.components.evaluate_retrieval.logic import (
    completing_searches,
    evaluate_retrieval,
    predicted_intents,
    ranked_lists,
    recall_by_group,
    system_lists,
    system_metrics,
    wanted_searches,
)
from searchrank.components.train_generative_retriever.config import TrainGenerativeConfig
from searchrank.components.train_generative_retriever.logic import train_generative_retriever
from searchrank.components.train_retriever.config import TrainRetrieverConfig
from searchrank.components.train_retriever.logic import RetrieverSummary, train_retriever
from searchrank.core import schema as S
from searchrank.core.ann import AnnIndex, AnnParams
from searchrank.core.bm25 import BM25Scorer
from searchrank.core.candidates import (
    GENERATIVE_DEPTH,
    CandidateGenerator,
    DenseRetriever,
    lexical_retriever,
)
from searchrank.core.generative import GenerativeSource
from searchrank.core.intent import IntentModel
from searchrank.core.retrieval import (
    FusionRouting,
    item_streams,
    listener_streams,
    retrieval_metrics,
)
from searchrank.core.retriever import Retriever, two_tower_item_text
from searchrank.features.generator.ceiling import PrefixCeiling
from searchrank.features.generator.generate import World

TARGET = 1.2
ROUTED_TARGET = 1.35
LASTFM_TARGET = 2.6
TYPO_GAP_TARGET = 0.03
NO_HARM_TARGET = 0.995
K = 100
SEED = 3
"""The generator's seed of the synthetic logs."""
TOP_TAGS = 10
DECODE_QUERIES = 200
"""Test queries whose decode time is measured one at a time."""
OWN_RECALL_QUERIES = 1000
"""Test searches on which the generative retriever's own Recall@100 (beam 100) is measured;
``/search`` decodes only ``GENERATIVE_DEPTH`` items."""


def time_cut(frame: pd.DataFrame, by: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """70 / 10 / 20 % of the distinct values of ``by`` (time-ordered search ids)."""
    ordered = np.sort(frame[by].unique())
    first, second = ordered[int(0.7 * len(ordered))], ordered[int(0.8 * len(ordered))]
    return (
        frame[frame[by] < first],
        frame[(frame[by] >= first) & (frame[by] < second)],
        frame[frame[by] >= second],
    )


@dataclass(frozen=True)
class Trained:
    """A retriever trained by ``train_retriever`` and served through its Voyager index."""

    summary: RetrieverSummary
    dense: DenseRetriever
    train_s: float
    folder: Path
    """Where the splits, the checkpoint and the item embeddings were written (kept after the
    run, for experiments with the same models; about 300 MB a dataset)."""


def train_and_index(
    name: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    catalogue: pd.DataFrame,
    config: TrainRetrieverConfig,
) -> Trained:
    """Train the two-tower retriever on ``train``/``valid`` and index its item vectors."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-retrieval-{name}-"))
    for part, frame in (("train", train), ("valid", valid), ("catalogue", catalogue)):
        frame.to_parquet(folder / f"{part}.parquet", index=False)
    started = time.perf_counter()
    summary = train_retriever(
        folder / "train.parquet",
        folder / "valid.parquet",
        folder / "catalogue.parquet",
        folder / "model",
        folder / "embeddings.parquet",
        config,
        work_dir=None,  # Ray's checkpoints in a temporary folder the step removes
        log=lambda line: print(f"[{name}] {line}", flush=True),
    )
    train_s = time.perf_counter() - started
    retriever = Retriever.load(folder / "model")
    index = AnnIndex.build(retriever.item_ids, retriever.embed_items(), AnnParams())
    return Trained(summary, DenseRetriever(retriever, index), train_s, folder)


def train_generative(
    trained: Trained, config: TrainGenerativeConfig
) -> tuple[GenerativeSource, float]:
    """``train_generative_retriever`` on the splits ``trained`` was trained on, its semantic IDs
    fitted on that two-tower's item vectors: (the served source, training seconds)."""
    folder = trained.folder
    started = time.perf_counter()
    train_generative_retriever(
        folder / "train.parquet",
        folder / "valid.parquet",
        folder / "catalogue.parquet",
        folder / "embeddings.parquet",
        folder / "generative",
        config,
        work_dir=None,
        log=lambda line: print(f"[generative] {line}", flush=True),
    )
    return GenerativeSource.load(folder / "generative"), time.perf_counter() - started


def decode_ms(source: GenerativeSource, searches: pd.DataFrame) -> list[float]:
    """Milliseconds of each of the first :data:`DECODE_QUERIES` searches' decoding, one query
    at a time and ``GENERATIVE_DEPTH`` items deep, as ``/search`` decodes."""
    times = []
    for query, user in searches[[S.QUERY, S.USER_ID]].head(DECODE_QUERIES).itertuples(index=False):
        started = time.perf_counter()
        source.retrieve([str(query)], [int(user)], GENERATIVE_DEPTH)
        times.append(1000 * (time.perf_counter() - started))
    return times


def item_tower_bm25(
    catalogue: pd.DataFrame, searches: pd.DataFrame, relevant: list[list[int]]
) -> dict[str, float]:
    """BM25 in character trigrams over the item tower's text, measured on ``searches``."""
    ids, texts, _ = two_tower_item_text(catalogue)
    return bm25_metrics(BM25Scorer.fit(ids, texts, analyzer="char3"), searches, relevant)


def bm25_metrics(
    scorer: BM25Scorer, searches: pd.DataFrame, relevant: list[list[int]]
) -> dict[str, float]:
    """``scorer``'s Recall@{10,100} and MRR on ``searches``, queries read as typed."""
    found = [scorer.retrieve(q, K)[0].tolist() for q in searches[S.QUERY].astype(str)]
    return retrieval_metrics(found, relevant, (10, K))


def baseline_recall(systems: dict[str, dict[str, float]]) -> float:
    """The stronger BM25's Recall@100: over names and artists, or over the item tower's text."""
    return max(systems["bm25"]["recall@100"], systems["bm25_with_tags"]["recall@100"])


def dataset_result(
    systems: dict[str, dict[str, float]],
    trained: Trained,
    shares: dict[str, float],
) -> dict[str, Any]:
    """One dataset's part of the JSON line from each system's metrics."""
    baseline = baseline_recall(systems)
    ratio = systems["two_tower"]["recall@100"] / baseline
    routed = "routed" in systems
    served = systems["routed" if routed else "fused"]["recall@100"] / baseline
    return {
        "ratio": round(ratio, 3),
        "fused_ratio": round(systems["fused"]["recall@100"] / baseline, 3),
        "routed_ratio": round(served, 3) if routed else None,
        "dense_share_by_intent": shares,
        "met": ratio >= TARGET,
        "served_met": served >= TARGET,
        **{system: {k: round(v, 4) for k, v in m.items()} for system, m in systems.items()},
        "train_pairs": trained.summary.shapes["train_pairs"],
        "items": trained.summary.shapes["items"],
        "test_searches": int(systems["bm25"]["searches"]),
        "best_epoch": trained.summary.best_epoch,
        "train_s": round(trained.train_s, 1),
    }


def synthetic(
    searches: int, config: TrainRetrieverConfig, generative_config: TrainGenerativeConfig
) -> dict[str, Any]:
    """Train on the generator's logs and measure with :func:`evaluate_retrieval`, routing
    included, as the pipeline blesses the retriever."""
    train_part, valid, test, catalogue = synthetic_splits(searches)
    logged = synthetic_searches(searches)
    trained = train_and_index("synthetic", train_part, valid, catalogue, config)
    taught = logged[logged[S.SEARCH_ID].isin(train_part[S.SEARCH_ID].unique())]
    intent = IntentModel.fit(taught[S.QUERY].tolist(), taught["intent"].tolist())
    source, generative_s = train_generative(trained, generative_config)
    generator = CandidateGenerator.from_catalogue(
        catalogue,
        trained.dense,
        intent,
        item_streams(train_part),
        source,
        listener_streams(train_part),
    )
    measure = RetrievalConfig(k=K)
    evaluation, routing = evaluate_retrieval(
        valid, test, logged, generator, measure, train_part, catalogue
    )
    as_typed, _ = evaluate_retrieval(
        valid, test, logged, replace(generator, rewriter=None, prefix=None), measure
    )
    held_out = wanted_searches(test, measure.min_relevant_label, logged)
    relevant = held_out["relevant"].tolist()
    systems = {
        "bm25": evaluation.systems["bm25"],
        "bm25_with_tags": item_tower_bm25(catalogue, held_out, relevant),
        **{name: m for name, m in evaluation.systems.items() if name != "bm25"},
    }
    result = dataset_result(systems, trained, routing.dense_share)
    # The service's BM25 before query understanding and the popularity prior: the baseline of
    # the "today 1.20×".
    plain = bm25_metrics(lexical_retriever(catalogue), held_out, relevant)
    slices = {name: round(v, 4) for name, v in evaluation.by_slice["routed"].items()}
    gaps = typo_gaps(slices)
    return {
        **result,
        "routed_target": ROUTED_TARGET,
        "routed_met": bool(result["routed_ratio"] >= ROUTED_TARGET),
        "routed_ceiling": round(1.0 / baseline_recall(systems), 3),
        "routed_ratio_over_plain_bm25": round(
            systems["routed"]["recall@100"] / plain["recall@100"], 3
        ),
        "bm25_plain": {k: round(v, 4) for k, v in plain.items()},
        "routed_ratio_without_rewrite": round(
            as_typed.systems["routed"]["recall@100"] / baseline_recall(systems), 3
        ),
        "slices": slices,
        "slices_without_rewrite": {
            name: round(v, 4) for name, v in as_typed.by_slice["routed"].items()
        },
        "typo_gaps": gaps,
        "typo_gap_target": TYPO_GAP_TARGET,
        "typo_gap_met": all(gap <= TYPO_GAP_TARGET for gap in gaps.values()),
        "popularity_weight": routing.popularity_weight,
        "market_weight": routing.market_weight,
        "prefix_weight": routing.prefix_weight,
        "taste": taste_result(generator, evaluation, routing, held_out, logged),
        "prefix_ceiling": prefix_ceiling_result(
            searches, replace(generator, routing=routing), held_out, logged, slices
        ),
        "rewrite": rewrite_quality(generator, logged, catalogue),
        "generative": generative_result(evaluation, routing, source, held_out, generative_s),
        "dense_prior": dense_prior_result(trained, held_out),
    }


def logged_rows(logged: pd.DataFrame, held_out: pd.DataFrame) -> pd.DataFrame:
    """The searches table's row (intent, typing form, target, time) of each held-out search,
    in ``held_out``'s order."""
    return logged.drop_duplicates(S.SEARCH_ID).set_index(S.SEARCH_ID).reindex(held_out.index)


def taste_result(
    generator: CandidateGenerator,
    evaluation: Any,
    routing: FusionRouting,
    held_out: pd.DataFrame,
    logged: pd.DataFrame,
) -> dict[str, Any]:
    """What the listener's taste among prefix completions adds on the held-out searches: the
    routed fusion with the fitted routing against the same routing with the taste left out
    (Recall@10, Recall@100 and MRR, and Recall@100 of the prefix slices), and the completions
    alone on the searches that get them (typed partway, or a whole name that begins longer
    ones)."""
    index = generator.prefix
    assert index is not None
    untasted = replace(generator, routing=replace(routing, taste_weight=0.0))
    predicted = predicted_intents(untasted, held_out)
    lists = ranked_lists(untasted, held_out, K)
    routed = system_lists(lists, untasted.routing or routing, predicted, K)["routed"]
    relevant = held_out["relevant"].tolist()
    searches = logged_rows(logged, held_out)
    forms = zip(searches["intent"], searches["query_form"], strict=True)
    slices = np.array([f"{intent} × {form}" for intent, form in forms])
    without = recall_by_group({"routed": routed}, relevant, slices, K)["routed"]
    chosen = completing_searches(generator, held_out)

    def completions(taste: float) -> float:
        found = [index.complete(q, K, m, routing.market_weight, u, taste) for q, m, u, _ in chosen]
        return round(retrieval_metrics(found, [w for *_, w in chosen], (K,))[f"recall@{K}"], 4)

    prefix = [n for n in without if n.endswith("× prefix") and n in evaluation.by_slice["routed"]]
    return {
        "weight": routing.taste_weight,
        "routed": {k: round(v, 4) for k, v in evaluation.systems["routed"].items()},
        "routed_without_taste": {
            k: round(v, 4) for k, v in retrieval_metrics(routed, relevant, (10, K)).items()
        },
        "prefix_slices": {name: round(evaluation.by_slice["routed"][name], 4) for name in prefix},
        "prefix_slices_without_taste": {name: round(without[name], 4) for name in prefix},
        "completions_recall@100": completions(routing.taste_weight),
        "completions_recall@100_without_taste": completions(0.0),
        "completion_searches": float(len(chosen)),
    }


def prefix_ceiling_result(
    searches: int,
    generator: CandidateGenerator,
    held_out: pd.DataFrame,
    logged: pd.DataFrame,
    slices: dict[str, float],
) -> dict[str, Any]:
    """How close the routed fusion comes, on the test searches typed partway, to the best any
    retriever could do: the :class:`PrefixCeiling`, which ranks a prefix's names by the
    generator's hidden chance that each is the one meant (the day's popularity, the listener's
    true taste and market). Both count the searches whose item meant is among their first
    ``K``, by intent; ``headroom`` is the ceiling's count less the fusion's (what any retriever
    could still add), and ``least_gaps`` each prefix slice's gap to exact typing less that
    headroom: the gap left were the fusion to find every item meant the ceiling finds. On few
    searches (``--quick``) the fusion can beat the ceiling, which is best only on average."""
    typed = logged_rows(logged, held_out)
    partway = held_out[(typed["query_form"] == "prefix").to_numpy()]
    meta = list(typed.loc[partway.index].itertuples())
    ceiling = PrefixCeiling(World.of(logs_config(searches, SEED)))
    assert generator.routing is not None
    routed = system_lists(
        ranked_lists(generator, partway, K),
        generator.routing,
        predicted_intents(generator, partway),
        K,
    )["routed"]
    found = pd.DataFrame(
        {
            "intent": [m.intent for m in meta],
            "ceiling": [
                int(m.target_item_id) in ceiling.best(int(m.user_id), m.event_timestamp, m.query, K)
                for m in meta
            ],
            "routed": [int(m.target_item_id) in ids for m, ids in zip(meta, routed, strict=True)],
        }
    )
    by_intent = found.groupby("intent")[["ceiling", "routed"]].mean()
    headroom = (by_intent["ceiling"] - by_intent["routed"]).round(4)
    gaps = typo_gaps(slices)
    return {
        "searches": float(len(found)),
        "target_found@100": {
            name: by_intent[name].round(4).to_dict() for name in ("ceiling", "routed")
        },
        "headroom": headroom.to_dict(),
        "least_gaps": {
            f"{intent} × prefix": round(gaps[f"{intent} × prefix"] - room, 4)
            for intent, room in headroom.items()
            if f"{intent} × prefix" in gaps
        },
    }


def generative_result(
    evaluation: Any,
    routing: FusionRouting,
    source: GenerativeSource,
    held_out: pd.DataFrame,
    train_s: float,
) -> dict[str, Any]:
    """The generative retriever's part of the JSON line."""
    systems = evaluation.systems
    cold = evaluation.cold_start
    times = decode_ms(source, held_out)
    sample = held_out.head(OWN_RECALL_QUERIES)
    queries, users = sample[S.QUERY].astype(str).tolist(), sample[S.USER_ID].tolist()
    own = retrieval_metrics(
        source.retrieve(queries, users, K), sample["relevant"].tolist(), (10, K)
    )
    return {
        "served_depth": GENERATIVE_DEPTH,
        **{f"served_{k}": round(v, 4) for k, v in systems["generative"].items() if k != "searches"},
        **{f"beam100_{k}": round(v, 4) for k, v in own.items()},
        "routed_recall@100": round(systems["routed"]["recall@100"], 4),
        "routed_without_generative_recall@100": round(
            systems["routed_without_generative"]["recall@100"], 4
        ),
        "blessed": evaluation.generative_blessed,
        "routed_gain@100": {k: round(v, 5) for k, v in evaluation.generative_gain.items()},
        "weight_by_intent": routing.generative_share,
        "weight_default": routing.generative_default,
        "cold_start_recall@100": {
            group: {
                "generative": round(cold["generative"][group], 4),
                "two_tower": round(cold["two_tower"][group], 4),
                "routed": round(cold["routed"][group], 4),
            }
            for group in cold.get("generative", {})
        },
        "decode_ms_p50": round(float(np.median(times)), 2),
        "decode_ms_p99": round(float(np.percentile(times, 99)), 2),
        "train_s": round(train_s, 1),
    }


def dense_prior_result(trained: Trained, held_out: pd.DataFrame) -> dict[str, Any]:
    """The two-tower's popularity prior: the weight fitted on validation, each weight's
    validation Recall@100, and the test metrics of the two-tower without it (``two_tower``
    serves it)."""
    without = DenseRetriever(replace(trained.dense.model, prior=None), trained.dense.index)
    queries, users = held_out[S.QUERY].astype(str).tolist(), held_out[S.USER_ID].tolist()
    found = without.retrieve(queries, users, K)
    metrics = retrieval_metrics(found, held_out["relevant"].tolist(), (10, K))
    return {
        "weight": trained.summary.prior_weight,
        "valid_recall@100_by_weight": {
            str(w): round(r, 4) for w, r in trained.summary.prior_recall.items()
        },
        "two_tower_without_prior": {k: round(v, 4) for k, v in metrics.items()},
    }


def typo_gaps(slices: dict[str, float]) -> dict[str, float]:
    """How far each misspelled or prefix slice's recall falls behind its intent typed exactly."""
    gaps = {}
    for name, recall in slices.items():
        intent, form = name.split(" × ")
        exact = slices.get(f"{intent} × exact")
        if form in ("misspelled", "prefix") and exact is not None:
            gaps[name] = round(exact - recall, 4)
    return gaps


def rewrite_quality(
    generator: CandidateGenerator, searches: pd.DataFrame, catalogue: pd.DataFrame
) -> dict[str, float]:
    """The rewriter on every logged search: correction and completion exact match against the
    name the search meant, the share of correctly typed queries left unchanged, and speed."""
    from searchrank.core.query_rewrite import COMPLETED, CORRECTED, UNCHANGED
    from searchrank.core.retrieval import TARGET_ITEM_ID
    from searchrank.core.text import normalize_text

    names = catalogue.drop_duplicates(S.ITEM_ID).set_index(S.ITEM_ID)["name"].map(normalize_text)
    queries = searches[S.QUERY].astype(str).tolist()
    started = time.perf_counter()
    rewrites = [generator.rewrite(q) for q in queries]
    ms = 1000 * (time.perf_counter() - started) / max(len(queries), 1)
    form = searches["query_form"].to_numpy()
    meant = searches[TARGET_ITEM_ID].map(names).to_numpy()
    rewritten = np.array([r.query for r in rewrites])
    kind = np.array([r.kind for r in rewrites])
    typo = (form == "misspelled") & pd.notna(meant)
    prefix = (form == "prefix") & pd.notna(meant)
    typed_right = np.isin(form, ("exact", "descriptive"))
    return {
        "correction_exact_match": round(float((rewritten[typo] == meant[typo]).mean()), 4),
        "corrected_share_of_misspelled": round(float((kind[typo] == CORRECTED).mean()), 4),
        "completion_exact_match": round(float((rewritten[prefix] == meant[prefix]).mean()), 4),
        "completed_share_of_prefixes": round(float((kind[prefix] == COMPLETED).mean()), 4),
        "unchanged_when_typed_right": round(float((kind[typed_right] == UNCHANGED).mean()), 5),
        "no_harm_target": NO_HARM_TARGET,
        "no_harm_met": bool((kind[typed_right] == UNCHANGED).mean() >= NO_HARM_TARGET),
        "ms_per_query": round(ms, 4),
        "lexicon_words": len(generator.rewriter.lexicon.words) if generator.rewriter else 0,
    }


class Splits(NamedTuple):
    """A dataset cut by time (:func:`time_cut`) and the catalogue its items come from."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    catalogue: pd.DataFrame


def synthetic_searches(searches: int) -> pd.DataFrame:
    """The searches table of the synthetic logs (intent, typing form, target item)."""
    from searchrank.features import tables as T

    return pd.read_parquet(logs(searches, SEED) / T.file_name(T.SEARCHES))


def synthetic_splits(searches: int) -> Splits:
    """The generator's impressions for ``searches`` searches, cut by time, each row with its
    listener's market as the pipeline's splits carry it (``user_stats__market``)."""
    from searchrank.features import tables as T

    folder = logs(searches, SEED)
    impressions = pd.read_parquet(folder / T.file_name(T.IMPRESSIONS))
    users = pd.read_parquet(folder / T.file_name(T.USERS), columns=[S.USER_ID, "market"])
    market = users.set_index(S.USER_ID)["market"]
    impressions[T.MARKET_COLUMN] = impressions[S.USER_ID].map(market)
    catalogue = pd.read_parquet(folder / T.file_name(T.CATALOGUE))
    return Splits(*time_cut(impressions, S.SEARCH_ID), catalogue)


def lastfm_splits() -> Splits:
    """Last.fm tag searches cut by time, and the artists with their most given tags before the
    test period (see the module's docs)."""
    from searchrank.core.text import normalize_text
    from searchrank.features.adapters.lastfm import load_lastfm

    data = load_lastfm(SHARED_DATASETS / "hetrec2011-lastfm-2k")
    tags = data.tags.set_index("tag_id")["tag"].map(normalize_text)
    rows = data.tag_assignments.assign(query=lambda f: f["tag_id"].map(tags))
    rows = rows[rows["artist_id"].isin(data.artists["artist_id"]) & (rows[S.QUERY] != "")]
    key = ["event_timestamp", "user_id", "tag_id"]
    rows = rows.sort_values(key, kind="stable")
    rows[S.SEARCH_ID] = rows.groupby(key, sort=False).ngroup()
    rows = rows.rename(columns={"artist_id": S.ITEM_ID}).assign(**{S.LABEL: 2})
    train_part, valid, test = time_cut(rows, S.SEARCH_ID)
    before = pd.concat([train_part, valid])
    top_tags = (
        before.groupby([S.ITEM_ID, S.QUERY])
        .size()
        .rename("n")
        .reset_index()
        .sort_values([S.ITEM_ID, "n"], ascending=[True, False])
        .groupby(S.ITEM_ID)
        .head(TOP_TAGS)
        .groupby(S.ITEM_ID)[S.QUERY]
        .agg(" ".join)
    )
    catalogue = data.artists.rename(columns={"artist_id": S.ITEM_ID}).assign(
        keywords=lambda f: f[S.ITEM_ID].map(top_tags).fillna("")
    )
    return Splits(train_part, valid, test, catalogue)


def lastfm(config: TrainRetrieverConfig) -> dict[str, Any]:
    train_part, valid, test, catalogue = lastfm_splits()
    trained = train_and_index("lastfm", train_part, valid, catalogue, config)
    # An artist is its own item: the lexical retriever reads its name and an empty artist.
    generator = CandidateGenerator.from_catalogue(catalogue.assign(artist_name=""), trained.dense)
    held_out = wanted_searches(test, RetrievalConfig().min_relevant_label)
    relevant = held_out["relevant"].tolist()
    even = FusionRouting()
    lists = system_lists(ranked_lists(generator, held_out, K), even, [""] * len(held_out), K)
    lists.pop("routed")  # no intents here: the routed fusion is the even one
    systems = system_metrics(lists, relevant, K)
    systems = {
        "bm25": systems.pop("bm25"),
        "bm25_with_tags": item_tower_bm25(catalogue, held_out, relevant),
        **systems,
    }
    result = dataset_result(systems, trained, {})
    return {
        **result,
        "ratio_target": LASTFM_TARGET,
        "ratio_met": result["ratio"] >= LASTFM_TARGET,
        "dense_prior": dense_prior_result(trained, held_out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 searches, 3 epochs")
    parser.add_argument("--searches", type=int, default=60_000)
    parser.add_argument(
        "--catch-up",
        action="store_true",
        help="serve train_retriever's catch-up rather than its refit (the default)",
    )
    args = parser.parse_args()
    config, generative = TrainRetrieverConfig(refit=not args.catch_up), TrainGenerativeConfig()
    searches = args.searches
    if args.quick:
        config, searches = replace(config, epochs=3), 10_000
        generative = replace(generative, epochs=3)
    music, tags = synthetic(searches, config, generative), lastfm(config)
    result = {
        "bench": "retrieval",
        "target": TARGET,
        "retrain": "catch-up" if args.catch_up else "refit",
        "synthetic": music,
        "lastfm": tags,
        "met": music["met"] and tags["met"],
        "served_met": music["served_met"] and tags["served_met"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
