"""The search service's settings: the environment variables it reads, and readers that refuse a
bad value with an error naming the variable, the value and the rule.

This module imports nothing heavy and reads nothing when imported, so that building a Bento or
a test can name the variables without importing :mod:`searchrank.serving.service`, which reads
the model tags when it is imported (BentoML declares a service's models in its class body).

``SEARCHRANK_FEATURE_REPO``
    the Feast repository folder (its ``feature_store.yaml`` names the online store: SQLite on
    the embedded default, Redis on a cluster). Required.
``SEARCHRANK_RANKER_MODEL`` / ``SEARCHRANK_RETRIEVER_MODEL``
    BentoML model tags, ``searchrank-ranker:latest`` and ``searchrank-retriever:latest`` by
    default. A Bento's entry module pins them.
``SEARCHRANK_API_KEY``
    when set, every endpoint but health, readiness and metrics requires it (``x-api-key``).
``SEARCHRANK_ITEM_REFRESH_SECONDS``
    how often the item feature cache reloads from the online store (300 by default).
``SEARCHRANK_ONLINE_TIMEOUT_MS``
    the longest one request waits on the online store, all its lookups together (1000 by
    default).
``SEARCHRANK_MODEL_SERVICE``
    ``1`` scores through the ``RankerModel`` service and its adaptive batcher; unset or ``0``
    (the default) scores in the ``Search`` process.
``SEARCHRANK_MODEL_TIMEOUT_MS``
    the longest one request waits for the ``RankerModel`` service's scores (5000 by default).
``SEARCHRANK_RECONNECT_EVERY``
    a worker asks a client to reconnect after this many responses (32 by default), so that
    kept-alive connections spread over the workers
    (:class:`~searchrank.serving.middleware.SpreadConnections`).
"""

from __future__ import annotations

import os

from searchrank.core.errors import InputError

FEATURE_REPO_ENV = "SEARCHRANK_FEATURE_REPO"
RANKER_MODEL_ENV = "SEARCHRANK_RANKER_MODEL"
RETRIEVER_MODEL_ENV = "SEARCHRANK_RETRIEVER_MODEL"
API_KEY_ENV = "SEARCHRANK_API_KEY"
REFRESH_ENV = "SEARCHRANK_ITEM_REFRESH_SECONDS"
TIMEOUT_ENV = "SEARCHRANK_ONLINE_TIMEOUT_MS"
MODEL_TIMEOUT_ENV = "SEARCHRANK_MODEL_TIMEOUT_MS"
MODEL_SERVICE_ENV = "SEARCHRANK_MODEL_SERVICE"
RECONNECT_ENV = "SEARCHRANK_RECONNECT_EVERY"


def flag(variable: str) -> bool:
    """An on/off setting (``1`` or ``0``, off when unset)."""
    value = os.environ.get(variable, "0")
    if value not in ("0", "1"):
        raise InputError(variable, value, "must be 0 or 1")
    return value == "1"


def count(variable: str, default: int) -> int:
    """A positive whole number."""
    value = os.environ.get(variable, str(default))
    if not (value.isdigit() and int(value) > 0):
        raise InputError(variable, value, "must be a positive whole number")
    return int(value)


def positive_number(variable: str, default: float, unit: str) -> float:
    """A positive number of ``unit`` (the unit names the rule in the error)."""
    value = os.environ.get(variable, str(default))
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise InputError(variable, value, f"must be a positive number of {unit}")
    return number


def seconds_from_ms(variable: str, default_ms: int) -> float:
    """A time limit given in milliseconds, in seconds."""
    return positive_number(variable, default_ms, "milliseconds") / 1000
