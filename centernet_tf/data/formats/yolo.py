"""``data.format: yolo``: YOLO txt labels in the Ultralytics or Roboflow layout, with the dataset YAML."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from centernet_tf.data.formats.base import (
    Collector, RawObject, check_unique, image_check_for, parse_number, require_path, split_name,
)
from centernet_tf.data.formats.registry import DataSection, SourceSpec
from centernet_tf.data.image_check import ImageCheck
from centernet_tf.data.image_files import IMAGE_SUFFIXES, UNSUPPORTED_FORMAT, image_files
from centernet_tf.data.index import DatasetIndex, SkipReport
from centernet_tf.progress import progress

logger = logging.getLogger(__name__)

def load_yolo(
    root: str | Path | None,
    split: str,
    class_names: Sequence[str] | None = None,
    name: str = "",
    *,
    dataset_yaml: str | Path | None = None,
    check: ImageCheck | None = None,
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
    check_unique(class_names, name)

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

    col = Collector(name, source, {n: i for i, n in enumerate(class_names)}, check or ImageCheck())
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
) -> list[RawObject] | None:
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
        values = [parse_number(f) for f in fields]
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
        objects.append(RawObject(label, _yolo_coords(values[1:]), normalized=True, detail=detail))
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


def _load_yolo(data: DataSection, split: str, class_names: list[str] | None) -> DatasetIndex:
    yolo_split = split_name(data, split)
    if not yolo_split:
        raise ValueError(f"data.{split}_split must name the {split} split's folder (or data.yaml key) for yolo")
    if not data.root and not data.dataset_yaml:
        raise ValueError("data.format yolo needs data.root (the dataset folder) or data.dataset_yaml")
    if data.root:
        require_path(data.root, "data.root")
    if data.dataset_yaml:
        require_path(data.dataset_yaml, "data.dataset_yaml")
    return load_yolo(data.root or None, yolo_split, class_names=class_names, dataset_yaml=data.dataset_yaml or None,
                     check=image_check_for(data))


#: Registered by :mod:`centernet_tf.data.formats` (the order there is the order users see).
SOURCE = SourceSpec(
    "yolo",
    _load_yolo,
    description=(
        "YOLO txt (`class x_center y_center width height`, normalised) in the Ultralytics layout "
        "(`root/images/<split>`, `root/labels/<split>`) or Roboflow's (`root/<split>/images`, "
        "`root/<split>/labels`); `train_split`/`val_split`/`test_split` name the folders, or the "
        "`train`/`val`/`test` keys of an Ultralytics `dataset_yaml` (also read as `root/data.yaml`). Class "
        "names: `class_names`, else the YAML's `names:`. An image without a label file is kept as a "
        "background image and counted."
    ),
)
