"""CenterNet's losses as pure functions plus :class:`CenterNetLoss`, which takes whole prediction and target dicts.

The regression losses need the objects' gather indices and mask next to their targets, so the loss sees the
whole target dict (``heatmap``, ``wh``, ``offset``, ``indices``, ``mask``) instead of Keras' one-``y_true``-per-
output contract; :meth:`centernet_tf.model.CenterNet.compute_loss` calls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

#: The three loss terms, also the names of the model outputs they compare (and of their metrics + "_loss").
LOSS_TERMS = ("heatmap", "wh", "offset")


def cross_replica_sum(value: Any) -> Any:
    """``value`` summed over the replicas of the ``tf.distribute`` strategy running this step (itself outside one).

    The losses are normalised by counts of the whole global batch (positives, objects): a replica that divided
    by its own count would weigh an image with few objects like one with many, so two replicas would not train
    as one device does on the same batch.
    """
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce("sum", value)


def focal_loss(target: Any, pred: Any, alpha: float = 2.0, beta: float = 4.0, eps: float = 1e-4) -> Any:
    """Penalty-reduced pixel-wise focal loss of CornerNet / CenterNet over a batch of heatmaps.

    ``pred`` is the heatmap after the sigmoid; it is clamped to ``[eps, 1 - eps]`` so ``log`` never sees 0.
    Negatives near a peak are down-weighted by ``(1 - target) ** beta``. The sum is divided by the number of
    peaks (``target == 1``) in the batch; with no peak at all only the negative term remains, undivided,
    exactly as the reference implementation does. Under ``tf.distribute`` the batch is the global one: each
    replica divides its sum by the positives of all replicas, and the replicas' losses add up.
    """
    pred = ops.clip(ops.cast(pred, "float32"), eps, 1.0 - eps)
    target = ops.cast(target, "float32")
    positive = ops.cast(ops.equal(target, 1.0), pred.dtype)
    negative = 1.0 - positive
    pos_loss = ops.log(pred) * ops.power(1.0 - pred, alpha) * positive
    neg_loss = ops.log(1.0 - pred) * ops.power(pred, alpha) * ops.power(1.0 - target, beta) * negative
    num_pos = cross_replica_sum(ops.sum(positive))
    return -(ops.sum(pos_loss) + ops.sum(neg_loss)) / ops.maximum(num_pos, 1.0)


def regression_l1_loss(pred_map: Any, target: Any, indices: Any, mask: Any) -> Any:
    """Masked L1 loss of a dense ``[B, H, W, 2]`` map read at the objects' centres.

    ``target`` ``[B, K, 2]``, ``indices`` ``[B, K]`` int (flat ``y * W + x``), ``mask`` ``[B, K]`` (1 = object).
    The sum of absolute errors is divided by the number of regressed values (2 per object), as in the
    reference ``RegL1Loss``; no object gives 0. Under ``tf.distribute`` the count is the global batch's.
    """
    pred_map = ops.cast(pred_map, "float32")
    batch, channels = ops.shape(pred_map)[0], ops.shape(pred_map)[-1]
    flat_pred = ops.reshape(pred_map, (batch, -1, channels))
    pred = ops.take_along_axis(flat_pred, ops.cast(indices, "int32")[..., None], axis=1)
    mask = ops.cast(mask, "float32")[..., None]
    abs_error = ops.abs(pred - ops.cast(target, "float32")) * mask
    return ops.sum(abs_error) / (2.0 * cross_replica_sum(ops.sum(mask)) + 1e-4)


@keras.saving.register_keras_serializable(package="centernet_tf")
class CenterNetLoss:
    """``total = heatmap_weight * focal + wh_weight * L1(wh) + offset_weight * L1(offset)`` (paper: 1, 0.1, 1).

    With several output stacks (Hourglass' intermediate supervision) each term is the mean over the stacks, as
    in the original code.
    """

    def __init__(
        self,
        heatmap_weight: float = 1.0,
        wh_weight: float = 0.1,
        offset_weight: float = 1.0,
        focal_alpha: float = 2.0,
        focal_beta: float = 4.0,
    ) -> None:
        self.heatmap_weight = float(heatmap_weight)
        self.wh_weight = float(wh_weight)
        self.offset_weight = float(offset_weight)
        self.focal_alpha = float(focal_alpha)
        self.focal_beta = float(focal_beta)

    def terms(self, targets: Mapping[str, Any], predictions: Mapping[str, Any]) -> dict[str, Any]:
        """The unweighted ``heatmap``, ``wh`` and ``offset`` terms of one output stack."""
        indices, mask = targets["indices"], targets["mask"]
        return {
            "heatmap": focal_loss(targets["heatmap"], predictions["heatmap"], self.focal_alpha, self.focal_beta),
            "wh": regression_l1_loss(predictions["wh"], targets["wh"], indices, mask),
            "offset": regression_l1_loss(predictions["offset"], targets["offset"], indices, mask),
        }

    def __call__(
        self, targets: Mapping[str, Any], predictions: Mapping[str, Any], stacks: Sequence[str] = ("",)
    ) -> dict[str, Any]:
        """``{"heatmap", "wh", "offset"}`` (each averaged over ``stacks``) and their weighted sum ``"loss"``.

        ``stacks`` are the prefixes of each stack's output keys (``""`` is the final stack: ``"heatmap"``...).
        """
        totals: dict[str, Any] = {}
        for prefix in stacks:
            stack = {term: predictions[prefix + term] for term in LOSS_TERMS}
            for term, value in self.terms(targets, stack).items():
                totals[term] = totals.get(term, 0.0) + value / len(stacks)
        totals["loss"] = (
            self.heatmap_weight * totals["heatmap"]
            + self.wh_weight * totals["wh"]
            + self.offset_weight * totals["offset"]
        )
        return totals

    def get_config(self) -> dict[str, Any]:
        return {
            "heatmap_weight": self.heatmap_weight,
            "wh_weight": self.wh_weight,
            "offset_weight": self.offset_weight,
            "focal_alpha": self.focal_alpha,
            "focal_beta": self.focal_beta,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CenterNetLoss:
        return cls(**config)
