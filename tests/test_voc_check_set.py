"""``benchmarks/voc_check_set.py``: the VOC and COCO layouts of one photo folder hold the same boxes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from centernet_tf.data.formats.coco import load_coco
from centernet_tf.data.formats.voc import load_voc
from tests.voc_files import write_voc_xml

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "voc_check_set.py"


@pytest.fixture(scope="module")
def check_set() -> ModuleType:
    spec = importlib.util.spec_from_file_location("voc_check_set", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def photos(tmp_path: Path) -> tuple[Path, Path]:
    """Six 40x30 photos; photo 2 has an inverted box the reader drops, photo 5 (the 5th: test) two classes."""
    annotations, images = tmp_path / "src" / "annots", tmp_path / "src" / "images"
    images.mkdir(parents=True)
    for i in range(1, 7):
        Image.new("RGB", (40, 30), (i * 30, 0, 0)).save(images / f"p{i}.jpg")
        objects = [("cat", (2, 3, 20 + i, 25))]
        if i == 2:
            objects.append(("cat", (30, 10, 5, 20)))  # x2 < x1
        if i == 5:
            objects.append(("dog", (10, 1, 39, 29)))
        write_voc_xml(annotations / f"p{i}.xml", objects, size=(40, 30))
    (images / "p7.jpg").write_bytes((images / "p1.jpg").read_bytes())  # a photo without xml is left out
    return annotations, images


def test_voc_layout_puts_every_fifth_photo_in_test(check_set, photos, tmp_path: Path) -> None:
    splits = check_set.write_voc(*photos, tmp_path / "voc", test_every=5)
    assert splits == {"train": ["p1", "p2", "p3", "p4", "p6"], "test": ["p5"]}
    assert (tmp_path / "voc" / "ImageSets" / "Main" / "test.txt").read_text() == "p5\n"


def test_coco_layout_holds_the_boxes_the_voc_reader_keeps(check_set, photos, tmp_path: Path) -> None:
    kept = check_set.write_coco(*photos, tmp_path / "coco", test_every=5)
    check_set.write_voc(*photos, tmp_path / "voc", test_every=5)
    assert kept == {"train": 5, "test": 1}
    for split in ("train", "test"):
        voc = load_voc(tmp_path / "voc", split, ["cat", "dog"])
        coco = load_coco(tmp_path / "coco" / "annotations" / f"{split}.json", tmp_path / "coco" / "images")
        assert coco.class_names == ["cat", "dog"]  # the dog is in test only, and both jsons name it
        assert [Path(e.image_path).name for e in coco.examples] == [Path(e.image_path).name for e in voc.examples]
        for a, b in zip(coco.examples, voc.examples):
            np.testing.assert_allclose(a.boxes, b.boxes)
            np.testing.assert_array_equal(a.class_ids, b.class_ids)
    train = load_coco(tmp_path / "coco" / "annotations" / "train.json", tmp_path / "coco" / "images")
    assert train.num_boxes == 5  # the inverted box of p2 is not in the json
    np.testing.assert_allclose(train.examples[0].boxes, [[2, 3, 21, 25]])


def test_an_existing_output_is_never_overwritten(check_set, photos, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "taken").mkdir()
    argv = ["voc_check_set.py", "--annotations", str(photos[0]), "--images", str(photos[1]),
            "--output", str(tmp_path / "taken"), "--layout", "coco"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="exists already"):
        check_set.main()
    assert not any((tmp_path / "taken").iterdir())


def test_a_failed_build_leaves_nothing_behind(check_set, photos, tmp_path: Path, monkeypatch) -> None:
    # 6 photos, every 7th to test: no test photo, so the VOC reader stops the build half way
    argv = ["voc_check_set.py", "--annotations", str(photos[0]), "--images", str(photos[1]),
            "--output", str(tmp_path / "out" / "set"), "--layout", "coco", "--test-every", "7"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(ValueError):
        check_set.main()
    assert list((tmp_path / "out").iterdir()) == []  # neither the set nor its build folder
    argv[-1] = "5"
    check_set.main()  # the same output path now builds
    assert sorted(p.name for p in (tmp_path / "out" / "set").iterdir()) == ["annotations", "images"]
