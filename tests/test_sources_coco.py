"""Tests for the COCO JSON source: every skip/repair rule, threaded file checks, trusted sizes, class names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from centernet_tf.data.formats import load_coco
from centernet_tf.data.image_check import ImageCheck
from centernet_tf.data.index import DatasetIndex
from tests.test_sources import H, W, _by_name, _write_image

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
