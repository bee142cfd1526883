"""The TensorFlow Datasets source, offline: a tiny detection dataset built and prepared here, read into the same
validated index; a dataset that is not prepared fails at once instead of trying to download."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets", reason='the tfds source needs pip install -e ".[tfds]"')

from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.formats import load_tfds  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402

H, W = 40, 60


class TinyDetection(tfds.core.GeneratorBasedBuilder):
    """Images with cats and dogs, a crowd box in the first: the shape of voc/2007 and coco/2017 features."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "objects": tfds.features.Sequence({
                "bbox": tfds.features.BBoxFeature(),
                "label": tfds.features.ClassLabel(names=["cat", "dog"]),
                "is_crowd": np.bool_,
            }),
        }))

    def _split_generators(self, dl_manager):  # noqa: ANN001, ANN202 - tfds' signature
        return {"train": self._generate_examples(3), "test": self._generate_examples(2)}

    def _generate_examples(self, count: int):  # noqa: ANN202
        for i in range(count):
            image = np.full((H, W, 3), 40 * i, np.uint8)
            yield i, {"image": image, "objects": {
                "bbox": [tfds.features.BBox(0.25, 0.1, 0.75, 0.5), tfds.features.BBox(0.0, 0.5, 0.5, 1.0)],
                "label": [i % 2, 1],
                "is_crowd": [False, i == 0],
            }}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("tfds")
    TinyDetection(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def test_a_prepared_dataset_loads_into_the_validated_index(prepared: Path, tmp_path: Path) -> None:
    index = load_tfds("tiny_detection", "train", tmp_path / "cache", data_dir=prepared)
    assert index.class_names == ["cat", "dog"] and len(index.examples) == 3
    first = index.examples[0]
    assert (first.width, first.height) == (W, H) and Path(first.image_path).is_file()
    np.testing.assert_allclose(first.boxes, [[6, 10, 30, 30]])  # normalised yx -> x1, y1, x2, y2 pixels
    np.testing.assert_array_equal(index.examples[1].class_ids, [1, 1])
    assert index.report.counts == {"crowd box": 1}
    again = load_tfds("tiny_detection", "train", tmp_path / "cache", data_dir=prepared, class_names=["dog", "cat"])
    np.testing.assert_array_equal(again.examples[1].class_ids, [0, 0])  # class order from the config


def test_the_config_reads_tfds_splits(prepared: Path, tmp_path: Path) -> None:
    config = load_config(None, ["data.format=tfds", "data.tfds_name=tiny_detection", f"data.tfds_data_dir={prepared}",
                                f"data.tfds_cache_dir={tmp_path}", "data.train_split=train", "data.val_split=test"])
    assert len(load_split(config.data, "val").examples) == 2


def test_a_dataset_that_is_not_prepared_fails_at_once(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"tfds dataset 'tiny_detection' is not prepared in .*: prepare it where"):
        load_tfds("tiny_detection", "train", tmp_path / "cache", data_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="has no split 'validation'"):
        load_tfds("tiny_detection", "validation", tmp_path / "cache", data_dir=tmp_path / "empty2", download=True)
    assert time.perf_counter() - started < 60
