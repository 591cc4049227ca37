"""The contract's closed value sets: owned by the contract, drawn from by the generator."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from searchrank.core.domain import Domain
from searchrank.features import tables as T
from searchrank.features import vocabulary as V
from searchrank.features.generator import catalogue, words

GENERATOR = "searchrank.features.generator"
SETS = {
    name: value
    for name, value in vars(V).items()
    if name.isupper() and isinstance(value, tuple) and all(isinstance(v, str) for v in value)
}


def imported_modules(module: str) -> set[str]:
    """Every module ``module`` imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    package = module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(), spec.origin)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    "module",
    [
        "searchrank.features.tables",
        "searchrank.features.definitions",
        "searchrank.features.vocabulary",
    ],
)
def test_the_contract_imports_nothing_from_the_generator(module: str) -> None:
    leaks = {m for m in imported_modules(module) if m == GENERATOR or m.startswith(f"{GENERATOR}.")}
    assert not leaks, f"{module} imports the generator: {sorted(leaks)}"


def test_the_vocabulary_depends_on_nothing_of_searchrank() -> None:
    assert not {m for m in imported_modules("searchrank.features.vocabulary") if "searchrank" in m}


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_set_is_non_empty_distinct_and_fits_in_a_tag(name: str) -> None:
    values = SETS[name]
    assert values and len(set(values)) == len(values), name
    assert all(v and "|" not in v for v in values), name  # "|" separates values in Feast tags
    assert Domain.from_tags(Domain(values=values).to_tags()).values == values


def test_the_categorical_domains_of_the_tables_are_the_vocabulary_sets() -> None:
    domains = {
        f"{table}.{column}": set(domain.values)
        for table, columns in T.DOMAINS.items()
        for column, domain in columns.items()
        if domain.values is not None
    }
    assert domains == {
        "catalogue.item_type": set(V.ITEM_TYPES),
        "catalogue.genre": set(V.GENRES) | set(V.PODCAST_TOPICS),
        "catalogue.mood": set(V.MOODS),
        "catalogue.market": set(V.MARKETS),
        "catalogue.language": set(V.LANGUAGES),
        "catalogue.version_type": set(V.VERSION_TYPES),
        "user_stats.top_genre": set(V.GENRES),
        "user_stats.activity_bucket": set(V.ACTIVITY_BUCKETS),
        "user_stats.market": set(V.MARKETS),
    }


def test_the_generator_tables_follow_the_vocabulary() -> None:
    """The simulator's weights are laid out in the order of the contract's sets, and its
    word lists are keyed by their values."""
    assert len(catalogue.GENRE_SHARE) == len(catalogue.EXPLICIT_RATE) == len(V.GENRES)
    assert [len(row) for row in words.GENRE_MOOD_AFFINITY] == [len(V.MOODS)] * len(V.GENRES)
    assert len(words.MARKET_SHARE) == len(V.MARKETS)
    assert set(words.MARKET_LANGUAGE) == set(V.MARKETS)
    assert set(words.MARKET_LANGUAGE.values()) <= set(V.LANGUAGES)
    assert set(words.LOCAL_WORDS) <= set(V.LANGUAGES)
    assert set(words.TOPIC_WORDS) == set(V.PODCAST_TOPICS)
    assert set(words.ARTIST_PREFIXES) <= set(V.GENRES)
    assert set(catalogue.VERSION_PROBABILITY) <= set(V.VERSION_TYPES)
    item_codes = (catalogue.TRACK, catalogue.ALBUM, catalogue.ARTIST, catalogue.SHOW)
    assert [V.ITEM_TYPES[c] for c in (*item_codes, catalogue.EPISODE)] == [
        "track",
        "album",
        "artist",
        "show",
        "episode",
    ]
