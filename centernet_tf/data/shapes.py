"""A built-in synthetic detection dataset: coloured circles, squares and triangles.

It is the data ``train.py`` uses when given nothing, so a CPU-only user can watch a
small CenterNet learn in minutes with no download. The task is kept easy enough to
reach a high mAP (objects are opaque, high-contrast, never mostly hidden) but not
trivial: backgrounds vary (solid, gradient, noisy), sizes span >3x, triangles point in
four directions and objects may overlap.

The output is a plain COCO dataset on disk, loaded with the same code path as real
data. Generation is deterministic (same arguments -> byte-identical files), cached by a
``params.json`` written last, and atomic (built in a temporary directory and renamed),
so an interrupted run never leaves something that looks complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from centernet_tf.progress import progress

logger = logging.getLogger(__name__)

SHAPE_CLASSES = ("circle", "square", "triangle")
FORMAT_VERSION = 1

MAX_IOU = 0.3  # a new object's box may overlap an existing one up to this IoU
MIN_VISIBLE = 0.6  # every object keeps at least this fraction of its pixels visible
MIN_CONTRAST = 100.0  # summed |RGB difference| to the local background and to overlapped objects
MIN_EDGE_CONTRAST = 80.0  # the same, for 98% of the background pixels under the object
PLACEMENT_TRIES = 30
COLOUR_TRIES = 30
EXTRA_ATTEMPTS = 50
JPEG_QUALITY = 95

_SPLIT_CODES = {"train": 0, "val": 1}


@dataclass(frozen=True)
class ShapesPaths:
    """Where a generated shapes dataset lives (COCO layout)."""

    train_images: Path
    train_annotations: Path
    val_images: Path
    val_annotations: Path

    def split(self, split: str) -> tuple[Path, Path]:
        """(image_dir, annotation_file) of ``split`` ("train" or "val")."""
        if split == "train":
            return self.train_images, self.train_annotations
        if split == "val":
            return self.val_images, self.val_annotations
        raise ValueError(f"unknown shapes split {split!r}; expected 'train' or 'val'")


@dataclass(frozen=True)
class RenderedShape:
    """One placed object: class index, tight pixel box (x1, y1, x2, y2 exclusive) and area."""

    class_id: int
    box: tuple[int, int, int, int]
    area: int


def shapes_paths(output_dir: str | Path) -> ShapesPaths:
    """The paths a dataset generated into ``output_dir`` has (whether or not it exists yet)."""
    root = Path(output_dir)
    return ShapesPaths(
        train_images=root / "images" / "train",
        train_annotations=root / "annotations" / "train.json",
        val_images=root / "images" / "val",
        val_annotations=root / "annotations" / "val.json",
    )


def generate_shapes_dataset(
    output_dir: str | Path,
    num_train: int = 1000,
    num_val: int = 200,
    image_size: tuple[int, int] = (128, 128),
    min_objects: int = 1,
    max_objects: int = 5,
    min_size: int = 14,
    max_size: int = 48,
    seed: int = 0,
) -> ShapesPaths:
    """Generate (or reuse) the shapes dataset in ``output_dir``; ``image_size`` is (height, width).

    Returns immediately if ``output_dir/params.json`` records identical arguments; any
    difference regenerates and atomically replaces the old dataset.
    """
    height, width = (int(v) for v in image_size)
    _check_args(num_train, num_val, height, width, min_objects, max_objects, min_size, max_size)
    params = {
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": [height, width],
        "min_objects": int(min_objects),
        "max_objects": int(max_objects),
        "min_size": int(min_size),
        "max_size": int(max_size),
        "seed": int(seed),
        "format_version": FORMAT_VERSION,
    }
    output_dir = Path(output_dir)
    paths = shapes_paths(output_dir)
    if _read_params(output_dir) == params:
        logger.info("shapes dataset in %s is up to date; reusing it", output_dir)
        return paths

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        for split, count in (("train", num_train), ("val", num_val)):
            _write_split(tmp, split, count, params)
        # Written last: its presence with matching content is what marks "complete".
        (tmp / "params.json").write_text(json.dumps(params, indent=2) + "\n")
        _install(tmp, output_dir, params)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(
        "generated shapes dataset in %s (%d train / %d val images)", output_dir, num_train, num_val
    )
    return paths


# --------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------


def _check_args(
    num_train: int,
    num_val: int,
    height: int,
    width: int,
    min_objects: int,
    max_objects: int,
    min_size: int,
    max_size: int,
) -> None:
    problems = []
    if num_train < 0 or num_val < 0:
        problems.append("num_train and num_val must be >= 0")
    if height < 8 or width < 8:
        problems.append("image_size must be at least (8, 8)")
    if not 0 <= min_objects <= max_objects:
        problems.append("need 0 <= min_objects <= max_objects")
    if not 4 <= min_size <= max_size <= min(height, width):
        problems.append("need 4 <= min_size <= max_size <= min(image_size)")
    if problems:
        raise ValueError("invalid shapes dataset arguments: " + "; ".join(problems))


def _read_params(output_dir: Path) -> dict | None:
    try:
        return json.loads((output_dir / "params.json").read_text())
    except (OSError, ValueError):
        return None


def _install(tmp: Path, output_dir: Path, params: dict) -> None:
    """Move the finished ``tmp`` into place, replacing an outdated dataset atomically."""
    if output_dir.exists():
        if _read_params(output_dir) == params:  # a concurrent run finished first
            shutil.rmtree(tmp)
            return
        is_ours = (output_dir / "params.json").is_file()
        if not is_ours and any(output_dir.iterdir()):
            raise FileExistsError(
                f"{output_dir} exists and is not a shapes dataset (no params.json); "
                "refusing to replace it"
            )
        old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
        old.rmdir()
        os.replace(output_dir, old)
        os.replace(tmp, output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.replace(tmp, output_dir)
        except OSError:
            if _read_params(output_dir) != params:
                raise
            shutil.rmtree(tmp)  # another process (e.g. a second worker) installed the same data in between


def _write_split(root: Path, split: str, count: int, params: dict) -> None:
    height, width = params["image_size"]
    image_dir = root / "images" / split
    image_dir.mkdir(parents=True)
    images, annotations = [], []
    for image_id in progress(range(1, count + 1), count, f"generating shapes {split}"):
        # One generator per image: images do not depend on how many others are made.
        rng = np.random.default_rng([params["seed"], _SPLIT_CODES[split], image_id])
        pixels, shapes = render_shapes_image(
            rng,
            height,
            width,
            params["min_objects"],
            params["max_objects"],
            params["min_size"],
            params["max_size"],
        )
        file_name = f"{image_id:06d}.jpg"
        Image.fromarray(pixels).save(
            image_dir / file_name, "JPEG", quality=JPEG_QUALITY, subsampling=0
        )
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for shape in shapes:
            x1, y1, x2, y2 = shape.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": shape.class_id + 1,
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    "area": float(shape.area),
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"description": f"synthetic shapes ({split})", "version": str(FORMAT_VERSION)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_CLASSES)
        ],
    }
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"{split}.json").write_text(json.dumps(coco, separators=(",", ":")))


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------


def render_shapes_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    min_objects: int,
    max_objects: int,
    min_size: int,
    max_size: int,
) -> tuple[np.ndarray, list[RenderedShape]]:
    """One uint8 [H, W, 3] image and its objects; boxes are the tight extent of the drawn pixels."""
    background = _background(rng, height, width)
    canvas = background.copy()
    owner = np.full((height, width), -1, dtype=np.int16)  # which object is on top of each pixel
    shapes: list[RenderedShape] = []
    colours: list[np.ndarray] = []
    visible: list[int] = []
    target = int(rng.integers(min_objects, max_objects + 1))
    # Each wanted object gets one attempt (and is dropped if it does not fit); extra
    # attempts are made only while fewer than ``min_objects`` could be placed.
    for attempt in range(target + EXTRA_ATTEMPTS):
        if len(shapes) >= target or (attempt >= target and len(shapes) >= min_objects):
            break
        class_id = int(rng.integers(len(SHAPE_CLASSES)))
        mask = _shape_mask(class_id, int(rng.integers(min_size, max_size + 1)), rng)
        placed = _place(mask, shapes, owner, visible, rng)
        if placed is None:
            continue
        x1, y1, covered = placed
        mh, mw = mask.shape
        box = (x1, y1, x1 + mw, y1 + mh)
        colour = _pick_colour(background[y1 : y1 + mh, x1 : x1 + mw][mask], box, shapes, colours, rng)
        if colour is None:
            continue
        for k, n in enumerate(covered):
            visible[k] -= int(n)
        canvas[y1 : y1 + mh, x1 : x1 + mw][mask] = colour
        owner[y1 : y1 + mh, x1 : x1 + mw][mask] = len(shapes)
        area = int(mask.sum())
        shapes.append(RenderedShape(class_id, box, area))
        colours.append(colour)
        visible.append(area)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), shapes


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Solid colour, linear gradient in a random direction, or solid colour with mild noise."""
    kind = int(rng.integers(3))
    base = rng.uniform(0, 255, size=3)
    if kind == 0:
        return np.broadcast_to(base, (height, width, 3)).astype(np.float64)
    if kind == 1:
        other = rng.uniform(0, 255, size=3)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        proj = xx * math.cos(angle) + yy * math.sin(angle)
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
        return base * (1 - t[..., None]) + other * t[..., None]
    sigma = rng.uniform(4.0, 10.0)
    return base + rng.normal(0.0, sigma, size=(height, width, 3))


