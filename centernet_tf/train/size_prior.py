"""Start the box-size head at the training boxes' median size instead of 0 (``model.size_prior``).

Why: the paper's size head starts at 0 and its L1 loss only sees the sign of each error. While every predicted
width and height is still below its target, the width and height channels get the same gradient, grow the same
way, and end as multiples of one feature: on the kangaroo check set (configs/photos.yaml, 92 epochs) the
trained head gave width / height = 0.93 for every object (true 0.25-2.7; the two 1x1 kernels' cosine 0.9995),
and the elongated kangaroos were the ones with no box at IoU >= 0.5. Starting at the median size, the errors'
signs differ between the channels from the first step. The same idea as the heatmap's prior bias
(:data:`~centernet_tf.model.centernet.HEATMAP_BIAS_INIT`).

Measured, it is not enough, so it is an option: in the same 60 minutes (65 epochs on a slower machine
than the 92 above) the width/height ratios did spread (sd of the log-ratio 0.51, true 0.50; kernels' cosine
0.93) but did not follow the objects' (correlation -0.01), and test mAP@0.5 was 0.627 against 0.682.
"""

from __future__ import annotations

import logging

import numpy as np

from centernet_tf.data.index import DatasetIndex
from centernet_tf.data.letterbox import letterbox_geometry
from centernet_tf.model.centernet import TTF_DISTANCE_SCALE, CenterNet

logger = logging.getLogger(__name__)


def median_box_size(index: DatasetIndex, input_size: tuple[int, int], stride: int) -> tuple[float, float]:
    """Median width and height of the boxes of ``index`` on the output map: letterboxed to ``input_size``
    (height, width), divided by ``stride``. ``ValueError`` when the index has no box."""
    widths, heights = [], []
    for example in index.examples:
        if not example.num_boxes:
            continue
        scale = letterbox_geometry(example.height, example.width, input_size)[0] / stride
        boxes = np.asarray(example.boxes, np.float64).reshape(-1, 4)
        widths.append((boxes[:, 2] - boxes[:, 0]) * scale)
        heights.append((boxes[:, 3] - boxes[:, 1]) * scale)
    if not widths:
        raise ValueError("model.size_prior needs boxes in the training split; it has none")
    return float(np.median(np.concatenate(widths))), float(np.median(np.concatenate(heights)))


def apply_size_prior(model: CenterNet, width: float, height: float) -> None:
    """Set the bias of every stack's size head so that it predicts ``width`` x ``height`` (output pixels)
    before training: ``wh`` directly (``loss.box: l1``), or the four side distances ``w/2, h/2, w/2, h/2``
    through the head's scaled softplus (``giou_ttf``)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"a size prior must be positive, got {width} x {height}")
    for layer in model.size_output_layers:
        if layer.filters == 2:
            bias = np.array([width, height])
        else:  # softplus(b) * scale = d  <=>  b = log(exp(d / scale) - 1)
            distances = np.array([width, height, width, height]) / 2 / TTF_DISTANCE_SCALE
            bias = distances + np.log(-np.expm1(-distances))
        layer.bias.assign(bias.astype(layer.bias.dtype))
    logger.info("Box-size head starts at the training boxes' median size, %.1f x %.1f output pixels", width, height)
