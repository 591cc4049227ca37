"""Evaluate and bless what ``/search`` retrieves with: the two-tower retriever served through its
Voyager index, fused with BM25 (and the generative retriever, where one is given) and routed by
the query-intent model, and the intent model itself.

1. **Route**: on the validation searches, fit the weight of BM25's popularity prior
   (:func:`fit_popularity_weight`, where the training split's streams are given), the bonus of
   the listener's market and the weight of the listener's taste among prefix completions
   (:func:`fit_completion_bonus`) and those completions' weight against BM25's list
   (:func:`fit_prefix_weight`), then the fusion weights of the dense and generative lists for
   each predicted intent (:func:`fit_fusion_routing`): the routing the service will use.
2. **Measure** on the test searches (never seen in training or routing) Recall@{10, k} and MRR
   of BM25 alone (the service's lexical retriever), the index alone, the generative retriever
   alone, the even dense–lexical fusion and the routed fusion (and, with a generative source,
   the routed fusion without it), overall, by the search's true intent, by intent × how the
   query was typed, and by cold start: listeners the training split never saw, and searches
   that wanted an item released inside the logged window; and the intent model's accuracy
   against the majority class (the validation split's most common intent), per class.
3. **Bless** the retriever (with its index) when the routed fusion's Recall@k is at least
   ``1 + min_retrieval_gain`` times BM25's, the generative retriever when the routed fusion
   with it recalls more than without it (the paired bootstrap's 95 % interval of the gain above
   0, :func:`recall_gain`), and the intent model for routing when its accuracy
   beats the majority class's by more than ``min_intent_gain``. ``package_service`` ships the
   dense side, the generative side and the routing only when blessed.

A search's wanted items are :func:`~searchrank.core.retrieval.wanted_items`: those of its rows
with ``label >= min_relevant_label`` (streamed) and the item its query named, where the searches
table knows it. ``tests/benchmarks/bench_retrieval.py`` measures with these same functions.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from searchrank.components.evaluate_retrieval.config import RetrievalConfig
from searchrank.core import schema as S
from searchrank.core.bootstrap import BootstrapResult, paired_bootstrap
from searchrank.core.candidates import CandidateGenerator, SourceLists
from searchrank.core.completion import fit_completion_weights
from searchrank.core.errors import InputError, require_columns
from searchrank.core.html import markdown_html, render_page
from searchrank.core.intent import INTENT_LABEL, intent_report, labelled_searches
from searchrank.core.query_rewrite import COMPLETED, CORRECTED, UNCHANGED
from searchrank.core.retrieval import (
    FusionRouting,
    fit_fusion_routing,
    fit_popularity_weight,
    recall_per_search,
    reciprocal_rank_fusion,
    retrieval_metrics,
    route_key,
    wanted_items,
)
from searchrank.features import tables as T

PREFIX_WEIGHTS = (1.0, 2.0, 4.0)
"""The weights of prefix completions against BM25's list that :func:`fit_prefix_weight`
chooses among (on 30k synthetic searches 1 and 2 left the track-prefix slice 0.095 and 0.074
short of exact tracks)."""
QUERY_FORM = "query_form"
"""The searches table's column of how the query was typed, where the log knows it."""
SYSTEMS = ("bm25", "two_tower", "fused", "routed")
"""BM25 alone, the index alone, their even fusion, and their fusion routed by intent."""
GENERATIVE_SYSTEMS = ("generative", "routed_without_generative")
"""With a generative source: that source alone, and the routing's fusion of the other two."""
RELEASE_TIMESTAMP = "release_timestamp"
"""The catalogue's column of when an item came out, where the catalogue has it."""


