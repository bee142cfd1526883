"""Tests for the Pascal VOC source, the skip report and the real BCCD and Aquarium data; the small-image helpers
the COCO and YOLO source tests (test_sources_coco.py, test_sources_yolo.py) share."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from centernet_tf.data.formats import load_voc, load_yolo
from centernet_tf.data.image_check import ImageCheck
from centernet_tf.data.index import DatasetIndex, SkipReport
from tests.voc_files import voc_xml

W, H = 40, 30  # tiny image size used by the synthetic fixtures


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _write_image(path: Path, size: tuple[int, int] = (W, H), fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, fmt)


def _voc_xml(filename: str, objects: list[tuple[str, tuple | None]], size=(W, H)) -> str:
    return voc_xml(objects, filename, size)


def _by_name(index: DatasetIndex) -> dict[str, object]:
    return {Path(e.image_path).name: e for e in index.examples}


# --------------------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------------------


@pytest.fixture()
def voc_root(tmp_path: Path) -> Path:
    """A VOC tree exercising every rule; see the expected counts in the tests below."""
    root = tmp_path / "VOCtiny"
    ann, img = root / "Annotations", root / "JPEGImages"
    ann.mkdir(parents=True)
    img.mkdir(parents=True)

    def xml(stem: str, text: str) -> None:
        (ann / f"{stem}.xml").write_text(text)

    # a: one box of every kind
    xml(
        "a",
        _voc_xml(
            "a.jpg",
            [
                ("cat", (2, 3, 20, 25)),  # kept as is
                (" dog ", (-5, 10, 15, 40)),  # clipped -> 0, 10, 15, 30 ; name stripped
                ("cat", (30, -2, 50, 12)),  # clipped -> 30, 0, 40, 12
                ("cat", (20, 5, 10, 15)),  # inverted
                ("cat", (5, 20, 15, 10)),  # inverted (y)
                ("cat", (45, 5, 60, 20)),  # outside image
                ("dog", (5, 31, 10, 45)),  # outside image (below)
                ("dog", (10, 10, 10, 20)),  # zero area
                ("dog", (-10, 5, 0, 20)),  # zero area after clipping (touches the border)
                ("cat", ("nan", 1, 5, 5)),  # non-finite
                ("cat", (1, 1, "inf", 5)),  # non-finite
                ("cat", (1, "abc", 5, 5)),  # malformed
                ("cat", None),  # malformed: no bndbox
                ("bird", (1, 1, 5, 5)),  # unknown class when class_names excludes it
            ],
        ),
    )
    _write_image(img / "a.jpg")
    # b: valid negative (no objects) -> kept with zero boxes
    xml("b", _voc_xml("b.jpg", []))
    _write_image(img / "b.jpg")
    # c: malformed xml -> bad annotation
    xml("c", "<annotation><filename>c.jpg</filename><object>")
    _write_image(img / "c.jpg")
    # d: image missing
    xml("d", _voc_xml("d.jpg", [("cat", (1, 1, 5, 5))]))
    # e: random bytes -> corrupt image
    xml("e", _voc_xml("e.jpg", [("cat", (1, 1, 5, 5))]))
    (img / "e.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    # f: truncated inside the header -> corrupt image
    _write_image(img / "full.jpg", size=(64, 64))
    full = (img / "full.jpg").read_bytes()
    (img / "full.jpg").unlink()
    xml("f", _voc_xml("f.jpg", [("cat", (1, 1, 5, 5))]))
    (img / "f.jpg").write_bytes(full[:100])
    # g: valid header but pixel data cut off -> only caught by the decode check
    xml("g", _voc_xml("g.jpg", [("cat", (1, 1, 5, 5))], size=(64, 64)))
    (img / "g.jpg").write_bytes(full[: len(full) // 2])
    # h: a png found by the xml's stem (its <filename> names another file); labelled at twice the real size,
    # so the boxes are rescaled by 0.5 (the second one then clipped)
    xml("h", _voc_xml("other.png", [("dog", (0, 0, 80, 60)), ("dog", (0, 0, 82, 60))], size=(80, 60)))
    _write_image(img / "h.png", fmt="PNG")
    # i: filename in the xml does not exist -> <stem>.jpg, as always
    xml("i", _voc_xml("renamed.jpg", [("cat", (5, 5, 9, 9))]))
    _write_image(img / "i.jpg")
    # k: width and height swapped against the real image: not a resize, so where the boxes go is unknowable
    xml("k", _voc_xml("k.jpg", [("cat", (5, 5, 9, 9))], size=(H, W)))
    _write_image(img / "k.jpg")

    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    # 'j' has no xml at all -> missing annotation file
    (main / "trainval.txt").write_text("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n")
    (main / "small.txt").write_text("b\ni\n")
    (main / "broken.txt").write_text("c\nd\ne\nf\nj\n")
    return root


def test_voc_every_rule_counted_exactly(voc_root: Path) -> None:
    index = load_voc(voc_root, "trainval", class_names=["cat", "dog"], name="tiny")
    assert index.name == "tiny"
    assert index.class_names == ["cat", "dog"]
    assert index.report.counts == {
        "clipped box": 3,  # two in a, one in h
        "inverted box": 2,
        "box outside image": 2,
        "zero-area box": 2,
        "non-finite box": 2,
        "malformed box": 2,
        "unknown class 'bird'": 1,
        "bad annotation": 1,  # c (malformed)
        "missing annotation file": 1,  # j
        "missing image": 1,
        "corrupt image": 3,  # e, f, g
        "rescaled annotation": 1,  # h
        "size mismatch": 1,  # k
    }
    details = index.report.details
    assert details["bad annotation"] == ["c.xml"]
    assert details["missing annotation file"] == ["trainval.txt:10 'j'"]
    assert details["corrupt image"] == ["e.xml", "f.xml", "g.xml"]
    assert details["missing image"] == ["d.xml"]
    assert details["clipped box"] == ["a.xml", "h.xml"]
    assert details["rescaled annotation"] == ["h.xml (annotated 80x60, image 40x30)"]
    assert details["size mismatch"] == ["k.xml (annotated 30x40, image 40x30)"]
    assert index.report.num_skipped == 2 + 2 + 2 + 2 + 2 + 1 + 1 + 1 + 1 + 3 + 1

    examples = _by_name(index)
    assert sorted(examples) == ["a.jpg", "b.jpg", "h.png", "i.jpg"]
    a = examples["a.jpg"]
    np.testing.assert_array_equal(
        a.boxes, np.array([[2, 3, 20, 25], [0, 10, 15, 30], [30, 0, 40, 12]], np.float32)
    )
    np.testing.assert_array_equal(a.class_ids, [0, 1, 0])
    assert a.boxes.dtype == np.float32 and a.class_ids.dtype == np.int32
    assert (a.width, a.height, a.image_id) == (W, H, 1)
    b = examples["b.jpg"]
    assert b.boxes.shape == (0, 4) and b.class_ids.shape == (0,) and b.image_id == 2
    h = examples["h.png"]
    assert (h.width, h.height, h.image_id) == (W, H, 8)  # the real size; boxes scaled from the xml's 80x60
    np.testing.assert_array_equal(h.boxes, [[0, 0, 40, 30], [0, 0, 40, 30]])
    assert examples["i.jpg"].image_id == 9
    assert index.num_boxes == 3 + 0 + 2 + 1
    assert index.report.images_kept == 4 and index.report.boxes_kept == 6


def test_voc_index_is_read_only(voc_root: Path) -> None:
    index = load_voc(voc_root, "small")
    with pytest.raises(ValueError):
        index.examples[1].boxes[0, 0] = 99.0


def test_voc_class_names_collected_and_sorted(voc_root: Path) -> None:
    index = load_voc(voc_root, "trainval")
    assert index.class_names == ["bird", "cat", "dog"]
    assert not any(r.startswith("unknown class") for r in index.report.counts)
    a = _by_name(index)["a.jpg"]
    np.testing.assert_array_equal(a.class_ids, [1, 2, 1, 0])


def test_voc_split_none_loads_all_xml_sorted(voc_root: Path) -> None:
    index = load_voc(voc_root, None, class_names=["cat", "dog"])
    # all xml except j (which does not exist): a..i, ids by sorted position
    ids = {Path(e.image_path).name: e.image_id for e in index.examples}
    assert ids == {"a.jpg": 1, "b.jpg": 2, "h.png": 8, "i.jpg": 9}
    assert index.report.counts["bad annotation"] == 1
    assert index.name == "VOCtiny all"


def test_voc_without_the_pixel_check_a_truncated_jpeg_is_still_caught(voc_root: Path) -> None:
    """g.jpg's header is fine, but it has no end-of-image marker: that one file is decoded, and fails."""
    index = load_voc(voc_root, "trainval", class_names=["cat", "dog"], check=ImageCheck("header"))
    assert index.report.counts["corrupt image"] == 3
    assert "g.jpg" not in _by_name(index) and "a.jpg" in _by_name(index)


