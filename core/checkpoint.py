"""The ranker's self-describing checkpoint: weights plus everything needed to use them.

A checkpoint folder holds ``model.pt`` (the weights) and ``ranker.json``: the model's shape, the
fitted feature processor (normalization statistics and vocabularies), the feature columns in
order, the feature service they came from, and the training metrics. Serving loads a ranker
from these two files alone, without the training code's state. Training adds ``optimizer.pt``
and ``train_state.json`` to resume from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from searchrank.core.errors import InputError
from searchrank.core.features import FeatureProcessor
from searchrank.core.model import ContextAwareRanker, RankerConfig

WEIGHTS = "model.pt"
DESCRIPTION = "ranker.json"
OPTIMIZER = "optimizer.pt"
TRAIN_STATE = "train_state.json"
FORMAT_VERSION = 1


def save_ranker(
    folder: Path,
    model: ContextAwareRanker,
    processor: FeatureProcessor,
    metadata: dict[str, Any],
) -> None:
    """Write the weights and the description of ``model`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / WEIGHTS)
    description = {
        "format_version": FORMAT_VERSION,
        "model": model.config.as_dict(),
        "processor": json.loads(processor.to_json()),
        "numeric_features": processor.numeric_names,
        "categorical_features": processor.categorical,
        **metadata,
    }
    (folder / DESCRIPTION).write_text(json.dumps(description, indent=2, default=str))


def read_description(folder: Path) -> dict[str, Any]:
    path = folder / DESCRIPTION
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        raise InputError("model", str(folder), f"must be a folder with {WEIGHTS} and {DESCRIPTION}")
    description: dict[str, Any] = json.loads(path.read_text())
    if description.get("format_version") != FORMAT_VERSION:
        raise InputError(
            "ranker.json format_version",
            description.get("format_version"),
            f"must be {FORMAT_VERSION}",
        )
    return description


def read_processor(description: dict[str, Any]) -> FeatureProcessor:
    """The fitted feature processor a checkpoint's description holds (no weights loaded)."""
    return FeatureProcessor.from_json(json.dumps(description["processor"]))


def load_ranker(
    folder: Path, map_location: str | torch.device = "cpu"
) -> tuple[ContextAwareRanker, FeatureProcessor, dict[str, Any]]:
    """The model (in eval mode), its feature processor and its description."""
    description = read_description(folder)
    model = ContextAwareRanker(RankerConfig(**description["model"]))
    model.load_state_dict(torch.load(folder / WEIGHTS, map_location=map_location))
    model.eval()
    return model, read_processor(description), description
