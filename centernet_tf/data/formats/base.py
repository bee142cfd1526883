"""What every data format shares: the raw object a reader produces, and the collector that checks the image
files (in parallel) and applies one set of box rules, counting every skip and repair in a
:class:`~centernet_tf.data.index.SkipReport`.

A format module reads its annotation files into :class:`RawObject` lists, queues each image on a
:class:`Collector` and returns ``collector.finish(class_names)``: the rules below are the same for all.
"""

from __future__ import annotations

import ast
import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from centernet_tf.data.formats.registry import DataSection
from centernet_tf.data.image_check import ImageCheck, Problem, pixel_limit, probe_image
from centernet_tf.data.index import DatasetIndex, Example, SkipReport
from centernet_tf.progress import progress

logger = logging.getLogger(__name__)

#: EXIF orientations that swap width and height (rotations by 90 or 270 degrees, with or without a mirror).
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
#: Annotated and real image sizes whose x and y ratios differ by less than this are a uniform resize (images
#: shrunk after labelling): the boxes are rescaled. Otherwise (e.g. width and height swapped) the image is skipped.
UNIFORM_RESIZE_TOLERANCE = 0.02


@dataclass(frozen=True)
class RawObject:
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
class PendingImage:
    """An image queued for the file check, with what its annotation says."""

    image_path: Path
    image_id: int
    objects: tuple[RawObject, ...]
    detail: str
    annotated_size: tuple[int | None, int | None]
    note_if_kept: str = ""


@dataclass
class Collector:
    """Accumulates examples for one source and applies the shared rules."""

    name: str
    source: str
    class_to_id: Mapping[str, int]
    check: ImageCheck = field(default_factory=ImageCheck)
    report: SkipReport = field(default_factory=SkipReport)
    examples: list[Example] = field(default_factory=list)
    listed: int = 0
    pending: list[PendingImage] = field(default_factory=list)

    def add_image(
        self,
        image_path: Path,
        image_id: int,
        objects: Sequence[RawObject],
        detail: str,
        annotated_size: tuple[int | None, int | None] = (None, None),
        note_if_kept: str = "",
    ) -> None:
        """Queue one image and its objects; :meth:`finish` checks the files (in parallel) and validates them in
        this order. ``note_if_kept`` is counted as a reason if the image is kept."""
        self.pending.append(PendingImage(image_path, image_id, tuple(objects), detail,
                                          (annotated_size[0], annotated_size[1]), note_if_kept))

    def _check_files(self) -> list[tuple[int, int, int] | Problem]:
        """Probe every queued image file with ``check.workers`` threads (Pillow releases the GIL while it reads
        and decodes), showing progress; results in queue order."""
        def probe(item: PendingImage) -> tuple[int, int, int] | Problem:
            width, height = item.annotated_size
            if self.check.mode == "annotation_sizes" and width and height and width > 0 and height > 0:
                return (width, height, 1) if item.image_path.is_file() else Problem("missing image", item.detail)
            return probe_image(item.image_path, item.detail, self.check.decodes, self.check.max_pixels)

        workers = self.check.workers or os.cpu_count() or 1
        title = f"checking {len(self.pending)} images of {self.name}"
        # Pillow's own bomb limit is a global: lifted once here (our limit is checked per image), not per thread.
        with pixel_limit(None):
            if workers == 1:
                return list(progress(map(probe, self.pending), len(self.pending), title))
            with ThreadPoolExecutor(workers) as pool:
                return list(progress(pool.map(probe, self.pending), len(self.pending), title))

    def _add_checked(self, item: PendingImage, probed: tuple[int, int, int] | Problem) -> None:
        """Validate one probed image and its objects; append an Example or count why not."""
        image_path, image_id, objects, detail, annotated_size = (
            item.image_path, item.image_id, item.objects, item.detail, item.annotated_size)
        if isinstance(probed, Problem):
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
                obj = RawObject(obj.label, (x1 * fx, y1 * fy, x2 * fx, y2 * fy), False, obj.detail, obj.difficult)
            kept = validate_box(obj, width, height, self.class_to_id, self.report, obj.detail or detail)
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


def inside_folder(path: Path, folder: Path) -> bool:
    """Whether ``path`` names something under ``folder`` (no ``..`` or absolute escape), judged on the names
    the annotation gives, not on where symlinks lead: datasets kept in a cache (DVC, symlinked files) are fine."""
    root = os.path.normpath(os.path.abspath(folder))
    return os.path.normpath(os.path.abspath(path)).startswith(root + os.sep)


#: Larger images are skipped as "image too large" (Pillow's own decompression-bomb limit, which it reports
#: as an error that the loader would otherwise count as a corrupt file). ``load_split`` sets it from


def validate_box(
    obj: RawObject,
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



def parse_number(value: object) -> float | None:
    """float(value), or None when it is not a number at all ("nan"/"inf" do parse)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def parse_coords(values: Sequence[object]) -> tuple[float, float, float, float] | None:
    numbers = [parse_number(v) for v in values]
    if len(numbers) != 4 or any(n is None for n in numbers):
        return None
    return numbers[0], numbers[1], numbers[2], numbers[3]  # type: ignore[return-value]


def to_int(text: str | None) -> int | None:
    value = parse_number(text)
    return int(value) if value is not None and math.isfinite(value) else None


def check_unique(class_names: Sequence[str], name: str) -> None:
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"{name}: duplicate class names in {list(class_names)}")
    unusable = [n for n in class_names if not n or any(c in n for c in "\n\r")]
    if unusable:  # labels.txt, the exports' label files, hold one name per line
        raise ValueError(f"{name}: class names must be non-empty single lines; got {unusable}")



# Reading a split from the data config (shared by the formats' loaders).


def image_check_for(data: DataSection) -> ImageCheck:
    """The image-file check the config's data section asks for."""
    return ImageCheck(data.image_check, data.check_workers, int(data.max_image_pixels))


def split_name(data: DataSection, split: str) -> str | None:
    """The configured name of ``split``; asking for an unconfigured test split is an error."""
    name = getattr(data, f"{split}_split")
    if split == "test" and not name:
        raise ValueError(f"no test split configured: set data.test_split (data.format {data.format!r})")
    return name


def require_path(path: str, key: str) -> None:
    """A clear error for a path setting that is empty or names nothing."""
    if not path:
        raise ValueError(f"{key} is not set in the config")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{key} = {path!r} does not exist (relative paths are read from {os.getcwd()})")
