"""Reusable Kubeflow Pipelines components for search retrieval and ranking.

Each component lives in its own folder: a typed pure-logic module (``logic.py``) and a thin
``@dsl.component`` wrapper (``component.py``). Shared ML code lives in
``searchrank.core``. Nothing heavy is imported here, so pipelines compile without
torch, Ray, Feast or Great Expectations.
"""
