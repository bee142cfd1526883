"""The ``data.format`` registry: a name, the function that loads a split from the data config, and the line the
README and error messages describe it with. Free of the config module, so the config can validate against it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from centernet_tf.data.index import DatasetIndex

#: The splits a config can name; a source may support fewer (shapes has no test split).
SPLITS = ("train", "val", "test")

#: The config's data section (:class:`centernet_tf.config.DataConfig`, which imports this registry to check
#: ``data.format``: named here without importing it back).
DataSection = Any
#: ``loader(data, split, class_names)``: ``split`` one of SPLITS, ``class_names`` None or the list to use.
SourceLoader = Callable[[DataSection, str, "list[str] | None"], "DatasetIndex"]


@dataclass(frozen=True)
class SourceSpec:
    """One ``data.format``: how it loads a split, and the line the README and errors describe it with."""

    name: str
    loader: SourceLoader
    description: str
    splits: tuple[str, ...] = SPLITS


_SOURCES: dict[str, SourceSpec] = {}


def register_source(
    name: str,
    loader: SourceLoader,
    *,
    description: str,
    splits: tuple[str, ...] = SPLITS,
    replace: bool = False,
) -> SourceSpec:
    """Make ``data.format: <name>`` load through ``loader`` (validation and ``load_split`` pick it up)."""
    if not name or name != name.strip():
        raise ValueError(f"source name must be a non-empty word, got {name!r}")
    if not {"train", "val"} <= set(splits) <= set(SPLITS):
        raise ValueError(f"splits of {name!r} must include train and val, within {SPLITS}; got {splits}")
    if name in _SOURCES and not replace:
        raise ValueError(f"data format {name!r} is already registered (pass replace=True to override it)")
    spec = SourceSpec(name, loader, description, tuple(splits))
    _SOURCES[name] = spec
    return spec


def source_names() -> tuple[str, ...]:
    """The registered ``data.format`` values, in registration order."""
    return tuple(_SOURCES)


def get_source(name: str) -> SourceSpec:
    """The registered source, or an error listing every registered format."""
    if name not in _SOURCES:
        raise ValueError(f"unknown data.format {name!r}; registered formats: {', '.join(_SOURCES)}")
    return _SOURCES[name]


def formats_markdown() -> str:
    """The README's list of formats (a test keeps the README's copy equal to this)."""
    lines = [f"- **`{s.name}`**: {s.description}" for s in _SOURCES.values()]
    return "\n".join(
        textwrap.fill(line, width=110, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
        for line in lines
    )
