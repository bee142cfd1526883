"""Tests for centernet_tf.data.formats: every skip/repair rule, all formats, real BCCD and Aquarium data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from centernet_tf.data.formats import load_coco, load_voc, load_yolo, yolo_label_path
from centernet_tf.data.image_check import ImageCheck
from centernet_tf.data.index import DatasetIndex, SkipReport

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
    assert index.report.details["size mismatch"] == ["s.jpg (annotated 80x30, image 40x30)"]
    assert [e.image_id for e in index.examples] == [10, 30]  # sorted by id; s (50) is not a plain resize
    q, p = index.examples
    np.testing.assert_array_equal(p.boxes, [[2, 3, 12, 15], [35, 20, 40, 30]])
    np.testing.assert_array_equal(p.class_ids, [0, 1])
    np.testing.assert_array_equal(q.boxes, [[0, 0, 40, 30]])
    np.testing.assert_array_equal(q.class_ids, [2])
    assert p.image_path == str(image_dir / "p.jpg")


def _index_facts(index: DatasetIndex) -> tuple:
    return ([(e.image_path, e.image_id, e.width, e.height, e.boxes.tolist(), e.class_ids.tolist())
             for e in index.examples], index.report.counts, index.report.details)


def test_coco_file_check_in_threads_gives_the_sequential_index(coco_files: tuple[Path, Path]) -> None:
    """Many images, checked by 1 and by 4 threads: the same examples, counts and details, in the same order."""
    ann_file, image_dir = coco_files
    data = json.loads(ann_file.read_text())
    for i in range(60):  # images alternately fine, missing and corrupt, after the fixture's own
        name = f"extra{i}.jpg"
        if i % 3 == 0:
            _write_image(image_dir / name)
        elif i % 3 == 1:
            (image_dir / name).write_bytes(b"\xff\xd8 truncated")
        data["images"].append({"id": 100 + i, "file_name": name, "width": W, "height": H})
        data["annotations"].append({"id": 100 + i, "image_id": 100 + i, "category_id": 1, "bbox": [1, 1, 9, 9],
                                    "area": 81.0, "iscrowd": 0})
    ann_file.write_text(json.dumps(data))
    sequential = _index_facts(load_coco(ann_file, image_dir, check=ImageCheck(workers=1)))
    assert _index_facts(load_coco(ann_file, image_dir, check=ImageCheck(workers=4))) == sequential
    assert sequential[1]["corrupt image"] == 1 + 20 and sequential[1]["missing image"] == 1 + 20
    assert len(sequential[0]) == 2 + 20


def test_coco_annotation_sizes_can_be_trusted_without_opening_the_files(
    coco_files: tuple[Path, Path]
) -> None:
    """``data.image_check: annotation_sizes``: the corrupt file with a stated size is kept (training's decoder
    will drop it), a missing one is still skipped, and the annotated size is taken as given (s.jpg is kept at
    its stated 80x30); an image without a stated size is still opened."""
    ann_file, image_dir = coco_files
    index = load_coco(ann_file, image_dir, check=ImageCheck("annotation_sizes"))
    assert index.report.counts["missing image"] == 1
    assert "corrupt image" not in index.report.counts and "size mismatch" not in index.report.counts
    assert {e.image_id: (e.width, e.height) for e in index.examples} == {10: (W, H), 30: (W, H), 40: (W, H),
                                                                         50: (80, H)}
    data = json.loads(ann_file.read_text())
    for image in data["images"]:
        del image["width"], image["height"]
    ann_file.write_text(json.dumps(data))
    index = load_coco(ann_file, image_dir)
    assert index.report.counts["corrupt image"] == 1 and [e.image_id for e in index.examples] == [10, 30, 50]


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
