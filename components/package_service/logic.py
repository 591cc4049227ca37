"""Package a blessed ranker as a Bento and validate it as it will run.

1. **Refuse** a model that ``evaluate`` did not bless.
2. **Save** the ranker checkpoint and the candidate generator to the BentoML model store,
   labelled with their lineage: the Feast feature service and its schema version, the KFP run,
   the training Dataset's URI and the ranker Model's URI (:class:`Lineage`). The generator is
   BM25 over the catalogue, plus the two-tower retriever and its index when
   ``evaluate_retrieval`` blessed them, plus the query-intent model when given (the ranker may
   read its probabilities) with the intent routing of the fusion when that was blessed too
   (:func:`retriever_parts`).
3. **Build** the Bento (offline, pinned requirements) and **export** it as one file.
4. **Infra-validate**: start the built Bento with ``bentoml serve`` on a free 127.0.0.1 port,
   replay golden searches from the evaluation set through ``POST /rank``, and require the
   served scores to equal the offline ones (max abs diff ≤ ``tolerance``) and the p99 latency
   to stay under a budget; then send each golden query once through ``POST /search`` (the
   whole retrieve → rank path, with the dense retriever and intent routing when packaged) and
   require a full answer within the same budget. The server is stopped whatever happens.

Parity needs the online store to hold what the golden searches saw. Infra validation therefore
runs the Bento against a *staging* store: the repository's offline store with a fresh registry
and SQLite online store, materialized until just after the golden searches, which are the last
day (between two daily snapshots) of the evaluation set. Production's online store and registry
are never written.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
import yaml

from searchrank.components.package_service.config import PackageConfig
from searchrank.core import schema as S
from searchrank.core.candidates import RetrieverParts
from searchrank.core.checkpoint import read_description, read_processor
from searchrank.core.content import LeakAudit, is_withheld
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError, require_columns
from searchrank.core.intent import is_intent_column
from searchrank.features import tables as T

if TYPE_CHECKING:
    pass

CANDIDATE_SCORE = "score_candidate"
SEARCH_K = 10


@dataclass(frozen=True)
class Lineage:
    """Where the model came from; saved as BentoML labels and metadata. Every field names
    something that outlives the run's steps (a run, an artifact URI), never a scratch folder."""

    kfp_run: str = ""
    training_dataset_uri: str = ""
    checkpoint_uri: str = ""
    """The URI of ``train_ranker``'s Model artifact, where the best checkpoint was copied;
    not Ray's own checkpoint, which may lie in a temporary folder of the training step."""


@dataclass
class InfraValidation:
    searches: int
    requests: int
    max_abs_diff: float
    p50_ms: float
    p99_ms: float
    search_p99_ms: float
    passed: bool
    reasons: list[str] = field(default_factory=list)
    explicit: dict[str, float] = field(default_factory=dict)
    """The explicit-leak audit of every list shown with the filter on (:class:`LeakAudit`)."""


@dataclass
class PackageResult:
    ranker_tag: str
    retriever_tag: str
    bento_tag: str
    feature_service: str
    feature_service_version: str
    validation: InfraValidation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        v = self.validation
        return {
            "golden_searches": v.searches,
            "max_abs_score_diff": v.max_abs_diff,
            "p50_ms": v.p50_ms,
            "p99_ms": v.p99_ms,
            "search_p99_ms": v.search_p99_ms,
            "explicit_leak_rate": v.explicit.get("leak_rate", 0.0),
            "infra_validation_passed": float(v.passed),
        }

    def markdown(self) -> str:
        v = self.validation
        verdict = "PASSED" if v.passed else "FAILED"
        lines = [
            f"### Bento `{self.bento_tag}`: infra validation {verdict}",
            "",
            f"- ranker `{self.ranker_tag}`, retriever `{self.retriever_tag}`",
            f"- feature service `{self.feature_service}` (schema {self.feature_service_version})",
            f"- {v.searches} golden searches, {v.requests} requests: max |served − offline| = "
            f"{v.max_abs_diff:.2e}, p50 {v.p50_ms:.1f} ms, p99 {v.p99_ms:.1f} ms",
            f"- `/search` (retrieve → rank, top {SEARCH_K}) p99 {v.search_p99_ms:.1f} ms",
            f"- explicit content: {v.explicit.get('leaked', 0):.0f} leaked of "
            f"{v.explicit.get('shown', 0):.0f} items in {v.explicit.get('filtered_lists', 0):.0f} "
            f"lists shown with the filter on ({v.explicit.get('withheld', 0):.0f} withheld)",
        ]
        lines += [f"- **{reason}**" for reason in v.reasons]
        return "\n".join(lines) + "\n"


