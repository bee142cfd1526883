"""Tests for centernet_tf.data.loaders: the source registry, load_split's three splits, configs and README."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from centernet_tf.config import ConfigError, DataConfig, load_config
from centernet_tf.data.index import DatasetIndex, Example, SkipReport
from centernet_tf.data.loaders import formats_markdown, get_source, load_split, register_source, source_names
from tests.voc_files import write_voc_xml

REPO = Path(__file__).resolve().parents[1]
W, H = 40, 30


def _write_image(path: Path, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path, "JPEG")


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------


def test_builtin_formats_are_registered_in_order() -> None:
    assert source_names() == ("shapes", "coco", "voc", "yolo", "tfds")
    assert get_source("shapes").splits == ("train", "val")
    assert get_source("yolo").splits == ("train", "val", "test")


def test_unknown_format_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown data.format 'kitti'; registered formats: shapes, coco, voc, yolo, tfds"):
        load_split(DataConfig(format="kitti"), "train")
    with pytest.raises(ConfigError, match=r"data.format must be one of shapes, coco, voc, yolo, tfds; got 'kitti'"):
        load_config(None, ["data.format=kitti"])
    assert load_config(None, ["data.format=yolo"]).data.format == "yolo"


def test_register_source_reaches_config_and_load_split(monkeypatch: pytest.MonkeyPatch) -> None:
    from centernet_tf.data.formats import registry

    monkeypatch.setattr(registry, "_SOURCES", dict(registry._SOURCES))  # leave the real registry untouched
    seen = []

    def load_memory(data: DataConfig, split: str, class_names: list[str] | None) -> DatasetIndex:
        seen.append((split, class_names))
        boxes = np.array([[1, 2, 3, 4]], np.float32)
        example = Example("x.jpg", 1, W, H, boxes, np.array([0], np.int32))
        return DatasetIndex([example], class_names or ["thing"], SkipReport(), f"memory {split}")

    register_source("memory", load_memory, description="test source", splits=("train", "val"))
    assert source_names()[-1] == "memory"
    config = load_config(None, ["data.format=memory", "data.class_names=[a]"])
    assert load_split(config.data, "val").name == "memory val"
    assert seen == [("val", ["a"])]
    assert "- **`memory`**: test source" in formats_markdown()
    with pytest.raises(ValueError, match="no 'test' split"):
        load_split(config.data, "test")
    with pytest.raises(ValueError, match="already registered"):
        register_source("memory", load_memory, description="again")
    with pytest.raises(ValueError, match="must include train and val"):
        register_source("other", load_memory, description="x", splits=("train",))


def test_bad_split_names() -> None:
    with pytest.raises(ValueError, match=r"split must be one of train, val, test; got 'valid'"):
        load_split(DataConfig(format="voc"), "valid")
    # checked before anything is generated or read
    with pytest.raises(ValueError, match=r"data.format 'shapes' has no 'test' split \(it has train, val\)"):
        load_split(DataConfig(format="shapes"), "test")


def test_readme_lists_exactly_the_registered_formats() -> None:
    text = (REPO / "README.md").read_text()
    begin = text.index("<!-- formats:begin")
    block = text[text.index("\n", begin) + 1 : text.index("<!-- formats:end -->")]
    assert block.strip() == formats_markdown(), "regenerate the README block from centernet_tf.data.formats.formats_markdown()"


# --------------------------------------------------------------------------------------
# load_split with a test split, for every file format
# --------------------------------------------------------------------------------------


def _yolo_split(root: Path, split: str, line: str) -> None:
    _write_image(root / split / "images" / f"{split}.jpg")
    (root / split / "labels").mkdir(parents=True)
    (root / split / "labels" / f"{split}.txt").write_text(line + "\n")


def test_yolo_three_splits_through_load_split(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    _yolo_split(root, "train", "1 0.5 0.5 0.5 0.5")  # 10..30, 7.5..22.5
    _yolo_split(root, "valid", "0 0.25 0.25 0.5 0.5")  # 0..20, 0..15
    _yolo_split(root, "test", "1 0.75 0.75 0.5 0.5")  # 20..40, 15..30
    data = DataConfig(
        format="yolo", root=str(root), train_split="train", val_split="valid", test_split="test", class_names=["a", "b"]
    )
    expected = {"train": [[10, 7.5, 30, 22.5]], "val": [[0, 0, 20, 15]], "test": [[20, 15, 40, 30]]}
    for split, boxes in expected.items():
        index = load_split(data, split)
        assert index.class_names == ["a", "b"]
        np.testing.assert_array_equal(index.examples[0].boxes, boxes)
    assert load_split(data, "test").name == "rf test"
    data.test_split = None
    with pytest.raises(ValueError, match="no test split configured: set data.test_split"):
        load_split(data, "test")
    data.train_split = "trainval"  # the VOC default names no YOLO folder here
    with pytest.raises(FileNotFoundError, match=r"split 'trainval'.*\['test', 'train', 'valid'\]"):
        load_split(data, "train")


def test_yolo_class_names_from_dataset_yaml_key(tmp_path: Path) -> None:
    root = tmp_path / "ul"
    _write_image(root / "images" / "val" / "v.jpg")
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "v.txt").write_text("0 0.5 0.5 1 1\n")
    (tmp_path / "pets.yaml").write_text(f"path: {root}\nval: images/val\nnames: {{0: cat}}\n")
    data = DataConfig(format="yolo", dataset_yaml=str(tmp_path / "pets.yaml"), val_split="val")
    index = load_split(data, "val")
    assert index.class_names == ["cat"] and len(index) == 1
    with pytest.raises(ValueError, match="needs data.root .* or data.dataset_yaml"):
        load_split(DataConfig(format="yolo", train_split="train"), "train")


def test_voc_test_split_and_folder_options(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    for stem in ("a", "b", "c"):
        write_voc_xml(root / "xml" / f"{stem}.xml", [("cell", (1, 2, 11, 12))], f"{stem}.jpg")
        _write_image(root / "img" / f"{stem}.jpg")
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("a\nb\n")
    (main / "holdout.txt").write_text("c\n")
    data = DataConfig(
        format="voc", root=str(root), train_split="train", val_split=None, annotations_dir="xml", images_dir="img"
    )
    with pytest.raises(ValueError, match="data.test_split"):
        load_split(data, "test")
    data.test_split = "holdout"
    test = load_split(data, "test", class_names=["cell"])
    assert [Path(e.image_path).name for e in test.examples] == ["c.jpg"] and test.name == "voc holdout"
    np.testing.assert_array_equal(test.examples[0].boxes, [[1, 2, 11, 12]])
    assert len(load_split(data, "train")) == 2
    assert load_split(data, "val").name == "voc all" and len(load_split(data, "val")) == 3  # null: every xml


def test_coco_test_split(tmp_path: Path) -> None:
    _write_image(tmp_path / "imgs" / "t.jpg")
    annotations = tmp_path / "test.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [{"id": 5, "file_name": "t.jpg", "width": W, "height": H}],
                "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4], "iscrowd": 0}],
                "categories": [{"id": 1, "name": "thing"}],
            }
        )
    )
    data = DataConfig(format="coco")
    with pytest.raises(ValueError, match="set data.test_annotations and data.test_images"):
        load_split(data, "test")
    data.test_annotations, data.test_images = str(annotations), str(tmp_path / "imgs")
    index = load_split(data, "test")
    np.testing.assert_array_equal(index.examples[0].boxes, [[1, 2, 4, 6]])
    data.test_images = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="data.test_images"):
        load_split(data, "test")


# --------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shapes", "bccd", "coco2017", "aquarium"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO / "configs" / f"{name}.yaml")
    assert config.data.format in source_names()


def test_aquarium_config_reads_every_split(aquarium_root: Path) -> None:
    config = load_config(REPO / "configs" / "aquarium.yaml", [f"data.root={aquarium_root}"])
    assert config.data.class_names == ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]
    val = load_split(config.data, "val")
    test = load_split(config.data, "test", class_names=val.class_names)
    assert (len(val), val.num_boxes) == (127, 909)
    assert (len(test), test.num_boxes) == (63, 582)  # 584 in the files: two have zero width and height
    assert test.report.counts == {"zero-area box": 2}
    most = max(e.num_boxes for index in (val, test) for e in index.examples)
    assert most <= config.data.max_objects
