"""Errors of the command-line scripts say what is wrong in one line (a traceback only with --debug)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from centernet_tf.model import build_centernet, load_centernet

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _one_line_error(done: subprocess.CompletedProcess, script: str, message: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"{script}: error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "a.jpg"
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(path)
    return path


def test_a_model_path_that_does_not_exist(tmp_path: Path, image: Path) -> None:
    missing = tmp_path / "nowhere" / "model.keras"
    _one_line_error(_run("predict.py", "--model", str(missing), "--input", str(image), cwd=tmp_path),
                    "predict.py", f"model not found: {missing}")
    _one_line_error(_run("evaluate.py", "--model", str(missing), cwd=tmp_path), "evaluate.py",
                    f"model not found: {missing}")


def test_a_truncated_or_foreign_keras_file_and_debug_shows_the_traceback(tmp_path: Path, image: Path) -> None:
    model = build_centernet(2, "resnet10_slim", (64, 64, 3), class_names=["a", "b"])
    good = tmp_path / "good.keras"
    model.save(good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "weights.keras"
    foreign.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an h5 file renamed
    for path in (truncated, foreign):
        done = _run("predict.py", "--model", str(path), "--input", str(image), cwd=tmp_path)
        _one_line_error(done, "predict.py", f"{path}: not a valid .keras file")
    with pytest.raises(ValueError, match="not a valid .keras file"):
        load_centernet(truncated)
    debug = _run("predict.py", "--model", str(truncated), "--input", str(image), "--debug", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "not a valid .keras file" in debug.stderr


def test_evaluating_a_model_on_data_of_other_classes_names_both_lists(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(root / "JPEGImages" / "a.jpg")
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><size><width>60</width><height>40</height></size><object><name>cell</name><bndbox>"
        "<xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": {"backbone": "resnet10_slim", "input_size": [64, 64]},
                                      "data": {"format": "voc", "root": str(root), "train_split": None,
                                               "val_split": None}}))
    model = build_centernet(2, "resnet10_slim", (64, 64, 3), class_names=["circle", "square"])
    model.save(tmp_path / "model.keras")
    done = _run("evaluate.py", "--model", str(tmp_path / "model.keras"), "--config", str(config), cwd=tmp_path)
    _one_line_error(done, "evaluate.py", "every box is of a class outside the class list ['circle', 'square']: "
                    "found ['cell']")


@pytest.mark.parametrize("command", ["centernet-train", "centernet-evaluate", "centernet-export", "centernet-predict"])
def test_console_commands_are_installed_and_run_from_any_directory(tmp_path: Path, command: str) -> None:
    executable = Path(sys.executable).parent / command
    if not executable.exists():
        pytest.skip(f"{command} is not installed in this environment (pip install -e . installs it)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(executable), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {command}") and "--debug" in done.stdout


def test_the_default_config_is_the_shapes_one() -> None:
    from centernet_tf.commands.train import default_config

    assert default_config() == REPO / "configs" / "shapes.yaml"
