"""How an image file is checked before training: the ``data.image_check`` settings and the probe itself.

The settings are an object passed to every reader (not module state a loader rewrites), so two splits or two
datasets loaded with different checks in one process do not see each other's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from centernet_tf.data.image_files import DECODABLE_FORMATS, UNSUPPORTED_FORMAT, jpeg_ends_cleanly

#: ``data.image_check``: ``decode``: header, checksum and a 1/8-scale decode (catches truncated files);
#: ``header``: no decode (a JPEG without its end marker is still decoded); ``annotation_sizes``: trust the sizes
#: a COCO / VOC annotation gives (only that the file exists; no EXIF orientation), probing only images without one.
IMAGE_CHECKS = ("decode", "header", "annotation_sizes")
#: Larger images are skipped as "image too large": twice Pillow's own decompression-bomb limit, which Pillow
#: reports as an error the loader would otherwise count as a corrupt file. ``data.max_image_pixels`` raises it.
MAX_IMAGE_PIXELS = 2 * 89_478_485


@dataclass(frozen=True)
class ImageCheck:
    """``data.image_check``, ``data.check_workers`` (threads; None: one per CPU) and ``data.max_image_pixels``."""

    mode: str = "decode"
    workers: int | None = None
    max_pixels: int = MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        if self.mode not in IMAGE_CHECKS:
            raise ValueError(f"data.image_check must be one of {', '.join(IMAGE_CHECKS)}, got {self.mode!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"data.check_workers must be at least 1 (or null), got {self.workers}")
        if self.max_pixels < 1:
            raise ValueError(f"data.max_image_pixels must be at least 1, got {self.max_pixels}")

    @property
    def decodes(self) -> bool:
        """Whether every image is decoded (at 1/8 scale) while loading."""
        return self.mode == "decode"


@dataclass(frozen=True)
class Problem:
    """Why an image file is unusable: a :class:`~centernet_tf.data.index.SkipReport` reason and detail."""

    reason: str
    detail: str


@contextlib.contextmanager
def pixel_limit(limit: int | None):  # noqa: ANN202 - a context manager
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


def probe_image(path: Path, detail: str, check_pixels: bool, max_pixels: int = MAX_IMAGE_PIXELS
                ) -> tuple[int, int, int] | Problem:
    """Return the stored (width, height) of an image file and its EXIF orientation, or why it is unusable.

    ``verify()`` only checks headers (and PNG checksums); with ``check_pixels`` the file
    is also decoded - JPEGs at 1/8 scale, which is cheap - so truncated files are caught
    here rather than by the decoder in the middle of training.
    """
    if not path.is_file():
        return Problem("missing image", detail)
    try:
        with Image.open(path) as im:  # Pillow's limit is lifted by the caller: ours is below, with a message
            size, image_format = im.size, im.format
        if image_format not in DECODABLE_FORMATS:  # Pillow reads it, the training pipeline would not
            return Problem(UNSUPPORTED_FORMAT, f"{detail} ({image_format}; convert it to JPEG or PNG)")
        if not check_pixels and image_format in ("JPEG", "MPO") and not jpeg_ends_cleanly(path):
            check_pixels = True  # no end marker: truncated, or data appended after it; the decode tells which
        if size[0] * size[1] > max_pixels:
            return Problem(
                "image too large",
                f"{detail} ({size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.0f} MP > {max_pixels / 1e6:.0f} MP: "
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
        return Problem("corrupt image", detail)
    if size[0] <= 0 or size[1] <= 0:
        return Problem("corrupt image", detail)
    return int(size[0]), int(size[1]), orientation

