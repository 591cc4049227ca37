"""Scores of a saved model on training-set rows, whichever kind of model it is.

Two kinds of model folders exist: the transformer ranker's checkpoint (``train_ranker``,
``ranker.json`` and ``model.pt``) and the LambdaMART baseline (``train_lightgbm``). Evaluation
and online experiments score both the same way, through :func:`score_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.checkpoint import DESCRIPTION, load_ranker
from searchrank.core.lambdamart import load_lightgbm
from searchrank.core.slates import scores_to_rows, to_slates
from searchrank.core.training import score_slates

Scorer = Callable[[pd.DataFrame], np.ndarray]
"""Scores of rows (a frame with the training set's columns), shape (n,)."""


def load_scorer(model_dir: Path) -> Scorer:
    """A saved ranker or LambdaMART baseline, loaded once, as a function of rows.

    Raises:
        InputError: the folder holds neither kind of model.
    """
    if (model_dir / DESCRIPTION).is_file():
        model, processor, _ = load_ranker(model_dir)

        def score_ranker(frame: pd.DataFrame) -> np.ndarray:
            dense, codes = processor.transform(frame)
            groups = frame[S.SEARCH_ID].to_numpy()
            longest = int(frame.groupby(S.SEARCH_ID, sort=False).size().max()) if len(frame) else 1
            slates = to_slates(dense, codes, frame[S.LABEL].to_numpy(np.float32), groups, longest)
            return scores_to_rows(score_slates(model, slates), slates, len(frame))

        return score_ranker
    booster, features = load_lightgbm(model_dir)
    return lambda frame: np.asarray(booster.predict(features.raw_matrix(frame)[0]))


def score_model(frame: pd.DataFrame, model_dir: Path) -> np.ndarray:
    """Scores of a saved ranker or LambdaMART baseline on every row (no list is cut), (n,).

    Raises:
        InputError: the folder holds neither kind of model.
    """
    return load_scorer(model_dir)(frame)
