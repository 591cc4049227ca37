"""Where the shared real datasets live (research use only: read them, never copy them)."""

from __future__ import annotations

import os
from pathlib import Path


def _shared_datasets() -> Path:
    """``../shared/datasets`` beside the checkout, or ``$SEARCHRANK_SHARED_DATASETS``."""
    if "SEARCHRANK_SHARED_DATASETS" in os.environ:
        return Path(os.environ["SEARCHRANK_SHARED_DATASETS"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/datasets")  # where this project's machines keep it


SHARED_DATASETS = _shared_datasets()