def test_voc_nothing_usable_raises_helpful_error(voc_root: Path) -> None:
    with pytest.raises(ValueError) as info:
        load_voc(voc_root, "broken", name="broken-set")
    message = str(info.value)
    assert "broken-set" in message
    assert "no usable image" in message
    assert "broken.txt" in message
    assert "1 bad annotation (c.xml)" in message
    assert "2 corrupt images (e.xml, f.xml)" in message
    assert "1 missing image (d.xml)" in message


def test_voc_missing_split_lists_available(voc_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="small"):
        load_voc(voc_root, "nope")


def _voc_pair(
    folder: Path, stem: str, objects: list, image_name: str | None = None, xml_dir: Path | None = None
) -> None:
    """One xml (in ``xml_dir`` or ``folder``) and its image (in ``folder``)."""
    image_name = image_name or f"{stem}.jpg"
    (xml_dir or folder).mkdir(parents=True, exist_ok=True)
    (xml_dir or folder).joinpath(f"{stem}.xml").write_text(_voc_xml(image_name, objects))
    _write_image(folder / image_name)


def test_voc_xml_beside_images_without_split_file(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    _voc_pair(root, "p", [("cat", (1, 2, 11, 12))])
    _voc_pair(root, "q", [("dog", (0, 0, 40, 30)), ("cat", (5, 5, 6, 6))])
    # no <filename> match: the stem with another image suffix is found
    (root / "r.xml").write_text(_voc_xml("", [("dog", (2, 2, 4, 4))]))
    _write_image(root / "r.png", fmt="PNG")
    index = load_voc(root, None, annotations_dir="", images_dir="")
    assert index.name == "flat all"
    assert index.class_names == ["cat", "dog"]
    assert [(Path(e.image_path).name, e.image_id) for e in index.examples] == [("p.jpg", 1), ("q.jpg", 2), ("r.png", 3)]
    p, q, r = index.examples
    np.testing.assert_array_equal(p.boxes, [[1, 2, 11, 12]])
    np.testing.assert_array_equal(q.boxes, [[0, 0, 40, 30], [5, 5, 6, 6]])
    np.testing.assert_array_equal(q.class_ids, [1, 0])
    np.testing.assert_array_equal(r.boxes, [[2, 2, 4, 4]])
    assert index.report.counts == {}


def test_voc_custom_folder_names_with_split_file(tmp_path: Path) -> None:
    root = tmp_path / "custom"
    _voc_pair(root / "pics", "a", [("cat", (1, 1, 9, 9))], xml_dir=root / "xml")
    _voc_pair(root / "pics", "b", [("cat", (2, 2, 8, 8))], xml_dir=root / "xml")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("b\n")
    index = load_voc(root, "train", annotations_dir="xml", images_dir="pics")
    assert [Path(e.image_path) for e in index.examples] == [root / "pics" / "b.jpg"]
    np.testing.assert_array_equal(index.examples[0].boxes, [[2, 2, 8, 8]])
    with pytest.raises(FileNotFoundError, match="no Annotations/ directory"):
        load_voc(root, "train")  # the defaults still mean Annotations/ and JPEGImages/


def test_voc_split_named_folders(tmp_path: Path) -> None:
    root = tmp_path / "roboflow_voc"
    _voc_pair(root / "train", "t1", [("cat", (1, 1, 9, 9))])
    _voc_pair(root / "train", "t2", [("dog", (3, 3, 9, 9))])
    _voc_pair(root / "valid", "v1", [("dog", (4, 4, 8, 8))])
    train = load_voc(root, "train", annotations_dir="{split}", images_dir="{split}")
    valid = load_voc(root, "valid", ["cat", "dog"], annotations_dir="{split}", images_dir="{split}")
    assert [Path(e.image_path).name for e in train.examples] == ["t1.jpg", "t2.jpg"]
    assert train.class_names == ["cat", "dog"]
    assert [Path(e.image_path).name for e in valid.examples] == ["v1.jpg"]
    np.testing.assert_array_equal(valid.examples[0].class_ids, [1])
    with pytest.raises(ValueError, match="split name is needed"):
        load_voc(root, None, annotations_dir="{split}", images_dir="{split}")


# --------------------------------------------------------------------------------------
# SkipReport
# --------------------------------------------------------------------------------------


def test_skip_report_summary_and_log(caplog: pytest.LogCaptureFixture) -> None:
    report = SkipReport()
    report.images_kept, report.boxes_kept = 7, 20
    clean = report.summary("set")
    assert clean == "set: 7 images kept (20 boxes); no problems found"
    for name in ("a.xml", "b.xml", "a.xml", "c.xml", "d.xml"):
        report.add("zero-area box", name)
    report.add("clipped box", "e.xml")
    assert report.counts == {"zero-area box": 5, "clipped box": 1}
    assert report.details["zero-area box"] == ["a.xml", "b.xml", "c.xml"]
    assert report.num_skipped == 5
    line = report.summary("set")
    assert "\n" not in line
    assert line == (
        "set: 7 images kept (20 boxes); skipped 5 zero-area boxes (a.xml, b.xml, c.xml, ...); "
        "repaired 1 clipped box (e.xml)"
    )
    plurals = SkipReport()
    for reason in ("unknown class 'bird'", "unknown class 'bird'", "unknown class 'fish'", "size mismatch",
                   "size mismatch", "annotation of an unknown image id", "annotation of an unknown image id",
                   "image too large", "image too large", "missing annotation file", "missing annotation file"):
        plurals.add(reason)
    assert plurals.summary("p") == (
        "p: 0 images kept (0 boxes); skipped 2 boxes of unknown class 'bird', 1 box of unknown class 'fish', "
        "2 size mismatches, 2 annotations of an unknown image id, 2 images too large, 2 missing annotation files"
    )
    with caplog.at_level(logging.INFO, logger="t"):
        report.log(logging.getLogger("t"), "set")
        only_repairs = SkipReport()
        only_repairs.add("clipped box")
        only_repairs.log(logging.getLogger("t"), "other")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, line),
        (logging.INFO, "other: 0 images kept (0 boxes); repaired 1 clipped box"),
    ]


