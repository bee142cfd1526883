"""Pascal VOC annotation files for tests, written one way (the loaders are tested against this layout)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# (class name, (x1, y1, x2, y2) or None for an object without <bndbox>[, difficult flag])
VocObject = tuple


def voc_xml(objects: Sequence[VocObject], filename: str | None = None, size: tuple[int, int] | None = None) -> str:
    """One image's annotation; ``<filename>`` and ``<size>`` (width, height) only when given, as real files vary."""
    parts = ["<annotation>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, box, *difficult in objects:
        parts.append(f"<object><name>{name}</name>")
        if difficult:
            parts.append(f"<difficult>{difficult[0]}</difficult>")
        if box is not None:
            x1, y1, x2, y2 = box
            parts.append(f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>")
        parts.append("</object>")
    parts.append("</annotation>")
    return "".join(parts)


def write_voc_xml(path: Path, objects: Sequence[VocObject], filename: str | None = None,
                  size: tuple[int, int] | None = None) -> Path:
    """:func:`voc_xml` written to ``path`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(voc_xml(objects, filename, size))
    return path
