"""Tests for the synthetic shapes dataset: determinism, caching, atomicity and box correctness."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from centernet_tf.data import shapes
from centernet_tf.data.formats.shapes import build_shapes_index
from centernet_tf.data.shapes import SHAPE_CLASSES, ShapesPaths, generate_shapes_dataset

SMALL = dict(num_train=20, num_val=6, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> ShapesPaths:
    return generate_shapes_dataset(tmp_path_factory.mktemp("shapes") / "ds", **SMALL)


def _load(paths: ShapesPaths, split: str) -> dict:
    return json.loads(paths.split(split)[1].read_text())


def _boxes_by_image(coco: dict) -> dict[int, list[tuple[int, int, int, int]]]:
    out: dict[int, list[tuple[int, int, int, int]]] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert all(float(v).is_integer() for v in ann["bbox"])
        out[ann["image_id"]].append((int(x), int(y), int(x + w), int(y + h)))
    return out


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_coco_fields(dataset: ShapesPaths) -> None:
    root = dataset.train_images.parents[1]
    assert dataset.train_images == root / "images" / "train"
    assert dataset.val_annotations == root / "annotations" / "val.json"
    assert sorted(p.name for p in dataset.train_images.iterdir()) == [f"{i:06d}.jpg" for i in range(1, 21)]
    assert len(list(dataset.val_images.iterdir())) == 6
    coco = _load(dataset, "train")
    assert coco["categories"] == [
        {"id": 1, "name": "circle", "supercategory": "shape"},
        {"id": 2, "name": "square", "supercategory": "shape"},
        {"id": 3, "name": "triangle", "supercategory": "shape"},
    ]
    assert coco["images"][0] == {"id": 1, "file_name": "000001.jpg", "width": 128, "height": 128}
    ann = coco["annotations"][0]
    assert set(ann) == {"id", "image_id", "category_id", "bbox", "area", "iscrowd"}
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert all(a["iscrowd"] == 0 for a in coco["annotations"])
    # area is the drawn pixel count: at most the box area, and well above half of it for these shapes
    for a in coco["annotations"]:
        box_area = a["bbox"][2] * a["bbox"][3]
        assert 0.4 * box_area < a["area"] <= box_area
    with Image.open(dataset.train_images / "000001.jpg") as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (128, 128), "RGB")


def test_params_file_written_with_version_last(dataset: ShapesPaths) -> None:
    params = json.loads((dataset.train_images.parents[1] / "params.json").read_text())
    assert list(params)[-1] == "format_version"
    assert params == {
        "num_train": 20,
        "num_val": 6,
        "image_size": [128, 128],
        "min_objects": 1,
        "max_objects": 5,
        "min_size": 14,
        "max_size": 48,
        "seed": 3,
        "format_version": shapes.FORMAT_VERSION,
    }


def test_deterministic_bytes(tmp_path: Path, dataset: ShapesPaths) -> None:
    again = generate_shapes_dataset(tmp_path / "other", **SMALL)
    first = _all_files(dataset.train_images.parents[1])
    second = _all_files(again.train_images.parents[1])
    assert len(first) == 20 + 6 + 3
    assert first == second
    different = generate_shapes_dataset(tmp_path / "seed4", **{**SMALL, "seed": 4})
    assert different.train_annotations.read_bytes() != dataset.train_annotations.read_bytes()
    assert (different.train_images / "000001.jpg").read_bytes() != (dataset.train_images / "000001.jpg").read_bytes()


def _must_not_run(*args: object) -> None:
    raise AssertionError("dataset regenerated although it was cached")


def test_cached_then_regenerated_on_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    paths = generate_shapes_dataset(out, num_train=4, num_val=2)
    stamp = out / "params.json"
    image = paths.train_images / "000001.jpg"
    old = 1_000_000_000
    os.utime(stamp, (old, old))
    os.utime(image, (old, old))

    with monkeypatch.context() as patch:  # a cache hit must not even render
        patch.setattr(shapes, "_write_split", _must_not_run)
        assert generate_shapes_dataset(out, num_train=4, num_val=2) == paths
    assert stamp.stat().st_mtime == old and image.stat().st_mtime == old  # nothing rewritten

    generate_shapes_dataset(out, num_train=4, num_val=3)
    assert json.loads(stamp.read_text())["num_val"] == 3
    assert stamp.stat().st_mtime != old
    assert len(list(paths.val_images.iterdir())) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary leftovers


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_write = shapes._write_split

    def failing(root: Path, split: str, count: int, params: dict) -> None:
        calls.append(split)
        real_write(root, split, count, params)
        if split == "val":
            raise KeyboardInterrupt

    monkeypatch.setattr(shapes, "_write_split", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes_dataset(tmp_path / "ds", num_train=3, num_val=2)
    assert calls == ["train", "val"]
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a shapes dataset"):
        generate_shapes_dataset(out, num_train=2, num_val=1)
    assert (out / "precious.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


@pytest.mark.parametrize(
    "kwargs",
    [dict(min_size=50, max_size=40), dict(max_size=200), dict(min_objects=3, max_objects=2), dict(num_train=-1)],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="invalid shapes dataset arguments"):
        generate_shapes_dataset(tmp_path / "ds", **kwargs)


def test_content_statistics(dataset: ShapesPaths) -> None:
    coco = _load(dataset, "train")
    per_image = _boxes_by_image(coco)
    counts = [len(b) for b in per_image.values()]
    assert min(counts) >= 1 and max(counts) <= 5
    assert len(set(counts)) >= 3  # the number of objects varies
    classes = {a["category_id"] for a in coco["annotations"]}
    assert classes == {1, 2, 3}
    sides = np.array([(x2 - x1, y2 - y1) for boxes in per_image.values() for x1, y1, x2, y2 in boxes])
    assert sides.max() <= 48 and sides.min() >= 10  # triangles can be ~0.75 x base high
    assert sides.max() - sides.min() >= 20  # sizes vary
    overlapping = 0
    for boxes in per_image.values():
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        for i in range(len(boxes)):
            for j in range(i):
                iou = shapes._iou(boxes[i], boxes[j])
                assert iou <= shapes.MAX_IOU
                overlapping += iou > 0
    assert overlapping >= 1


def test_boxes_match_drawn_pixels(dataset: ShapesPaths) -> None:
    """For objects clear of others: each box edge touches object pixels and the ring just outside is background.

    Each pixel is placed on the line from the local background (mean of pixels 2-4 px
    outside) to the object colour (centre of the box): 0 = background, 1 = object.
    JPEG softens edges a little, hence the margins; a box off by one pixel fails clearly.
    """
    margin = 6
    checked = 0
    for split in ("train", "val"):
        image_dir, _ = dataset.split(split)
        coco = _load(dataset, split)
        for image in coco["images"]:
            with Image.open(image_dir / image["file_name"]) as im:
                px = np.asarray(im.convert("RGB"), dtype=np.float64)
            boxes = _boxes_by_image(coco)[image["id"]]
            for i, (x1, y1, x2, y2) in enumerate(boxes):
                if x1 < margin or y1 < margin or x2 > 128 - margin or y2 > 128 - margin:
                    continue
                if any(
                    not (b[2] <= x1 - margin or b[0] >= x2 + margin or b[3] <= y1 - margin or b[1] >= y2 + margin)
                    for j, b in enumerate(boxes)
                    if j != i
                ):
                    continue
                cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
                colour = np.median(px[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3), axis=0)
                sides = [  # (first line inside, first line outside, background further out)
                    (px[y1, x1:x2], px[y1 - 1, x1:x2], px[y1 - 5 : y1 - 2, x1:x2].mean(0)),
                    (px[y2 - 1, x1:x2], px[y2, x1:x2], px[y2 + 2 : y2 + 5, x1:x2].mean(0)),
                    (px[y1:y2, x1], px[y1:y2, x1 - 1], px[y1:y2, x1 - 5 : x1 - 2].mean(1)),
                    (px[y1:y2, x2 - 1], px[y1:y2, x2], px[y1:y2, x2 + 2 : x2 + 5].mean(1)),
                ]
                for inside, outside, background in sides:
                    direction = colour - background
                    scale = np.maximum((direction**2).sum(-1), 1e-6)
                    assert np.sqrt(scale).min() > 40  # the object stands out from its surroundings
                    frac_in = ((inside - background) * direction).sum(-1) / scale
                    frac_out = ((outside - background) * direction).sum(-1) / scale
                    assert frac_in.max() > 0.35, (split, image["file_name"], i)
                    assert frac_out.max() < 0.5, (split, image["file_name"], i)
                checked += 1
    assert checked >= 20


def test_shape_masks_are_tight() -> None:
    rng = np.random.default_rng(0)
    for class_id in range(len(SHAPE_CLASSES)):
        for size in (14, 15, 31, 48):
            mask = shapes._shape_mask(class_id, size, rng)
            assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
            assert max(mask.shape) == size  # diameter / side / triangle base


def test_loads_through_coco_loader_without_skips(dataset: ShapesPaths) -> None:
    for split, count in (("train", 20), ("val", 6)):
        index = build_shapes_index(dataset, split)
        coco = _load(dataset, split)
        assert index.name == f"shapes {split}"
        assert index.class_names == list(SHAPE_CLASSES)
        assert len(index.examples) == count
        assert index.report.counts == {}
        assert index.num_boxes == len(coco["annotations"])
        first = coco["annotations"][0]
        example = next(e for e in index.examples if e.image_id == first["image_id"])
        x, y, w, h = first["bbox"]
        np.testing.assert_array_equal(example.boxes[0], [x, y, x + w, y + h])
        assert example.class_ids[0] == first["category_id"] - 1
    with pytest.raises(ValueError, match="unknown shapes split"):
        build_shapes_index(dataset, "test")
