"""Annotation sources (COCO json, Pascal VOC xml, YOLO txt) turned into a validated in-memory index.

Everything that can go wrong with real data (missing or corrupt images, malformed
annotations, degenerate or out-of-image boxes, unknown classes) is decided here, once,
with the same rules for every format. The tf.data pipeline downstream can then assume
clean examples and never has to crash mid-training on a bad file; what was dropped or
repaired is counted in a :class:`SkipReport` so that it is never silently lost either.

Deliberately free of TensorFlow so it can be used (and tested) cheaply.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from centernet_tf.data.image_files import (
    DECODABLE_FORMATS, IMAGE_SUFFIXES, UNSUPPORTED_FORMAT, image_files, jpeg_ends_cleanly,
)
from centernet_tf.progress import progress

logger = logging.getLogger(__name__)

# Reasons that describe a repair (the data is kept) rather than a loss.
REPAIR_REASONS = frozenset({"clipped box", "rescaled annotation", "EXIF-rotated image", "image labelled unrotated"})
#: EXIF orientations that swap width and height (rotations by 90 or 270 degrees, with or without a mirror).
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
#: Annotated and real image sizes whose x and y ratios differ by less than this are a uniform resize (images
#: shrunk after labelling): the boxes are rescaled. Otherwise (e.g. width and height swapped) the image is skipped.
UNIFORM_RESIZE_TOLERANCE = 0.02
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


# --------------------------------------------------------------------------------------
# Shared validation (identical for every format)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RawObject:
    """An annotated object as read from the file, before any validation."""

    label: str
    coords: tuple[float, float, float, float] | None  # x1, y1, x2, y2; None if malformed
    #: Coordinates are fractions of the image size (YOLO); scaled once the real size is known.
    normalized: bool = False
    #: Where the object was written (e.g. "x.txt:3"), reported instead of the image's detail.
    detail: str = ""
    #: VOC's <difficult>: trained on, but neither a hit nor a miss in the VOC metrics.
    difficult: bool = False


@dataclass(frozen=True)
class _PendingImage:
    """An image queued for the file check, with what its annotation says."""

    image_path: Path
    image_id: int
    objects: tuple[_RawObject, ...]
    detail: str
    annotated_size: tuple[int | None, int | None]
    note_if_kept: str = ""


@dataclass(frozen=True)
class _Problem:
    """Why an image file is unusable: a :class:`SkipReport` reason and detail."""

    reason: str
    detail: str


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
    pending: list[_PendingImage] = field(default_factory=list)

    def add_image(
        self,
        image_path: Path,
        image_id: int,
        objects: Sequence[_RawObject],
        detail: str,
        annotated_size: tuple[int | None, int | None] = (None, None),
        note_if_kept: str = "",
    ) -> None:
        """Queue one image and its objects; :meth:`finish` checks the files (in parallel) and validates them in
        this order. ``note_if_kept`` is counted as a reason if the image is kept."""
        self.pending.append(_PendingImage(image_path, image_id, tuple(objects), detail,
                                          (annotated_size[0], annotated_size[1]), note_if_kept))

    def _check_files(self) -> list[tuple[int, int, int] | _Problem]:
        """Probe every queued image file with ``CHECK_WORKERS`` threads (Pillow releases the GIL while it reads
        and decodes), showing progress; results in queue order."""
        def probe(item: _PendingImage) -> tuple[int, int, int] | _Problem:
            width, height = item.annotated_size
            if IMAGE_CHECK == "annotation_sizes" and width and height and width > 0 and height > 0:
                return (width, height, 1) if item.image_path.is_file() else _Problem("missing image", item.detail)
            return _probe_image(item.image_path, item.detail, self.check_pixels and IMAGE_CHECK == "decode")

        workers = CHECK_WORKERS or os.cpu_count() or 1
        title = f"checking {len(self.pending)} images of {self.name}"
        # Pillow's own bomb limit is a global: lifted once here (our limit is checked per image), not per thread.
        with _pixel_limit(None):
            if workers == 1:
                return list(progress(map(probe, self.pending), len(self.pending), title))
            with ThreadPoolExecutor(workers) as pool:
                return list(progress(pool.map(probe, self.pending), len(self.pending), title))

    def _add_checked(self, item: _PendingImage, probed: tuple[int, int, int] | _Problem) -> None:
        """Validate one probed image and its objects; append an Example or count why not."""
        image_path, image_id, objects, detail, annotated_size = (
            item.image_path, item.image_id, item.objects, item.detail, item.annotated_size)
        if isinstance(probed, _Problem):
            self.report.add(probed.reason, probed.detail)
            return
        width, height, orientation = probed
        if orientation != 1:
            # Phones store pixels sideways plus an EXIF tag; labelling tools in a browser show (and label) the
            # upright view, older desktop tools the stored pixels. The annotated size tells which one it was.
            if orientation in SWAPPING_ORIENTATIONS and tuple(annotated_size) == (width, height):
                self.report.add("image labelled unrotated", detail)
                orientation = 1
            else:
                self.report.add("EXIF-rotated image", detail)
                if orientation in SWAPPING_ORIENTATIONS:
                    width, height = height, width
        factors = (1.0, 1.0)
        if None not in annotated_size and tuple(annotated_size) != (width, height):
            factors = _rescale_factors(annotated_size, (width, height))  # type: ignore[arg-type]
            sizes = f"{detail} (annotated {annotated_size[0]}x{annotated_size[1]}, image {width}x{height})"
            if factors is None:  # not a plain resize: where the boxes belong is unknowable
                self.report.add("size mismatch", sizes)
                return
            self.report.add("rescaled annotation", sizes)
        boxes: list[tuple[float, float, float, float]] = []
        class_ids: list[int] = []
        difficult: list[bool] = []
        for obj in objects:
            if obj.coords is not None and (obj.normalized or factors != (1.0, 1.0)):
                fx, fy = (width, height) if obj.normalized else factors
                x1, y1, x2, y2 = obj.coords
                obj = _RawObject(obj.label, (x1 * fx, y1 * fy, x2 * fx, y2 * fy), False, obj.detail, obj.difficult)
            kept = _validate_box(obj, width, height, self.class_to_id, self.report, obj.detail or detail)
            if kept is not None:
                boxes.append(kept[0])
                class_ids.append(kept[1])
                difficult.append(obj.difficult)
        box_array = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        id_array = np.asarray(class_ids, dtype=np.int32).reshape(-1)
        difficult_array = np.asarray(difficult, dtype=bool).reshape(-1)
        for array in (box_array, id_array, difficult_array):
            array.setflags(write=False)
        self.examples.append(Example(
            str(image_path), int(image_id), int(width), int(height), box_array, id_array, int(orientation),
            difficult_array,
        ))
        if item.note_if_kept:
            self.report.add(item.note_if_kept, detail)

    def finish(self, class_names: Sequence[str]) -> DatasetIndex:
        """Fail loudly if nothing is usable (no image, or not one box), otherwise build the index.

        The report is not logged here: the caller logs it once (``report.log``) under
        whatever name it uses for the split.
        """
        for item, probed in zip(self.pending, self._check_files(), strict=True):
            self._add_checked(item, probed)
        self.pending.clear()
        self.report.name = self.name
        self.report.images_kept = len(self.examples)
        self.report.boxes_kept = sum(e.num_boxes for e in self.examples)
        if not self.examples:
            reasons = "; ".join(self.report.top_reasons(5)) or "no images are listed"
            raise ValueError(
                f"{self.name}: no usable image in {self.source} "
                f"({self.listed} listed). Most common problems: {reasons}"
            )
        unknown = [ast.literal_eval(r[len("unknown class "):]) for r in self.report.counts if r.startswith("unknown class ")]
        if not self.report.boxes_kept and unknown:
            raise ValueError(
                f"{self.name}: every box is of a class outside the class list {list(class_names)}: found "
                f"{unknown[:20]} (a model evaluated on another dataset's classes, or the wrong class_names?)"
            )
        if not self.report.boxes_kept:
            problems = "; ".join(self.report.top_reasons())
            raise ValueError(
                f"{self.name}: not one usable box in {self.source} ({self.report.images_kept} images kept): a detector "
                f"can be neither trained nor evaluated on it" + (f". Most common problems: {problems}" if problems else "")
            )
        logger.debug("%s", self.report.summary())
        return DatasetIndex(self.examples, list(class_names), self.report, self.name)


def _rescale_factors(annotated: tuple[int, int], real: tuple[int, int]) -> tuple[float, float] | None:
    """(real / annotated) per axis when the image was resized uniformly, else None."""
    (aw, ah), (w, h) = annotated, real
    if aw <= 0 or ah <= 0:
        return None
    fx, fy = w / aw, h / ah
    return (fx, fy) if abs(fx / fy - 1.0) <= UNIFORM_RESIZE_TOLERANCE else None


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` names something under ``folder`` (no ``..`` or absolute escape), judged on the names
    the annotation gives, not on where symlinks lead: datasets kept in a cache (DVC, symlinked files) are fine."""
    root = os.path.normpath(os.path.abspath(folder))
    return os.path.normpath(os.path.abspath(path)).startswith(root + os.sep)


