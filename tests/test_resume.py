"""A training run killed with SIGKILL and started again with the same command continues where it stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.config import load_config
from centernet_tf.train.phases import training_phases
from centernet_tf.train.schedules import learning_rate_schedule

REPO = Path(__file__).resolve().parents[1]
EPOCHS, STEPS = 6, 3


def _command(work: Path, freeze_backbone_epochs: int = 0) -> list[str]:
    overrides = [f"train.freeze_backbone_epochs={freeze_backbone_epochs}",
        "model.backbone=resnet10_slim", "model.input_size=[64,64]", "data.shapes_num_train=16",
        "data.shapes_num_val=4", "data.shapes_image_size=[64,64]", f"data.shapes_dir={work / 'shapes'}",
        f"train.epochs={EPOCHS}", f"train.steps_per_epoch={STEPS}", "train.batch_size=2",
        "train.warmup_steps=2", "train.jit_compile=false",
    ]
    args = [sys.executable, str(REPO / "train.py"), "--run-dir", str(work / "run")]
    for override in overrides:
        args += ["--set", override]
    return args


def _learning_rates(log_dir: Path) -> dict[int, float]:
    rates = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "epoch_learning_rate":
                    rates[int(event.step)] = float(tf.make_ndarray(value.tensor))
    return rates


@pytest.mark.parametrize("freeze", [0, 2], ids=["one_phase", "killed_while_fine_tuning"])
def test_sigkill_then_same_command_resumes_epoch_and_learning_rate(tmp_path: Path, freeze: int) -> None:
    """With ``freeze`` > 0 the kill lands in the fine-tuning phase, after the frozen-backbone phase finished."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = _command(tmp_path, freeze)
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"  # the last phase's backup
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= freeze + 2:
            break
        time.sleep(0.1)
    assert first.poll() is None, "the first run ended before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "metrics.json").exists()
    stopped_at = json.loads(metadata.read_text())["epoch"]
    assert freeze + 2 <= stopped_at < EPOCHS

    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    epochs_run = [int(n) for n in re.findall(rf"Epoch (\d+)/{EPOCHS}", second.stdout + second.stderr)]
    # Keras numbers epochs from 1: the resumed run starts right after the last completed one.
    assert epochs_run == list(range(stopped_at + 1, EPOCHS + 1))
    assert "Resuming from the backup" in second.stderr
    assert (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "backup").exists()
    assert not list((tmp_path / "run").glob("*.weights.h5")), "finished-phase weights are removed on success"
    if freeze:
        assert "Phase frozen_backbone already finished" in second.stderr

    # The learning rate of every epoch, across both runs, follows one schedule over the optimizer's step count:
    # a resume that lost the optimizer state would restart the warm-up.
    overrides = [a for a in command if "=" in a and not a.startswith("--")]
    config = load_config(REPO / "configs" / "shapes.yaml", overrides)
    expected = []
    for phase in training_phases(config.train):
        schedule = learning_rate_schedule(
            config.train, STEPS, phase.first_epoch, phase.last_epoch, phase.peak_learning_rate
        )
        # Each phase's optimizer counts its own steps from 0.
        expected += [float(schedule((epoch + 1 - phase.first_epoch) * STEPS))
                     for epoch in range(phase.first_epoch, phase.last_epoch)]
    rates = _learning_rates(tmp_path / "run" / "logs" / "train")
    assert sorted(rates) == list(range(EPOCHS))
    np.testing.assert_allclose([rates[e] for e in range(EPOCHS)], expected, rtol=1e-5)
    assert rates[stopped_at] != pytest.approx(expected[freeze])  # not restarted at the phase's first epoch
