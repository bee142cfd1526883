"""``train.time_budget_minutes``: epochs from the measured step time, kept when a run resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from centernet_tf.config import ConfigError, load_config
from centernet_tf.time_budget import BUDGET_FILE, epochs_for_budget
from centernet_tf.training import run_training


def test_epochs_for_budget_by_hand() -> None:
    # 60 min = 3600 s; 1.5 s x 20 steps = 30 s per epoch -> 120 epochs.
    assert epochs_for_budget(60, 1.5, 20) == 120
    assert epochs_for_budget(60, 1.7, 20) == 105  # 3600 / 34 = 105.9: whole epochs only
    assert epochs_for_budget(0.01, 2.0, 50, min_epochs=3) == 3  # never fewer than the phases need


def test_budget_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"time_budget_minutes must be in \(0, inf\], got 0"):
        load_config(None, ["train.time_budget_minutes=0"])
    # With a budget, train.epochs does not have to exceed the frozen epochs: the budget sets it.
    assert load_config(None, ["train.time_budget_minutes=5", "train.freeze_backbone_epochs=12"])


def test_a_run_with_a_budget_schedules_the_epochs_that_fit_and_keeps_them_on_resume(tmp_path: Path) -> None:
    config = load_config(None, [
        "model.backbone=resnet10_slim", "model.input_size=[64,64]", "data.shapes_num_train=16",
        "data.shapes_num_val=4", "data.shapes_image_size=[64,64]", f"data.shapes_dir={tmp_path / 'shapes'}",
        "train.batch_size=4", "train.warmup_steps=1", "train.jit_compile=false", "train.epochs=50",
        "train.time_budget_minutes=0.02",
    ])
    metrics = run_training(config, tmp_path / "run", verbose=0)
    choice = json.loads((tmp_path / "run" / BUDGET_FILE).read_text())
    assert choice["steps_per_epoch"] == 4 and choice["step_seconds"] > 0
    assert choice["epochs"] == epochs_for_budget(0.02, choice["step_seconds"], 4)
    rows = (tmp_path / "run" / "results.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == choice["epochs"] != 50
    assert metrics["train_seconds"] > 0
    # A run that resumes finds the choice it started with and keeps it instead of timing again.
    resumed = tmp_path / "resumed"
    (resumed / "backup").mkdir(parents=True)  # what a killed run leaves: its config, its backup, its choice
    (resumed / "config.yaml").write_text((tmp_path / "run" / "config.yaml").read_text())
    (resumed / BUDGET_FILE).write_text(json.dumps({**choice, "epochs": 2}))
    run_training(config, resumed, verbose=0)
    assert len((resumed / "results.csv").read_text().strip().splitlines()) - 1 == 2


def test_a_run_slower_than_planned_is_reported_once(caplog) -> None:
    """Planned 2 s x 10 steps = 20 s per epoch: 22 s is within the tolerance, 30 s is 50% slower, said once."""
    import logging

    from centernet_tf.time_budget import BudgetWatch

    watch = BudgetWatch(planned_step_seconds=2.0, steps_per_epoch=10)
    with caplog.at_level(logging.WARNING):
        assert not watch.check(22.0)
        assert watch.check(30.0) and watch.check(31.0)
    assert caplog.text.count("Training runs 50% slower than the step time measured at the start (30 s per epoch "
                             "instead of 20)") == 1