@dataclass
class RetrievalEvaluation:
    k: int
    systems: dict[str, dict[str, float]]
    """Per system, Recall@10, Recall@k, MRR and the number of searches."""
    by_intent: dict[str, dict[str, float]]
    """Per system, Recall@k of the searches of each true intent."""
    routing: dict[str, Any]
    intent: dict[str, Any]
    """:func:`intent_report` on the test searches."""
    retriever_blessed: bool
    intent_blessed: bool
    reasons: list[str] = field(default_factory=list)
    by_slice: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per system, Recall@k of each ``"<intent> × <form>"`` slice, where the searches table
    records how the query was typed (``query_form``: exact, prefix, misspelled, descriptive)."""
    rewrites: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per typing form (where recorded), the share of test queries the rewriter changed."""
    cold_start: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per system, Recall@k of new and known listeners and of searches for new items (where
    the training split is given)."""
    generative_blessed: bool = False
    generative_gain: dict[str, float] = field(default_factory=dict)
    """With a generative source, what it adds to the routed fusion's Recall@k on the test
    searches (:func:`recall_gain`): ``difference`` and its 95 % interval ``low``–``high``."""

    @property
    def recall_ratio(self) -> float:
        """The routed fusion's Recall@k over BM25's."""
        key = f"recall@{self.k}"
        base = self.systems["bm25"][key]
        return self.systems["routed"][key] / base if base > 0 else float("inf")

    def metrics(self) -> dict[str, float]:
        out = {
            f"{system}_{name.replace('@', '_at_')}": value
            for system, values in self.systems.items()
            for name, value in values.items()
            if name != "searches"
        }
        out.update(
            {
                "recall_ratio_vs_bm25": self.recall_ratio,
                "intent_accuracy": self.intent["accuracy"],
                "intent_majority_accuracy": self.intent["majority_accuracy"],
                "retriever_blessed": float(self.retriever_blessed),
                "intent_blessed": float(self.intent_blessed),
                "generative_blessed": float(self.generative_blessed),
                "popularity_weight": self.routing["popularity_weight"],
                "market_weight": self.routing.get("market_weight", 0.0),
                "prefix_weight": self.routing.get("prefix_weight", 1.0),
                "taste_weight": self.routing.get("taste_weight", 0.0),
            }
        )
        return out

    def markdown(self) -> str:
        k = self.k
        rows = "\n".join(
            f"| {system} | {m['recall@10']:.4f} | {m[f'recall@{k}']:.4f} | {m['mrr']:.4f} |"
            for system, m in self.systems.items()
        )
        shares = ", ".join(f"{i} {s:.2f}" for i, s in self.routing["dense_share"].items())
        lines = [
            f"### Retrieval: routed fusion Recall@{k} {self.recall_ratio:.2f}× BM25 — "
            f"retriever {'BLESSED' if self.retriever_blessed else 'not blessed'}, intent "
            f"routing {'BLESSED' if self.intent_blessed else 'not blessed'}"
            + (
                f", generative {'BLESSED' if self.generative_blessed else 'not blessed'}"
                if "generative" in self.systems
                else ""
            ),
            "",
            f"| system | Recall@10 | Recall@{k} | MRR |",
            "|---|---:|---:|---:|",
            rows,
            "",
            f"- dense share of the fusion by predicted intent: {shares} "
            f"(otherwise {self.routing['default']:.2f}); BM25's popularity prior weighs "
            f"{self.routing['popularity_weight']:g}; the listener's market among prefix "
            f"completions {self.routing.get('market_weight', 0.0):g} and their taste "
            f"{self.routing.get('taste_weight', 0.0):g}, and those completions "
            f"against BM25 {self.routing.get('prefix_weight', 1.0):g}",
            f"- intent accuracy {self.intent['accuracy']:.3f} against the majority class's "
            f"{self.intent['majority_accuracy']:.3f}",
        ]
        lines += [f"- **{reason}**" for reason in self.reasons]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        from searchrank.core.plots import grouped_bars

        image = grouped_bars(
            self.by_intent, title=f"Recall@{self.k} by true intent", ylabel=f"Recall@{self.k}"
        )
        per_class = "".join(
            f"<tr><td>{html.escape(label)}</td><td>{c['support']}</td><td>{c['precision']:.3f}"
            f"</td><td>{c['recall']:.3f}</td><td>{c['f1']:.3f}</td><td>{c['majority_f1']:.3f}"
            "</td></tr>"
            for label, c in self.intent["per_class"].items()
        )
        body = f"""{markdown_html(self.markdown())}
