"""One layout for every HTML page a step writes: KFP HTML artifacts and the run report.

Pages are self-contained (styles inline, plots as data URIs, no external references), so they
open the same from the Kubeflow UI, from object storage or from a laptop. A page's own styles
come in ``css``; a verdict colours the heading green when it passed and red when it did not.
"""

from __future__ import annotations

from jinja2 import Environment
from markupsafe import Markup

_PAGE = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px; max-width: 1200px; color: #1d1d1d; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; }
img { max-width: 100%; }
.passed { color: #2e7d4f; }
.failed { color: #b3261e; }
{{ css }}
</style></head><body>
<h1{% if passed is not none %} class="{{ verdict }}"{% endif %}>{{ heading }}</h1>
{{ body }}
{{ script }}
</body></html>
"""
)


def render_page(
    title: str,
    body: str,
    *,
    heading: str | None = None,
    passed: bool | None = None,
    css: str = "",
    script: str = "",
) -> str:
    """A whole page around ``body`` (HTML, inserted as it is).

    Args:
        title: the browser title, and the heading unless ``heading`` is given (both escaped).
        body: the page's content under its heading.
        heading: the ``<h1>`` text, when it differs from the title.
        passed: a verdict that colours the heading; None for none.
        css: styles of this page beside the shared ones.
        script: a ``<script>`` element to end the body with.
    """
    return _PAGE.render(
        title=title,
        heading=title if heading is None else heading,
        passed=passed,
        verdict="passed" if passed else "failed",
        body=Markup(body),
        css=Markup(css),
        script=Markup(script),
    )


def markdown_html(text: str) -> str:
    """CommonMark with tables, as HTML (for embedding a step's Markdown summary in a page)."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark").enable("table").render(text))
