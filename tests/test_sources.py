"""Tests for centernet_tf.data.sources: every skip/repair rule, both formats, real BCCD data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from centernet_tf.data.sources import DatasetIndex, SkipReport, load_coco, load_voc

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
    parts = [f"<annotation><filename>{filename}</filename>"]
    parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, box in objects:
        parts.append(f"<object><name>{name}</name><difficult>0</difficult>")
        if box is not None:
            x1, y1, x2, y2 = box
            parts.append(
                f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>"
            )
        parts.append("</object>")
    parts.append("</annotation>")
    return "".join(parts)


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
    # h: filename points to a png; size in the xml is wrong (real size wins)
    xml("h", _voc_xml("h_photo.png", [("dog", (0, 0, 40, 30)), ("dog", (0, 0, 41, 30))], size=(100, 100)))
    _write_image(img / "h_photo.png", fmt="PNG")
    # i: filename in the xml does not exist -> falls back to <id>.jpg
    xml("i", _voc_xml("renamed.jpg", [("cat", (5, 5, 9, 9))]))
    _write_image(img / "i.jpg")

    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    # 'j' has no xml at all -> bad annotation
    (main / "trainval.txt").write_text("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n")
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
        "bad annotation": 2,  # c (malformed) and j (missing xml)
        "missing image": 1,
        "corrupt image": 3,  # e, f, g
        "size mismatch": 1,
    }
    details = index.report.details
    assert details["bad annotation"] == ["c.xml", "j.xml"]
    assert details["corrupt image"] == ["e.xml", "f.xml", "g.xml"]
    assert details["missing image"] == ["d.xml"]
    assert details["clipped box"] == ["a.xml", "h.xml"]

    examples = _by_name(index)
    assert sorted(examples) == ["a.jpg", "b.jpg", "h_photo.png", "i.jpg"]
    a = examples["a.jpg"]
    np.testing.assert_array_equal(
        a.boxes, np.array([[2, 3, 20, 25], [0, 10, 15, 30], [30, 0, 40, 12]], np.float32)
    )
    np.testing.assert_array_equal(a.class_ids, [0, 1, 0])
    assert a.boxes.dtype == np.float32 and a.class_ids.dtype == np.int32
    assert (a.width, a.height, a.image_id) == (W, H, 1)
    b = examples["b.jpg"]
    assert b.boxes.shape == (0, 4) and b.class_ids.shape == (0,) and b.image_id == 2
    h = examples["h_photo.png"]
    assert (h.width, h.height, h.image_id) == (W, H, 8)  # header size, not the xml's 100x100
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
    assert ids == {"a.jpg": 1, "b.jpg": 2, "h_photo.png": 8, "i.jpg": 9}
    assert index.report.counts["bad annotation"] == 1
    assert index.name == "VOCtiny all"


def test_voc_pixel_check_can_be_disabled(voc_root: Path) -> None:
    index = load_voc(voc_root, "trainval", class_names=["cat", "dog"], check_pixels=False)
    assert index.report.counts["corrupt image"] == 2  # g's header is fine
    assert "g.jpg" in _by_name(index)


def test_voc_nothing_usable_raises_helpful_error(voc_root: Path) -> None:
    with pytest.raises(ValueError) as info:
        load_voc(voc_root, "broken", name="broken-set")
    message = str(info.value)
    assert "broken-set" in message
    assert "no usable image" in message
    assert "broken.txt" in message
    assert "2 bad annotations (c.xml, j.xml)" in message
    assert "2 corrupt images (e.xml, f.xml)" in message
    assert "1 missing image (d.xml)" in message


def test_voc_missing_split_lists_available(voc_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="small"):
        load_voc(voc_root, "nope")


# --------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------


@pytest.fixture()
def coco_files(tmp_path: Path) -> tuple[Path, Path]:
    image_dir = tmp_path / "images"
    for name in ("p.jpg", "q.jpg", "s.jpg"):
        _write_image(image_dir / name)
    (image_dir / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    images = [
        {"id": 30, "file_name": "p.jpg", "width": W, "height": H},
        {"id": 10, "file_name": "q.jpg", "width": W, "height": H},
        {"id": 20, "file_name": "missing.jpg", "width": W, "height": H},
        {"id": 40, "file_name": "bad.jpg", "width": W, "height": H},
        {"id": 50, "file_name": "s.jpg", "width": 80, "height": H},
    ]
    # category ids deliberately unsorted and non-contiguous
    categories = [{"id": 7, "name": "c"}, {"id": 1, "name": "a"}, {"id": 3, "name": " b "}]

    def ann(i: int, image_id: int, cat: int, bbox: object, crowd: int = 0) -> dict:
        return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "area": 1.0, "iscrowd": crowd}

    annotations = [
        ann(1, 30, 1, [2, 3, 10, 12]),  # kept: 2,3,12,15 class a
        ann(2, 30, 3, [35, 20, 10, 20]),  # clipped: 35,20,40,30 class b
        ann(3, 30, 7, [5, 5, 4, 4], crowd=1),  # crowd
        ann(4, 30, 7, [5, 5, -4, 4]),  # inverted
        ann(5, 30, 7, [41, 5, 4, 4]),  # outside
        ann(6, 30, 7, [5, 5, 0, 4]),  # zero area
        ann(7, 30, 99, [5, 5, 4, 4]),  # unknown category id
        ann(8, 10, 7, [float("nan"), 5, 4, 4]),  # non-finite
        ann(9, 10, 7, [5, 5, 4]),  # malformed
        ann(10, 10, 7, [0, 0, 40, 30]),  # kept, class c
        ann(11, 20, 1, [1, 1, 4, 4]),  # image missing
        ann(12, 40, 1, [1, 1, 4, 4]),  # corrupt image
    ]
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return ann_file, image_dir


def test_coco_every_rule_counted_exactly(coco_files: tuple[Path, Path]) -> None:
    ann_file, image_dir = coco_files
    index = load_coco(ann_file, image_dir)
    assert index.name == "instances"
    assert index.class_names == ["a", "b", "c"]  # ascending category id 1, 3, 7
    assert index.report.counts == {
        "clipped box": 1,
        "crowd box": 1,
        "inverted box": 1,
        "box outside image": 1,
        "zero-area box": 1,
        "unknown class 'category_id=99'": 1,
        "non-finite box": 1,
        "malformed box": 1,
        "missing image": 1,
        "corrupt image": 1,
        "size mismatch": 1,
    }
    assert index.report.details["missing image"] == ["missing.jpg"]
    assert index.report.details["size mismatch"] == ["s.jpg"]
    assert [e.image_id for e in index.examples] == [10, 30, 50]  # sorted by id
    q, p, s = index.examples
    np.testing.assert_array_equal(p.boxes, [[2, 3, 12, 15], [35, 20, 40, 30]])
    np.testing.assert_array_equal(p.class_ids, [0, 1])
    np.testing.assert_array_equal(q.boxes, [[0, 0, 40, 30]])
    np.testing.assert_array_equal(q.class_ids, [2])
    assert s.boxes.shape == (0, 4) and (s.width, s.height) == (W, H)
    assert p.image_path == str(image_dir / "p.jpg")


def test_coco_class_names_by_name(coco_files: tuple[Path, Path]) -> None:
    ann_file, image_dir = coco_files
    index = load_coco(ann_file, image_dir, class_names=["c", "a"], name="sub")
    assert index.class_names == ["c", "a"]
    assert index.report.counts["unknown class 'b'"] == 1
    p = _by_name(index)["p.jpg"]
    np.testing.assert_array_equal(p.class_ids, [1])
    np.testing.assert_array_equal(_by_name(index)["q.jpg"].class_ids, [0])


def test_coco_nothing_usable_raises(tmp_path: Path) -> None:
    ann_file = tmp_path / "empty.json"
    ann_file.write_text(
        json.dumps(
            {
                "images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(1, 6)],
                "annotations": [],
                "categories": [{"id": 1, "name": "a"}],
            }
        )
    )
    with pytest.raises(ValueError, match=r"empty: no usable image .*5 listed.*5 missing images \(1\.jpg, 2\.jpg, 3\.jpg, \.\.\.\)"):
        load_coco(ann_file, tmp_path)


def test_coco_unparsable_file_raises_value_error(tmp_path: Path) -> None:
    ann_file = tmp_path / "broken.json"
    ann_file.write_text("{not json")
    with pytest.raises(ValueError, match="cannot parse COCO annotation file"):
        load_coco(ann_file, tmp_path)


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
