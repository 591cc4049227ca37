"""``train_lightgbm``: the LambdaMART baseline, tuned on the same features as the transformer.

The baseline encodes rows with the same :class:`FeatureProcessor` as the ranker (numbers as they
are, categories as codes LightGBM splits on natively), is tuned by grouped cross-validation on the
training split, and reports its validation NDCG without selecting on it. The model folder holds
LightGBM's model, the tuning table and the feature processor, so evaluation and serving can
score new rows with exactly the training encoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import PROCESSOR_FILE, FeatureProcessor, infer_roles
from searchrank.core.lambdamart import LambdaMartConfig, tune_lambdamart

DESCRIPTION = "baseline.json"


@dataclass(frozen=True)
class LightGBMSummary:
    """The tuned baseline's choice and scores."""

    params: dict[str, Any]
    rounds: int
    cv_ndcg: float
    valid_ndcg: float | None
    grid_points: int
    features: int

    def metrics(self) -> dict[str, float]:
        out = {
            "cv_ndcg@10": self.cv_ndcg,
            "rounds": float(self.rounds),
            "grid_points": float(self.grid_points),
        }
        if self.valid_ndcg is not None:
            out["valid_ndcg@10"] = self.valid_ndcg
        return out


def matrix(
    frame: pd.DataFrame, processor: FeatureProcessor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, labels, search ids) of rows, as the tuned model reads them."""
    features, _ = processor.raw_matrix(frame)
    return features, frame[S.LABEL].to_numpy(), frame[S.SEARCH_ID].to_numpy()


def _positions(train: pd.DataFrame, config: LambdaMartConfig) -> np.ndarray | None:
    """The logged positions position-bias correction learns from, when it is on."""
    if config.position_bias_regularization is None:
        return None
    if S.POSITION not in train.columns:
        raise InputError(
            "train columns",
            list(train.columns)[:12],
            f"position-bias correction needs the logged {S.POSITION!r} of every row (the "
            "propensity's input); this data has none, so train without it",
        )
    return train[S.POSITION].to_numpy(dtype=np.int64)


def train_lightgbm(
    train: pd.DataFrame,
    valid: pd.DataFrame | None,
    model_dir: Path,
    config: LambdaMartConfig,
    contract: FeatureContract | None = None,
) -> LightGBMSummary:
    """Tune and fit LambdaMART on ``train`` and write it to ``model_dir``, with the data's feature
    contract (None for data without one: every feature numeric)."""
    if train.empty:
        raise InputError("train", 0, "the training split must have rows")
    processor = FeatureProcessor.fit(train, infer_roles(list(train.columns), contract))
    features, y, groups = matrix(train, processor)
    _, names = processor.raw_matrix(train.head(1))
    categorical = [names.index(c) for c in processor.categorical]
    tuned = tune_lambdamart(
        features,
        y,
        groups,
        categorical=categorical,
        feature_names=names,
        valid=matrix(valid, processor) if valid is not None and len(valid) else None,
        config=config,
        positions=_positions(train, config),
    )
    tuned.save(model_dir)
    processor.save(model_dir / PROCESSOR_FILE)
    if contract is not None:
        contract.save(model_dir)
    chosen = tuned.chosen
    summary = LightGBMSummary(
        params=tuned.params,
        rounds=tuned.num_rounds,
        cv_ndcg=float(chosen.ndcg_mean),
        valid_ndcg=tuned.valid_ndcg,
        grid_points=len(tuned.cv_results),
        features=len(names),
    )
    (model_dir / DESCRIPTION).write_text(
        json.dumps(
            {"kind": "lambdamart", **summary.metrics()},
            indent=2,
        )
    )
    return summary