def last_snapshot_day(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows after the last daily snapshot time: every point-in-time feature of these
    searches is the latest value at the end of the rows, so an online store materialized right
    after them serves exactly what training saw."""
    times = rows[S.EVENT_TIMESTAMP]
    day_start = (times.max() - T.SNAPSHOT_DELAY).floor("D") + T.SNAPSHOT_DELAY
    return rows[times >= day_start].reset_index(drop=True)


def golden_searches(scores: pd.DataFrame, count: int) -> pd.DataFrame:
    """The last ``count`` searches of the evaluation set that lie after its last snapshot time."""
    needed = [S.SEARCH_ID, S.USER_ID, S.ITEM_ID, S.QUERY, S.EVENT_TIMESTAMP, CANDIDATE_SCORE]
    require_columns(scores.columns, "golden", needed)
    last_day = last_snapshot_day(scores)
    chosen = last_day[S.SEARCH_ID].drop_duplicates().tail(count)
    return last_day[last_day[S.SEARCH_ID].isin(chosen)].reset_index(drop=True)


def staging_repo(
    feature_repo: Path,
    folder: Path,
    until: pd.Timestamp,
    online_store: dict[str, Any] | None = None,
) -> Path:
    """A repository over ``feature_repo``'s offline store with its own registry and online store
    (SQLite in ``folder`` unless ``online_store`` configures another), materialized until
    ``until``."""
    from searchrank.features.materialize import materialize_features
    from searchrank.features.online_store import STORE_TYPE as BULK_SQLITE
    from searchrank.features.store import FEATURE_STORE_YAML, apply_definitions, open_store

    config = yaml.safe_load((feature_repo / FEATURE_STORE_YAML).read_text())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    config["registry"] = str(folder / "data" / "registry.db")
    config["online_store"] = online_store or {
        "type": BULK_SQLITE,
        "path": str(folder / "data" / "online_store.db"),
    }
    (folder / FEATURE_STORE_YAML).write_text(yaml.safe_dump(config, sort_keys=False))
    apply_definitions(open_store(folder))
    materialize_features(folder, until.to_pydatetime() + timedelta(seconds=1))
    return folder


def replay(
    url: str, golden: pd.DataFrame, config: PackageConfig, explicit: pd.Series
) -> InfraValidation:
    """Send every golden search ``rounds`` times to ``POST /rank`` and compare with offline,
    then once to ``POST /search``; then both once more with the explicit-content filter on.

    Args:
        explicit: every catalogue item's explicit flag, by item id: what the explicit-leak
            rate counts (an item missing from it counts as explicit).
    """
    latencies, search_latencies, worst = [], [], 0.0
    short: list[str] = []
    audit = LeakAudit()

    def shown(response: httpx.Response, key: str) -> list[int]:
        """The item ids of a response, counted in the audit when its filter applied."""
        response.raise_for_status()
        body = response.json()
        ids = [int(r["item_id"]) for r in body[key]]
        if body["explicit_filter"]:
            audit.add(explicit.reindex(ids).to_numpy(dtype=object), body["withheld_explicit"])
        return ids

    with httpx.Client(base_url=url, timeout=60.0) as client:
        for _, rows in golden.groupby(S.SEARCH_ID, sort=False):
            query, user_id = str(rows[S.QUERY].iloc[0]), int(rows[S.USER_ID].iloc[0])
            body = {
                "query": query,
                "user_id": user_id,
                "item_ids": [int(i) for i in rows[S.ITEM_ID]],
            }
            offline = dict(zip(rows[S.ITEM_ID].astype(int), rows[CANDIDATE_SCORE], strict=True))
            for _ in range(config.rounds):
                started = time.perf_counter()
                response = client.post("/rank", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            served = {r["item_id"]: r["score"] for r in response.json()["items"]}
            shown(response, "items")
            started = time.perf_counter()
            searched = client.post(
                "/search", json={"query": query, "user_id": user_id, "k": SEARCH_K}
            )
            search_latencies.append((time.perf_counter() - started) * 1000)
            if len(shown(searched, "results")) < SEARCH_K:
                short.append(query)
            filtered = {"explicit_filter": True}
            shown(client.post("/rank", json=body | filtered), "items")
            search = {"query": query, "user_id": user_id, "k": SEARCH_K} | filtered
            shown(client.post("/search", json=search), "results")
            # The policy may withhold candidates; the rest must score as offline.
            withheld = set(offline) - set(served)
            if (
                not set(served) <= set(offline)
                or not is_withheld(explicit.reindex(sorted(withheld)).to_numpy(dtype=object)).all()
            ):
                worst = float("inf")
                continue
            worst = max(worst, *(abs(served[i] - offline[i]) for i in served), 0.0)
    p99 = float(pd.Series(latencies).quantile(0.99))
    search_p99 = float(pd.Series(search_latencies).quantile(0.99))
    reasons = []
    if not worst <= config.tolerance:
        reasons.append(f"served scores differ from offline by {worst:.3g} > {config.tolerance}")
    for name, value in (("p99", p99), ("/search p99", search_p99)):
        if value > config.p99_budget_ms:
            reasons.append(
                f"{name} latency {value:.1f} ms exceeds the budget of {config.p99_budget_ms} ms"
            )
    if short:
        reasons.append(f"/search returned fewer than {SEARCH_K} results for {short[:3]}")
    if audit.leaked:
        reasons.append(
            f"explicit-leak rate {audit.leak_rate:.2%}: {audit.leaked} explicit items shown "
            f"to listeners whose filter was on ({audit.lists} lists)"
        )
    return InfraValidation(
        searches=golden[S.SEARCH_ID].nunique(),
        requests=len(latencies),
        max_abs_diff=worst,
        p50_ms=statistics.median(latencies),
        p99_ms=p99,
        search_p99_ms=search_p99,
        passed=not reasons,
        reasons=reasons,
        explicit=audit.as_dict(),
    )


def retriever_parts(
    two_tower: Path | None,
    index: Path | None,
    intent: Path | None,
    routing: Path | None,
    retriever_blessed: bool,
    intent_blessed: bool,
    generative: Path | None = None,
    generative_blessed: bool = False,
    train: Path | None = None,
) -> RetrieverParts:
    """What joins BM25 in the service: the dense side only when blessed, the intent model
    whenever given, the routing only with a blessed dense side and a blessed intent model, the
    generative retriever only when blessed and routed (the routing holds its weights), and the
    training split whenever given (its streams weigh popularity and are its listeners' taste)."""
    dense = retriever_blessed and two_tower is not None and index is not None
    routed = dense and intent_blessed and intent is not None and routing is not None
    return RetrieverParts(
        two_tower=two_tower if dense else None,
        index=index if dense else None,
        intent=intent,
        routing=routing if routed else None,
        generative=generative if routed and generative_blessed else None,
        train=train,
    )


def package_service(
    model_dir: Path,
    blessed: bool,
    golden_path: Path,
    catalogue_path: Path,
    feature_repo: Path,
    bento_path: Path,
    work_dir: Path,
    config: PackageConfig | None = None,
    lineage: Lineage | None = None,
    parts: RetrieverParts | None = None,
) -> PackageResult:
    """Package, export and infra-validate (see the module docstring).

    Args:
        parts: what joins BM25 in the candidate generator (:func:`retriever_parts`).

    Raises:
        InputError: the model is not blessed, reads intent features without an intent model,
            or an input is missing or malformed.
    """
    from searchrank.features.store import check_connections, open_store
    from searchrank.serving.bento import (
        build_bento,
        export_bento,
        save_ranker,
        save_retriever,
        serve,
    )
    from searchrank.serving.checks import check_feature_service

    config = config or PackageConfig()
    lineage = lineage or Lineage()
    if not blessed:
        raise InputError("blessed", blessed, "only a model that evaluate blessed is packaged")
    description = read_description(model_dir)
    processor = read_processor(description)
    contract = FeatureContract.load(model_dir)
    parts = parts or RetrieverParts()
    reads_intent = any(is_intent_column(c) for c in processor.numeric_names)
    if reads_intent and parts.intent is None:
        raise InputError("intent", None, "the ranker reads query-intent features: pass its model")
    store = open_store(feature_repo)
    # The staging store for infra validation reads the repository's offline data.
    check_connections(store, online=False)
    check_feature_service(store, contract, processor)
    golden = golden_searches(pd.read_parquet(golden_path), config.golden_searches)
    labels = {
        "feature_service": contract.feature_service,
        "feature_service_version": contract.schema_hash,
        "kfp_run": lineage.kfp_run or "local",
    }
    ranker = save_ranker(
        model_dir, labels, {**asdict(lineage), "metrics": description.get("metrics", {})}
    )
    catalogue = pd.read_parquet(catalogue_path)
    if "explicit" not in catalogue.columns:
        raise InputError(
            "catalogue columns",
            list(catalogue.columns),
            "must include 'explicit': infra validation measures the explicit-leak rate with it",
        )
    retriever = save_retriever(catalogue, labels, parts)
    bento = build_bento(ranker, retriever, labels)
    export_bento(bento, bento_path)
    staging = staging_repo(feature_repo, work_dir / "staging", golden[S.EVENT_TIMESTAMP].max())
    explicit = catalogue.set_index(S.ITEM_ID)["explicit"]
    with serve(bento, staging) as running:
        validation = replay(running.url, golden, config, explicit)
    return PackageResult(
        ranker, retriever, bento, contract.feature_service, contract.schema_hash, validation
    )
