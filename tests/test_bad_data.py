"""Annotation files that lie: each case is built here and must end in a clear error or a counted, named skip or
repair, never in boxes silently put on the wrong pixels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from centernet_tf.data.formats import load_coco, load_voc
from tests.voc_files import write_voc_xml

W, H = 40, 30


def _image(path: Path, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)


def _coco(tmp_path: Path, images: list[dict], annotations: list[dict]) -> Path:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "cell"}]}))
    return path


def _box(i: int, image_id: object, bbox: list[float]) -> dict:
    return {"id": i, "image_id": image_id, "category_id": 1, "bbox": bbox, "area": 1.0, "iscrowd": 0}


def test_duplicate_coco_image_ids_are_an_error_naming_them(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "a.jpg")
    _image(tmp_path / "img" / "b.jpg")
    images = [{"id": 7, "file_name": "a.jpg", "width": W, "height": H},
              {"id": 7, "file_name": "b.jpg", "width": W, "height": H}]
    path = _coco(tmp_path, images, [_box(1, 7, [1, 1, 5, 5])])
    with pytest.raises(ValueError, match=r"duplicate image ids in .*instances\.json: \[7\]; every image needs its own id"):
        load_coco(path, tmp_path / "img")


def test_coco_file_names_outside_the_image_folder_are_counted_skips(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "a.jpg")
    _image(tmp_path / "secret.jpg")
    images = [{"id": 1, "file_name": "a.jpg", "width": W, "height": H},
              {"id": 2, "file_name": "../secret.jpg", "width": W, "height": H},
              {"id": 3, "file_name": str(tmp_path / "secret.jpg"), "width": W, "height": H}]
    path = _coco(tmp_path, images, [_box(i, i, [1, 1, 5, 5]) for i in (1, 2, 3)])
    index = load_coco(path, tmp_path / "img")
    assert [e.image_id for e in index.examples] == [1]
    assert index.report.counts["file outside the image folder"] == 2
    assert "2 files outside the image folder (../secret.jpg" in index.report.summary()


def test_coco_annotations_of_unknown_images_are_counted(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "a.jpg")
    images = [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}]
    path = _coco(tmp_path, images, [_box(1, 1, [1, 1, 5, 5]), _box(2, 99, [1, 1, 5, 5]), _box(3, 98, [2, 2, 5, 5])])
    index = load_coco(path, tmp_path / "img")
    assert index.num_boxes == 1
    assert index.report.counts == {"annotation of an unknown image id": 2}
    assert "skipped 2 annotations of an unknown image id (image id 99, image id 98)" in index.report.summary()


def test_a_split_without_a_single_box_is_an_error(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "a.jpg")
    path = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}], [])
    with pytest.raises(ValueError, match=r"not one usable box in .*instances\.json \(1 images kept\): a detector can "
                                         r"be neither trained nor evaluated"):
        load_coco(path, tmp_path / "img")


def _voc(root: Path, stem: str, filename: str, boxes: list[tuple], size: tuple[int, int] = (W, H)) -> None:
    write_voc_xml(root / "Annotations" / f"{stem}.xml", [("cell", b) for b in boxes], filename, size)


def test_voc_xml_pairs_with_its_own_image_not_the_one_its_filename_names(tmp_path: Path) -> None:
    """A copied xml whose <filename> still names the original image must not put its boxes there."""
    _image(tmp_path / "JPEGImages" / "a.jpg")
    _image(tmp_path / "JPEGImages" / "b.jpg")
    _voc(tmp_path, "a", "a.jpg", [(1, 1, 10, 10)])
    _voc(tmp_path, "b", "a.jpg", [(20, 5, 30, 15)])  # copied from a.xml, filename not updated
    index = load_voc(tmp_path, None)
    by_image = {Path(e.image_path).name: e.boxes.tolist() for e in index.examples}
    assert by_image == {"a.jpg": [[1, 1, 10, 10]], "b.jpg": [[20, 5, 30, 15]]}
    assert index.report.counts == {}


def test_voc_filename_mode_stays_inside_the_image_folder(tmp_path: Path) -> None:
    _image(tmp_path / "JPEGImages" / "photo_a.jpg")
    _image(tmp_path / "elsewhere.jpg")
    _voc(tmp_path, "a", "photo_a.jpg", [(1, 1, 10, 10)])
    _voc(tmp_path, "b", "../elsewhere.jpg", [(1, 1, 10, 10)])
    _voc(tmp_path, "c", str(tmp_path / "elsewhere.jpg"), [(1, 1, 10, 10)])
    index = load_voc(tmp_path, None, match_images_by="filename")
    assert [Path(e.image_path).name for e in index.examples] == ["photo_a.jpg"]
    assert index.report.counts == {"file outside the image folder": 2}
    assert index.report.details["file outside the image folder"][0] == "b.xml (../elsewhere.jpg)"
    with pytest.raises(ValueError, match="match_images_by must be 'stem' or 'filename'"):
        load_voc(tmp_path, None, match_images_by="guess")


def test_voc_size_of_images_shrunk_after_labelling_rescales_every_box(tmp_path: Path) -> None:
    """Labelled at 800x600, the file now 400x300 (the reported case: 8 boxes dropped, 5 wrong ones kept)."""
    _image(tmp_path / "JPEGImages" / "a.jpg", size=(400, 300))
    boxes = [(x, y, x + 90, y + 70) for x in (10, 200, 400, 600) for y in (20, 400)]
    _voc(tmp_path, "a", "a.jpg", boxes, size=(800, 600))
    index = load_voc(tmp_path, None)
    (example,) = index.examples
    np.testing.assert_allclose(example.boxes, np.array(boxes, np.float32) / 2)
    assert index.report.counts == {"rescaled annotation": 1}
    assert "repaired 1 rescaled annotation (a.xml (annotated 800x600, image 400x300))" in index.report.summary()


def test_voc_split_lines_with_spaces_are_whole_names_and_bad_lines_are_named(tmp_path: Path) -> None:
    _image(tmp_path / "JPEGImages" / "my photo 1.jpg")
    _image(tmp_path / "JPEGImages" / "plain.jpg")
    _voc(tmp_path, "my photo 1", "my photo 1.jpg", [(1, 1, 10, 10)])
    _voc(tmp_path, "plain", "plain.jpg", [(2, 2, 10, 10)])
    main = tmp_path / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("my photo 1\nplain  1\n\nmy photo 2\n")  # the devkit's "name  1" works too
    index = load_voc(tmp_path, "train")
    assert sorted(Path(e.image_path).name for e in index.examples) == ["my photo 1.jpg", "plain.jpg"]
    assert index.report.details == {"missing annotation file": ["train.txt:4 'my photo 2'"]}


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_symlinked_files_inside_the_image_folder_are_read(tmp_path: Path) -> None:
    """Only what the annotation says is judged: a file symlinked from a cache (DVC does this) is the user's."""
    _image(tmp_path / "cache" / "x.jpg")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "x.jpg").symlink_to(tmp_path / "cache" / "x.jpg")
    images = [{"id": 2, "file_name": "x.jpg", "width": W, "height": H}]
    index = load_coco(_coco(tmp_path, images, [_box(2, 2, [1, 1, 5, 5])]), tmp_path / "img")
    assert index.num_boxes == 1 and index.report.counts == {}


