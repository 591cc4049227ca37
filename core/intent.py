"""The query-intent model: what a search asks for (track, artist, album, podcast, genre or mood).

A linear model over the normalized query's character n-grams (2–4, within words: robust to the
misspellings and prefixes users type) and whole words, fitted with logistic regression. Its
predicted class is a routing signal for ``/search`` (:mod:`searchrank.core.candidates`) and
its class probabilities are ranker features (:func:`add_intent_features`, columns
``query_intent__<class>``). Labels come from the search logs' ``intent`` column: on a real
service, intents annotated for a sample of searches or derived from what was finally streamed;
in the synthetic logs, the simulator's intent.

:func:`intent_report` scores a model against the majority-class baseline, overall and per
class (precision, recall, F1), the way evaluation reports it.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.errors import InputError, require_columns
from searchrank.core.text import normalize_text

MODEL_FILE = "intent.pkl"
INTENT_VIEW = "query_intent"
"""The feature-view part of the intent feature columns, as Feast names its columns
(``<view>__<feature>``). These columns come from the intent model, not from Feast."""
INTENT_LABEL = "intent"
"""The searches table's column with each search's intent."""


def intent_column(label: str) -> str:
    """The ranker feature column of one class's probability."""
    return f"{INTENT_VIEW}__{label}"


def is_intent_column(column: str) -> bool:
    return column.startswith(f"{INTENT_VIEW}__")


def top_intent(features: pd.DataFrame) -> str:
    """The most probable class of the first row of :meth:`IntentModel.features`."""
    return str(features.iloc[0].idxmax()).removeprefix(f"{INTENT_VIEW}__")


@dataclass(frozen=True)
class IntentParams:
    c: float = 4.0
    """Inverse L2 regularization strength of the logistic regression."""
    min_df: int = 2
    max_features: int = 200_000

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise InputError("c", self.c, "must be positive")
        if self.min_df < 1:
            raise InputError("min_df", self.min_df, "must be at least 1")


class IntentModel:
    """Fit with :meth:`fit`; :meth:`predict` and :meth:`probabilities` take raw query texts."""

    def __init__(self, pipeline: Any, params: IntentParams) -> None:
        self._pipeline = pipeline
        self.params = params

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self._pipeline.classes_]

    @classmethod
    def fit(
        cls, queries: Sequence[str], intents: Sequence[str], params: IntentParams | None = None
    ) -> IntentModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        params = params or IntentParams()
        if len(queries) != len(intents) or not len(queries):
            raise InputError(
                "queries", len(queries), f"must be non-empty and match {len(intents)} intents"
            )
        if len(set(intents)) < 2:
            raise InputError("intents", sorted(set(intents)), "need at least two classes")
        features = make_union(
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 4),
                min_df=params.min_df,
                max_features=params.max_features,
                sublinear_tf=True,
            ),
            TfidfVectorizer(analyzer="word", min_df=params.min_df, sublinear_tf=True),
        )
        pipeline = make_pipeline(features, LogisticRegression(C=params.c, max_iter=2_000))
        pipeline.fit([normalize_text(q) for q in queries], list(intents))
        return cls(pipeline, params)

    def predict(self, queries: Sequence[str]) -> np.ndarray:
        return np.asarray(self._pipeline.predict([normalize_text(q) for q in queries]))

    def probabilities(self, queries: Sequence[str]) -> np.ndarray:
        """(n, len(classes)) class probabilities, columns in :attr:`classes` order."""
        return np.asarray(self._pipeline.predict_proba([normalize_text(q) for q in queries]))

    def understand(self, query: str) -> tuple[dict[str, float], str]:
        """One query's class probabilities by :func:`intent_column` (float32 values, as
        :meth:`features` gives them) and its most probable class, without building a DataFrame
        (the service asks this per request)."""
        probabilities = self.one_query.probabilities(normalize_text(query)).astype(np.float32)
        classes = self.classes
        by_column = {
            intent_column(c): float(p) for c, p in zip(classes, probabilities, strict=True)
        }
        return by_column, classes[int(np.argmax(probabilities))]

    @cached_property
    def one_query(self) -> OneQueryScorer:
        """The fitted pipeline as a fast scorer of one query at a time (:meth:`understand`)."""
        return OneQueryScorer.of(self._pipeline)

    def features(self, queries: Sequence[str]) -> pd.DataFrame:
        """One row per query with one probability column per class (:func:`intent_column`)."""
        return pd.DataFrame(
            self.probabilities(queries).astype(np.float32),
            columns=[intent_column(c) for c in self.classes],
        )

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / MODEL_FILE).open("wb") as out:
            pickle.dump({"pipeline": self._pipeline, "params": asdict(self.params)}, out)

    @classmethod
    def load(cls, folder: Path) -> IntentModel:
        with (folder / MODEL_FILE).open("rb") as source:
            saved = pickle.load(source)
        return cls(saved["pipeline"], IntentParams(**saved["params"]))


