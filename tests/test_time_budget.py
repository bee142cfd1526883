"""``train.time_budget_minutes``: epochs planned from the measured step time, planned again after each epoch
from the epochs' own time, kept with the time spent when a run resumes."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

import keras
from keras import ops

from centernet_tf.config import ConfigError, TrainConfig, load_config
from centernet_tf.train.schedules import learning_rate_schedule
from centernet_tf.train.time_budget import BUDGET_FILE, BudgetPlanner, epochs_for_budget, plan_last_epoch
from centernet_tf.train.training import run_training


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


def test_plan_last_epoch_by_hand() -> None:
    assert plan_last_epoch(10, 600.0, 100.0) == 16  # six more 100-s epochs fit in 600 s
    assert plan_last_epoch(10, 599.0, 100.0) == 15  # whole epochs only
    assert plan_last_epoch(10, -5.0, 100.0) == 10  # the budget is spent: stop now


class _Clock:
    """A clock that moves only when told: the planner's epoch times are then exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _planner(tmp_path: Path, epoch_seconds: float, epochs: int) -> tuple[BudgetPlanner, list[int], _Clock]:
    """A 10-minute budget planned at 5 s x 10 steps = 50 s per epoch (12 epochs); every epoch then takes
    ``epoch_seconds``. Returns the planner, the epochs it let train and its clock."""
    (tmp_path / BUDGET_FILE).write_text(json.dumps({
        "budget_minutes": 10, "step_seconds": 5.0, "steps_per_epoch": 10, "epochs": 12, "elapsed_seconds": 0.0,
    }))
    schedule = learning_rate_schedule(TrainConfig(epochs=12, warmup_steps=4, lr_schedule="cosine"), 10)
    progbar = keras.callbacks.ProgbarLogger()
    clock = _Clock()
    planner = BudgetPlanner(tmp_path, 0, True, max_epoch=36, schedule=schedule, progbar=progbar, clock=clock)
    model = types.SimpleNamespace(stop_training=False)
    planner.set_model(model)
    params = {"epochs": 36, "steps": 10, "verbose": 0}
    planner.set_params(params)
    progbar.set_params(params)
    planner.on_train_begin()
    trained = []
    for epoch in range(epochs):
        clock.now += epoch_seconds
        planner.on_epoch_end(epoch)
        trained.append(epoch)
        if model.stop_training:
            break
    return planner, trained, clock


def test_a_machine_slower_than_planned_trains_fewer_epochs_and_ends_on_time(tmp_path: Path) -> None:
    # Epochs take 75 s, not 50. The first (it traces the step) sets no pace; after the second, 450 s are left
    # -> 6 more at 75 s -> 8 epochs, ending at 600 s.
    planner, trained, _ = _planner(tmp_path, 75.0, 36)
    assert trained == list(range(8))
    saved = json.loads((tmp_path / BUDGET_FILE).read_text())
    assert saved["epochs"] == saved["epochs_done"] == 8 and saved["elapsed_seconds"] == 600.0
    # The cosine decay now ends at the new last step (8 x 10 steps, 4 of warm-up), the evaluation and the
    # progress bar know the new last epoch.
    assert float(ops.convert_to_numpy(planner.schedule.decay_steps)) == 76.0
    assert float(planner.schedule(80)) == pytest.approx(0.0, abs=1e-12)
    assert planner.params["epochs"] == 8 and planner.progbar.epochs == 8


def test_a_machine_faster_than_planned_trains_more_epochs_up_to_the_cap(tmp_path: Path) -> None:
    # 25-s epochs: 600 s hold 24 of them; the plan grows to 24 and the run stops there.
    _, trained, _ = _planner(tmp_path, 25.0, 36)
    assert len(trained) == 24
    # 10-s epochs would fit 60, more than the 36 ``fit`` was given: the plan stops at the cap.
    _, trained, _ = _planner(tmp_path, 10.0, 60)
    assert len(trained) == 36


def test_a_run_resumed_after_its_plan_was_done_trains_no_more_and_the_cap_stays(tmp_path: Path) -> None:
    from centernet_tf.train.time_budget import budget_planner

    plan = {"budget_minutes": 10, "step_seconds": 5.0, "steps_per_epoch": 10, "epochs": 12, "elapsed_seconds": 0.0}
    (tmp_path / BUDGET_FILE).write_text(json.dumps(plan))
    assert budget_planner(tmp_path, 2, 12, True, None)[1] == 2 + 3 * 10  # room to grow, fixed at the start
    assert budget_planner(tmp_path, 2, 20, True, None)[1] == 32  # a resume with a re-planned plan: same cap
    assert budget_planner(tmp_path, 0, 2, False, None)[1] == 2  # the frozen phase is not stretched
    (tmp_path / BUDGET_FILE).write_text(json.dumps({**plan, "epochs_done": 12}))
    assert budget_planner(tmp_path, 2, 12, True, None)[1] == 12  # killed after its last epoch: nothing to train


def test_a_run_with_a_budget_stops_at_its_plan_and_resumes_with_the_time_spent(tmp_path: Path) -> None:
    config = load_config(None, [
        "model.backbone=resnet10_slim", "model.input_size=[64,64]", "data.shapes_num_train=16",
        "data.shapes_num_val=4", "data.shapes_image_size=[64,64]", f"data.shapes_dir={tmp_path / 'shapes'}",
        "train.batch_size=4", "train.warmup_steps=1", "train.jit_compile=false", "train.epochs=50",
        "train.time_budget_minutes=0.02",
    ])
    metrics = run_training(config, tmp_path / "run", verbose=0)
    choice = json.loads((tmp_path / "run" / BUDGET_FILE).read_text())
    assert choice["steps_per_epoch"] == 4 and choice["step_seconds"] > 0
    rows = (tmp_path / "run" / "results.csv").read_text().strip().splitlines()
    # 1.2 s is spent by the step timing alone, so the planner ends the run after its first epoch, not at
    # the 3 x 1 epochs ``fit`` was given; the evaluation knew it was the last.
    assert len(rows) - 1 == choice["epochs"] == metrics["epochs"] == 1
    assert choice["elapsed_seconds"] > 1.2 and [c["epoch"] for c in metrics["eval_curve"]] == [1]
    assert metrics["train_seconds"] > 0
    # A run that resumes finds the plan and the time it had spent, and goes on from both instead of timing again.
    resumed = tmp_path / "resumed"
    (resumed / "backup").mkdir(parents=True)  # what a killed run leaves: its config, its backup, its plan
    (resumed / "config.yaml").write_text((tmp_path / "run" / "config.yaml").read_text())
    (resumed / BUDGET_FILE).write_text(json.dumps({**choice, "epochs": 3, "elapsed_seconds": 0.0}))
    run_training(config, resumed, verbose=0)
    after = json.loads((resumed / BUDGET_FILE).read_text())
    assert after["step_seconds"] == choice["step_seconds"]  # not timed again
    assert len((resumed / "results.csv").read_text().strip().splitlines()) - 1 == after["epochs"] <= 3
