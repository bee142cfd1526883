"""Annotation sources (COCO json, Pascal VOC xml) turned into a validated in-memory index.

Everything that can go wrong with real data (missing or corrupt images, malformed
annotations, degenerate or out-of-image boxes, unknown classes) is decided here, once,
with the same rules for every format. The tf.data pipeline downstream can then assume
clean examples and never has to crash mid-training on a bad file; what was dropped or
repaired is counted in a :class:`SkipReport` so that it is never silently lost either.

Deliberately free of TensorFlow so it can be used (and tested) cheaply.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

# Reasons that describe a repair (the data is kept) rather than a loss.
REPAIR_REASONS = frozenset({"clipped box", "size mismatch"})
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
        """Total skipped items (images or boxes), not counting repairs."""
        return sum(n for r, n in self._counts.items() if r not in REPAIR_REASONS)

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
        skipped = [self._describe(r, n) for r, n in self._counts.items() if r not in REPAIR_REASONS]
        repaired = [self._describe(r, n) for r, n in self._counts.items() if r in REPAIR_REASONS]
        if not skipped and not repaired:
            return line + "; no problems found"
        if skipped:
            line += "; skipped " + ", ".join(skipped)
        if repaired:
            line += "; repaired " + ", ".join(repaired)
        return line

    def log(self, log: logging.Logger, name: str) -> None:
        """Log the summary once: WARNING when data was lost, INFO otherwise."""
        level = logging.WARNING if self.num_skipped else logging.INFO
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


# --------------------------------------------------------------------------------------
# Shared validation (identical for every format)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RawObject:
    """An annotated object as read from the file, before any validation."""

    label: str
    coords: tuple[float, float, float, float] | None  # x1, y1, x2, y2; None if malformed


@dataclass
class _Collector:
    """Accumulates examples for one source and applies the shared rules."""

    name: str
    source: str
    class_to_id: Mapping[str, int]
    check_pixels: bool = True
    report: SkipReport = field(default_factory=SkipReport)
    examples: list[Example] = field(default_factory=list)
    listed: int = 0

    def add_image(
        self,
        image_path: Path,
        image_id: int,
        objects: Sequence[_RawObject],
        detail: str,
        annotated_size: tuple[int | None, int | None] = (None, None),
    ) -> None:
        """Validate one image and its objects; append an Example or count why not."""
        size = _probe_image(image_path, self.report, detail, self.check_pixels)
        if size is None:
            return
        width, height = size
        if None not in annotated_size and tuple(annotated_size) != (width, height):
            # Boxes are assumed to be in the real image's pixels; the header wins.
            self.report.add("size mismatch", detail)
        boxes: list[tuple[float, float, float, float]] = []
        class_ids: list[int] = []
        for obj in objects:
            kept = _validate_box(obj, width, height, self.class_to_id, self.report, detail)
            if kept is not None:
                boxes.append(kept[0])
                class_ids.append(kept[1])
        box_array = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        id_array = np.asarray(class_ids, dtype=np.int32).reshape(-1)
        box_array.setflags(write=False)
        id_array.setflags(write=False)
        self.examples.append(
            Example(str(image_path), int(image_id), int(width), int(height), box_array, id_array)
        )

    def finish(self, class_names: Sequence[str]) -> DatasetIndex:
        """Fail loudly if nothing is usable, otherwise build the index.

        The report is not logged here: the caller logs it once (``report.log``) under
        whatever name it uses for the split.
        """
        self.report.name = self.name
        self.report.images_kept = len(self.examples)
        self.report.boxes_kept = sum(e.num_boxes for e in self.examples)
        if not self.examples:
            reasons = "; ".join(self.report.top_reasons()) or "no images are listed"
            raise ValueError(
                f"{self.name}: no usable image in {self.source} "
                f"({self.listed} listed). Most common problems: {reasons}"
            )
        logger.debug("%s", self.report.summary())
        return DatasetIndex(self.examples, list(class_names), self.report, self.name)


def _probe_image(
    path: Path, report: SkipReport, detail: str, check_pixels: bool
) -> tuple[int, int] | None:
    """Return the real (width, height) of an image file, or None (counted) if unusable.

    ``verify()`` only checks headers (and PNG checksums); with ``check_pixels`` the file
    is also decoded - JPEGs at 1/8 scale, which is cheap - so truncated files are caught
    here rather than by the decoder in the middle of training.
    """
    if not path.is_file():
        report.add("missing image", detail)
        return None
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
        if check_pixels:
            with Image.open(path) as im:
                im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                im.load()
    except Exception:  # PIL raises many types for bad files; all mean the same here.
        report.add("corrupt image", detail)
        return None
    if size[0] <= 0 or size[1] <= 0:
        report.add("corrupt image", detail)
        return None
    return int(size[0]), int(size[1])


def _validate_box(
    obj: _RawObject,
    width: int,
    height: int,
    class_to_id: Mapping[str, int],
    report: SkipReport,
    detail: str,
) -> tuple[tuple[float, float, float, float], int] | None:
    """Apply the box rules; each rejected box is counted under exactly one reason.

    A kept box that needed clipping is counted as "clipped box" (a repair).
    """
    if obj.label not in class_to_id:
        report.add(f"unknown class {obj.label!r}", detail)
        return None
    if obj.coords is None:
        report.add("malformed box", detail)
        return None
    x1, y1, x2, y2 = obj.coords
    if not all(math.isfinite(v) for v in obj.coords):
        report.add("non-finite box", detail)
        return None
    if x2 < x1 or y2 < y1:
        report.add("inverted box", detail)
        return None
    if x2 < 0 or y2 < 0 or x1 > width or y1 > height:
        report.add("box outside image", detail)
        return None
    cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
    cx2, cy2 = min(x2, float(width)), min(y2, float(height))
    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
        report.add("zero-area box", detail)
        return None
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        report.add("clipped box", detail)
    return (cx1, cy1, cx2, cy2), class_to_id[obj.label]


def _plural(reason: str, count: int) -> str:
    if count == 1:
        return reason
    for noun in ("box", "image", "annotation", "mismatch"):
        if reason.endswith(noun):
            return reason + ("es" if noun in ("box", "mismatch") else "s")
    return reason


def _parse_number(value: object) -> float | None:
    """float(value), or None when it is not a number at all ("nan"/"inf" do parse)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _parse_coords(values: Sequence[object]) -> tuple[float, float, float, float] | None:
    numbers = [_parse_number(v) for v in values]
    if len(numbers) != 4 or any(n is None for n in numbers):
        return None
    return numbers[0], numbers[1], numbers[2], numbers[3]  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------


