"""Training that diverges stops with a clear message, saves no model from the diverged weights, hides nothing in
metrics.json and exits non-zero; a learning rate that cannot work is a config error."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from centernet_tf.config import ConfigError, load_config
from centernet_tf.train.callbacks import DivergenceGuard, TrainingDiverged, finite_weights

REPO = Path(__file__).resolve().parents[1]


def _tiny_overrides(work: Path, learning_rate: float, freeze: int = 0) -> list[str]:
    return [
        "model.backbone=resnet10_slim", "model.input_size=[64,64]", "data.shapes_num_train=16",
        "data.shapes_num_val=4", "data.shapes_image_size=[64,64]", f"data.shapes_dir={work / 'shapes'}",
        "train.epochs=3", "train.steps_per_epoch=3", "train.batch_size=4", "train.warmup_steps=0",
        "train.jit_compile=false", f"train.learning_rate={learning_rate}", "eval.every_n_epochs=1",
        f"train.freeze_backbone_epochs={freeze}",
    ]


def test_guard_raises_at_the_first_non_finite_loss_and_warns_once_on_an_explosion(caplog) -> None:
    guard = DivergenceGuard()
    guard.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    guard.on_epoch_begin(0)
    guard.on_train_batch_end(0, {"loss": 12.0})
    with caplog.at_level(logging.WARNING):
        guard.on_train_batch_end(1, {"loss": 1.4e7})  # lr 1e3 did this with no word
        guard.on_train_batch_end(2, {"loss": 1.5e7})
    assert [r.message for r in caplog.records].count(
        "The training loss rose from 12 to 1.4e+07 (epoch 1, step 2): training is diverging; lower "
        "train.learning_rate.") == 1
    with pytest.raises(TrainingDiverged, match=r"the training loss became nan at epoch 1, step 4: training stopped"):
        guard.on_train_batch_end(3, {"loss": float("nan")})
    with pytest.raises(TrainingDiverged, match="became inf"):
        guard.on_train_batch_end(4, {"loss": float("inf")})


def test_non_finite_weights_are_detected() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert finite_weights(model)
    kernel, bias = model.get_weights()
    model.set_weights([kernel, np.array([math.nan], np.float32)])
    assert not finite_weights(model)


@pytest.mark.parametrize("freeze", [0, 1], ids=["one_phase", "frozen_then_fine_tuning"])
def test_a_diverging_run_exits_non_zero_and_saves_no_model(tmp_path: Path, freeze: int) -> None:
    args = [sys.executable, str(REPO / "train.py"), "--run-dir", str(tmp_path / "run")]
    for override in _tiny_overrides(tmp_path, 1e12, freeze):
        args += ["--set", override]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Training diverged: the training loss became nan" in done.stderr or "became inf" in done.stderr
    run = tmp_path / "run"
    assert not (run / "model.keras").exists() and not (run / "best_model.keras").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "training loss became" in metrics["diverged"]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("key, value", [("learning_rate", 0), ("learning_rate", -1e-3),
                                        ("fine_tune_learning_rate", 0.0), ("base_learning_rate", -1.0)])
def test_a_learning_rate_that_cannot_work_is_a_config_error(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"train.{key} must be in \(0, inf\]"):
        load_config(None, [f"train.{key}={value}"])


def test_every_fit_runs_the_guard_before_the_callbacks_that_save(tmp_path: Path) -> None:
    """Each phase's fit, and a resumed one, gets its callbacks from training_callbacks: the guard comes first,
    so it raises before the evaluation (best model) and the backup see a diverged epoch."""
    from centernet_tf.train.phases import training_callbacks

    config = load_config(None, ["train.resume=true"])
    callbacks = training_callbacks(config, tmp_path, None, keras.callbacks.Callback(), tmp_path / "backup")
    kinds = [type(c).__name__ for c in callbacks]
    assert kinds[0] == "DivergenceGuard" and "BackupAndRestore" in kinds


def test_metrics_keep_non_finite_losses_visible() -> None:
    """metrics.json never drops a NaN loss: JSON has no NaN, so it is written as a string."""
    from centernet_tf.train.training import _final_losses

    history = keras.callbacks.History()
    history.history = {"loss": [3.0, float("nan")], "wh_loss": [1.0, float("inf")], "offset_loss": [0.5, 0.25]}
    assert _final_losses(history) == {"loss": "nan", "wh_loss": "inf", "offset_loss": 0.25}
    assert json.loads(json.dumps(_final_losses(history)))["loss"] == "nan"
