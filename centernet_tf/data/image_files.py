"""Which image files the pipeline can read, found the same way by every source.

The load check must accept exactly what ``tf.io.decode_image`` decodes: a file Pillow opens but TensorFlow
cannot (a TIFF saved as ``.jpg``) would pass the check and then be dropped mid-pipeline, its ground truth
still counted. Files of formats TensorFlow does not decode are counted by name instead of ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Suffixes a folder-based source reads (compared case-insensitively): what ``tf.io.decode_image`` decodes.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
#: Image files TensorFlow cannot decode: counted as skipped (convert them to JPEG or PNG), never silently left out.
UNSUPPORTED_SUFFIXES = (".tif", ".tiff", ".heic", ".heif", ".avif", ".jp2", ".jxl", ".ppm", ".pgm", ".pbm")
#: Pillow's names of the formats ``tf.io.decode_image`` decodes (MPO: a camera's multi-picture JPEG).
DECODABLE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP"})
UNSUPPORTED_FORMAT = "image in a format TensorFlow cannot decode"


def image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """``(images, unsupported)`` under ``folder``, recursively and through symlinked folders (each real folder
    once, so a link loop ends); hidden files and folders (macOS ``._x.jpg``, ``.ipynb_checkpoints``) are not
    data, and Ultralytics' glob skips them too."""
    images: list[Path] = []
    unsupported: list[Path] = []
    seen: set[str] = set()
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            path = Path(directory) / name
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES and path.is_file():
                images.append(path)
            elif suffix in UNSUPPORTED_SUFFIXES:
                unsupported.append(path)
    return images, unsupported


def jpeg_ends_cleanly(path: Path) -> bool:
    """Whether a JPEG file ends with its end-of-image marker: a truncated download does not. (A file with data
    after the marker, as some phones append, fails this too: the caller then decodes it to be sure.)"""
    try:
        with open(path, "rb") as file:
            file.seek(-2, os.SEEK_END)
            return file.read(2) == b"\xff\xd9"
    except OSError:
        return False
