"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
