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

from centernet_tf.model.centernet import build_centernet, load_centernet
from tests.voc_files import write_voc_xml

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
    (root / "JPEGImages").mkdir(parents=True)
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(root / "JPEGImages" / "a.jpg")
    write_voc_xml(root / "Annotations" / "a.xml", [("cell", (1, 1, 20, 20))], size=(60, 40))
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


def _numeric_keys() -> list[str]:
    """Every int or float setting of the config (also inside lists and optionals), found from the dataclasses."""
    import dataclasses
    import typing

    from centernet_tf.config import Config

    def leaves(hint: object) -> set:
        args = typing.get_args(hint)
        return set().union(*(leaves(a) for a in args)) if args else {hint}

    return [f"{section}.{name}" for section, cls in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(cls)
            for name, hint in typing.get_type_hints(cls).items() if leaves(hint) & {int, float}]


def test_every_number_in_the_config_has_a_range() -> None:
    from centernet_tf.config_ranges import NUMBER_RANGES

    missing = [key for key in _numeric_keys() if key not in NUMBER_RANGES and key not in ("model.input_size",)]
    assert not missing, f"add a range to config_ranges.NUMBER_RANGES for {missing}"
    assert len(_numeric_keys()) >= 35


@pytest.mark.parametrize("override, message", [
    ("eval.max_detections=0", r"eval.max_detections must be in \[1, inf\], got 0"),
    ("eval.score_threshold=2", r"eval.score_threshold must be in \[0, 1\), got 2.0"),
    ("eval.nms_iou_threshold=0", r"eval.nms_iou_threshold must be in \(0, 1\]"),
    ("train.steps_per_epoch=-1", r"train.steps_per_epoch must be in \[1, inf\], got -1"),
    ("eval.batch_size=0", r"eval.batch_size must be in \[1, inf\], got 0"),
    ("model.head_conv=0", r"model.head_conv must be in \[1, inf\], got 0"),
    ("train.learning_rate=.nan", r"train.learning_rate must be in \(0, inf\], got nan"),
    ("eval.test_scales=[1.0,-0.5]", r"eval.test_scales must be in \(0, inf\], got \[1.0, -0.5\]"),
    ("data.colour_jitter=3", r"data.colour_jitter must be in \[0, 1\]"),
    ("train.lr_decay_factor=0", r"train.lr_decay_factor must be in \(0, 1\]"),
])
def test_a_setting_that_makes_a_run_useless_is_refused_naming_its_range(override: str, message: str) -> None:
    from centernet_tf.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
    load_config(None, ["eval.score_threshold=0.0", "eval.max_detections=1", "train.ema_momentum=null"])  # edges pass


@pytest.mark.parametrize("content, message", [
    (b"train:\n  epochs: [3\n", r"not valid YAML at line \d+, column \d+"),
    (b"train: !!python/object/apply:os.system ['echo hi']\n", r"could not determine a constructor.*line 1.*plain values only"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", r"not a text \(UTF-8\) YAML file"),
])
def test_a_malformed_binary_or_unsafe_config_is_one_line_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    done = _run("train.py", "--config", str(path), cwd=tmp_path)
    _one_line_error(done, "train.py", str(path))
    assert __import__("re").search(message, done.stderr), done.stderr


def test_a_batch_larger_than_the_training_set_and_undecodable_images_are_one_line_errors(tmp_path: Path) -> None:
    from centernet_tf.config import load_config
    from centernet_tf.train.training import run_training

    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    for i in range(3):
        (root / "JPEGImages" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 20)
        write_voc_xml(root / "Annotations" / f"{i}.xml", [("cat", (4, 4, 40, 40))], f"{i}.jpg", (64, 64))
    overrides = ["data.format=voc", f"data.root={root}", "data.train_split=null", "data.val_split=null",
                 "data.image_check=annotation_sizes", "model.backbone=resnet10_slim", "model.input_size=[64,64]",
                 "train.epochs=1", "train.jit_compile=false"]
    with pytest.raises(ValueError, match="train.batch_size 4 is larger than the 3 training images"):
        run_training(load_config(None, [*overrides, "train.batch_size=4"]), tmp_path / "run1", verbose=0)
    with pytest.raises(ValueError, match="none of the 3 training images decodes"):
        run_training(load_config(None, [*overrides, "train.batch_size=2"]), tmp_path / "run2", verbose=0)
