"""CenterNet losses as serializable ``keras.losses.Loss`` subclasses.

Each loss returns one scalar for the whole batch: CenterNet normalises by the number of objects in the batch,
which is not a per-sample quantity, and Keras' reduction leaves a scalar unchanged.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from centernet_tf.targets import PACKED_TARGET_WIDTH


@keras.saving.register_keras_serializable(package="centernet_tf")
class HeatmapFocalLoss(keras.losses.Loss):
    """Penalty-reduced pixel-wise focal loss of CornerNet / CenterNet.

    ``y_pred`` is the heatmap after the sigmoid; it is clamped to ``[eps, 1 - eps]`` so ``log`` never sees 0.
    Negatives near a peak are down-weighted by ``(1 - y_true) ** beta``. The sum is divided by the number of
    peaks (``y_true == 1``) in the batch; with no peak at all only the negative term remains, undivided,
    exactly as the reference implementation does.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 4.0,
        eps: float = 1e-4,
        name: str = "heatmap_focal_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        pred = ops.clip(y_pred, self.eps, 1.0 - self.eps)
        positive = ops.cast(ops.equal(y_true, 1.0), pred.dtype)
        negative = 1.0 - positive
        pos_loss = ops.log(pred) * ops.power(1.0 - pred, self.alpha) * positive
        neg_weight = ops.power(1.0 - y_true, self.beta)
        neg_loss = ops.log(1.0 - pred) * ops.power(pred, self.alpha) * neg_weight * negative
        num_pos = ops.sum(positive)
        return -(ops.sum(pos_loss) + ops.sum(neg_loss)) / ops.maximum(num_pos, 1.0)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(alpha=self.alpha, beta=self.beta, eps=self.eps)
        return config


@keras.saving.register_keras_serializable(package="centernet_tf")
class RegressionL1Loss(keras.losses.Loss):
    """Masked L1 loss of a 2-channel regression map (``wh`` or ``offset``) at the objects' centres.

    ``y_true`` is ``[B, max_objects, 4]`` packed as ``(x, y, flat_index, mask)`` (see
    :func:`centernet_tf.targets.pack_regression_targets`); ``y_pred`` is the dense map ``[B, H, W, 2]``.
    The sum of absolute errors is divided by the number of regressed values (2 per object), as in the
    reference ``RegL1Loss``; no object gives 0.
    """

    def __init__(
        self, name: str = "regression_l1_loss", reduction: str = "sum_over_batch_size", **kwargs: Any
    ) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        batch = ops.shape(y_pred)[0]
        channels = ops.shape(y_pred)[-1]
        y_true = ops.reshape(y_true, (batch, -1, PACKED_TARGET_WIDTH))
        target = y_true[..., :2]
        indices = ops.cast(y_true[..., 2], "int32")
        mask = y_true[..., 3:4]
        flat_pred = ops.reshape(y_pred, (batch, -1, channels))
        pred = ops.take_along_axis(flat_pred, indices[..., None], axis=1)
        abs_error = ops.abs(pred - target) * mask
        return ops.sum(abs_error) / (2.0 * ops.sum(mask) + 1e-4)


def centernet_losses() -> dict[str, keras.losses.Loss]:
    """One loss per model output, keyed like the model's output dict."""
    return {
        "heatmap": HeatmapFocalLoss(name="heatmap"),
        "wh": RegressionL1Loss(name="wh"),
        "offset": RegressionL1Loss(name="offset"),
    }
