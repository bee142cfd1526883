"""Image files the pipeline cannot decode are refused at load, counted by name, or (when they slip through a
lighter check) counted where they are dropped: never a silently lower mAP."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from centernet_tf.config import load_config
from centernet_tf.data.image_files import UNSUPPORTED_FORMAT
from centernet_tf.data.loaders import load_split
from tests.voc_files import write_voc_xml


def _photo(path: Path, fmt: str | None = None, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def _voc(root: Path, files: dict[str, str | None]) -> Path:
    """A VOC set whose every image has one box; ``files`` maps a file name to the format it is saved in."""
    for name, fmt in files.items():
        _photo(root / "JPEGImages" / name, fmt)
        write_voc_xml(root / "Annotations" / f"{Path(name).stem}.xml", [("cat", (8, 8, 40, 40))], name, (64, 48))
    return root


def _load(root: Path, fmt: str = "voc", check: str = "decode", split: str | None = None):
    data = [f"data.format={fmt}", f"data.root={root}", f"data.image_check={check}", "data.class_names=[cat]"]
    if fmt == "voc":
        data += ["data.train_split=null"]
    else:
        data += [f"data.train_split={split}"]
    return load_split(load_config(None, data).data, "train")


@pytest.mark.parametrize("check", ["decode", "header"])
def test_a_tiff_named_jpg_is_a_counted_skip_under_every_file_check(tmp_path: Path, check: str) -> None:
    root = _voc(tmp_path / "voc", {"a.jpg": "JPEG", "b.jpg": "TIFF"})
    index = _load(root, check=check)
    assert [Path(e.image_path).name for e in index.examples] == ["a.jpg"]
    assert index.report.counts[UNSUPPORTED_FORMAT] == 1
    assert "1 image in a format TensorFlow cannot decode (b.xml (TIFF; convert it to JPEG or PNG))" in index.report.summary()


def test_a_truncated_jpeg_is_caught_by_the_header_check_too(tmp_path: Path) -> None:
    root = _voc(tmp_path / "voc", {"a.jpg": "JPEG", "b.jpg": "JPEG", "c.jpg": "JPEG"})
    whole = (root / "JPEGImages" / "b.jpg").read_bytes()
    (root / "JPEGImages" / "b.jpg").write_bytes(whole[: len(whole) // 2])
    # Data after the end marker (as some phones append) is not truncation: that file stays.
    (root / "JPEGImages" / "c.jpg").write_bytes((root / "JPEGImages" / "c.jpg").read_bytes() + b"appended video")
    index = _load(root, check="header")
    assert sorted(Path(e.image_path).name for e in index.examples) == ["a.jpg", "c.jpg"]
    assert index.report.counts["corrupt image"] == 1


def test_yolo_reads_gif_counts_tiff_and_follows_symlinked_folders(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    images, labels = root / "train" / "images", root / "train" / "labels"
    _photo(images / "a.jpg")
    _photo(images / "b.gif", "GIF")
    _photo(images / "c.tif", "TIFF")
    elsewhere = tmp_path / "more_photos"
    _photo(elsewhere / "d.png")
    os.symlink(elsewhere, images / "linked", target_is_directory=True)
    os.symlink(images, images / "linked" / "loop", target_is_directory=True)  # a loop must end
    (labels / "linked").mkdir(parents=True)
    for stem in ("a", "b", "c", "linked/d"):
        (labels / f"{stem}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    index = _load(root, fmt="yolo", split="train")
    assert sorted(Path(e.image_path).name for e in index.examples) == ["a.jpg", "b.gif", "d.png"]
    assert index.report.counts[UNSUPPORTED_FORMAT] == 1 and "c.tif" in index.report.summary()


def test_an_image_dropped_by_the_evaluation_pipeline_is_counted_and_named(tmp_path: Path, caplog) -> None:
    import keras

    from centernet_tf.evaluation.metrics import predict_detections
    from centernet_tf.model.centernet import build_centernet

    root = _voc(tmp_path / "voc", {"a.jpg": "JPEG", "b.jpg": "JPEG"})
    (root / "JPEGImages" / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg \xff\xd9")
    index = _load(root, check="annotation_sizes")  # trusts the annotation's size: b.jpg is not opened
    assert len(index.examples) == 2
    keras.utils.set_random_seed(0)
    model = build_centernet(1, "resnet10_slim", (64, 64, 3))
    with caplog.at_level(logging.WARNING):
        results = predict_detections(model, index, batch_size=2)
    assert {r["image_id"] for r in results} <= {index.examples[0].image_id}
    assert "1 of 2 images could not be decoded and have no detections; their 1 objects count as misses " \
           "(first: b.jpg)" in caplog.text


def test_an_image_dropped_by_the_training_pipeline_is_counted_and_named(tmp_path: Path, caplog) -> None:
    from centernet_tf.data.pipeline import DecodeWatch, build_train_dataset, report_undecoded_training

    root = _voc(tmp_path / "voc", {"a.jpg": "JPEG", "b.jpg": "JPEG", "c.png": "PNG"})
    (root / "JPEGImages" / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg \xff\xd9")
    index = _load(root, check="annotation_sizes")
    watch = DecodeWatch(len(index.examples))
    ds = build_train_dataset(index, (32, 32), batch_size=1, shuffle=False, drop_remainder=False, watch=watch)
    assert sum(1 for _ in ds) == 2  # b.jpg is dropped by the pipeline...
    assert watch.started.numpy().tolist() == [1, 1, 1] and watch.decoded.numpy().tolist() == [1, 0, 1]
    with caplog.at_level(logging.WARNING):
        assert report_undecoded_training(watch, index) == 1  # ... and named
    assert "1 of 3 training images could not be decoded and were left out of training with their 1 objects " \
           f"(first: {root / 'JPEGImages' / 'b.jpg'})" in caplog.text
    fresh = DecodeWatch(3)  # started but not yet decoded when training stopped: it decodes, so it is not reported
    fresh.started.assign([1, 0, 0])
    assert fresh.undecoded(index) == []


def test_a_training_run_reports_the_images_it_could_not_decode(tmp_path: Path, caplog) -> None:
    import json

    from centernet_tf.train.training import run_training

    root = _voc(tmp_path / "voc", {f"{i}.jpg": "JPEG" for i in range(4)})
    (root / "JPEGImages" / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg \xff\xd9")
    config = load_config(None, [
        "data.format=voc", f"data.root={root}", "data.image_check=annotation_sizes", "data.class_names=[cat]",
        "data.train_split=null", "data.val_split=null", "model.backbone=resnet10_slim", "model.input_size=[32,32]",
        "train.epochs=1", "train.batch_size=1", "train.steps_per_epoch=6", "train.warmup_steps=1",
        "train.jit_compile=false", "train.mixed_precision=none",
    ])
    with caplog.at_level(logging.WARNING):
        metrics = run_training(config, tmp_path / "run", verbose=0)
    assert metrics["train_images_undecoded"] == 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train_images_undecoded"] == 1
    assert "1 of 4 training images could not be decoded and were left out of training" in caplog.text


def test_calibration_images_that_do_not_decode_are_counted(tmp_path: Path, caplog) -> None:
    from centernet_tf.deploy.export import representative_images

    root = _voc(tmp_path / "voc", {"a.jpg": "JPEG", "b.jpg": "JPEG", "c.jpg": "JPEG"})
    (root / "JPEGImages" / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg \xff\xd9")
    index = _load(root, check="annotation_sizes")
    with caplog.at_level(logging.WARNING):
        images = representative_images(index, (32, 32))
    assert len(images) == 2 and images[0].shape == (32, 32, 3)
    assert "1 of 3 calibration images could not be decoded and were left out (first: c.jpg)" in caplog.text