#: Larger images are skipped as "image too large" (Pillow's own decompression-bomb limit, which it reports
#: as an error that the loader would otherwise count as a corrupt file). ``load_split`` sets it from
#: ``data.image_check``: how each listed image file is checked before training. ``decode``: header, checksum and
#: a 1/8-scale decode (catches truncated files); ``header``: no decode; ``annotation_sizes``: trust the sizes a
#: COCO / VOC annotation gives (only that the file exists; no EXIF orientation), probing only images without one.
IMAGE_CHECKS = ("decode", "header", "annotation_sizes")
IMAGE_CHECK = "decode"
#: ``data.check_workers``: threads checking image files (None: one per CPU).
CHECK_WORKERS: int | None = None
#: ``data.max_image_pixels``: raise that for trusted gigapixel data.
MAX_IMAGE_PIXELS = 2 * 89_478_485


@contextlib.contextmanager
def _pixel_limit(limit: int | None):  # noqa: ANN202 - a context manager
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1-8) of an open image; 1 when absent or invalid."""
    try:
        value = int(image.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block is not a reason to lose the image
        return 1
    return value if 1 <= value <= 8 else 1


def _probe_image(path: Path, detail: str, check_pixels: bool) -> tuple[int, int, int] | _Problem:
    """Return the stored (width, height) of an image file and its EXIF orientation, or why it is unusable.

    ``verify()`` only checks headers (and PNG checksums); with ``check_pixels`` the file
    is also decoded - JPEGs at 1/8 scale, which is cheap - so truncated files are caught
    here rather than by the decoder in the middle of training.
    """
    if not path.is_file():
        return _Problem("missing image", detail)
    try:
        with Image.open(path) as im:  # Pillow's limit is lifted by the caller: ours is below, with a message
            size, image_format = im.size, im.format
        if image_format not in DECODABLE_FORMATS:  # Pillow reads it, the training pipeline would not
            return _Problem(UNSUPPORTED_FORMAT, f"{detail} ({image_format}; convert it to JPEG or PNG)")
        if not check_pixels and image_format in ("JPEG", "MPO") and not jpeg_ends_cleanly(path):
            check_pixels = True  # no end marker: truncated, or data appended after it; the decode tells which
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            return _Problem(
                "image too large",
                f"{detail} ({size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.0f} MP > {MAX_IMAGE_PIXELS / 1e6:.0f} MP: "
                "raise data.max_image_pixels if the file is trusted)",
            )
        with Image.open(path) as im:
            im.verify()  # must come first after open: reading EXIF moves the file position
        with Image.open(path) as im:
            orientation = exif_orientation(im)
            if check_pixels:
                im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                im.load()
    except Exception:  # PIL raises many types for bad files; all mean the same here.
        return _Problem("corrupt image", detail)
    if size[0] <= 0 or size[1] <= 0:
        return _Problem("corrupt image", detail)
    return int(size[0]), int(size[1]), orientation


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

    listed_ids = [image.get("id") for image in coco.dataset.get("images", [])]
    duplicates = sorted({i for i in listed_ids if listed_ids.count(i) > 1}, key=str)
    if duplicates:  # pycocotools keeps the last one: the others' boxes would land on its pixels
        raise ValueError(
            f"{name}: duplicate image ids in {annotation_file}: {duplicates[:10]}"
            f"{' ...' if len(duplicates) > 10 else ''}; every image needs its own id"
        )
    cats = sorted(coco.cats.values(), key=lambda c: c["id"])
    cat_label = {c["id"]: str(c.get("name", c["id"])).strip() for c in cats}
    if class_names is None:
        class_names = [cat_label[c["id"]] for c in cats]
    class_names = [str(n).strip() for n in class_names]
    _check_unique(class_names, name)
    class_to_id = {n: i for i, n in enumerate(class_names)}

    col = _Collector(name, str(annotation_file), class_to_id, check_pixels)
    for ann in coco.dataset.get("annotations", []):
        if ann.get("image_id") not in coco.imgs:
            col.report.add("annotation of an unknown image id", f"image id {ann.get('image_id')}")
    # Our image ids are int32 tensors: ids that are not all such integers (strings, a mix, 64-bit numbers) are
    # numbered 1..n in file order instead; the annotations still find their image by the file's own id.
    plain = all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**31 for i in coco.imgs)
    order = sorted(coco.imgs) if plain else list(coco.imgs)
    if not plain:
        logger.info("%s: image ids are not all 32-bit integers (e.g. %r): numbered 1-%d in file order", name,
                    next((i for i in order if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < 2**31)),
                    len(order))
    for position, image_id in enumerate(progress(order, len(order), f"reading {name} annotations"), start=1):
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
        if not _inside(image_dir / file_name, image_dir):
            col.report.add("file outside the image folder", detail)
            continue
        annotated = (_to_int(info.get("width")), _to_int(info.get("height")))
        col.add_image(image_dir / file_name, int(image_id) if plain else position, objects, detail, annotated)
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
    annotations_dir: str = "Annotations",
    images_dir: str = "JPEGImages",
    match_images_by: str = "stem",
    check_pixels: bool = True,
) -> DatasetIndex:
    """Load a Pascal VOC style directory (Annotations/, JPEGImages/, ImageSets/Main/).

    ``split=None`` loads every xml file in sorted order. Image ids are the 1-based
    position in the split, so they stay stable even when some images are skipped.
    Box coordinates are taken as written (no 1-based pixel shift), so a box touching the
    right border ends at exactly ``width``.

    Exports other than the VOC devkit differ only in folder names, so both are options:
    the same folder for both (``""`` is ``root``) reads xml files beside their images, and
    a ``{split}`` in either name makes the split pick the folder (e.g. Roboflow's
    ``train/``, ``valid/``), with every xml file in it and no split file.

    An xml pairs with the image of its own stem (``a.xml`` with ``a.jpg``, ``a.png``...): a ``<filename>``
    naming another image (copied xml files do) would put its boxes on that image's pixels. With
    ``match_images_by="filename"`` the ``<filename>`` is used instead, inside the image folder only.
    Split-file lines are whole names (spaces included); the devkit's per-class ``name 1`` lines also work.
    """
    if match_images_by not in ("stem", "filename"):
        raise ValueError(f"match_images_by must be 'stem' or 'filename', got {match_images_by!r}")
    root = Path(root)
    name = name or f"{root.name} {split or 'all'}"
    per_split_folder = "{split}" in annotations_dir or "{split}" in images_dir
    if per_split_folder and split is None:
        raise ValueError(f"{name}: the VOC folder names contain {{split}}, so a split name is needed")
    ann_dir = root / annotations_dir.replace("{split}", split or "")
    img_dir = root / images_dir.replace("{split}", split or "")
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"{name}: no {annotations_dir or '.'}/ directory in VOC root {root} ({ann_dir})")
    if split is None or per_split_folder:
        stems = [(stem, f"{stem}.xml") for stem in sorted(p.stem for p in ann_dir.glob("*.xml"))]
        source = str(ann_dir)
    else:
        split_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            available = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            raise FileNotFoundError(
                f"{name}: split file {split_file} not found (available splits: {available})"
            )
        stems = [
            (_split_line_stem(line.strip(), ann_dir), f"{split_file.name}:{number} {line.strip()!r}")
            for number, line in enumerate(split_file.read_text().splitlines(), start=1)
            if line.strip()
        ]
        source = str(split_file)

    parsed: list[tuple[int, str, str, ET.Element | None]] = []
    for position, (stem, where) in enumerate(stems, start=1):
        parsed.append((position, stem, where, _parse_xml(ann_dir / f"{stem}.xml")))

    if class_names is None:
        found = {
            (obj.findtext("name") or "").strip()
            for _, _, _, tree in parsed
            if tree is not None
            for obj in tree.iter("object")
        }
        class_names = sorted(found - {""})
    class_names = [str(n).strip() for n in class_names]
    _check_unique(class_names, name)
    class_to_id = {n: i for i, n in enumerate(class_names)}

    col = _Collector(name, source, class_to_id, check_pixels)
    for position, stem, where, tree in progress(parsed, len(parsed), f"reading {name} annotations"):
        col.listed += 1
        detail = f"{stem}.xml"
        if tree is None:
            missing = not (ann_dir / f"{stem}.xml").is_file()
            col.report.add("missing annotation file" if missing else "bad annotation", where if missing else detail)
            continue
        file_name = (tree.findtext("filename") or "").strip() if match_images_by == "filename" else ""
        if file_name and not _inside(img_dir / file_name, img_dir):
            col.report.add("file outside the image folder", f"{detail} ({file_name})")
            continue
        image_path = _voc_image_path(img_dir, stem, file_name)
        objects = [_voc_object(obj) for obj in tree.iter("object")]
        annotated = (_to_int(tree.findtext("size/width")), _to_int(tree.findtext("size/height")))
        col.add_image(image_path, position, objects, detail, annotated)
    return col.finish(class_names)


def _split_line_stem(line: str, ann_dir: Path) -> str:
    """A split-file line's name: the whole line, or the first word of a devkit ``name 1`` / ``name -1`` line
    when only that names an xml file."""
    if (ann_dir / f"{line}.xml").is_file():
        return line
    first, _, flag = line.rpartition(" ")
    if first and flag.strip() in ("-1", "0", "1") and (ann_dir / f"{first.strip()}.xml").is_file():
        return first.strip()
    return line


def _voc_image_path(img_dir: Path, stem: str, file_name: str) -> Path:
    """``file_name`` if given and it exists, else ``<stem>`` with the first image suffix found (``.jpg``
    first); ``<stem>.jpg`` (then reported missing) when none is."""
    candidates = [img_dir / file_name] if file_name else []
    candidates += [img_dir / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES]
    candidates += [img_dir / f"{stem}{suffix.upper()}" for suffix in IMAGE_SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path
    return img_dir / f"{stem}.jpg"


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
    difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true", "True")
    return _RawObject(label, _parse_coords(texts), difficult=difficult)


def _to_int(text: str | None) -> int | None:
    value = _parse_number(text)
    return int(value) if value is not None and math.isfinite(value) else None


def _check_unique(class_names: Sequence[str], name: str) -> None:
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"{name}: duplicate class names in {list(class_names)}")
    unusable = [n for n in class_names if not n or any(c in n for c in "\n\r")]
    if unusable:  # labels.txt, the exports' label files, hold one name per line
        raise ValueError(f"{name}: class names must be non-empty single lines; got {unusable}")


# --------------------------------------------------------------------------------------
# YOLO txt (Ultralytics / Roboflow)
# --------------------------------------------------------------------------------------


def load_yolo(
    root: str | Path | None,
    split: str,
    class_names: Sequence[str] | None = None,
    name: str = "",
    *,
    dataset_yaml: str | Path | None = None,
    check_pixels: bool = True,
) -> DatasetIndex:
    """Load one split of a YOLO txt dataset (one ``class xc yc w h`` line per object, normalised 0-1).

    ``split`` is a key of the dataset YAML (``train``/``val``/``test``) when the YAML names
    existing image folders for it, otherwise a folder under ``root``: the Roboflow layout
    ``root/<split>/images`` or the Ultralytics layout ``root/images/<split>``. Each image's
    label file follows the Ultralytics rule (:func:`yolo_label_path`). Class names come from
    ``class_names`` or else the YAML's ``names:`` (``dataset_yaml``, or ``root/data.yaml``
    when present). Polygon lines (YOLO segmentation) become the polygon's bounding box.

    As in Ultralytics, an image without a label file is kept as a background image, but
    counted; an empty label file is a deliberate background image. Image ids are the
    1-based position in sorted path order, so they stay stable when some are skipped.
    """
    spec = _read_dataset_yaml(Path(dataset_yaml)) if dataset_yaml else None
    if root:
        root = Path(root)
    elif spec is not None:
        root = spec.base if spec.base.is_dir() else spec.file.parent
    else:
        raise ValueError("load_yolo needs root (the dataset folder) or dataset_yaml")
    name = name or f"{root.name} {split}"
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: YOLO dataset folder not found: {root}")
    if spec is None and (root / "data.yaml").is_file():
        spec = _read_dataset_yaml(root / "data.yaml")
    class_names = _yolo_class_names(class_names, spec, name, root)
    _check_unique(class_names, name)

    image_dirs = _yolo_split_dirs(root, split, spec, name)
    source = ", ".join(str(d) for d in image_dirs)
    found = [image_files(d) for d in image_dirs]
    images = sorted((p for kept, _ in found for p in kept), key=str)
    unsupported = sorted((p for _, other in found for p in other), key=str)
    if not images:
        other = f"; {len(unsupported)} files TensorFlow cannot decode (e.g. {unsupported[0].name}): convert them " \
            "to JPEG or PNG" if unsupported else ""
        raise ValueError(f"{name}: no images ({', '.join(IMAGE_SUFFIXES)}) in {source}{other}")
    if not any(yolo_label_path(p).is_file() for p in images):
        raise ValueError(
            f"{name}: no label file for any of the {len(images)} images in {source}; expected e.g. "
            f"{yolo_label_path(images[0])} for {images[0]} (labels/ beside images/, one .txt per image)"
        )

    col = _Collector(name, source, {n: i for i, n in enumerate(class_names)}, check_pixels)
    for path in unsupported:
        col.listed += 1
        col.report.add(UNSUPPORTED_FORMAT, f"{path.name} (convert it to JPEG or PNG)")
    for position, image_path in enumerate(progress(images, len(images), f"reading {name} annotations"), start=1):
        col.listed += 1
        detail = image_path.name
        label_path = yolo_label_path(image_path)
        if label_path.is_file():
            objects = _read_yolo_labels(label_path, class_names, col.report, spec.kpt_shape if spec else None)
            if objects is not None:
                col.add_image(image_path, position, objects, detail)
            continue
        col.add_image(image_path, position, [], detail, note_if_kept="image without label file")
    return col.finish(class_names)


def yolo_label_path(image_path: str | Path) -> Path:
    """The Ultralytics rule: the last ``images`` folder of the path becomes ``labels`` and the
    suffix ``.txt``; with no ``images`` folder the label file sits beside the image."""
    image_path = Path(image_path)
    parts = list(image_path.parent.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts) / f"{image_path.stem}.txt"


@dataclass(frozen=True)
class _DatasetYaml:
    """What a YOLO dataset YAML says: class names and per-split image folders."""

    file: Path
    base: Path  # the YAML's ``path`` (relative to the YAML's folder), or the YAML's folder
    names: list[str] | None
    splits: dict[str, list[str]]
    #: Ultralytics pose datasets: ``[keypoints, values per keypoint]``; their lines are ``cls box kpts...``.
    kpt_shape: tuple[int, int] | None = None


def _read_dataset_yaml(path: Path) -> _DatasetYaml:
    """Parse an Ultralytics ``data.yaml``; any structural problem is an error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"YOLO dataset YAML not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read YOLO dataset YAML {path}: {err}") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a YOLO dataset YAML must be a mapping (names:, train:, val:, ...)")
    base = path.parent
    if values.get("path"):
        base = path.parent / str(values["path"])  # an absolute path replaces the folder
    names = _yaml_names(values.get("names"), path)
    count = values.get("nc")
    if names is not None and count is not None and count != len(names):
        raise ValueError(f"{path}: nc: {count} but names: lists {len(names)} classes")
    splits: dict[str, list[str]] = {}
    for key in ("train", "val", "test"):
        entry = values.get(key)
        if entry is None or entry == "":
            continue
        entries = entry if isinstance(entry, list) else [entry]
        if not all(isinstance(e, str) and e for e in entries):
            raise ValueError(f"{path}: {key}: must be a folder or a list of folders, got {entry!r}")
        splits[key] = entries
    kpt_shape = values.get("kpt_shape")
    if kpt_shape is not None:
        if not (isinstance(kpt_shape, list) and len(kpt_shape) == 2 and all(isinstance(v, int) and v > 0 for v in kpt_shape)
                and kpt_shape[1] in (2, 3)):
            raise ValueError(f"{path}: kpt_shape must be [keypoints, 2 or 3], got {kpt_shape!r}")
        kpt_shape = (kpt_shape[0], kpt_shape[1])
    return _DatasetYaml(path, base, names, splits, kpt_shape)


