"""tf.distribute: two replicas train as one device does on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _step(mode: str, tmp_path: Path) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    output = tmp_path / f"{mode}.npz"
    done = subprocess.run([sys.executable, str(REPO / "tests" / "distributed_step.py"), mode, str(output)],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    arrays = np.load(output)
    values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    half = len(values) // 2
    return json.loads(done.stdout.strip().splitlines()[-1]), values[:half], values[half:]


def _relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max() / (np.abs(x).max() + 1e-12)) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    return _step("single", tmp_path_factory.mktemp("single"))


def test_mirrored_over_two_replicas_equals_one_device_on_the_same_global_batch(single, tmp_path: Path) -> None:
    """Images with 3, 0, 1 and 5 objects: replica 1 sees 3 of the 9, replica 2 sees 6. Losses normalised per
    replica, or BatchNorm statistics of half batches, would not give the one-device step."""
    metrics, weights, initial = _step("mirrored", tmp_path)
    one_metrics, one_weights, one_initial = single
    assert metrics.pop("replicas") == 2 and one_metrics.pop("replicas") == 1
    assert _relative_difference(initial, one_initial) == 0.0  # the same start
    for key, value in one_metrics.items():
        assert value == pytest.approx(metrics[key], rel=1e-5), key
    assert _relative_difference(weights, one_weights) < 1e-5
    assert _relative_difference(one_weights, one_initial) > 1e-3  # the step moved the weights


def test_the_control_with_per_replica_batch_norm_differs(single, tmp_path: Path) -> None:
    """The comparison above can fail: BatchNorm on each replica's half batch gives another step."""
    _, weights, _ = _step("mirrored_local_bn", tmp_path)
    assert _relative_difference(weights, single[1]) > 1e-4
