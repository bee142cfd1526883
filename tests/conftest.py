"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.voc_files import write_voc_xml


@pytest.fixture
def bccd_root() -> Path:
    """The BCCD VOC directory (``../shared/data/bccd/BCCD`` or ``$CENTERNET_BCCD_DIR``); skips when absent."""
    base = os.environ.get("CENTERNET_BCCD_DIR")
    root = Path(base) if base else Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd"
    if (root / "BCCD" / "Annotations").is_dir():
        root = root / "BCCD"
    if not (root / "Annotations").is_dir():
        pytest.skip(f"BCCD dataset not found at {root} (set CENTERNET_BCCD_DIR to run this test)")
    return root


@pytest.fixture(scope="module")
def aquarium_root() -> Path:
    """The Aquarium YOLO dataset (``../shared/data/aquarium`` or ``$CENTERNET_AQUARIUM_DIR``); skips when absent."""
    base = os.environ.get("CENTERNET_AQUARIUM_DIR")
    root = Path(base) if base else Path(__file__).resolve().parents[2] / "shared" / "data" / "aquarium"
    if not (root / "train" / "images").is_dir():
        pytest.skip(f"Aquarium dataset not found at {root} (set CENTERNET_AQUARIUM_DIR to run this test)")
    return root


@pytest.fixture
def large_box_voc() -> Callable[..., None]:
    """Writes a tiny VOC set of large objects: ``large_box_voc(root, count=6)``."""
    return _write_large_box_voc


def _write_large_box_voc(root: Path, count: int = 6) -> None:
    """``count`` photos of one bright 80 x 60 rectangle each (the large-object case), VOC layout, train/val split."""
    rng = np.random.default_rng(0)
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for i in range(count):
        pixels = rng.integers(0, 80, (96, 128, 3), dtype=np.uint8)
        x1, y1 = int(rng.integers(4, 40)), int(rng.integers(4, 30))
        pixels[y1:y1 + 60, x1:x1 + 80] = 230
        Image.fromarray(pixels).save(root / "JPEGImages" / f"p{i}.jpg")
        write_voc_xml(root / "Annotations" / f"p{i}.xml", [("box", (x1, y1, x1 + 80, y1 + 60), 0)], size=(128, 96))
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(f"p{i}" for i in range(count - 2)) + "\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text(f"p{count - 2}\np{count - 1}\n")


TINY_HOURGLASS = "hourglass_tiny_test"


def _tiny_hourglass(image: Any, weights: str | None) -> dict:
    """The Hourglass-104 code path (two stacks, inter-stack merge, nested levels) at a test-sized width."""
    from centernet_tf.model.backbones.hourglass import hourglass_pyramid

    return hourglass_pyramid(image, weights, dims=(32, 32, 48), modules=(1, 1, 2))


@pytest.fixture
def tiny_hourglass(monkeypatch: pytest.MonkeyPatch) -> str:
    """Registers the backbone ``hourglass_tiny_test`` for one test: the registry is the library's own, so the
    entry is put in through monkeypatch, which takes it out again after the test."""
    from centernet_tf.model.backbones import register_backbone
    from centernet_tf.model.backbones.registry import _REGISTRY

    monkeypatch.setitem(_REGISTRY, TINY_HOURGLASS, None)  # a placeholder monkeypatch will remove
    register_backbone(TINY_HOURGLASS, size_multiple=16)(_tiny_hourglass)
    return TINY_HOURGLASS
