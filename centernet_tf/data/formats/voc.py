"""``data.format: voc``: Pascal VOC XML files (the devkit layout, or XML beside the images)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from centernet_tf.data.formats.base import (
    Collector, RawObject, check_unique, image_check_for, inside_folder, parse_coords, require_path, split_name,
    to_int,
)
from centernet_tf.data.formats.registry import DataSection, SourceSpec
from centernet_tf.data.image_check import ImageCheck
from centernet_tf.data.image_files import IMAGE_SUFFIXES
from centernet_tf.data.index import DatasetIndex
from centernet_tf.progress import progress


def load_voc(
    root: str | Path,
    split: str | None = "trainval",
    class_names: Sequence[str] | None = None,
    name: str = "",
    *,
    annotations_dir: str = "Annotations",
    images_dir: str = "JPEGImages",
    match_images_by: str = "stem",
    check: ImageCheck | None = None,
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
    check_unique(class_names, name)
    class_to_id = {n: i for i, n in enumerate(class_names)}

    col = Collector(name, source, class_to_id, check or ImageCheck())
    for position, stem, where, tree in progress(parsed, len(parsed), f"reading {name} annotations"):
        col.listed += 1
        detail = f"{stem}.xml"
        if tree is None:
            missing = not (ann_dir / f"{stem}.xml").is_file()
            col.report.add("missing annotation file" if missing else "bad annotation", where if missing else detail)
            continue
        file_name = (tree.findtext("filename") or "").strip() if match_images_by == "filename" else ""
        if file_name and not inside_folder(img_dir / file_name, img_dir):
            col.report.add("file outside the image folder", f"{detail} ({file_name})")
            continue
        image_path = _voc_image_path(img_dir, stem, file_name)
        objects = [_voc_object(obj) for obj in tree.iter("object")]
        annotated = (to_int(tree.findtext("size/width")), to_int(tree.findtext("size/height")))
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


def _voc_object(obj: ET.Element) -> RawObject:
    label = (obj.findtext("name") or "").strip()
    bnd = obj.find("bndbox")
    if bnd is None:
        return RawObject(label, None)
    texts = [bnd.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
    difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true", "True")
    return RawObject(label, parse_coords(texts), difficult=difficult)


def _load_voc(data: DataSection, split: str, class_names: list[str] | None) -> DatasetIndex:
    voc_split = split_name(data, split)
    require_path(data.root, "data.root")
    return load_voc(
        data.root,
        voc_split,
        class_names=class_names,
        name=f"{Path(data.root).name} {voc_split or 'all'}",
        annotations_dir=data.annotations_dir,
        images_dir=data.images_dir,
        match_images_by=data.voc_match_images_by,
        check=image_check_for(data),
    )


#: Registered by :mod:`centernet_tf.data.formats` (the order there is the order users see).
SOURCE = SourceSpec(
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
