"""Scores of every system on the test rows: the candidate ranker, the blessed one, LightGBM,
popularity and BM25. Each function returns one score per row, shape (n,)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.core.checkpoint import load_ranker
from searchrank.core.slates import scores_to_rows, to_slates
from searchrank.core.training import score_slates

POPULARITY_COLUMN = "item_stats__popularity"
NAME_COLUMN = "item_catalogue__name"
ARTIST_COLUMN = "item_catalogue__artist_name"


def score_ranker(frame: pd.DataFrame, model_dir: Path) -> np.ndarray:
    """Scores of a saved transformer ranker on every row (no list is cut)."""
    model, processor, _ = load_ranker(model_dir)
    dense, codes = processor.transform(frame)
    groups = frame[S.SEARCH_ID].to_numpy()
    longest = int(frame.groupby(S.SEARCH_ID, sort=False).size().max()) if len(frame) else 1
    slates = to_slates(dense, codes, frame[S.LABEL].to_numpy(np.float32), groups, longest)
    return scores_to_rows(score_slates(model, slates), slates, len(frame))


def score_popularity(frame: pd.DataFrame) -> np.ndarray | None:
    """The platform's popularity score; None when the data has no popularity feature."""
    if POPULARITY_COLUMN not in frame.columns:
        return None
    return pd.to_numeric(frame[POPULARITY_COLUMN], errors="coerce").fillna(0.0).to_numpy()


def item_texts(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    """One text per item (name and artist) from the rows given; None without text columns."""
    usable = [f for f in frames if {NAME_COLUMN, ARTIST_COLUMN} <= set(f.columns)]
    if not usable:
        return None
    rows = pd.concat([f[[S.ITEM_ID, NAME_COLUMN, ARTIST_COLUMN]] for f in usable])
    rows = rows.drop_duplicates(S.ITEM_ID).fillna("")
    return pd.DataFrame(
        {
            S.ITEM_ID: rows[S.ITEM_ID].to_numpy(),
            "text": (rows[NAME_COLUMN] + " " + rows[ARTIST_COLUMN]).tolist(),
        }
    )


def score_bm25(frame: pd.DataFrame, corpus: pd.DataFrame | None) -> np.ndarray | None:
    """BM25 of each row's query against its item's name and artist (the catalogue as known:
    item texts only, never labels); None without text."""
    if corpus is None or S.QUERY not in frame.columns:
        return None
    from searchrank.core.bm25 import BM25Scorer

    scorer = BM25Scorer.fit(corpus[S.ITEM_ID].to_numpy(), corpus["text"].tolist())
    return np.asarray(
        scorer.score(frame[S.QUERY].tolist(), frame[S.ITEM_ID].to_numpy()), dtype=np.float64
    )