def _phone_photo(source: Path, path: Path, orientation: int = 6) -> np.ndarray:
    """A real photo stored as a phone does: pixels sideways plus the EXIF tag that turns them upright.
    Returns the upright pixels as TensorFlow decodes the original."""
    from centernet_tf.data.pipeline import read_image

    upright = Image.open(source).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 = stored 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, quality=100, exif=exif.tobytes())
    return read_image(str(source)).numpy()


def test_exif_rotated_phone_photo_is_read_upright_everywhere(tmp_path: Path, aquarium_root: Path) -> None:
    """Labelled on the upright view (as browsers show it): training, evaluation and prediction all read that view."""
    from centernet_tf.data.pipeline import build_eval_dataset, read_image, read_image_file
    from centernet_tf.evaluation.metrics import detector_results  # noqa: F401  (reads through the same helper)

    source = sorted((aquarium_root / "train" / "images").glob("*.jpg"))[0]
    upright = _phone_photo(source, tmp_path / "JPEGImages" / "a.jpg")
    h, w = upright.shape[:2]
    box = (w // 4, h // 3, w // 2, h // 2)
    _voc(tmp_path, "a", "a.jpg", [box], size=(w, h))
    index = load_voc(tmp_path, None)
    (example,) = index.examples
    assert (example.width, example.height, example.orientation) == (w, h, 6)
    assert index.report.counts == {"EXIF-rotated image": 1}
    pixels = read_image(example.image_path, example.orientation).numpy()
    assert pixels.shape == upright.shape
    crop = (slice(box[1], box[3]), slice(box[0], box[2]))
    # What lies under the labelled box: the same pixels as the original (JPEG re-encoding aside), while the
    # stored, unrotated pixels there are something else entirely.
    assert np.abs(pixels[crop].astype(float) - upright[crop]).mean() < 3
    stored = read_image(example.image_path).numpy()
    assert stored.shape == (w, h, 3)
    assert np.abs(np.asarray(Image.fromarray(stored).resize((w, h)))[crop].astype(float) - upright[crop]).mean() > 10
    np.testing.assert_array_equal(read_image_file(example.image_path).numpy(), pixels)  # predict.py's reader
    batch = next(iter(build_eval_dataset(index, (64, 64), 1)))
    np.testing.assert_array_equal(batch["image_size"].numpy()[0], [h, w])


def test_exif_tag_on_pixels_labelled_unrotated_is_left_alone(tmp_path: Path, aquarium_root: Path) -> None:
    """An annotation whose size is the stored one was drawn on the stored pixels (older desktop tools)."""
    source = sorted((aquarium_root / "train" / "images").glob("*.jpg"))[0]
    upright = _phone_photo(source, tmp_path / "JPEGImages" / "a.jpg")
    h, w = upright.shape[:2]
    _voc(tmp_path, "a", "a.jpg", [(5, 5, 50, 40)], size=(h, w))  # the stored (sideways) size
    index = load_voc(tmp_path, None)
    (example,) = index.examples
    assert (example.width, example.height, example.orientation) == (h, w, 1)
    assert index.report.counts == {"image labelled unrotated": 1}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    from PIL import ImageOps

    from centernet_tf.data.pipeline import apply_exif_orientation

    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(tmp_path / "x.png", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "x.png")).convert("RGB"))
    np.testing.assert_array_equal(apply_exif_orientation(stored, orientation).numpy(), expected)


