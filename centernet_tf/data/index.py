"""The validated in-memory index every data format produces: examples, class names, and what was skipped.

Free of TensorFlow and of any one format: the readers in :mod:`centernet_tf.data.formats` fill it, the
``tf.data`` pipeline and the metrics read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

# Reasons that describe a repair (the data is kept) rather than a loss.
REPAIR_REASONS = frozenset({"clipped box", "rescaled annotation", "EXIF-rotated image", "image labelled unrotated"})
# Reasons for an image kept as a background image (no objects) although its annotation was absent: not a
# loss, but worth a warning, since a whole folder of forgotten labels would otherwise train as "no objects".
BACKGROUND_REASONS = frozenset({"image without label file"})
_MAX_DETAILS = 3


@dataclass(frozen=True, eq=False)
class Example:
    """One usable image and its valid boxes (arrays are read-only so nobody mutates the index)."""

    image_path: str
    image_id: int
    width: int
    height: int
    boxes: np.ndarray  # float32 [N, 4] x1, y1, x2, y2 in original pixels
    class_ids: np.ndarray  # int32 [N], index into DatasetIndex.class_names
    #: EXIF orientation (1-8) the readers apply to the stored pixels (1: none); width / height are after it.
    orientation: int = 1
    #: bool [N]: VOC's <difficult> flag per box (None: no box is difficult), ignored by the VOC metrics.
    difficult: np.ndarray | None = None

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])


class SkipReport:
    """Counts what was skipped or repaired while loading, so bad data never crashes training and is never silently lost."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.images_kept = 0
        self.boxes_kept = 0
        self._counts: dict[str, int] = {}
        self._details: dict[str, list[str]] = {}

    def add(self, reason: str, detail: str = "") -> None:
        """Count one occurrence of ``reason``; keep a few distinct details (file names) as examples."""
        self._counts[reason] = self._counts.get(reason, 0) + 1
        details = self._details.setdefault(reason, [])
        if detail and detail not in details and len(details) < _MAX_DETAILS:
            details.append(detail)

    @property
    def counts(self) -> dict[str, int]:
        """Occurrences per reason (a copy, in first-seen order)."""
        return dict(self._counts)

    @property
    def details(self) -> dict[str, list[str]]:
        """Up to three example details per reason (a copy)."""
        return {k: list(v) for k, v in self._details.items()}

    @property
    def num_skipped(self) -> int:
        """Total skipped items (images or boxes), not counting repairs or images kept as background."""
        return sum(n for r, n in self._counts.items() if r not in REPAIR_REASONS | BACKGROUND_REASONS)

    def top_reasons(self, k: int = 3) -> list[str]:
        """The ``k`` most frequent reasons formatted as "N reason (examples)"."""
        ranked = sorted(self._counts.items(), key=lambda kv: -kv[1])[:k]
        return [self._describe(r, n) for r, n in ranked]

    def _describe(self, reason: str, count: int) -> str:
        text = f"{count} {_plural(reason, count)}"
        details = self._details.get(reason, [])
        if details:
            more = ", ..." if count > len(details) else ""
            text += f" ({', '.join(details)}{more})"
        return text

    def summary(self, name: str | None = None) -> str:
        """One human-readable line: what was kept, skipped and repaired."""
        name = self.name if name is None else name
        head = f"{name}: " if name else ""
        line = f"{head}{self.images_kept} images kept ({self.boxes_kept} boxes)"
        other = REPAIR_REASONS | BACKGROUND_REASONS
        skipped = [self._describe(r, n) for r, n in self._counts.items() if r not in other]
        repaired = [self._describe(r, n) for r, n in self._counts.items() if r in REPAIR_REASONS]
        background = [self._describe(r, n) for r, n in self._counts.items() if r in BACKGROUND_REASONS]
        if not skipped and not repaired and not background:
            return line + "; no problems found"
        if skipped:
            line += "; skipped " + ", ".join(skipped)
        if repaired:
            line += "; repaired " + ", ".join(repaired)
        if background:
            line += "; kept as background " + ", ".join(background)
        return line

    def log(self, log: logging.Logger, name: str) -> None:
        """Log the summary once: WARNING when data was lost or labels looked missing, INFO otherwise."""
        noted = any(r in BACKGROUND_REASONS for r in self._counts)
        level = logging.WARNING if self.num_skipped or noted else logging.INFO
        log.log(level, "%s", self.summary(name))


@dataclass
class DatasetIndex:
    """All usable examples of one split plus the class list and what loading skipped."""

    examples: list[Example]
    class_names: list[str]
    report: SkipReport
    name: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def num_boxes(self) -> int:
        return sum(e.num_boxes for e in self.examples)


_NOUNS = ("box", "image", "annotation", "mismatch", "line", "file")


def _plural(reason: str, count: int) -> str:
    """ "image without label file" -> "images without label file", "inverted box" -> "inverted boxes"."""
    if reason.startswith("unknown class "):  # "3 boxes of unknown class 'bird'"
        return ("box of " if count == 1 else "boxes of ") + reason
    if count == 1:
        return reason

    def plural(noun: str) -> str:
        return noun + ("es" if noun in ("box", "mismatch") else "s")

    first, _, rest = reason.partition(" ")
    if rest and first in _NOUNS:  # the noun leads: "annotation of an unknown image id"
        return f"{plural(first)} {rest}"
    for noun in _NOUNS:
        if reason.endswith(noun):
            return reason[: -len(noun)] + plural(noun)
    return reason

