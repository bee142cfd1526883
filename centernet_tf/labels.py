"""Class names beside and inside exported models: one way to write them, one way to read them back.

Several exports may share a folder, so each file export has its own ``<stem>.labels.txt`` and a ``.tflite``
carries its names in its metadata; the folder's ``labels.txt`` is what apps look for and is never overwritten
with another model's names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from centernet_tf.files import atomic_write

logger = logging.getLogger(__name__)


def read_labels(path: str | Path) -> list[str]:
    """A ``labels.txt``: one name per line; blank lines, surrounding spaces and Windows line ends ignored."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


#: Name of the TFLite metadata entry that carries the class names (UTF-8, one per line) inside the file.
LABELS_METADATA = "centernet_tf.labels"


def write_label_files(output_dir: str | Path, class_names: Iterable[str], stem: str | None = None) -> None:
    """``labels.txt`` (one name per line, 0-based order) and ``label_map.pbtxt`` (Object Detection API, 1-based).

    With ``stem`` (a file export, which may share its folder with other exports) the model's own copies are
    ``<stem>.labels.txt`` / ``<stem>.label_map.pbtxt``; the shared ``labels.txt`` / ``label_map.pbtxt`` that apps
    look for are written too, but never over another model's different names (a warning says so instead).
    """
    output_dir = Path(output_dir)
    names = [str(name) for name in class_names]
    unusable = [name for name in names if not name.strip() or any(c in name for c in "\n\r")]
    if unusable:  # labels.txt has one name per line
        raise ValueError(f"class names must be non-empty single lines; got {unusable}")
    labels = "".join(f"{name}\n" for name in names)
    items = "".join(
        f"item {{\n  id: {i}\n  name: '{_pbtxt_string(name)}'\n  display_name: '{_pbtxt_string(name)}'\n}}\n"
        for i, name in enumerate(names, start=1)
    )
    for name, text in (("labels.txt", labels), ("label_map.pbtxt", items)):
        if stem is not None:
            atomic_write(output_dir / f"{stem}.{name}", text)
        shared = output_dir / name
        if stem is not None and shared.is_file() and shared.read_text(encoding="utf-8", errors="replace") != text:
            logger.warning("%s belongs to another model with other classes: left as it is; this model's are in "
                           "%s.%s and inside the file", shared, stem, name)
            continue
        atomic_write(shared, text)


def with_labels_metadata(flatbuffer: bytes, class_names: Iterable[str]) -> bytes:
    """The TFLite ``flatbuffer`` with the class names in its metadata (:data:`LABELS_METADATA`), so the file
    carries them wherever it is copied."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer("".join(f"{name}\n" for name in class_names).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = LABELS_METADATA
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (LABELS_METADATA, LABELS_METADATA.encode())]
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def labels_from_metadata(flatbuffer: bytes) -> list[str] | None:
    """The class names :func:`with_labels_metadata` stored in a TFLite file, if it has them."""
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(flatbuffer, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() in (LABELS_METADATA.encode(), LABELS_METADATA):
                data = model.Buffers(entry.Buffer()).DataAsNumpy()
                return [line for line in bytes(data).decode("utf-8").splitlines() if line]
    except Exception:  # not a TFLite flatbuffer (or a damaged one): no names inside; loading it will say why  # noqa: BLE001
        return None
    return None


def _pbtxt_string(text: str) -> str:
    """``text`` inside a single-quoted protobuf text-format string: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')


def class_names_for(path: str | Path) -> list[str] | None:
    """A model file's class names from inside or beside it: the names inside a ``.tflite`` file (they travel with
    it), its own ``<stem>.labels.txt`` (written by ``export.py``), the ``labels.txt`` in a SavedModel directory,
    or last the folder's shared ``labels.txt``."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "labels.txt"]
    else:
        candidates = [path.with_name(f"{path.stem}.labels.txt")]
        if path.suffix.lower() == ".tflite" and path.is_file():
            inside = labels_from_metadata(path.read_bytes())
            if inside:
                return inside
        candidates.append(path.parent / "labels.txt")
    for labels in candidates:
        if labels.is_file():
            return read_labels(labels)
    return None
