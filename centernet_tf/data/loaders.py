"""Pick and load a dataset split from a :class:`~centernet_tf.config.DataConfig`.

Every ``data.format`` is registered here once (:func:`register_source`): :func:`load_split`, the config's
validation and the README's list of formats all read this registry, so adding a format is one call.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centernet_tf.config import DataConfig
from centernet_tf.data.shapes import build_shapes_index, generate_shapes_dataset
from centernet_tf.data.sources import DatasetIndex, load_coco, load_tfds, load_voc, load_yolo

logger = logging.getLogger(__name__)

#: The splits a config can name; a source may support fewer (shapes has no test split).
SPLITS = ("train", "val", "test")

#: ``loader(data, split, class_names)``: ``split`` is one of SPLITS, ``class_names`` None or the list to use.
SourceLoader = Callable[[DataConfig, str, "list[str] | None"], DatasetIndex]


def default_shapes_dir() -> Path:
    """Cache of the generated shapes dataset (``$CENTERNET_TF_CACHE`` or ``~/.cache/centernet_tf``)."""
    root = os.environ.get("CENTERNET_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "centernet_tf")
    return Path(root) / "shapes"


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


def load_split(data: DataConfig, split: str, class_names: list[str] | None = None) -> DatasetIndex:
    """Load ``split`` ("train", "val" or "test") as a validated index and log its skip summary once.

    ``class_names`` (usually the training split's) fixes the class order of the other splits so they
    agree; otherwise ``data.class_names`` or the annotations decide.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    source = get_source(data.format)
    if split not in source.splits:
        raise ValueError(f"data.format {data.format!r} has no {split!r} split (it has {', '.join(source.splits)})")
    from centernet_tf.data import sources  # the file checks are module settings of the readers

    sources.MAX_IMAGE_PIXELS = int(data.max_image_pixels)
    sources.IMAGE_CHECK = data.image_check
    sources.CHECK_WORKERS = data.check_workers
    index = source.loader(data, split, class_names or data.class_names)
    index.report.log(logger, index.name or split)
    if split == "train":
        _warn_classes_without_boxes(index)
    return index


def _warn_classes_without_boxes(index: DatasetIndex) -> list[str]:
    """Name the classes no training box belongs to (a COCO export's super-category, a class never labelled):
    their heatmap channel would train on negatives only, and their AP has no ground truth to measure."""
    counts = np.bincount(np.concatenate([e.class_ids for e in index.examples] or [np.zeros(0, np.int32)]),
                         minlength=len(index.class_names))
    empty = [name for name, count in zip(index.class_names, counts) if count == 0]
    if empty:
        logger.warning(
            "%s: %d of %d classes have no box in the training split: %s. The model learns never to detect them; "
            "list only the classes you labelled in data.class_names to leave them out.",
            index.name or "train", len(empty), len(index.class_names), ", ".join(empty[:10]),
        )
    return empty


# --------------------------------------------------------------------------------------
# Built-in sources
# --------------------------------------------------------------------------------------


def _load_shapes(data: DataConfig, split: str, class_names: list[str] | None) -> DatasetIndex:
    height, width = data.shapes_image_size
    shapes_dir = Path(data.shapes_dir) if data.shapes_dir else default_shapes_dir()
    paths = generate_shapes_dataset(
        shapes_dir,
        num_train=data.shapes_num_train,
        num_val=data.shapes_num_val,
        image_size=(height, width),
        seed=data.shapes_seed,
    )
    return build_shapes_index(paths, split)


def _load_coco(data: DataConfig, split: str, class_names: list[str] | None) -> DatasetIndex:
    annotations = getattr(data, f"{split}_annotations")
    images = getattr(data, f"{split}_images")
    if split == "test" and not annotations and not images:
        raise ValueError("no test split configured: set data.test_annotations and data.test_images")
    _require_path(annotations, f"data.{split}_annotations")
    _require_path(images, f"data.{split}_images")
    return load_coco(annotations, images, class_names=class_names, name=f"{split} ({annotations})")


def _split_name(data: DataConfig, split: str) -> str | None:
    """The configured name of ``split``; asking for an unconfigured test split is an error."""
    name = getattr(data, f"{split}_split")
    if split == "test" and not name:
        raise ValueError(f"no test split configured: set data.test_split (data.format {data.format!r})")
    return name


def _load_voc(data: DataConfig, split: str, class_names: list[str] | None) -> DatasetIndex:
    voc_split = _split_name(data, split)
    _require_path(data.root, "data.root")
    return load_voc(
        data.root,
        voc_split,
        class_names=class_names,
        name=f"{Path(data.root).name} {voc_split or 'all'}",
        annotations_dir=data.annotations_dir,
        images_dir=data.images_dir,
        match_images_by=data.voc_match_images_by,
    )


def _load_yolo(data: DataConfig, split: str, class_names: list[str] | None) -> DatasetIndex:
    yolo_split = _split_name(data, split)
    if not yolo_split:
        raise ValueError(f"data.{split}_split must name the {split} split's folder (or data.yaml key) for yolo")
    if not data.root and not data.dataset_yaml:
        raise ValueError("data.format yolo needs data.root (the dataset folder) or data.dataset_yaml")
    if data.root:
        _require_path(data.root, "data.root")
    if data.dataset_yaml:
        _require_path(data.dataset_yaml, "data.dataset_yaml")
    return load_yolo(
        data.root or None, yolo_split, class_names=class_names, dataset_yaml=data.dataset_yaml or None
    )


register_source(
    "shapes",
    _load_shapes,
    description=(
        "built-in synthetic circles, squares and triangles of varied size and colour on varied backgrounds "
        "(deterministic from `shapes_seed`, cached under `~/.cache/centernet_tf/shapes` or `shapes_dir`), "
        "written as real JPEG files plus COCO JSON; train and val only."
    ),
    splits=("train", "val"),
)
register_source(
    "coco",
    _load_coco,
    description=(
        "COCO JSON: `train_annotations`/`train_images`, `val_annotations`/`val_images` and optionally "
        "`test_annotations`/`test_images`; `iscrowd` boxes are skipped."
    ),
)
register_source(
    "voc",
    _load_voc,
    description=(
        "Pascal VOC XML under `root`: `annotations_dir` (default `Annotations`), `images_dir` (`JPEGImages`) "
        "and `ImageSets/Main/<split>.txt` for `train_split`/`val_split`/`test_split` (a null split reads "
        "every XML file). The two folders may be the same (XML beside the images; `\"\"` is `root` itself) "
        "and may contain `{split}`, e.g. Roboflow's `train/`, `valid/`: then the split names the folder. An XML "
        "pairs with the image of its own name (`voc_match_images_by: filename` reads `<filename>`, inside "
        "`images_dir` only)."
    ),
)
def _load_tfds(data: DataConfig, split: str, class_names: list[str] | None) -> DatasetIndex:
    if not data.tfds_name:
        raise ValueError("data.format tfds needs data.tfds_name, e.g. voc/2007")
    tfds_split = _split_name(data, split)
    if not tfds_split:
        raise ValueError(f"data.{split}_split must name the tfds split for {split} (e.g. train, validation, test)")
    cache = Path(data.tfds_cache_dir) if data.tfds_cache_dir else default_shapes_dir().parent / "tfds"
    return load_tfds(data.tfds_name, tfds_split, cache, data.tfds_data_dir or None, class_names,
                     download=data.tfds_download)


register_source(
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


def _require_path(path: str, key: str) -> None:
    if not path:
        raise ValueError(f"{key} is not set in the config")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{key} = {path!r} does not exist (relative paths are read from {os.getcwd()})")


register_source(
    "tfds",
    _load_tfds,
    description=(
        "TensorFlow Datasets: `tfds_name` (e.g. `voc/2007`, `coco/2017`), `train_split`/`val_split`/`test_split` "
        "as tfds split names, `tfds_data_dir` where it is prepared; images are written once to "
        "`tfds_cache_dir`. A dataset that is not prepared is an error at once (`tfds_download: true` lets "
        "tfds download it). Needs the `tfds` extra."
    ),
)
