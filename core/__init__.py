"""The bottom layer: library code that features, serving, components and pipelines share.

It imports nothing of searchrank's other layers (``make lint`` checks it). Module by module it
is as light as its job allows: ``names``, ``errors`` and ``lazy``, which every ``component.py``
imports, need only the standard library; the data modules need numpy, pandas and pyarrow; the
model modules (``model``, ``losses``, ``training``, ``checkpoint``, ``retriever`` and
``raytrain.loop``) import torch, and ``raytrain`` imports Ray only inside the functions that
run it.
"""
