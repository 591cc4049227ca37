"""Scores of the baselines without a model folder on the test rows: popularity and BM25. Each
function returns one score per row, shape (n,); models score through
:func:`searchrank.core.scoring.score_model`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from searchrank.core import schema as S
from searchrank.features import tables as T


def score_popularity(frame: pd.DataFrame) -> np.ndarray | None:
    """The platform's popularity score; None when the data has no popularity feature."""
    if T.POPULARITY_COLUMN not in frame.columns:
        return None
    return pd.to_numeric(frame[T.POPULARITY_COLUMN], errors="coerce").fillna(0.0).to_numpy()


def known_catalogue(frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    """The catalogue as the rows know it: ``item_id``, ``name`` and ``artist_name`` of every
    item of ``frames``, read from their catalogue feature columns; None without those columns."""
    usable = [f for f in frames if {T.NAME_COLUMN, T.ARTIST_COLUMN} <= set(f.columns)]
    if not usable:
        return None
    rows = pd.concat([f[[S.ITEM_ID, T.NAME_COLUMN, T.ARTIST_COLUMN]] for f in usable])
    return rows.rename(columns={T.NAME_COLUMN: "name", T.ARTIST_COLUMN: "artist_name"})


def score_bm25(frame: pd.DataFrame, catalogue: pd.DataFrame | None) -> np.ndarray | None:
    """BM25 of each row's query against its item, as ``/search``'s lexical retriever scores it
    (:func:`~searchrank.core.candidates.lexical_retriever`: name and artist in character
    trigrams). Its corpus is ``catalogue``, the items known at evaluation time (item texts
    only, never labels), so document frequencies may differ a little from the served index,
    which holds the whole catalogue. None without text."""
    if catalogue is None or S.QUERY not in frame.columns:
        return None
    from searchrank.core.candidates import lexical_retriever

    scorer = lexical_retriever(catalogue)
    return np.asarray(
        scorer.score(frame[S.QUERY].tolist(), frame[S.ITEM_ID].to_numpy()), dtype=np.float64
    )
