"""``data.format: tfds``: a TensorFlow Datasets detection set, its images written once as files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from centernet_tf.data.formats.base import Collector, RawObject, check_unique, image_check_for, split_name
from centernet_tf.data.formats.registry import DataSection, SourceSpec
from centernet_tf.data.image_check import ImageCheck
from centernet_tf.data.index import DatasetIndex
from centernet_tf.progress import progress


TFDS_INSTALL_HINT = 'pip install "centernet-tf[tfds]"'


def load_tfds(
    name: str,
    split: str,
    cache_dir: str | Path,
    data_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    *,
    download: bool = False,
    check: ImageCheck | None = None,
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
    check_unique(class_names, display)
    out_dir = Path(cache_dir) / name.replace("/", "_") / split
    out_dir.mkdir(parents=True, exist_ok=True)
    col = Collector(display, f"tfds {name} ({builder.data_dir})", {n: i for i, n in enumerate(class_names)}, check or ImageCheck())
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
            raw.append(RawObject(label_names[int(label)], (xmin, ymin, xmax, ymax), normalized=True,
                                  difficult=bool(is_difficult)))
        col.add_image(path, position, raw, path.name)
    return col.finish(class_names)


def _load_tfds(data: DataSection, split: str, class_names: list[str] | None) -> DatasetIndex:
    from centernet_tf.data.formats.shapes import default_cache_dir  # the one cache folder

    if not data.tfds_name:
        raise ValueError("data.format tfds needs data.tfds_name, e.g. voc/2007")
    tfds_split = split_name(data, split)
    if not tfds_split:
        raise ValueError(f"data.{split}_split must name the tfds split for {split} (e.g. train, validation, test)")
    cache = Path(data.tfds_cache_dir) if data.tfds_cache_dir else default_cache_dir() / "tfds"
    return load_tfds(data.tfds_name, tfds_split, cache, data.tfds_data_dir or None, class_names,
                     download=data.tfds_download, check=image_check_for(data))


#: Registered by :mod:`centernet_tf.data.formats` (the order there is the order users see).
SOURCE = SourceSpec(
    "tfds",
    _load_tfds,
    description=(
        "TensorFlow Datasets: `tfds_name` (e.g. `voc/2007`, `coco/2017`), `train_split`/`val_split`/`test_split` "
        "as tfds split names, `tfds_data_dir` where it is prepared; images are written once to "
        "`tfds_cache_dir`. A dataset that is not prepared is an error at once (`tfds_download: true` lets "
        "tfds download it). Needs the `tfds` extra."
    ),
)
