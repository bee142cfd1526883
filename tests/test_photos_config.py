"""``configs/photos.yaml`` with only its data section changed trains end to end on a VOC folder made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from centernet_tf.config import load_config
from centernet_tf.model.centernet import load_centernet
from centernet_tf.train.training import run_training

REPO = Path(__file__).resolve().parents[1]


def _voc_set(root: Path, count: int = 6) -> None:
    """``count`` photos of one large bright square each (the large-object case), VOC layout, train/val split."""
    rng = np.random.default_rng(0)
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for i in range(count):
        pixels = rng.integers(0, 80, (96, 128, 3), dtype=np.uint8)
        x1, y1 = int(rng.integers(4, 40)), int(rng.integers(4, 30))
        pixels[y1:y1 + 60, x1:x1 + 80] = 230
        Image.fromarray(pixels).save(root / "JPEGImages" / f"p{i}.jpg")
        (root / "Annotations" / f"p{i}.xml").write_text(
            f"<annotation><size><width>128</width><height>96</height><depth>3</depth></size><object>"
            f"<name>box</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x1 + 80}</xmax><ymax>{y1 + 60}</ymax></bndbox></object></annotation>"
        )
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(f"p{i}" for i in range(count - 2)) + "\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text(f"p{count - 2}\np{count - 1}\n")


def test_photos_config_trains_with_its_recipe_on_a_new_voc_set(tmp_path: Path) -> None:
    _voc_set(tmp_path / "photos")
    # The data section as a user edits it; the model is shrunk only so the test runs in seconds.
    config = load_config(REPO / "configs" / "photos.yaml", [
        f"data.root={tmp_path / 'photos'}", "model.backbone=resnet10_slim", "model.backbone_weights=null",
        "model.input_size=[64,64]", "train.batch_size=2", "train.freeze_backbone_epochs=0",
        "train.time_budget_minutes=0.03", "train.warmup_steps=1",
    ])
    metrics = run_training(config, tmp_path / "run", verbose=0)
    budget = json.loads((tmp_path / "run" / "time_budget.json").read_text())
    assert metrics["eval_curve"] and budget["epochs"] >= 1
    model = load_centernet(tmp_path / "run" / "model.keras")
    assert model.class_names == ["box"] and model.decoder.nms
    assert model.centernet_loss.box == config.loss.box
    assert np.isfinite(metrics["final_losses"]["loss"])
