"""A command's console: TensorFlow's C++ log lines are kept off it, everything of ours (warnings, counted
reports, errors, progress) passes, and --debug or CENTERNET_TF_NATIVE_LOG=1 brings the native lines back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from centernet_tf.native_log import is_native_log_line
from tests.test_unreadable_images import _voc

REPO = Path(__file__).resolve().parents[1]
NATIVE = re.compile(r"^[IWEF]\d{4} |^WARNING: All log messages before absl", re.MULTILINE)


def test_native_lines_are_told_from_ours() -> None:
    assert is_native_log_line(b"I0000 00:00:1796036726.657146   16063 port.cc:153] oneDNN custom operations are on.")
    assert is_native_log_line(b"E0000 00:00:1796036730.402430   16063 cuda_platform.cc:52] failed call to cuInit")
    assert is_native_log_line(b"W1130 11:06:24.123456 140 ignore_errors_dataset_op.cc:125] Error raised")
    assert is_native_log_line(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_native_log_line(b"2026-11-30 11:05:30,385 WARNING centernet_tf.data.loaders: 3 images skipped")
    assert not is_native_log_line(b"train.py: error: data.root = '/x' does not exist")
    assert not is_native_log_line(b"I0000 is a file name someone chose")
    assert is_native_log_line(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert is_native_log_line(b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32")
    assert not is_native_log_line(b"INFO:root:a user's own logging.basicConfig line")


def test_the_filter_passes_our_lines_and_progress_redraws_in_order(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "os.environ['CENTERNET_TF_COMMAND'] = '1'\n"
        "import centernet_tf  # as a command: the filter starts before TensorFlow is imported\n"
        "os.write(2, b'I0000 00:00:1.5   7 port.cc:1] native\\nours 1\\n')\n"
        "sys.stderr.write('bar 1/2\\rbar 2/2\\r\\n'); sys.stderr.flush()\n"
        "os.write(2, b'E0000 00:00:2.5   7 cuda_platform.cc:52] failed call to cuInit\\nlast words')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr == b"ours 1\nbar 1/2\rbar 2/2\r\nlast words"


def test_train_py_prints_no_native_line_and_still_reports_a_dropped_image(tmp_path: Path) -> None:
    _voc(tmp_path / "voc", {f"{i}.jpg": "JPEG" for i in range(4)})
    (tmp_path / "voc" / "JPEGImages" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg \xff\xd9")
    command = [sys.executable, str(REPO / "train.py"), "--run-dir", str(tmp_path / "run")]
    for override in ["data.format=voc", f"data.root={tmp_path / 'voc'}", "data.image_check=annotation_sizes",
                     "data.class_names=[cat]", "data.train_split=null", "data.val_split=null",
                     "model.backbone=resnet10_slim", "model.input_size=[32,32]", "train.epochs=1",
                     "train.batch_size=1", "train.steps_per_epoch=5", "train.warmup_steps=1"]:
        command += ["--set", override]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CENTERNET_TF_NATIVE_LOG")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not NATIVE.search(done.stderr), NATIVE.findall(done.stderr)
    assert "1 of 4 training images could not be decoded and were left out of training" in done.stderr
    # The same start with the native log asked for: TensorFlow's lines are there (oneDNN's at least, on x86).
    shown = subprocess.run([sys.executable, "-c", "import os; os.environ['CENTERNET_TF_COMMAND'] = '1'; "
                            "import centernet_tf, tensorflow as tf; tf.constant(1) + 1"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={**env, "PYTHONPATH": str(REPO), "CENTERNET_TF_NATIVE_LOG": "1"})
    assert shown.returncode == 0 and NATIVE.search(shown.stderr), shown.stderr[-2000:]


def test_tensorflows_python_info_lines_only_with_debug(monkeypatch) -> None:
    """TensorFlow's Python INFO lines ("Assets written to ...", twice) are not for a user; its warnings are."""
    import logging

    from centernet_tf.cli import setup_logging

    tf_logger = logging.getLogger("tensorflow")
    monkeypatch.setattr(tf_logger, "level", logging.NOTSET)  # restored after the test
    monkeypatch.delenv("CENTERNET_TF_NATIVE_LOG", raising=False)
    monkeypatch.delenv("CENTERNET_DEBUG", raising=False)
    monkeypatch.setattr("sys.argv", ["export.py", "--model", "m.keras"])
    setup_logging()
    assert not tf_logger.isEnabledFor(logging.INFO) and tf_logger.isEnabledFor(logging.WARNING)
    tf_logger.setLevel(logging.NOTSET)
    monkeypatch.setattr("sys.argv", ["export.py", "--model", "m.keras", "--debug"])
    setup_logging()
    assert tf_logger.level == logging.NOTSET


def test_what_debug_and_the_log_variable_each_ask_for(monkeypatch) -> None:
    """``--debug`` / ``CENTERNET_DEBUG=1`` ask for tracebacks and every log line; ``CENTERNET_TF_NATIVE_LOG=1``
    for the log lines only (a user chasing a TensorFlow message still gets one-line errors)."""
    from centernet_tf.native_log import debug_requested, full_log_requested

    monkeypatch.delenv("CENTERNET_TF_NATIVE_LOG", raising=False)
    monkeypatch.delenv("CENTERNET_DEBUG", raising=False)
    quiet = ["train.py", "--config", "c.yaml"]
    assert (debug_requested(quiet), full_log_requested(quiet)) == (False, False)
    assert (debug_requested([*quiet, "--debug"]), full_log_requested([*quiet, "--debug"])) == (True, True)
    monkeypatch.setenv("CENTERNET_TF_NATIVE_LOG", "1")
    assert (debug_requested(quiet), full_log_requested(quiet)) == (False, True)
    monkeypatch.delenv("CENTERNET_TF_NATIVE_LOG")
    monkeypatch.setenv("CENTERNET_DEBUG", "1")
    assert (debug_requested(quiet), full_log_requested(quiet)) == (True, True)
