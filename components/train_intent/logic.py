"""Train the query-intent model on the train split's searches and add its class probabilities
to every split as ranker features.

Each search's intent comes from the searches table (``search_id``, ``intent``); the model reads
the logged query. It is fitted on the train split's searches only and reported on the validation
split's against the majority class (the train split's most common intent), per class. The three
splits are then written again with one ``query_intent__<class>`` column per class, which the
ranker, the LightGBM baseline and evaluation read like any other feature and the service
computes per request with the same model. Its blessing for routing is ``evaluate_retrieval``'s,
on the test split.

Given the catalogue, the splits also get the query rewriter's features (``query_rewrite__…``:
its confidence, and whether it corrected or completed the query), from the rewriter the service
builds: the catalogue's lexicon weighted by the train split's streams.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from searchrank.core import schema as S
from searchrank.core.errors import InputError
from searchrank.core.intent import (
    INTENT_LABEL,
    IntentModel,
    IntentParams,
    add_intent_features,
    intent_report,
    labelled_searches,
)
from searchrank.core.io import write_parquet_atomically
from searchrank.core.query_rewrite import add_rewrite_features, catalogue_rewriter
from searchrank.core.retrieval import item_streams


@dataclass(frozen=True)
class IntentSummary:
    classes: list[str]
    train_searches: int
    majority: str
    validation: dict[str, Any]
    """:func:`intent_report` of the validation searches."""

    def metrics(self) -> dict[str, float]:
        v = self.validation
        return {
            "train_searches": float(self.train_searches),
            "valid_accuracy": v["accuracy"],
            "valid_majority_accuracy": v["majority_accuracy"],
            "valid_macro_f1": v["macro_f1"],
        }

    def markdown(self) -> str:
        v = self.validation
        rows = "\n".join(
            f"| {label} | {c['support']} | {c['precision']:.3f} | {c['recall']:.3f} | "
            f"{c['f1']:.3f} | {c['majority_f1']:.3f} |"
            for label, c in v["per_class"].items()
        )
        return (
            f"### Query intent: validation accuracy {v['accuracy']:.3f} "
            f"(majority class `{self.majority}`: {v['majority_accuracy']:.3f})\n\n"
            f"Trained on {self.train_searches:,} searches; macro F1 {v['macro_f1']:.3f} "
            f"(majority {v['majority_macro_f1']:.3f}).\n\n"
            "| intent | searches | precision | recall | F1 | majority F1 |\n"
            "|---|---:|---:|---:|---:|---:|\n" + rows + "\n"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_intent(
    splits: dict[str, Path],
    searches_path: Path,
    model_dir: Path,
    outputs: dict[str, Path],
    params: IntentParams | None = None,
    catalogue_path: Path | None = None,
) -> IntentSummary:
    """Fit on ``splits["train"]``, report on ``splits["valid"]``, save the model into
    ``model_dir`` and write every split with the intent features (and, given
    ``catalogue_path``, the rewriter's) to ``outputs[name]``."""
    missing = {"train", "valid"} - set(splits)
    if missing or set(outputs) != set(splits):
        raise InputError(
            "splits", sorted(splits), "must include train and valid, each with an output path"
        )
    searches = pd.read_parquet(searches_path, columns=[S.SEARCH_ID, INTENT_LABEL])
    frames = {name: pd.read_parquet(path) for name, path in splits.items()}
    train = labelled_searches(frames["train"], searches, "train")
    valid = labelled_searches(frames["valid"], searches, "valid")
    model = IntentModel.fit(train[S.QUERY].tolist(), train[INTENT_LABEL].tolist(), params)
    majority = str(train[INTENT_LABEL].value_counts().idxmax())
    report = intent_report(
        valid[INTENT_LABEL].tolist(), model.predict(valid[S.QUERY].tolist()).tolist(), majority
    )
    model.save(model_dir)
    rewriter = None
    if catalogue_path is not None:
        streams = item_streams(frames["train"])
        rewriter = catalogue_rewriter(pd.read_parquet(catalogue_path), streams)
    for name, frame in frames.items():
        featured = add_intent_features(frame, model)
        if rewriter is not None:
            featured = add_rewrite_features(featured, rewriter)
        table = pa.Table.from_pandas(featured, preserve_index=False)
        write_parquet_atomically(table, outputs[name])
    return IntentSummary(model.classes, len(train), majority, report)