def _shape_mask(class_id: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of one shape, cropped to exactly its drawn pixels.

    ``size`` is the diameter, side or triangle base. Because the box is taken from this
    crop, it is the tight bounding box of what is drawn, whatever PIL rasterises.
    """
    name = SHAPE_CLASSES[class_id]
    if name == "triangle":
        tri_h = max(3, int(round(size * rng.uniform(0.75, 1.0))))
        img = Image.new("L", (size, tri_h), 0)
        ImageDraw.Draw(img).polygon(
            [(0, tri_h - 1), (size - 1, tri_h - 1), ((size - 1) / 2, 0)], fill=255
        )
    else:
        img = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(img)
        if name == "circle":
            draw.ellipse([0, 0, size - 1, size - 1], fill=255)
        else:
            draw.rectangle([0, 0, size - 1, size - 1], fill=255)
    bbox = img.getbbox()
    mask = np.asarray(img.crop(bbox)) > 0
    if name == "triangle":
        mask = np.rot90(mask, k=int(rng.integers(4)))  # apex up, left, down or right
    return np.ascontiguousarray(mask)


def _place(
    mask: np.ndarray,
    shapes: list[RenderedShape],
    owner: np.ndarray,
    visible: list[int],
    rng: np.random.Generator,
) -> tuple[int, int, np.ndarray] | None:
    """Random top-left corner keeping boxes at IoU <= MAX_IOU and older objects mostly visible.

    Returns (x1, y1, pixels covered per existing object), or None if no spot was found.
    """
    height, width = owner.shape
    mh, mw = mask.shape
    for _ in range(PLACEMENT_TRIES):
        x1 = int(rng.integers(0, width - mw + 1))
        y1 = int(rng.integers(0, height - mh + 1))
        box = (x1, y1, x1 + mw, y1 + mh)
        if any(_iou(box, s.box) > MAX_IOU for s in shapes):
            continue
        under = owner[y1 : y1 + mh, x1 : x1 + mw][mask]
        covered = np.bincount(under[under >= 0], minlength=len(shapes))
        if all(visible[k] - covered[k] >= MIN_VISIBLE * s.area for k, s in enumerate(shapes)):
            return x1, y1, covered
    return None


def _pick_colour(
    background_under: np.ndarray,
    box: tuple[int, int, int, int],
    shapes: list[RenderedShape],
    colours: list[np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray | None:
    """A random colour that stands out from the local background and any overlapped object.

    Besides the mean, nearly every background pixel under the shape must differ by
    MIN_EDGE_CONTRAST, so gradients and noise cannot hide part of an edge.
    """
    references = [background_under.mean(axis=0)]
    references += [c for s, c in zip(shapes, colours) if _iou(box, s.box) > 0]
    for _ in range(COLOUR_TRIES):
        colour = rng.integers(0, 256, size=3).astype(np.float64)
        if not all(np.abs(colour - ref).sum() >= MIN_CONTRAST for ref in references):
            continue
        per_pixel = np.abs(background_under - colour).sum(axis=1)
        if np.percentile(per_pixel, 2) >= MIN_EDGE_CONTRAST:
            return colour
    return None


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union