# --------------------------------------------------------------------------------------
# Real data: BCCD (VOC layout)
# --------------------------------------------------------------------------------------


def test_bccd_real_data(bccd_root: Path) -> None:
    root = bccd_root
    trainval = load_voc(root, "trainval", name="BCCD trainval")
    test = load_voc(root, "test", name="BCCD test")
    everything = load_voc(root, None, name="BCCD all")

    for index in (trainval, test, everything):
        assert index.class_names == ["Platelets", "RBC", "WBC"]
        assert all((e.width, e.height) == (640, 480) for e in index.examples)
        boxes = np.concatenate([e.boxes for e in index.examples])
        assert boxes.min() >= 0 and boxes[:, 2].max() <= 640 and boxes[:, 3].max() <= 480
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])

    assert (len(trainval), trainval.num_boxes) == (292, 3941)  # 3943 annotated, 2 zero-area
    assert (len(test), test.num_boxes) == (72, 945)
    assert (len(everything), everything.num_boxes) == (364, 4886)  # 4888 annotated
    counts = np.bincount(np.concatenate([e.class_ids for e in everything.examples]), minlength=3)
    assert counts.tolist() == [361, 4155 - 2, 372]

    # the only problems in BCCD: two degenerate RBC boxes; nothing else skipped or clipped
    assert test.report.counts == {}
    assert trainval.report.counts == {"zero-area box": 2}
    assert everything.report.counts == {"zero-area box": 2}
    assert everything.report.details["zero-area box"] == ["BloodImage_00338.xml", "BloodImage_00343.xml"]
    ids = {Path(e.image_path).stem: e.image_id for e in trainval.examples}
    assert sorted(ids.values()) == list(range(1, 293))
    assert ids["BloodImage_00000"] == 1


