"""``model.size_prior``: the size head starts at the training boxes' median size (hand-computed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from centernet_tf.config import load_config
from centernet_tf.data.index import DatasetIndex, Example, SkipReport
from centernet_tf.train.build import model_from_config
from centernet_tf.train.size_prior import apply_size_prior, median_box_size

REPO = Path(__file__).resolve().parents[1]


def _index() -> DatasetIndex:
    def example(i: int, width: int, height: int, boxes: list[list[float]]) -> Example:
        return Example(f"{i}.jpg", i, width, height, np.array(boxes, np.float32).reshape(-1, 4),
                       np.zeros(len(boxes), np.int32))

    return DatasetIndex([
        example(0, 200, 100, [[0, 0, 100, 50]]),  # scale min(64/100, 64/200) / 4 = 0.08: 8 x 4
        example(1, 100, 100, [[0, 0, 50, 25], [10, 0, 35, 100]]),  # 0.16: 8 x 4 and 4 x 16
        example(2, 100, 100, []),  # no box: no vote
    ], ["thing"], SkipReport())


def test_median_box_size_is_taken_per_side_on_the_letterboxed_output_map() -> None:
    assert median_box_size(_index(), (64, 64), 4) == pytest.approx((8.0, 4.0))
    with pytest.raises(ValueError, match="no"):
        median_box_size(DatasetIndex([], ["thing"], SkipReport()), (64, 64), 4)


@pytest.mark.parametrize("box", ["l1", "giou_ttf"])
def test_a_new_model_predicts_the_median_size_everywhere(box: str) -> None:
    overrides = ["model.backbone=resnet10_slim", "model.backbone_weights=null", "model.input_size=[64,64]",
                 f"loss.box={box}"]
    image = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    plain = model_from_config(load_config(None, overrides), ["thing"], train_index=_index())
    primed = model_from_config(load_config(None, [*overrides, "model.size_prior=true"]), ["thing"], train_index=_index())
    expected = [8.0, 4.0] if box == "l1" else [4.0, 2.0, 4.0, 2.0]  # ltrb: half the size on each side
    sizes = primed(image)["wh"].numpy()
    np.testing.assert_allclose(sizes.reshape(-1, len(expected)).mean(0), expected, atol=0.05)
    assert np.abs(sizes - np.array(expected)).max() < 0.3  # the 1x1 kernels start near 0 (std 0.001)
    paper_start = 0.0 if box == "l1" else 4.0 * np.log(2.0)  # without it: 0, or TTF's scale x softplus(0)
    np.testing.assert_allclose(plain(image)["wh"].numpy(), paper_start, atol=0.3)


def test_a_size_prior_must_be_positive_and_is_off_unless_asked_for() -> None:
    model = model_from_config(load_config(None, ["model.backbone=resnet10_slim", "model.backbone_weights=null",
                                                 "model.input_size=[64,64]"]), ["thing"])
    with pytest.raises(ValueError, match="positive"):
        apply_size_prior(model, 0.0, 4.0)
    assert not load_config(None).model.size_prior  # the paper's zero start stays the default
    assert not load_config(REPO / "configs" / "photos.yaml").model.size_prior  # not better there (README)