def _yaml_names(names: object, path: Path) -> list[str] | None:
    """``names:`` as a list, or as an ``{id: name}`` mapping with ids 0..n-1."""
    if names is None:
        return None
    if isinstance(names, list):
        return [str(n).strip() for n in names]
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v).strip() for k, v in names.items()}
        except (TypeError, ValueError):
            by_id = {}
        if by_id and sorted(by_id) == list(range(len(by_id))):
            return [by_id[i] for i in range(len(by_id))]
    raise ValueError(f"{path}: names: must be a list or a mapping {{0: name, 1: name, ...}}, got {names!r}")


def _yolo_class_names(
    class_names: Sequence[str] | None, spec: _DatasetYaml | None, name: str, root: Path
) -> list[str]:
    """Explicit names win (with a warning if the YAML disagrees); YOLO files only hold ids."""
    yaml_names = spec.names if spec is not None else None
    if class_names is not None:
        class_names = [str(n).strip() for n in class_names]
        if yaml_names is not None and yaml_names != class_names:
            logger.warning(
                "%s: class names %s differ from %s in %s; using the given ones (ids follow their order)",
                name, class_names, yaml_names, spec.file if spec else "",
            )
        return class_names
    if yaml_names is not None:
        return yaml_names
    raise ValueError(
        f"{name}: YOLO label files hold class ids only, so the class names are needed: set "
        f"data.class_names (in id order) or data.dataset_yaml (a data.yaml with names:), "
        f"or put a data.yaml with names: in {root}"
    )


