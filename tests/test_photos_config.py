"""``configs/photos.yaml`` with only its data section changed trains end to end on a VOC folder made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from centernet_tf.config import load_config
from centernet_tf.model.centernet import load_centernet
from centernet_tf.train.training import run_training

REPO = Path(__file__).resolve().parents[1]


def test_photos_config_trains_with_its_recipe_on_a_new_voc_set(tmp_path: Path, large_box_voc) -> None:
    large_box_voc(tmp_path / "photos")
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
