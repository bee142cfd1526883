"""A user's files are never overwritten or left half-written, and each exported model keeps its own class names.

Each test builds the dangerous situation itself: an output that is the input, a file-size limit standing in for
a full disk, a kill while the final model is written, two trainings in one folder, a backup of another
experiment.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

import centernet_tf  # noqa: F401 - registers the custom layers for load_model
from centernet_tf.cli import run_cli
from centernet_tf.config import load_config
from centernet_tf.deploy.export import export_tflite
from centernet_tf.files import atomic_path, atomic_write, save_keras
from centernet_tf.labels import class_names_for, labels_from_metadata
from centernet_tf.model.centernet import build_centernet
from centernet_tf.train.run_folder import RunFolderLock, check_resume_config

REPO = Path(__file__).resolve().parents[1]
INPUT = (64, 64)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_centernet(2, "resnet10_slim", (*INPUT, 3), class_names=["cat", "dog"]).save(path)
    return path


def _photos(folder: Path, count: int = 2) -> dict[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(folder / f"photo{i}.jpg")
    return {path: _digest(path) for path in folder.iterdir()}


def _cli(main_module: str, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    module = __import__(f"centernet_tf.commands.{main_module}", fromlist=["main"])
    code = run_cli(module.main, argv)
    return code, capsys.readouterr().err


def test_predict_never_writes_into_the_folder_of_its_input_photos(model_file: Path, tmp_path: Path, capsys) -> None:
    photos = _photos(tmp_path / "photos")
    folder = tmp_path / "photos"
    for argv in (["--input", str(folder), "--output", str(folder)],
                 ["--input", str(folder / "photo0.jpg"), "--output", str(folder)],
                 ["--input", str(folder), "--output", str(tmp_path / "." / "photos" / ".." / "photos")]):
        code, err = _cli("predict", ["--model", str(model_file), *argv], capsys)
        assert code == 2 and "is the folder of the input photos" in err and len(err.strip().splitlines()) == 1
    assert {path: _digest(path) for path in folder.iterdir()} == photos  # nothing replaced, nothing added


def test_predict_output_that_would_replace_the_model_is_refused(model_file: Path, tmp_path: Path, capsys) -> None:
    _photos(tmp_path / "photos")
    model = tmp_path / "out" / "detections.json"  # a model that happens to have the name of an output file
    model.parent.mkdir()
    model.write_bytes(model_file.read_bytes())
    before = _digest(model)
    code, err = _cli("predict", ["--model", str(model), "--input", str(tmp_path / "photos"),
                                 "--output", str(tmp_path / "out")], capsys)
    assert code == 2 and "would overwrite the input" in err
    assert _digest(model) == before


def test_export_never_writes_over_the_model_its_config_or_another_file(model_file: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "copy.keras"
    model.write_bytes(model_file.read_bytes())
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    saved_model_target = tmp_path / "a_file"
    saved_model_target.write_text("not a folder")
    before = {p: _digest(p) for p in (model, other, saved_model_target)}
    for argv, message in (
        (["--format", "tflite", "--output", str(model)], "would overwrite the input"),
        (["--format", "saved_model", "--output", str(model)], "would overwrite the input"),
        (["--format", "tflite", "--output", str(other)], "is not a .tflite file"),
        (["--format", "saved_model", "--output", str(saved_model_target)], "is a file"),
    ):
        code, err = _cli("export", ["--model", str(model), *argv], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert {p: _digest(p) for p in before} == before


def test_two_tflite_exports_in_one_folder_keep_their_own_class_names(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    first = build_centernet(2, "resnet10_slim", (*INPUT, 3), class_names=["cat", "dog"])
    second = build_centernet(3, "resnet10_slim", (*INPUT, 3), class_names=["apple", "pear", "plum"])
    export_tflite(first, tmp_path / "pets.tflite", first.class_names)
    export_tflite(second, tmp_path / "fruit.tflite", second.class_names)
    assert class_names_for(tmp_path / "pets.tflite") == ["cat", "dog"]
    assert class_names_for(tmp_path / "fruit.tflite") == ["apple", "pear", "plum"]
    # Inside the file too: a copy taken elsewhere, without any label file, still names its classes.
    lone = tmp_path / "elsewhere" / "pets_copy.tflite"
    lone.parent.mkdir()
    lone.write_bytes((tmp_path / "pets.tflite").read_bytes())
    assert labels_from_metadata(lone.read_bytes()) == ["cat", "dog"] == class_names_for(lone)
    # The shared labels.txt apps look for keeps the first model's names instead of being overwritten.
    assert (tmp_path / "labels.txt").read_text().splitlines() == ["cat", "dog"]
    assert (tmp_path / "fruit.labels.txt").read_text().splitlines() == ["apple", "pear", "plum"]
    from centernet_tf.deploy.inference import TFLiteDetector

    assert TFLiteDetector(tmp_path / "fruit.tflite").class_names == ["apple", "pear", "plum"]


def test_a_full_disk_while_saving_keeps_the_previous_model_and_says_so_in_one_line(model_file: Path, tmp_path: Path) -> None:
    """The file-size limit (RLIMIT_FSIZE) makes every write past 64 KiB fail as a full disk does."""
    target = tmp_path / "best_model.keras"
    target.write_bytes(model_file.read_bytes())
    before = _digest(target)
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(REPO)!r})
import keras, centernet_tf
from centernet_tf.cli import run_cli
from centernet_tf.files import save_keras
model = keras.models.load_model({str(model_file)!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
sys.exit(run_cli(lambda argv: save_keras(model, {str(target)!r}) and 0, []))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and f"could not write {target}" in errors[0] and "Traceback" not in done.stderr
    assert _digest(target) == before  # the previous best model, whole
    assert [p.name for p in tmp_path.iterdir()] == ["best_model.keras"]  # no partial file left behind


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = atomic_write(tmp_path / "metrics.json", '{"mAP": 0.5}')
    with pytest.raises(RuntimeError):
        with atomic_path(path) as partial:
            partial.write_text('{"mAP": 0.')
            raise RuntimeError("killed half-way")
    assert path.read_text() == '{"mAP": 0.5}' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def _tiny_config(work: Path, **changes: str) -> object:
    overrides = [
        "model.backbone=resnet10_slim", "model.input_size=[64,64]", "data.shapes_num_train=8",
        "data.shapes_num_val=4", "data.shapes_image_size=[64,64]", f"data.shapes_dir={work / 'shapes'}",
        "train.epochs=3", "train.steps_per_epoch=2", "train.batch_size=4", "train.warmup_steps=1",
        "train.jit_compile=false", *(f"{k}={v}" for k, v in changes.items()),
    ]
    return load_config(REPO / "configs" / "shapes.yaml", overrides)


def test_a_kill_while_model_keras_is_written_keeps_the_backup_and_the_rerun_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from centernet_tf.train import training

    run = tmp_path / "run"
    config = _tiny_config(tmp_path, **{"train.freeze_backbone_epochs": "1"})  # two phases: a finished phase's weights too

    class Killed(BaseException):
        """Stands in for SIGKILL: no ``except Exception`` or clean-up of ours runs."""

    def killed_mid_write(model: keras.Model, path: Path) -> None:
        if Path(path).name != "model.keras":
            return save_keras(model, path)
        Path(path).with_name(".model.partial-99999.keras").write_bytes(b"PK\x03\x04 half a zip")
        raise Killed

    monkeypatch.setattr(training, "save_keras", killed_mid_write)
    with pytest.raises(Killed):
        training.run_training(config, run, verbose=0)
    assert not (run / "model.keras").exists()
    assert (run / "backup" / "training_metadata.json").is_file(), "the backup must outlive an unfinished save"
    assert (run / "frozen_backbone.weights.h5").is_file(), "and so must the finished phase's weights"
    assert not (run / "metrics.json").exists()
    curve = json.loads((run / "eval_curve.json").read_text())

    monkeypatch.undo()
    metrics = training.run_training(config, run, verbose=0)
    assert list(keras.models.load_model(run / "model.keras").class_names) == ["circle", "square", "triangle"]
    assert metrics["class_names"] == ["circle", "square", "triangle"] and not (run / "backup").exists()
    assert not list(run.glob("*.weights.h5")) and metrics["eval_curve"] == curve  # the metrics of that last epoch
    assert not list(run.glob(".*partial*")), "the killed run's partial file is cleaned up"
    epochs = [line.split(",")[0] for line in (run / "results.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2"], "each epoch once in results.csv"


def test_a_rerun_in_a_finished_folder_does_not_repeat_results_rows(tmp_path: Path) -> None:
    from centernet_tf.train.training import run_training

    config = _tiny_config(tmp_path, **{"train.epochs": "2"})
    first = run_training(config, tmp_path / "run", verbose=0)
    second = run_training(config, tmp_path / "run", verbose=0)
    epochs = [line.split(",")[0] for line in (tmp_path / "run" / "results.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]
    # The second run keeps no record of the first: its own curve, and a best model of its own.
    assert [c["epoch"] for c in second["eval_curve"]] == [c["epoch"] for c in first["eval_curve"]]
    assert json.loads((tmp_path / "run" / "best_model.json").read_text())["epoch"] <= 2


def test_a_second_training_into_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    from centernet_tf.train.training import run_training

    run = tmp_path / "run"
    run.mkdir()
    with RunFolderLock(run):
        with pytest.raises(ValueError, match=r"is in use by another training \(pid \d+\)"):
            run_training(_tiny_config(tmp_path), run, verbose=0)
        assert list(run.iterdir()) == [run / ".lock"], "refused before writing anything"
    with RunFolderLock(run):  # released when the first one ended
        pass


def test_a_backup_of_another_experiment_is_refused_naming_what_differs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 3}')
    config = _tiny_config(tmp_path).to_dict()
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    check_resume_config(run, config)  # the same experiment resumes
    check_resume_config(run, {**config, "eval": {**config["eval"], "score_threshold": 0.2}, "name": "x"})
    other = {**config, "train": {**config["train"], "learning_rate": 0.5},
             "data": {**config["data"], "class_names": ["cat"]}}
    with pytest.raises(ValueError, match=r"backup of another experiment \(data.class_names .*train.learning_rate"):
        check_resume_config(run, other)
    (run / "backup" / "training_metadata.json").unlink()
    (run / "backup").rmdir()
    check_resume_config(run, other)  # no backup: a new experiment may start in the folder


def test_a_run_folder_that_is_a_file_is_one_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "run").write_text("a file")
    from centernet_tf.commands.train import main

    code = run_cli(main, ["--run-dir", str(tmp_path / "run"), "--set", f"data.shapes_dir={tmp_path / 's'}"])
    err = capsys.readouterr().err
    assert code == 2 and "is a file" in err and (tmp_path / "run").read_text() == "a file"


def test_a_read_only_run_folder_is_one_clear_error(tmp_path: Path, capsys, monkeypatch) -> None:
    """The tests run as root, which ignores permissions: the file system's answer for a read-only folder
    (``PermissionError``, errno 13) is given to every folder creation under it instead."""
    import os

    locked = tmp_path / "readonly"
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if str(path).startswith(str(locked)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    from centernet_tf.commands.train import main

    code = run_cli(main, ["--run-dir", str(locked / "run"), "--set", f"data.shapes_dir={tmp_path / 's'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Permission denied" in err[0] and "readonly" in err[0], err


@pytest.mark.parametrize("name, fmt, message", [
    ("scan.tif", "TIFF", "scan.tif is a TIFF image, which TensorFlow does not decode: convert it to JPEG or PNG"),
    ("scan.jpg", "TIFF", "scan.jpg is a TIFF image, which TensorFlow does not decode"),
    ("notes.jpg", None, "notes.jpg is not an image file"),
])
def test_predict_on_a_file_it_cannot_read_says_what_the_file_is(
    model_file: Path, tmp_path: Path, capsys, name: str, fmt: str | None, message: str
) -> None:
    path = tmp_path / name
    if fmt:
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path, format=fmt)
    else:
        path.write_text("shopping list")
    code, err = _cli("predict", ["--model", str(model_file), "--input", str(path), "--output", str(tmp_path / "out")],
                     capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_predict_help_says_a_saved_model_runs_its_graph(capsys) -> None:
    from centernet_tf.commands.predict import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "a SavedModel runs the graph it contains" in " ".join(capsys.readouterr().out.split())


def test_training_into_a_folder_of_the_users_own_files_is_refused(tmp_path: Path) -> None:
    from centernet_tf.train.training import run_training

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("# my commented config\ntrain:\n  epochs: 3\n")
    photos = _photos(folder / "photos")
    with pytest.raises(ValueError, match=r"project is not empty and is not a run folder \(config.yaml, photos\)"):
        run_training(_tiny_config(tmp_path), folder, verbose=0)
    assert (folder / "config.yaml").read_text().startswith("# my commented config")
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "photos"]
    assert {p: _digest(p) for p in (folder / "photos").iterdir()} == photos


def test_a_run_folder_is_told_from_a_users_folder(tmp_path: Path) -> None:
    from centernet_tf.train.run_folder import check_run_folder

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_bytes(b"finder")
    check_run_folder(hidden)  # only hidden files: as good as empty
    old_run = tmp_path / "old_run"  # a run of an older version, killed before its first epoch ended
    old_run.mkdir()
    (old_run / "config.yaml").write_text(yaml.safe_dump(_tiny_config(tmp_path).to_dict()))
    (old_run / "labels.txt").write_text("circle\n")
    check_run_folder(old_run)
    mine = tmp_path / "mine"  # a user's folder that happens to hold a model.keras
    mine.mkdir()
    (mine / "model.keras").write_bytes(b"theirs")
    (mine / "config.yaml").write_text("train:\n  epochs: 3\n")
    with pytest.raises(ValueError, match="is not empty and is not a run folder"):
        check_run_folder(mine)


def test_a_backup_written_before_a_setting_existed_still_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    config = _tiny_config(tmp_path).to_dict()
    older = {**config, "model": {k: v for k, v in config["model"].items() if not k.startswith("init_")}}
    (run / "config.yaml").write_text(yaml.safe_dump(older))
    check_resume_config(run, config)  # the keys it lacks had their defaults then


def test_predict_into_a_folder_of_other_files_and_export_around_its_inputs_are_refused(
    model_file: Path, tmp_path: Path, capsys
) -> None:
    _photos(tmp_path / "photos")
    album = tmp_path / "album"
    album.mkdir()
    (album / "photo0.jpg").write_bytes(b"someone else's photo")
    code, err = _cli("predict", ["--model", str(model_file), "--input", str(tmp_path / "photos"),
                                 "--output", str(album)], capsys)
    assert code == 2 and "already holds photo0.jpg, which is not from predict.py" in err
    assert (album / "photo0.jpg").read_bytes() == b"someone else's photo"
    inside = tmp_path / "export_here" / "model.keras"
    inside.parent.mkdir()
    inside.write_bytes(model_file.read_bytes())
    code, err = _cli("export", ["--model", str(inside), "--format", "saved_model", "--output", str(inside.parent)],
                     capsys)
    assert code == 2 and "would overwrite the input" in err and inside.read_bytes() == model_file.read_bytes()


def test_partial_files_keep_every_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "frozen_backbone.weights.h5") as partial:
        assert partial.name.endswith(".weights.h5") and partial.name.startswith(".frozen_backbone.partial-")
        partial.write_bytes(b"h5")
    assert (tmp_path / "frozen_backbone.weights.h5").read_bytes() == b"h5"
