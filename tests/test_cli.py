"""End to end through the command-line scripts on a tiny shapes run, and the config files they read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import centernet_tf  # noqa: F401 - registers custom objects for load_model
from centernet_tf.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set", "model.backbone=resnet10_slim",
    "--set", "model.input_size=[64,96]",
    "--set", "data.shapes_num_train=24",
    "--set", "data.shapes_num_val=8",
    "--set", "data.shapes_image_size=[64,96]",
    "--set", "train.epochs=2",
    "--set", "train.steps_per_epoch=2",
    "--set", "train.batch_size=4",
    "--set", "train.warmup_steps=1",
    "--set", "eval.every_n_epochs=1",
]


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("cli")
    run_dir = work / "run"
    result = _run(
        "train.py", "--config", str(REPO / "configs" / "shapes.yaml"), *TINY,
        "--set", f"data.shapes_dir={work / 'shapes'}", "--run-dir", str(run_dir), cwd=work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_train_writes_model_metrics_and_tensorboard_logs(tiny_run) -> None:
    run_dir, result = tiny_run
    assert "mAP@0.5" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"mAP", "mAP50", "per_class_AP", "train_seconds"} <= set(metrics)
    assert set(metrics["per_class_AP"]) == {"circle", "square", "triangle"}
    assert set(metrics["final_losses"]) >= {"loss", "heatmap_loss", "wh_loss", "offset_loss"}
    assert all(np.isfinite(v) for v in metrics["final_losses"].values())
    events = list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    tags = {value.tag for f in events for event in tf.compat.v1.train.summary_iterator(str(f))
            for value in event.summary.value}
    assert {"epoch_loss", "epoch_heatmap_loss", "epoch_wh_loss", "epoch_offset_loss", "epoch_learning_rate"} <= tags
    val_events = list((run_dir / "logs" / "validation").glob("events.out.tfevents.*"))
    val_steps = {(value.tag, event.step) for f in val_events for event in tf.compat.v1.train.summary_iterator(str(f))
                 for value in event.summary.value}
    # COCO mAP after each of the 2 epochs (eval.every_n_epochs=1), and the best model kept by it.
    assert {("epoch_mAP", 0), ("epoch_mAP", 1), ("epoch_mAP50", 1)} <= val_steps
    best = json.loads((run_dir / "best_model.json").read_text())
    assert best["epoch"] in (1, 2) and 0.0 <= best["mAP"] <= 1.0
    assert keras.models.load_model(run_dir / "best_model.keras").input_shape == (None, 64, 96, 3)
    assert "val mAP" in result.stderr
    image_events = list((run_dir / "logs" / "images").glob("events.out.tfevents.*"))
    image_tags = {(value.tag, event.step) for f in image_events
                  for event in tf.compat.v1.train.summary_iterator(str(f)) for value in event.summary.value}
    # Ground truth | prediction and the heatmap overlay at each evaluation (after epochs 1 and 2).
    assert {("detections", 0), ("detections", 1), ("heatmap", 0), ("heatmap", 1)} <= image_tags
    assert "shapes train: 24 images kept" in result.stderr
    model = keras.models.load_model(run_dir / "model.keras")
    assert model.input_shape == (None, 64, 96, 3)
    for picture in ("precision_recall.png", "confusion_matrix.png", "label_statistics.png", "training_samples.png"):
        assert np.asarray(Image.open(run_dir / picture)).std() > 10
    final_images = {value.tag for f in image_events for event in tf.compat.v1.train.summary_iterator(str(f))
                    for value in event.summary.value}
    assert {"precision_recall", "confusion_matrix", "label_statistics", "training_samples"} <= final_images
    rows = (run_dir / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 3 and {"epoch", "loss", "heatmap_loss", "val_mAP", "val_mAP50"} <= set(header)
    assert [row.split(",")[header.index("epoch")] for row in rows[1:]] == ["0", "1"]


def test_evaluate_script_reproduces_the_training_metrics(tiny_run, tmp_path: Path) -> None:
    run_dir, _ = tiny_run
    out = tmp_path / "eval.json"
    result = _run("evaluate.py", "--model", str(run_dir / "model.keras"), "--output", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((run_dir / "metrics.json").read_text())
    evaluated = json.loads(out.read_text())
    for key in ("mAP", "mAP50", "num_detections"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-9), key


def test_export_int8_calibrates_on_the_runs_training_images(tiny_run, tmp_path: Path) -> None:
    from centernet_tf.deploy.inference import TFLiteDetector

    run_dir, _ = tiny_run
    out = tmp_path / "int8" / "model.tflite"
    result = _run("export.py", "--model", str(run_dir / "model.keras"), "--format", "tflite", "--quantize", "int8",
                  "--calibration-images", "8", "--output", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Calibrating int8 on 8 training images" in result.stderr
    detector = TFLiteDetector(out)
    tensors = {t["index"]: t["dtype"] for t in detector.interpreter.get_tensor_details()}
    convs = [op for op in detector.interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert sum(tensors[op["inputs"][0]] == np.int8 for op in convs) >= len(convs) - 3  # heads' outputs stay float
    assert (out.parent / "labels.txt").read_text() == (run_dir / "labels.txt").read_text()
    assert "id: 3" in (out.parent / "label_map.pbtxt").read_text()

    missing = _run("export.py", "--model", "nothing.keras", "--format", "tflite", cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.name and config.model.backbone in centernet_tf.available_backbones()


def test_overrides_are_typed_and_unknown_keys_rejected() -> None:
    config = load_config(REPO / "configs" / "shapes.yaml", ["train.epochs=3", "train.learning_rate=2e-4",
                                                             "model.backbone_weights=/tmp/w.h5"])
    assert config.train.epochs == 3 and config.train.learning_rate == pytest.approx(2e-4)
    assert config.model.backbone_weights == "/tmp/w.h5"
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="train.batch_size: expected int"):
        load_config(None, ["train.batch_size=big"])
    with pytest.raises(ConfigError, match="divisible by 32"):
        load_config(None, ["model.input_size=[100,100]"])
    with pytest.raises(ConfigError, match="data.format"):
        load_config(None, ["data.format=kitti"])


def test_bccd_config_reads_the_real_data_and_reports_both_zero_area_boxes(monkeypatch, caplog) -> None:
    from centernet_tf.data.loaders import load_split

    if not (REPO.parent / "shared" / "data" / "bccd" / "BCCD").is_dir():
        pytest.skip("BCCD data not found at ../shared/data/bccd")
    monkeypatch.chdir(REPO)  # the config's data.root is relative to the repository root
    config = load_config(REPO / "configs" / "bccd.yaml")
    with caplog.at_level("INFO"):
        train = load_split(config.data, "train")
        test = load_split(config.data, "val", class_names=train.class_names)
    assert (len(train.examples), len(test.examples)) == (292, 72)
    assert train.report.counts == {"zero-area box": 2}
    assert "BloodImage_00338" in caplog.text and "BloodImage_00343" in caplog.text
    assert train.class_names == ["Platelets", "RBC", "WBC"]
