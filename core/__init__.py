"""Shared library code imported by components, pipelines and serving.

Modules here import only the standard library, numpy and pyarrow at module level, so that
``component.py`` files and the command-line tool stay light.
"""
