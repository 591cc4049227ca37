"""Runs of the pipeline under test get the environment a pod gets: no pinned model tags.

``tests/serving/conftest.py`` pins this session's stored models in the test process's
environment (``SEARCHRANK_RANKER_MODEL``, ``SEARCHRANK_RETRIEVER_MODEL``) for the services it
starts. kfp.local runs each step in a child of that process, which inherits them, and
``package_service`` imports the service module before its Bento's entry pins the new tags: the
step then built the Bento around the serving tests' ranker ("could not be found locally" when
that one was not in the step's store). A pod never has them, so a pipeline run under test
must not either.
"""

from __future__ import annotations

import pytest

MODEL_PIN_VARIABLES = ("SEARCHRANK_RANKER_MODEL", "SEARCHRANK_RETRIEVER_MODEL")


def clear_model_pins(patch: pytest.MonkeyPatch) -> None:
    """Unset the model tags a serving test pinned, until ``patch`` is undone."""
    for variable in MODEL_PIN_VARIABLES:
        patch.delenv(variable, raising=False)