<img alt="recall by intent" src="{image}">{self._slices_html()}
<h2>Query intent on the test searches</h2><table><tr><th>intent</th><th>searches</th>
<th>precision</th><th>recall</th><th>F1</th><th>majority F1</th></tr>{per_class}</table>"""
        return render_page("Retrieval evaluation", body)

    def _slices_html(self) -> str:
        """Recall@k by cold start and by intent × typing form, and how often each form was
        rewritten."""
        cold = ""
        if self.cold_start:
            cold = f"""
<h2>Recall@{self.k} by cold start</h2>
<table>{_recall_table(self.cold_start)}</table>"""
        if not self.by_slice:
            return cold
        rewritten = "".join(
            f"<tr><td>{html.escape(form)}</td><td>{int(r['searches'])}</td>"
            f"<td>{r['corrected']:.3f}</td><td>{r['completed']:.3f}</td></tr>"
            for form, r in self.rewrites.items()
        )
        return f"""{cold}
<h2>Recall@{self.k} by intent × how the query was typed</h2>
<table>{_recall_table(self.by_slice)}</table>
<h2>Queries rewritten, by how they were typed</h2>
<table><tr><th>form</th><th>searches</th><th>corrected</th><th>completed</th></tr>{rewritten}
</table>"""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recall_ratio": self.recall_ratio}


def _recall_table(by_group: dict[str, dict[str, float]]) -> str:
    """The rows of an HTML table of Recall@k, one row per group and one column per system."""
    systems = list(by_group)
    head = "".join(f"<th>{html.escape(name)}</th>" for name in systems)
    rows = "".join(
        f"<tr><td>{html.escape(group)}</td>"
        + "".join(f"<td>{by_group[name][group]:.3f}</td>" for name in systems)
        + "</tr>"
        for group in by_group[systems[0]]
    )
    return f"<tr><th>slice</th>{head}</tr>{rows}"


def wanted_searches(
    rows: pd.DataFrame, min_label: int, searches: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per search with at least one wanted item (:func:`wanted_items`), indexed by
    ``search_id``: its query, its user, the listener's market where the rows carry it
    (``user_stats__market``, as the feature store joined it at the search's time) and the wanted
    ids (``relevant``)."""
    require_columns(rows.columns, "split", (S.SEARCH_ID, S.USER_ID, S.ITEM_ID, S.QUERY, S.LABEL))
    wanted = wanted_items(rows, min_label, searches)
    carried = [S.QUERY, S.USER_ID, *([T.MARKET_COLUMN] if T.MARKET_COLUMN in rows else [])]
    first = rows.groupby(S.SEARCH_ID, sort=False)[carried].first()
    return first.loc[wanted.index].assign(relevant=wanted)


def listener_markets(searches: pd.DataFrame) -> list[str | None]:
    """Each search's listener's market, ``None`` where unknown (or all, without the column)."""
    if T.MARKET_COLUMN not in searches:
        return [None] * len(searches)
    return [m if isinstance(m, str) and m else None for m in searches[T.MARKET_COLUMN]]


def ranked_lists(generator: CandidateGenerator, searches: pd.DataFrame, k: int) -> SourceLists:
    """Each source's ids of each search, best first, as ``/search`` retrieves them (rewrites,
    the popularity prior and the listener's market included); the model sources read the
    queries in one batch."""
    rewrites = [generator.rewrite(q) for q in searches[S.QUERY].astype(str)]
    users = searches[S.USER_ID].tolist()
    lists = generator.source_lists(rewrites, users, k, markets=listener_markets(searches))
    if lists.dense is None:
        raise InputError("retriever", "without a two-tower model", "needs the dense retriever")
    return lists