# --------------------------------------------------------------------------------------
# Real data: Aquarium (YOLO txt, Roboflow layout)
# --------------------------------------------------------------------------------------

AQUARIUM_CLASSES = ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]


def test_aquarium_real_data(aquarium_root: Path) -> None:
    train = load_yolo(aquarium_root, "train", AQUARIUM_CLASSES)
    assert train.class_names == AQUARIUM_CLASSES
    assert (len(train), train.num_boxes) == (448, 3324)  # as DATASET.md says; nothing skipped or clipped
    assert train.report.counts == {}
    counts = np.bincount(np.concatenate([e.class_ids for e in train.examples]), minlength=7)
    assert counts.tolist() == [1961, 385, 330, 175, 259, 78, 136]
    assert sum(e.num_boxes == 0 for e in train.examples) == 1  # the one empty label file, kept as background
    assert [e.image_id for e in train.examples] == list(range(1, 449))
    boxes = np.concatenate([e.boxes for e in train.examples])
    widths = np.array([e.width for e in train.examples for _ in range(e.num_boxes)])
    heights = np.array([e.height for e in train.examples for _ in range(e.num_boxes)])
    assert boxes.min() >= 0 and np.all(boxes[:, 2] <= widths) and np.all(boxes[:, 3] <= heights)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert max(e.width for e in train.examples) <= 1024 and max(e.height for e in train.examples) <= 1024

