"""The search service's request and response types, with the limits every request is held to.

Pydantic validates requests before any work is done; a violation becomes a 400 response whose
``detail`` names the field (``loc``) and the rule (``msg``). The same models describe the
endpoints in the service's OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

MAX_ITEMS = 1_000
"""The most candidates one ``/rank`` request may carry."""
MAX_QUERY_CHARS = 200
MAX_K = 100
"""The most results one ``/search`` request may ask for."""
SEARCH_CANDIDATES = 200
"""How many candidates ``/search`` retrieves before ranking."""
MAX_BODY_BYTES = 64 * 1024
"""Requests with larger bodies are refused with 413 before they are read (1,000 ids fit easily)."""

MAX_ID = 2**53 - 1
"""Ids lie in [0, 2^53 − 1]: integers that JSON clients of every language represent exactly.
(``le``, not ``lt``: BentoML's OpenAPI 3.0 document cannot carry a numeric exclusiveMaximum.)"""

Query = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="The search text as typed; normalized as the logs were.",
        examples=["beyonse halo"],
    ),
]
UserId = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_ID,
        description="The listener; an unknown id is served on the cold-start path.",
        examples=[42],
    ),
]
ItemIds = Annotated[
    list[Annotated[int, Field(ge=0, le=MAX_ID)]],
    Field(
        min_length=1, max_length=MAX_ITEMS, description="Candidates to order.", examples=[[1, 2]]
    ),
]
K = Annotated[int, Field(ge=1, le=MAX_K, description="How many results to return.")]
ExplicitFilter = Annotated[
    bool | None,
    Field(
        description="The listener's explicit-content filter as the client knows it. The "
        "stricter of this and the stored setting applies; a listener without a stored setting "
        "is filtered unless this says false (see searchrank.core.content).",
        examples=[True],
    ),
]


class RankedItem(BaseModel):
    item_id: int
    score: float
    """The ranker's score: higher ranks first; comparable within one response only."""


class RankResponse(BaseModel):
    items: list[RankedItem]
    """The known candidates, best first."""
    unknown_item_ids: list[int]
    """Requested ids the catalogue does not know: dropped, not ranked."""
    cold_start: bool
    """True when the user had no features online (a new or unknown listener)."""
    model: str
    """The BentoML tag of the ranker that scored the items."""
    explicit_filter: bool = False
    """Whether the listener's explicit-content filter applied."""
    withheld_explicit: int = 0
    """Candidates left out because the filter applied and they are explicit (or unflagged)."""


class SearchResult(RankedItem):
    name: str | None
    artist_name: str | None
    item_type: str | None
    genre: str | None


class QueryRewrite(BaseModel):
    """What the service read a mistyped or half-typed query as ("showing results for …")."""

    query: str
    """The corrected or completed query, retrieved for beside the query as typed."""
    kind: str
    """``corrected`` (spelling) or ``completed`` (a prefix)."""
    confidence: float
    """In (0, 1]: the rewrite's probability among the catalogue's candidates."""


class SearchResponse(BaseModel):
    query: str
    """The normalized query as typed."""
    rewrite: QueryRewrite | None = None
    """The correction or completion retrieval also read; ``None`` when the query was read as
    typed (every word is in the catalogue's vocabulary, or the service has no rewriter)."""
    intent: str | None = None
    """The query's predicted intent (track, artist, album, podcast, genre_mood), which weighted
    retrieval and fed the ranker; ``None`` when the service has no intent model."""
    results: list[SearchResult]
    retrieved: int
    """How many candidates retrieval passed to the ranker."""
    cold_start: bool
    model: str
    explicit_filter: bool = False
    withheld_explicit: int = 0
    """Ranked candidates left out by the explicit-content filter (see :class:`RankResponse`)."""