def _yolo_split_dirs(root: Path, split: str, spec: _DatasetYaml | None, name: str) -> list[Path]:
    """Image folders of ``split``: the YAML's entry when its folders exist, else the layouts under root."""
    if spec is not None and split in spec.splits:
        dirs = []
        for entry in spec.splits[split]:
            path = spec.base / entry
            if not path.exists() and entry.startswith("../"):  # Roboflow's data.yaml, as Ultralytics reads it
                path = spec.base / entry[3:]
            dirs.append(path)
        files = [d for d in dirs if d.is_file()]
        if files:
            raise ValueError(f"{name}: {spec.file} lists images in {files[0]}; only image folders are supported")
        if all(d.is_dir() for d in dirs):
            return dirs
        logger.warning(
            "%s: %s's %s: %s not found; looking for a %r folder under %s instead",
            name, spec.file.name, split, [str(d) for d in dirs if not d.is_dir()], split, root,
        )
    candidates = [root / split / "images", root / "images" / split, root / split]
    for path in candidates:
        if path.is_dir():
            return [path]
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in ("images", "labels"))
    if (root / "images").is_dir():
        found += sorted(f"images/{p.name}" for p in (root / "images").iterdir() if p.is_dir())
    raise FileNotFoundError(
        f"{name}: no image folder for split {split!r}; tried {', '.join(str(c) for c in candidates)}. "
        f"Folders in {root}: {found}"
    )


