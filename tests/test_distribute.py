"""tf.distribute: two replicas (two logical CPUs of one process, or two worker processes on localhost) train as
one device does on the same global batch; a multi-worker run resumes after a worker is killed."""

from __future__ import annotations

import json
import os
import socket
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


def _free_ports(count: int) -> str:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [str(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ",".join(ports)


def _workers(*args: str, cwd: Path, timeout: float = 150) -> list[subprocess.CompletedProcess]:
    """``tests/multi_worker.py`` as workers 0 and 1 of a fresh localhost cluster; their exits, 1 before 0."""
    ports = _free_ports(2)
    processes = [subprocess.Popen([sys.executable, str(REPO / "tests" / "multi_worker.py"), args[0], ports,
                                   str(index), *args[1:]], cwd=cwd, env={**ENV, "TMPDIR": str(cwd)}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for index in (1, 0)]
    done = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


def test_multi_worker_step_equals_one_device_on_the_same_global_batch(single, tmp_path: Path) -> None:
    """Two worker processes (TF_CONFIG, localhost ports), each feeding its half of the batch of 3, 0, 1 and 5
    objects through its own input pipeline: the loss terms and updated weights of one device."""
    output = tmp_path / "multi_worker.npz"
    worker, chief = _workers("step", str(output), cwd=tmp_path)
    assert chief.returncode == 0 and worker.returncode == 0, chief.stderr[-3000:] + worker.stderr[-3000:]
    metrics = json.loads(chief.stdout.strip().splitlines()[-1])
    arrays = np.load(output)
    values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    weights, initial = values[: len(values) // 2], values[len(values) // 2:]
    one_metrics, one_weights, one_initial = single
    assert metrics["replicas"] == 2
    assert _relative_difference(initial, one_initial) == 0.0
    for key, value in one_metrics.items():
        if key != "replicas":
            assert value == pytest.approx(metrics[key], rel=1e-5), key
    assert _relative_difference(weights, one_weights) < 1e-5


def test_multi_worker_training_resumes_after_a_worker_is_killed(tmp_path: Path) -> None:
    """``run_training`` (train.py's path) on two workers, 4 epochs; worker 1 dies as epoch 3 begins, which stops
    the chief too. Started again, both resume at epoch 3 from the chief's backup and finish in step (equal
    weights); only the chief wrote the run folder."""
    run_dir = tmp_path / "run"
    worker, chief = _workers("train", str(run_dir), "2", cwd=tmp_path)
    assert worker.returncode == 17, worker.stderr[-3000:]  # killed at epoch 3
    assert chief.returncode != 0  # its collective with the dead worker failed
    assert json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    assert not (run_dir / "model.keras").exists()

    worker, chief = _workers("train", str(run_dir), cwd=tmp_path)
    assert chief.returncode == 0 and worker.returncode == 0, chief.stderr[-3000:] + worker.stderr[-3000:]
    reports = [json.loads(p.stdout.strip().splitlines()[-1]) for p in (chief, worker)]
    assert [r["epochs"] for r in reports] == [[2, 3], [2, 3]]  # resumed, not restarted
    assert reports[0]["checksum"] == reports[1]["checksum"]
    lines = (run_dir / "results.csv").read_text().splitlines()[1:]
    assert [line.split(",")[0] for line in lines] == ["0", "1", "2", "3"]
    assert (run_dir / "model.keras").exists() and "mAP50" in json.loads((run_dir / "metrics.json").read_text())
    assert not (run_dir / "backup").exists()  # the chief's, deleted after the last epoch


@pytest.mark.parametrize("tf_config, message", [
    ("{not json", "TF_CONFIG must be JSON like"),
    ('{"cluster": {"worker": ["localhost:1"]}}', "TF_CONFIG must be JSON like"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 2}}', "task index 2 is not one"),
])
def test_a_wrong_tf_config_is_named_before_tensorflow_sees_it(monkeypatch, tf_config: str, message: str) -> None:
    from centernet_tf.train.distribute import strategy_for

    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        strategy_for("multi_worker")
