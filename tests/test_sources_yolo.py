"""Tests for the YOLO txt source: every skip/repair rule, both folder layouts, data.yaml names, pose lines."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from centernet_tf.data.formats import load_yolo, yolo_label_path
from centernet_tf.data.index import DatasetIndex
from tests.test_sources import _write_image

# --------------------------------------------------------------------------------------
# YOLO txt
# --------------------------------------------------------------------------------------

# Label lines of a.jpg (40x30) and what each becomes; boxes in pixels, hand-computed from the fractions.
YOLO_A_LINES = [
    "0 0.5 0.5 0.25 0.5",  # 1: x 0.375..0.625 -> 15..25, y 0.25..0.75 -> 7.5..22.5
    "1 0.125 0.25 0.25 0.5",  # 2: x 0..0.25 -> 0..10, y 0..0.5 -> 0..15
    "2 0.9375 0.5 0.25 0.25",  # 3: x 0.8125..1.0625 -> 32.5..42.5, clipped to 40; y 11.25..18.75
    "7 0.5 0.5 0.125 0.125",  # 4: class id out of range
    "-1 0.5 0.5 0.125 0.125",  # 5: negative class id
    "0 0.5 0.5 0.25",  # 6: four fields
    "0 0.5 abc 0.25 0.25",  # 7: not a number
    "1.5 0.5 0.5 0.25 0.25",  # 8: class id not an integer
    "0 nan 0.5 0.25 0.25",  # 9: non-finite
    "0 0.5 0.5 0 0.25",  # 10: zero width
    "",  # 11: blank line, ignored
    "0 0.5 0.5 -0.25 0.25",  # 12: negative width -> inverted
    "0 1.5 0.5 0.25 0.25",  # 13: x 1.375..1.625 -> right of the image
    "1 0.25 0.5 0.5 0.25 0.75 0.75",  # 14: polygon -> x 10..30, y 7.5..22.5
    "0 0.5 0.5 0.25 0.25 0.5",  # 15: six fields
    "1.0 0.5 0.5 1 1",  # 16: class id written as a float; whole image 0..40, 0..30
]
YOLO_A_BOXES = [[15, 7.5, 25, 22.5], [0, 0, 10, 15], [32.5, 11.25, 40, 18.75], [10, 7.5, 30, 22.5], [0, 0, 40, 30]]
YOLO_A_CLASSES = [0, 1, 2, 1, 1]
YOLO_A_COUNTS = {
    "clipped box": 1,
    "unknown class 'class id 7'": 1,
    "unknown class 'class id -1'": 1,
    "malformed label line": 4,
    "non-finite box": 1,
    "zero-area box": 1,
    "inverted box": 1,
    "box outside image": 1,
}


def _write_yolo_split(images: Path, labels: Path) -> None:
    """One split exercising every YOLO rule (ids in sorted order: a b c d e f h -> 1..7)."""
    _write_image(images / "a.jpg")
    labels.mkdir(parents=True, exist_ok=True)
    (labels / "a.txt").write_text("\n".join(YOLO_A_LINES) + "\n")
    _write_image(images / "b.png", size=(64, 48), fmt="PNG")
    (labels / "b.txt").write_text("0 0.25 0.75 0.125 0.5")  # x 12..20, y 24..48; no final newline
    _write_image(images / "c.jpg")
    (labels / "c.txt").write_text("")  # empty label file: a deliberate background image
    _write_image(images / "d.JPG")  # no label file: kept as background, counted
    (images / "e.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")  # corrupt, with a label file
    (labels / "e.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (images / "f.jpg").write_bytes(b"junk")  # corrupt, no label file: counted once, as corrupt
    _write_image(images / "h.bmp", fmt="BMP")
    (labels / "h.txt").write_text("2 0.5 0.5 1 1\n")
    (images / "notes.txt").write_text("not an image")
    (images / "._a.jpg").write_bytes(b"macOS metadata")  # hidden: not data, ignored like Ultralytics does


YOLO_NAMES = ["cat", "dog", "bird"]


def _check_yolo_split(index: DatasetIndex) -> None:
    assert [Path(e.image_path).name for e in index.examples] == ["a.jpg", "b.png", "c.jpg", "d.JPG", "h.bmp"]
    assert [e.image_id for e in index.examples] == [1, 2, 3, 4, 7]
    a, b, c, d, h = index.examples
    np.testing.assert_array_equal(a.boxes, np.array(YOLO_A_BOXES, np.float32))
    np.testing.assert_array_equal(a.class_ids, YOLO_A_CLASSES)
    assert a.boxes.dtype == np.float32 and a.class_ids.dtype == np.int32
    assert (b.width, b.height) == (64, 48)
    np.testing.assert_array_equal(b.boxes, [[12, 24, 20, 48]])
    np.testing.assert_array_equal(b.class_ids, [0])
    assert c.boxes.shape == (0, 4) and d.boxes.shape == (0, 4)
    np.testing.assert_array_equal(h.boxes, [[0, 0, 40, 30]])
    np.testing.assert_array_equal(h.class_ids, [2])
    assert index.report.counts == {**YOLO_A_COUNTS, "corrupt image": 2, "image without label file": 1}
    details = index.report.details
    assert details["malformed label line"] == ["a.txt:6", "a.txt:7", "a.txt:8"]
    assert details["unknown class 'class id 7'"] == ["a.txt:4"]
    assert details["non-finite box"] == ["a.txt:9"]
    assert details["inverted box"] == ["a.txt:12"]
    assert details["box outside image"] == ["a.txt:13"]
    assert details["clipped box"] == ["a.txt:3"]
    assert details["image without label file"] == ["d.JPG"]
    assert details["corrupt image"] == ["e.jpg", "f.jpg"]
    assert index.report.images_kept == 5 and index.report.boxes_kept == 7


def test_yolo_roboflow_layout_every_rule_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "rf"
    _write_yolo_split(root / "train" / "images", root / "train" / "labels")
    index = load_yolo(root, "train", YOLO_NAMES)
    assert index.name == "rf train" and index.class_names == YOLO_NAMES
    _check_yolo_split(index)
    summary = index.report.summary()
    assert "skipped 4 malformed label lines (a.txt:6, a.txt:7, a.txt:8, ...)" in summary
    assert summary.endswith("; kept as background 1 image without label file (d.JPG)")
    with caplog.at_level(logging.INFO, logger="t"):
        index.report.log(logging.getLogger("t"), "rf")
    assert caplog.records[-1].levelno == logging.WARNING


def test_yolo_ultralytics_layout(tmp_path: Path) -> None:
    root = tmp_path / "ul"
    _write_yolo_split(root / "images" / "train", root / "labels" / "train")
    _check_yolo_split(load_yolo(root, "train", YOLO_NAMES))


def test_yolo_label_path_rule() -> None:
    assert yolo_label_path("/d/images/train/x.y.jpg") == Path("/d/labels/train/x.y.txt")
    assert yolo_label_path("/images/d/train/images/x.png") == Path("/images/d/train/labels/x.txt")  # the last one
    assert yolo_label_path("/d/pics/x.jpg") == Path("/d/pics/x.txt")  # no images/ folder: beside the image
    assert yolo_label_path("images/x.jpg") == Path("labels/x.txt")


def _small_ultralytics(root: Path) -> None:
    for split, fraction in (("train", "0.5 0.5 0.25 0.5"), ("val", "0.25 0.25 0.5 0.5"), ("test", "0.5 0.5 1 1")):
        _write_image(root / "images" / split / f"{split}1.jpg")
        (root / "labels" / split).mkdir(parents=True)
        (root / "labels" / split / f"{split}1.txt").write_text(f"1 {fraction}\n")


def test_yolo_names_from_data_yaml_mapping_and_list(tmp_path: Path) -> None:
    root = tmp_path / "ul"
    _small_ultralytics(root)
    (root / "data.yaml").write_text("names:\n  1: dog\n  0: cat\nnc: 2\n")
    train = load_yolo(root, "train")  # root/data.yaml is read when present
    assert train.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(train.examples[0].boxes, [[15, 7.5, 25, 22.5]])
    np.testing.assert_array_equal(train.examples[0].class_ids, [1])

    # a YAML elsewhere: names as a list, path: to the data, and split keys naming image folders
    other = tmp_path / "configs" / "pets.yaml"
    other.parent.mkdir()
    other.write_text(f"path: {root}\ntrain: images/train\nval: [images/val]\nnames: [kitten, puppy]\n")
    val = load_yolo(None, "val", dataset_yaml=other)
    assert val.class_names == ["kitten", "puppy"] and val.name == "ul val"
    assert Path(val.examples[0].image_path) == root / "images" / "val" / "val1.jpg"
    np.testing.assert_array_equal(val.examples[0].boxes, [[0, 0, 20, 15]])
    # explicit names win over the YAML's
    assert load_yolo(root, "test", ["a", "b"], dataset_yaml=other).class_names == ["a", "b"]


def test_yolo_roboflow_data_yaml_and_stale_paths(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "rf"
    _write_image(root / "train" / "images" / "x.jpg")
    (root / "train" / "labels").mkdir(parents=True)
    (root / "train" / "labels" / "x.txt").write_text("0 0.5 0.5 1 1\n")
    _write_image(root / "valid" / "images" / "y.jpg")
    (root / "valid" / "labels").mkdir(parents=True)
    (root / "valid" / "labels" / "y.txt").write_text("0 0.5 0.5 1 1\n")
    # Roboflow writes ../train/images (read as train/images next to the YAML, as Ultralytics does)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['fish']\n")
    assert Path(load_yolo(root, "train").examples[0].image_path).name == "x.jpg"
    assert Path(load_yolo(root, "val").examples[0].image_path).name == "y.jpg"
    # absolute paths from the uploader's machine: the split's folder under root is used, with a warning
    (root / "data.yaml").write_text("train: /nowhere/train/images\nval: /nowhere/valid/images\nnames: ['fish']\n")
    with caplog.at_level(logging.WARNING):
        assert Path(load_yolo(root, "train").examples[0].image_path).name == "x.jpg"
    assert "/nowhere/train/images" in caplog.text
    with pytest.raises(FileNotFoundError, match=r"no image folder for split 'val'.*\['train', 'valid'\]"):
        load_yolo(root, "val")
    assert Path(load_yolo(root, "valid").examples[0].image_path).name == "y.jpg"  # not a YAML key: a folder
    (root / "data.yaml").write_text("names: {0: fish, 2: shark}\n")
    with pytest.raises(ValueError, match="names: must be a list or a mapping"):
        load_yolo(root, "train")
    (root / "data.yaml").write_text("names: [fish, shark]\nnc: 3\n")
    with pytest.raises(ValueError, match="nc: 3 but names: lists 2 classes"):
        load_yolo(root, "train")


def test_yolo_errors_say_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    _write_image(root / "train" / "images" / "x.jpg")
    with pytest.raises(ValueError, match=r"class names are needed: set data.class_names .* data.dataset_yaml"):
        load_yolo(root, "train")
    with pytest.raises(ValueError, match=r"no label file for any of the 1 images .*rf/train/labels/x.txt"):
        load_yolo(root, "train", ["fish"])
    (root / "valid" / "images").mkdir(parents=True)
    (root / "valid" / "images" / "readme.md").write_text("nothing here")
    with pytest.raises(ValueError, match=r"rf valid: no images \(.jpg, .jpeg, .png, .bmp, .gif, .webp\) in .*valid/images"):
        load_yolo(root, "valid", ["fish"])
    with pytest.raises(FileNotFoundError, match=r"split 'test'.*Folders in .*: \['train', 'valid'\]"):
        load_yolo(root, "test", ["fish"])
    with pytest.raises(FileNotFoundError, match="YOLO dataset folder not found"):
        load_yolo(tmp_path / "nope", "train", ["fish"])
    with pytest.raises(ValueError, match="duplicate class names"):
        load_yolo(root, "train", ["fish", "fish"])


def test_yolo_nothing_usable_raises(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    for stem in ("p", "q"):
        (root / "train" / "images" / f"{stem}.jpg").write_bytes(b"junk")
        (root / "train" / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=r"bad train: no usable image .*2 listed.*2 corrupt images \(p.jpg, q.jpg\)"):
        load_yolo(root, "train", ["fish"])


def _pose_line(keypoints: int, values: int) -> str:
    """A pose line whose box is x 10..30, y 7.5..22.5 of a 40x30 image, with keypoints far outside it (a
    polygon reading of the line would take them into the box)."""
    kpts = " ".join(("0.99 0.01 2" if values == 3 else "0.99 0.01") for _ in range(keypoints))
    return f"0 0.5 0.5 0.5 0.5 {kpts}"


@pytest.mark.parametrize("kpt_shape, in_yaml", [((17, 3), True), ((17, 3), False), ((4, 2), True), ((1, 3), False)])
def test_yolo_pose_lines_give_their_box(tmp_path: Path, kpt_shape: tuple[int, int], in_yaml: bool) -> None:
    root = tmp_path / "pose"
    _write_image(root / "train" / "images" / "a.jpg")
    (root / "train" / "labels").mkdir(parents=True)
    (root / "train" / "labels" / "a.txt").write_text(_pose_line(*kpt_shape) + "\n")
    (root / "data.yaml").write_text("names: [person]\n" + (f"kpt_shape: [{kpt_shape[0]}, {kpt_shape[1]}]\n" if in_yaml else ""))
    index = load_yolo(root, "train")
    np.testing.assert_allclose(index.examples[0].boxes, [[10, 7.5, 30, 22.5]])
    assert index.report.counts.get("pose line read as its box", 0) == (0 if in_yaml else 1)
    assert "malformed label line" not in index.report.counts