def _read_yolo_labels(
    label_path: Path, class_names: Sequence[str], report: SkipReport, kpt_shape: tuple[int, int] | None = None
) -> list[_RawObject] | None:
    """Objects of one label file (None, counted, when the file cannot be read); bad lines are counted.

    A line is ``cls xc yc w h``, a polygon ``cls x y x y x y ...`` (an odd number of fields), or a pose line
    ``cls xc yc w h`` followed by keypoints: its box is the object. Pose lines are recognised by the dataset
    YAML's ``kpt_shape`` (their exact length), or without one by a length only a pose line can have.
    """
    try:
        text = label_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        report.add("bad annotation", label_path.name)
        return None
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        detail = f"{label_path.name}:{number}"
        values = [_parse_number(f) for f in fields]
        class_id = values[0]
        pose_length = 5 + kpt_shape[0] * kpt_shape[1] if kpt_shape else None
        # Without kpt_shape: 5 + 3k fields for odd k (8, 14, ..., 56 for COCO's 17 keypoints) is even, which no
        # polygon is; a pose line of 2 values per keypoint is odd and needs kpt_shape to be told from a polygon.
        pose = len(fields) == pose_length or (
            kpt_shape is None and len(fields) >= 8 and len(fields) % 2 == 0 and (len(fields) - 5) % 3 == 0)
        if pose:
            values = values[:5]
            if kpt_shape is None:  # recognised by its length alone: say so
                report.add("pose line read as its box", detail)
        shape_ok = len(values) == 5 or (len(values) >= 7 and len(values) % 2 == 1 and kpt_shape is None)
        if not shape_ok or any(v is None for v in values) or not float(class_id).is_integer():
            report.add("malformed label line", detail)
            continue
        class_id = int(class_id)
        label = class_names[class_id] if 0 <= class_id < len(class_names) else f"class id {class_id}"
        objects.append(_RawObject(label, _yolo_coords(values[1:]), normalized=True, detail=detail))
    return objects