def predicted_intents(generator: CandidateGenerator, searches: pd.DataFrame) -> list[str]:
    """The intent model's prediction for each search's query as rewritten."""
    if generator.intent is None:
        raise InputError("intent model", None, "is needed to route the fusion")
    queries = [generator.rewrite(q).query for q in searches[S.QUERY].astype(str)]
    return [str(intent) for intent in generator.intent.predict(queries)]


def system_lists(
    lists: SourceLists, routing: FusionRouting, predicted: list[str], k: int
) -> dict[str, list[list[int]]]:
    """The ``k`` ids of each search, best first, of every system measured: BM25 alone (the
    service's lexical retriever), the index alone, their even fusion, the routed fusion and,
    with a generative source, that source alone and the routed fusion without it."""
    assert lists.dense is not None  # ranked_lists refuses a generator without it
    pairs = list(zip(lists.dense, lists.lexical, strict=True))
    out = {
        "bm25": lists.lexical,
        "two_tower": lists.dense,
        "fused": [reciprocal_rank_fusion([d, x], k) for d, x in pairs],
    }
    generative = lists.generative or [[] for _ in pairs]
    routed = list(zip(pairs, predicted, generative, lists.partial, lists.described, strict=True))
    out["routed"] = [routing.fuse(d, x, k, p, g, q, w) for (d, x), p, g, q, w in routed]
    if lists.generative is not None:
        without = replace(routing, generative_share={}, generative_default=0.0)
        out["generative"] = lists.generative
        out["routed_without_generative"] = [
            without.fuse(d, x, k, p, partial=q, described=w) for (d, x), p, _, q, w in routed
        ]
    return out


def recall_gain(
    with_source: list[list[int]],
    without_source: list[list[int]],
    relevant: list[list[int]],
    k: int,
) -> BootstrapResult:
    """How much a source adds to the fusion's Recall@k: the paired bootstrap over the searches
    (:func:`~searchrank.core.bootstrap.paired_bootstrap`) of their Recall@k with and without
    it. A source is blessed only when the whole 95 % interval lies above 0: a gain of a search
    or two in ten thousand is noise, and the source costs a decoder on every request."""
    return paired_bootstrap(
        recall_per_search(with_source, relevant, k), recall_per_search(without_source, relevant, k)
    )


def cold_start_groups(
    searches: pd.DataFrame, train: pd.DataFrame, catalogue: pd.DataFrame | None
) -> dict[str, np.ndarray]:
    """Per cold-start question, a label for each search: its listener ``new``/``known`` to the
    training split, and (where the catalogue has release times) whether it wanted a ``new``
    item, one released after the training split's first search, or only ``catalogue`` items.

    Args:
        searches: one row per search with ``user_id`` and ``relevant`` (wanted ids).
        train: the training split's rows (``user_id``, ``event_timestamp``).
        catalogue: one row per item, with ``release_timestamp`` where known.
    """
    known = set(train[S.USER_ID].unique().tolist())
    groups = {
        "listener": np.where(searches[S.USER_ID].isin(known), "known", "new").astype(object),
    }
    if catalogue is not None and RELEASE_TIMESTAMP in catalogue.columns:
        start = pd.to_datetime(train[S.EVENT_TIMESTAMP], utc=True).min()
        released = pd.to_datetime(catalogue[RELEASE_TIMESTAMP], utc=True)
        new = set(catalogue.loc[released > start, S.ITEM_ID].astype(np.int64).tolist())
        wanted_new = [any(int(i) in new for i in wanted) for wanted in searches["relevant"]]
        groups["item"] = np.where(wanted_new, "new", "catalogue").astype(object)
    return groups