@dataclass(frozen=True)
class Vocabulary:
    """One fitted TF-IDF vectorizer of the pipeline, as plain lookups."""

    analyze: Callable[[str], list[str]]
    index: dict[str, int]
    """Term → column within the vectorizer."""
    idf: np.ndarray
    weights: np.ndarray
    """(terms, classes or 1): the logistic regression's coefficients of these columns."""


@dataclass(frozen=True)
class OneQueryScorer:
    """The fitted pipeline's arithmetic for one query, without scikit-learn's per-call input
    checks and sparse matrices (milliseconds, against tens of microseconds here). It gives
    :meth:`IntentModel.probabilities`' values (``tests/core/test_intent.py`` compares them):
    per vectorizer, sublinear term frequencies times IDF, L2-normalized; then the linear model's
    softmax (a sigmoid for two classes)."""

    vocabularies: tuple[Vocabulary, ...]
    intercept: np.ndarray

    @classmethod
    def of(cls, pipeline: Any) -> OneQueryScorer:
        """The scorer of a pipeline :meth:`IntentModel.fit` built (a union of TF-IDF
        vectorizers, then a logistic regression)."""
        union, regression = (step for _, step in pipeline.steps)
        coefficients = regression.coef_.T  # (features, classes or 1)
        vocabularies, start = [], 0
        for _, vectorizer in union.transformer_list:
            if not (vectorizer.sublinear_tf and vectorizer.norm == "l2" and vectorizer.use_idf):
                raise ValueError(f"an intent vectorizer unlike IntentModel.fit's: {vectorizer}")
            n = len(vectorizer.idf_)
            vocabularies.append(
                Vocabulary(
                    analyze=vectorizer.build_analyzer(),
                    index=dict(vectorizer.vocabulary_),
                    idf=vectorizer.idf_,
                    weights=coefficients[start : start + n],
                )
            )
            start += n
        return cls(tuple(vocabularies), regression.intercept_)

    def probabilities(self, text: str) -> np.ndarray:
        """The class probabilities of one normalized query."""
        logits = self.intercept.astype(np.float64)
        for vocabulary in self.vocabularies:
            counts = Counter(
                column
                for term in vocabulary.analyze(text)
                if (column := vocabulary.index.get(term)) is not None
            )
            if not counts:
                continue
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            weights = tf * vocabulary.idf[columns]
            logits = logits + (weights / np.linalg.norm(weights)) @ vocabulary.weights[columns]
        if len(logits) == 1:  # two classes: one logit, for the second
            second = 1.0 / (1.0 + np.exp(-logits[0]))
            return np.array([1.0 - second, second])
        shifted = np.exp(logits - logits.max())
        return shifted / shifted.sum()


def add_intent_features(rows: pd.DataFrame, model: IntentModel) -> pd.DataFrame:
    """``rows`` with the intent model's class probabilities of each row's ``query`` appended
    (computed once per distinct query); columns already there are replaced."""
    if S.QUERY not in rows.columns:
        raise InputError("rows columns", list(rows.columns), f"must include {S.QUERY}")
    queries = rows[S.QUERY].astype(str)
    distinct = queries.drop_duplicates()
    table = model.features(distinct.tolist()).set_index(pd.Index(distinct.to_numpy()))
    values = table.reindex(queries.to_numpy()).set_index(rows.index)
    return pd.concat([rows.drop(columns=table.columns, errors="ignore"), values], axis=1)


def intent_report(truth: Sequence[str], predicted: Sequence[str], majority: str) -> dict[str, Any]:
    """Accuracy and macro F1 of ``predicted`` and of always answering ``majority``, and
    precision, recall and F1 per class."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = sorted(set(truth))
    baseline = [majority] * len(truth)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    _, base_recall, base_f1, _ = precision_recall_fscore_support(
        truth, baseline, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "majority_accuracy": float(accuracy_score(truth, baseline)),
        "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro")),
        "majority_macro_f1": float(
            f1_score(truth, baseline, labels=labels, average="macro", zero_division=0)
        ),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "majority_f1": float(base_f1[i]),
                "majority_recall": float(base_recall[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def labelled_searches(rows: pd.DataFrame, searches: pd.DataFrame, field: str) -> pd.DataFrame:
    """One row per search of ``rows`` (``search_id``, ``query``) with its ``intent``.

    Raises:
        InputError: a column is missing, or a search of ``rows`` is not in ``searches``.
    """
    require_columns(rows.columns, field, (S.SEARCH_ID, S.QUERY))
    require_columns(searches.columns, "searches", (S.SEARCH_ID, INTENT_LABEL))
    first = rows[[S.SEARCH_ID, S.QUERY]].drop_duplicates(S.SEARCH_ID)
    labels = searches.drop_duplicates(S.SEARCH_ID).set_index(S.SEARCH_ID)[INTENT_LABEL]
    out = first.assign(**{INTENT_LABEL: first[S.SEARCH_ID].map(labels).to_numpy()})
    unknown = out[out[INTENT_LABEL].isna()][S.SEARCH_ID]
    if len(unknown):
        raise InputError(
            f"{field} search_id",
            unknown.head(5).tolist(),
            f"every search must have an intent in the searches table ({len(unknown)} do not)",
        )
    return out.reset_index(drop=True)