def _jpeg_claiming_size(path: Path, width: int, height: int) -> None:
    """A real JPEG whose frame header (SOF0) says ``width x height``: what a loader sees of a huge photo."""
    _image(path, size=(16, 16))
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def test_a_huge_jpeg_is_too_large_with_the_limit_and_how_to_raise_it(tmp_path: Path) -> None:
    _image(tmp_path / "JPEGImages" / "a.jpg")
    _jpeg_claiming_size(tmp_path / "JPEGImages" / "huge.jpg", 14000, 13000)
    _voc(tmp_path, "a", "a.jpg", [(1, 1, 10, 10)])
    _voc(tmp_path, "huge", "huge.jpg", [(1, 1, 10, 10)], size=(14000, 13000))
    index = load_voc(tmp_path, None)
    assert index.report.counts == {"image too large": 1}
    assert index.report.details["image too large"] == [
        "huge.xml (14000x13000 = 182 MP > 179 MP: raise data.max_image_pixels if the file is trusted)"
    ]


def test_boxes_all_of_other_classes_are_an_error_naming_both_lists(tmp_path: Path) -> None:
    """A model evaluated on another dataset: not mAP -1 but the two class lists."""
    _image(tmp_path / "JPEGImages" / "a.jpg")
    _voc(tmp_path, "a", "a.jpg", [(1, 1, 10, 10), (2, 2, 12, 12)])
    with pytest.raises(ValueError, match=r"every box is of a class outside the class list \['circle', 'square'\]: "
                                         r"found \['cell'\]"):
        load_voc(tmp_path, None, class_names=["circle", "square"])


@pytest.mark.parametrize("ids", [["a", "b", "c"], [1, "b", 3.5], [2**40, 2**40 + 1, 7], ["1", 1, "01"]],
                         ids=["strings", "mixed", "64_bit", "look_alike"])
def test_coco_image_ids_of_any_json_type_load_without_colliding(tmp_path: Path, ids: list) -> None:
    for k in range(3):
        _image(tmp_path / "img" / f"{k}.jpg")
    images = [{"id": i, "file_name": f"{k}.jpg", "width": W, "height": H} for k, i in enumerate(ids)]
    # Each image gets a box of its own size, so a mix-up would show in the boxes.
    annotations = [_box(k + 1, i, [1, 1, 5 + k, 5 + k]) for k, i in enumerate(ids)]
    index = load_coco(_coco(tmp_path, images, annotations), tmp_path / "img")
    assert len({e.image_id for e in index.examples}) == 3
    assert all(0 < e.image_id < 2**31 for e in index.examples)
    widths = {Path(e.image_path).name: float(e.boxes[0, 2] - e.boxes[0, 0]) for e in index.examples}
    assert widths == {"0.jpg": 5.0, "1.jpg": 6.0, "2.jpg": 7.0}


def test_a_class_without_any_box_is_named_and_its_ap_says_no_ground_truth(tmp_path: Path, caplog) -> None:
    import logging

    from centernet_tf.cli import format_metrics
    from centernet_tf.config import load_config
    from centernet_tf.data.loaders import load_split
    from centernet_tf.evaluation.metrics import coco_ground_truth, coco_metrics

    _image(tmp_path / "img" / "a.jpg")
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({  # Roboflow: the super-category is category 0 and has no box
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "annotations": [_box(1, 1, [2, 2, 10, 10])],
        "categories": [{"id": 0, "name": "cells"}, {"id": 1, "name": "cell"}],
    }))
    data = load_config(None, ["data.format=coco", f"data.train_annotations={path}",
                              f"data.train_images={tmp_path / 'img'}"]).data
    with caplog.at_level(logging.WARNING):
        index = load_split(data, "train")
    assert "1 of 2 classes have no box in the training split: cells." in caplog.text
    metrics = coco_metrics(coco_ground_truth(index), [{"image_id": 1, "category_id": 2, "bbox": [2, 2, 10, 10],
                                                       "score": 0.9}], list(index.class_names))
    report = format_metrics(metrics, "train")
    assert "AP[cells] = no ground truth" in report and "nan" not in report
    assert "AP[cell] = 1.0000" in report