def recall_by_group(
    lists: dict[str, list[list[int]]], relevant: list[list[int]], groups: np.ndarray, k: int
) -> dict[str, dict[str, float]]:
    """Per system, Recall@k of the searches of each group (an intent, or an intent × form)."""
    members = {group: np.flatnonzero(groups == group) for group in sorted(set(groups))}
    return {
        name: {
            group: retrieval_metrics([found[j] for j in rows], [relevant[j] for j in rows], (k,))[
                f"recall@{k}"
            ]
            for group, rows in members.items()
        }
        for name, found in lists.items()
    }


def rewrite_shares(
    generator: CandidateGenerator, searches: pd.DataFrame, form: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per typing form, the share of queries corrected, completed, or changed at all."""
    kinds = np.array([generator.rewrite(q).kind for q in searches[S.QUERY].astype(str)])
    return {
        f: {
            "searches": float((form == f).sum()),
            "changed": float((kinds[form == f] != UNCHANGED).mean()),
            CORRECTED: float((kinds[form == f] == CORRECTED).mean()),
            COMPLETED: float((kinds[form == f] == COMPLETED).mean()),
        }
        for f in sorted(set(form))
    }


def system_metrics(
    lists: dict[str, list[list[int]]], relevant: list[list[int]], k: int
) -> dict[str, dict[str, float]]:
    """Recall@10, Recall@k, MRR and the number of searches of each system's lists."""
    return {name: retrieval_metrics(found, relevant, (10, k)) for name, found in lists.items()}


def fit_routing(
    generator: CandidateGenerator, tuning: pd.DataFrame, k: int
) -> tuple[CandidateGenerator, FusionRouting]:
    """On the validation searches (:func:`wanted_searches`), BM25's popularity prior (where the
    generator has streams), the market bonus and the taste weight
    (:func:`fit_completion_bonus`) and the completions' weight (:func:`fit_prefix_weight`),
    then the fusion
    weights by predicted intent (and, for queries typed partway, by
    :func:`~searchrank.core.retrieval.route_key`) over the lists retrieved with those: (the
    generator with the prior and the bonus, the routing)."""
    wanted = tuning["relevant"].tolist()
    prior = 0.0
    if generator.log_streams is not None:
        pools = [generator.lexical_pool(q) for q in tuning[S.QUERY].astype(str)]
        prior = fit_popularity_weight(pools, wanted, k)
    bonus, taste = fit_completion_bonus(generator, tuning, k)
    fitted = fit_prefix_weight(
        generator,
        tuning,
        FusionRouting(popularity_weight=prior, market_weight=bonus, taste_weight=taste),
        k,
    )
    generator = replace(generator, routing=fitted)
    found = ranked_lists(generator, tuning, k)
    predicted = predicted_intents(generator, tuning)
    assert found.dense is not None  # ranked_lists refuses a generator without it
    routes = [
        route_key(p, q, w)
        for p, q, w in zip(predicted, found.partial, found.described, strict=True)
    ]
    routing = fit_fusion_routing(
        found.dense, found.lexical, wanted, routes, k, found.generative, prior
    )
    return generator, replace(
        routing, market_weight=bonus, taste_weight=taste, prefix_weight=fitted.prefix_weight
    )


def fit_prefix_weight(
    generator: CandidateGenerator,
    tuning: pd.DataFrame,
    routing: FusionRouting,
    k: int,
    weights: tuple[float, ...] = PREFIX_WEIGHTS,
) -> FusionRouting:
    """``routing`` with the prefix completions' weight in the lexical fusion (against BM25's
    1) that recalls the most of the searches of ``tuning`` that get completions (typed partway,
    or a whole name that begins longer ones: ``CandidateGenerator.completes``) in their first
    ``k`` lexical items (ties: the smaller weight); unchanged without a prefix index or such
    searches."""
    if generator.prefix is None:
        return routing
    lexical_only = replace(generator, dense=None, generative=None)
    rewrites = [generator.rewrite(q) for q in tuning[S.QUERY].astype(str)]
    chosen = [i for i, r in enumerate(rewrites) if generator.completes(r)]
    if not chosen:
        return routing
    users = tuning[S.USER_ID].to_numpy()[chosen].tolist()
    markets = [listener_markets(tuning)[i] for i in chosen]
    wanted = tuning["relevant"].to_numpy()[chosen].tolist()
    recall = []
    for weight in weights:
        trial = replace(lexical_only, routing=replace(routing, prefix_weight=weight))
        lists = trial.source_lists([rewrites[i] for i in chosen], users, k, markets=markets)
        recall.append(retrieval_metrics(lists.lexical, wanted, (k,))[f"recall@{k}"])
    return replace(routing, prefix_weight=weights[int(np.argmax(recall))])


def completing_searches(
    generator: CandidateGenerator, searches: pd.DataFrame
) -> list[tuple[str, str | None, int, list[int]]]:
    """The searches that get prefix completions (typed partway, or a whole name that begins
    longer ones): each one's query as typed (normalized), its listener's market (``None``
    where unknown), its listener and its wanted ids; none without a prefix index."""
    if generator.prefix is None:
        return []
    typed = [generator.rewrite(q).original for q in searches[S.QUERY].astype(str)]
    return [
        (query, market, int(user), wanted)
        for query, market, user, wanted in zip(
            typed,
            listener_markets(searches),
            searches[S.USER_ID],
            searches["relevant"],
            strict=True,
        )
        if generator.prefix.continues(query)
    ]


def fit_completion_bonus(
    generator: CandidateGenerator, tuning: pd.DataFrame, k: int
) -> tuple[float, float]:
    """The bonus of the listener's market and the weight of their taste among prefix
    completions (:func:`~searchrank.core.completion.fit_completion_weights`) on the searches of
    ``tuning`` that get them (:func:`completing_searches`); (0, 0) without a prefix index or
    such searches."""
    chosen = completing_searches(generator, tuning)
    if generator.prefix is None or not chosen:
        return 0.0, 0.0
    queries, markets, users, wanted = zip(*chosen, strict=True)
    return fit_completion_weights(generator.prefix, queries, markets, users, wanted, k)


def recall_by_groups(
    lists: dict[str, list[list[int]]],
    relevant: list[list[int]],
    groups: dict[str, np.ndarray],
    k: int,
) -> dict[str, dict[str, float]]:
    """Per system, Recall@k of each ``"<question>: <label>"`` group of several groupings."""
    out: dict[str, dict[str, float]] = {}
    for question, labels in groups.items():
        named = np.array([f"{question}: {label}" for label in labels])
        for system, recall in recall_by_group(lists, relevant, named, k).items():
            out.setdefault(system, {}).update(recall)
    return out


def evaluate_retrieval(
    valid: pd.DataFrame,
    test: pd.DataFrame,
    searches: pd.DataFrame,
    generator: CandidateGenerator,
    config: RetrievalConfig | None = None,
    train: pd.DataFrame | None = None,
    catalogue: pd.DataFrame | None = None,
) -> tuple[RetrievalEvaluation, FusionRouting]:
    """Route on ``valid``, measure and bless on ``test`` (see the module docstring).

    Args:
        generator: the service's candidate generator with its dense side and intent model
            (and its generative side and the training split's streams, where there are any).
        searches: the searches table (``search_id``, ``intent`` and, where the log knows it,
            ``target_item_id``, the item a named search meant).
        train: the training split, for the cold-start slices (``None``: none measured).
        catalogue: the catalogue, for the new-item slice (with ``release_timestamp``).
    """
    config = config or RetrievalConfig()
    if generator.intent is None:
        raise InputError("intent model", None, "is needed to route the fusion")
    k = config.k
    tuning = wanted_searches(valid, config.min_relevant_label, searches)
    held_out = wanted_searches(test, config.min_relevant_label, searches)
    for name, frame in (("valid", tuning), ("test", held_out)):
        if frame.empty:
            rule = (
                f"has no search with a wanted item ({S.LABEL} >= {config.min_relevant_label} "
                "or a named target)"
            )
            raise InputError(name, 0, rule)
    generator, routing = fit_routing(generator, tuning, k)
    predicted = predicted_intents(generator, held_out)
    lists = system_lists(ranked_lists(generator, held_out, k), routing, predicted, k)
    relevant = held_out["relevant"].tolist()
    systems = system_metrics(lists, relevant, k)

    truth = labelled_searches(held_out.reset_index(), searches, "test").set_index(S.SEARCH_ID)
    true_intent = truth[INTENT_LABEL].reindex(held_out.index).astype(str).to_numpy()
    by_intent = recall_by_group(lists, relevant, true_intent, k)
    by_slice: dict[str, dict[str, float]] = {}
    rewrites: dict[str, dict[str, float]] = {}
    if QUERY_FORM in searches.columns:
        form = (
            searches.drop_duplicates(S.SEARCH_ID)
            .set_index(S.SEARCH_ID)[QUERY_FORM]
            .reindex(held_out.index)
            .astype(str)
            .to_numpy()
        )
        slices = np.array([f"{i} × {f}" for i, f in zip(true_intent, form, strict=True)])
        by_slice = recall_by_group(lists, relevant, slices, k)
        rewrites = rewrite_shares(generator, held_out, form)
    cold_start: dict[str, dict[str, float]] = {}
    if train is not None:
        groups = cold_start_groups(held_out, train, catalogue)
        cold_start = recall_by_groups(lists, relevant, groups, k)
    tuned_truth = labelled_searches(tuning.reset_index(), searches, "valid")
    majority = str(tuned_truth[INTENT_LABEL].value_counts().idxmax())
    intent = intent_report(true_intent.tolist(), predicted, majority)

    reasons = []
    key = f"recall@{k}"
    needed = (1.0 + config.min_retrieval_gain) * systems["bm25"][key]
    retriever_blessed = systems["routed"][key] >= needed
    if not retriever_blessed:
        reasons.append(
            f"routed Recall@{k} {systems['routed'][key]:.4f} is below {needed:.4f} "
            f"((1 + {config.min_retrieval_gain}) × BM25): the service keeps BM25 alone"
        )
    generative_blessed, generative_gain = False, {}
    if "generative" in lists:
        added = recall_gain(lists["routed"], lists["routed_without_generative"], relevant, k)
        generative_gain = {
            "difference": added.difference,
            "low": added.difference_low,
            "high": added.difference_high,
        }
        generative_blessed = added.difference_low > 0.0
        if not generative_blessed:
            reasons.append(
                f"the routed fusion recalls {added.mean_a:.4f} with the generative retriever and "
                f"{added.mean_b:.4f} without it (95 % interval of the gain "
                f"{added.difference_low:+.4f} to {added.difference_high:+.4f}): the service "
                "leaves it out"
            )
    gain = intent["accuracy"] - intent["majority_accuracy"]
    intent_blessed = gain > config.min_intent_gain
    if not intent_blessed:
        reasons.append(
            f"intent accuracy beats the majority class by {gain:.3f}, not more than "
            f"{config.min_intent_gain}: the fusion is not routed"
        )
    evaluation = RetrievalEvaluation(
        k=k,
        systems=systems,
        by_intent=by_intent,
        by_slice=by_slice,
        rewrites=rewrites,
        cold_start=cold_start,
        generative_blessed=generative_blessed,
        generative_gain=generative_gain,
        routing=asdict(routing),
        intent=intent,
        retriever_blessed=retriever_blessed,
        intent_blessed=intent_blessed,
        reasons=reasons,
    )
    return evaluation, routing


def write_evaluation(evaluation: RetrievalEvaluation, path: Path) -> None:
    path.write_text(json.dumps(evaluation.as_dict(), indent=2, sort_keys=True))