def load_coco(
    annotation_file: str | Path,
    image_dir: str | Path,
    class_names: Sequence[str] | None = None,
    name: str = "",
    *,
    check_pixels: bool = True,
) -> DatasetIndex:
    """Load a COCO-format detection json.

    Categories become contiguous ids in ascending category-id order unless
    ``class_names`` is given, in which case categories are matched by name and any other
    category is an unknown class. Crowd annotations are skipped (they are not single
    objects). Set ``check_pixels=False`` to skip the decode check on very large sets.
    """
    from pycocotools.coco import COCO  # local: only needed for this format

    annotation_file = Path(annotation_file)
    image_dir = Path(image_dir)
    name = name or annotation_file.stem
    if not annotation_file.is_file():
        raise FileNotFoundError(f"{name}: COCO annotation file not found: {annotation_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
            coco = COCO(str(annotation_file))
    except (json.JSONDecodeError, AssertionError, KeyError, TypeError) as err:
        raise ValueError(f"{name}: cannot parse COCO annotation file {annotation_file}: {err}") from err

    cats = sorted(coco.cats.values(), key=lambda c: c["id"])
    cat_label = {c["id"]: str(c.get("name", c["id"])).strip() for c in cats}
    if class_names is None:
        class_names = [cat_label[c["id"]] for c in cats]
    class_names = [str(n).strip() for n in class_names]
    _check_unique(class_names, name)
    class_to_id = {n: i for i, n in enumerate(class_names)}

    col = _Collector(name, str(annotation_file), class_to_id, check_pixels)
    for image_id in sorted(coco.imgs):
        info = coco.imgs[image_id]
        file_name = str(info.get("file_name", ""))
        col.listed += 1
        detail = file_name or f"image id {image_id}"
        if not file_name:
            col.report.add("bad annotation", detail)
            continue
        objects = []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                col.report.add("crowd box", detail)
                continue
            cid = ann.get("category_id")
            label = cat_label.get(cid, f"category_id={cid}")
            objects.append(_RawObject(label, _coco_coords(ann.get("bbox"))))
        annotated = (info.get("width"), info.get("height"))
        col.add_image(image_dir / file_name, int(image_id), objects, detail, annotated)
    return col.finish(class_names)


def _coco_coords(bbox: object) -> tuple[float, float, float, float] | None:
    """[x, y, w, h] -> (x1, y1, x2, y2); None when it is not four numbers."""
    if not isinstance(bbox, (list, tuple)):
        return None
    xywh = _parse_coords(bbox)
    if xywh is None:
        return None
    x, y, w, h = xywh
    return (x, y, x + w, y + h)


# --------------------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------------------


def load_voc(
    root: str | Path,
    split: str | None = "trainval",
    class_names: Sequence[str] | None = None,
    name: str = "",
    *,
    check_pixels: bool = True,
) -> DatasetIndex:
    """Load a Pascal VOC style directory (Annotations/, JPEGImages/, ImageSets/Main/).

    ``split=None`` loads every xml file in sorted order. Image ids are the 1-based
    position in the split, so they stay stable even when some images are skipped.
    Box coordinates are taken as written (no 1-based pixel shift), so a box touching the
    right border ends at exactly ``width``.
    """
    root = Path(root)
    name = name or f"{root.name} {split or 'all'}"
    ann_dir = root / "Annotations"
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"{name}: no Annotations/ directory in VOC root {root}")
    if split is None:
        stems = sorted(p.stem for p in ann_dir.glob("*.xml"))
        source = str(ann_dir)
    else:
        split_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            available = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            raise FileNotFoundError(
                f"{name}: split file {split_file} not found (available splits: {available})"
            )
        stems = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        source = str(split_file)

    parsed: list[tuple[int, str, ET.Element | None]] = []
    for position, stem in enumerate(stems, start=1):
        parsed.append((position, stem, _parse_xml(ann_dir / f"{stem}.xml")))

    if class_names is None:
        found = {
            (obj.findtext("name") or "").strip()
            for _, _, tree in parsed
            if tree is not None
            for obj in tree.iter("object")
        }
        class_names = sorted(found - {""})
    class_names = [str(n).strip() for n in class_names]
    _check_unique(class_names, name)
    class_to_id = {n: i for i, n in enumerate(class_names)}

    col = _Collector(name, source, class_to_id, check_pixels)
    for position, stem, tree in parsed:
        col.listed += 1
        detail = f"{stem}.xml"
        if tree is None:
            col.report.add("bad annotation", detail)
            continue
        file_name = (tree.findtext("filename") or "").strip()
        image_path = root / "JPEGImages" / file_name if file_name else None
        if image_path is None or not image_path.is_file():
            image_path = root / "JPEGImages" / f"{stem}.jpg"
        objects = [_voc_object(obj) for obj in tree.iter("object")]
        annotated = (_to_int(tree.findtext("size/width")), _to_int(tree.findtext("size/height")))
        col.add_image(image_path, position, objects, detail, annotated)
    return col.finish(class_names)


def _parse_xml(path: Path) -> ET.Element | None:
    """Parsed root, or None for a missing / unreadable / malformed file."""
    try:
        tree = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    return tree if tree.tag == "annotation" else None


def _voc_object(obj: ET.Element) -> _RawObject:
    label = (obj.findtext("name") or "").strip()
    bnd = obj.find("bndbox")
    if bnd is None:
        return _RawObject(label, None)
    texts = [bnd.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
    return _RawObject(label, _parse_coords(texts))


def _to_int(text: str | None) -> int | None:
    value = _parse_number(text)
    return int(value) if value is not None and math.isfinite(value) else None


def _check_unique(class_names: Sequence[str], name: str) -> None:
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"{name}: duplicate class names in {list(class_names)}")