def _yolo_coords(values: Sequence[float]) -> tuple[float, float, float, float]:
    """``xc yc w h`` (or polygon ``x y x y ...``) -> normalised ``x1, y1, x2, y2``; NaN when not finite."""
    if not all(math.isfinite(v) for v in values):
        return (math.nan,) * 4
    if len(values) == 4:
        xc, yc, w, h = values
        return (xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2)
    xs, ys = values[0::2], values[1::2]
    return (min(xs), min(ys), max(xs), max(ys))


# --------------------------------------------------------------------------------------
# TensorFlow Datasets
# --------------------------------------------------------------------------------------

TFDS_INSTALL_HINT = 'pip install "centernet-tf[tfds]"'


def load_tfds(
    name: str,
    split: str,
    cache_dir: str | Path,
    data_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    *,
    download: bool = False,
    check_pixels: bool = True,
) -> DatasetIndex:
    """Load a split of a TensorFlow Datasets detection set (``voc/2007``, ``coco/2017``...) into the same index.

    tfds keeps the encoded images inside its record files; they are written once, byte for byte, as files
    under ``cache_dir/<name>/<split>/`` so that validation, the ``tf.data`` pipeline and evaluation work as for
    any folder of images. Boxes are tfds' ``objects/bbox`` (normalised ymin, xmin, ymax, xmax) with
    ``objects/label``; ``is_crowd`` objects are skipped and counted, ``is_difficult`` ones kept as difficult.

    A dataset that is not prepared in ``data_dir`` is an error at once: ``tfds.load`` would otherwise try to
    download it, which without network retries for minutes. ``download=True`` lets tfds download and prepare.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(f"data.format tfds needs TensorFlow Datasets: {TFDS_INSTALL_HINT}") from error
    display = f"{name} {split}"
    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))
    except Exception as error:  # unknown name, bad version: tfds' own message says which
        raise ValueError(f"tfds dataset {name!r}: {error}") from error
    if not builder.is_prepared():
        if not download:
            raise ValueError(
                f"tfds dataset {name!r} is not prepared in {builder.data_dir_root}: prepare it where there is "
                f"network (`tfds build {name} --data_dir DIR`) and set data.tfds_data_dir to DIR, or set "
                "data.tfds_download: true to let tfds download it now"
            )
        builder.download_and_prepare()
    if split not in builder.info.splits:
        raise ValueError(f"tfds dataset {name!r} has no split {split!r}; it has {sorted(builder.info.splits)}")
    objects_feature = builder.info.features["objects"]
    label_names = [str(n) for n in objects_feature["label"].names]
    class_names = [str(n).strip() for n in (class_names or label_names)]
    _check_unique(class_names, display)
    out_dir = Path(cache_dir) / name.replace("/", "_") / split
    out_dir.mkdir(parents=True, exist_ok=True)
    col = _Collector(display, f"tfds {name} ({builder.data_dir})", {n: i for i, n in enumerate(class_names)},
                     check_pixels)
    decoders = {"image": tfds.decode.SkipDecoding()}
    examples = tfds.as_numpy(builder.as_dataset(split=split, decoders=decoders))
    total = builder.info.splits[split].num_examples
    for position, example in enumerate(progress(examples, total, f"reading {display}"), start=1):
        col.listed += 1
        data = bytes(example["image"])
        suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg"
        path = out_dir / f"{position:07d}{suffix}"
        if not path.is_file() or path.stat().st_size != len(data):
            path.write_bytes(data)
        objects = example["objects"]
        crowd = objects.get("is_crowd", np.zeros(len(objects["label"]), bool))
        difficult = objects.get("is_difficult", np.zeros(len(objects["label"]), bool))
        raw = []
        for bbox, label, is_crowd, is_difficult in zip(objects["bbox"], objects["label"], crowd, difficult):
            if is_crowd:
                col.report.add("crowd box", path.name)
                continue
            ymin, xmin, ymax, xmax = (float(v) for v in bbox)
            raw.append(_RawObject(label_names[int(label)], (xmin, ymin, xmax, ymax), normalized=True,
                                  difficult=bool(is_difficult)))
        col.add_image(path, position, raw, path.name)
    return col.finish(class_names)
