"""The ``train_intent`` KFP component: a thin wrapper over :mod:`.logic`."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from searchrank.core.names import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_intent_op(
    train: Input[Dataset],
    valid: Input[Dataset],
    test: Input[Dataset],
    searches: Input[Dataset],
    model: Output[Model],
    train_with_intent: Output[Dataset],
    valid_with_intent: Output[Dataset],
    test_with_intent: Output[Dataset],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    catalogue: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP reads typing.Optional)
    c: float = 4.0,
    min_df: int = 2,
) -> None:
    """Train the query-intent model and add its class probabilities to the splits, with the
    query rewriter's features where the catalogue is given.

    Args:
        train: the train split; its searches fit the model.
        valid: the validation split; its searches measure it against the majority class.
        test: the test split (only given the features).
        searches: the searches table (``search_id``, ``intent``).
        model: the fitted model (``intent.pkl``).
        train_with_intent: the train split with one ``query_intent__<class>`` column per class
            (and the ``query_rewrite__`` columns with a catalogue).
        valid_with_intent: the same for the validation split.
        test_with_intent: the same for the test split.
        metrics: validation accuracy and macro F1, with the majority class's accuracy.
        summary: the same per class, as Markdown.
        catalogue: one row per item: the rewriter's vocabulary (weighted by the train split's
            streams, as the service weighs it) for the ``query_rewrite__`` features (confidence,
            corrected, completed); ``None`` leaves them out.
        c: inverse L2 regularization strength of the logistic regression.
        min_df: the fewest searches an n-gram must appear in.
    """
    from pathlib import Path

    from searchrank.components.train_intent.logic import train_intent
    from searchrank.core.intent import IntentParams
    from searchrank.core.io import log_metrics

    result = train_intent(
        {"train": Path(train.path), "valid": Path(valid.path), "test": Path(test.path)},
        Path(searches.path),
        Path(model.path),
        {
            "train": Path(train_with_intent.path),
            "valid": Path(valid_with_intent.path),
            "test": Path(test_with_intent.path),
        },
        IntentParams(c=c, min_df=min_df),
        Path(catalogue.path) if catalogue is not None else None,
    )
    log_metrics(metrics, result.metrics())
    model.metadata.update({"framework": "scikit-learn", "classes": result.classes})
    Path(summary.path).write_text(result.markdown())
