"""CenterNet's losses as pure functions plus :class:`CenterNetLoss`, which takes whole prediction and target dicts.

The regression losses need the objects' gather indices and mask next to their targets, so the loss sees the
whole target dict (``heatmap``, ``wh``, ``offset``, ``indices``, ``mask``) instead of Keras' one-``y_true``-per-
output contract; :meth:`centernet_tf.model.centernet.CenterNet.compute_loss` calls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from centernet_tf.model.targets import GAUSSIAN_RADII

#: The three loss terms, also the names of the model outputs they compare (and of their metrics + "_loss").
LOSS_TERMS = ("heatmap", "wh", "offset")
#: How box sizes are learned: ``"l1"`` (the paper: ``wh`` at the centre, L1 in output pixels, with a centre
#: ``offset``) or ``"giou_ttf"`` (TTFNet, Liu et al. 2020: distances to the four sides regressed at every
#: pixel of a Gaussian area around the centre, GIoU loss weighted by that Gaussian; no offset head).
BOX_LOSSES = ("l1", "giou_ttf")
#: The loss terms (and model outputs) of each box loss.
BOX_LOSS_TERMS = {"l1": LOSS_TERMS, "giou_ttf": ("heatmap", "wh")}


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


def giou_box_loss(pred_ltrb: Any, box_target: Any, weight: Any) -> Any:
    """TTFNet's box loss: ``sum(weight * (1 - GIoU)) / sum(weight)`` over the pixels of the output map.

    ``pred_ltrb`` ``[B, H, W, 4]``: distances from each pixel ``(x, y)`` (output-map units) to the left, top,
    right and bottom sides of its box; ``box_target`` ``[B, H, W, 4]`` the true ``x1, y1, x2, y2`` there (output
    units) and ``weight`` ``[B, H, W]`` (0 off the objects' Gaussian areas; see
    :func:`centernet_tf.model.targets.encode_box_targets`). GIoU is scale-free, so a 300-pixel box and a 10-pixel
    box weigh alike, unlike the L1 loss in pixels. Pixels of weight 0 add nothing, whatever their values.
    """
    pred = ops.cast(pred_ltrb, "float32")
    target = ops.cast(box_target, "float32")
    weight = ops.cast(weight, "float32")
    height, width = ops.shape(pred)[1], ops.shape(pred)[2]
    xs = ops.cast(ops.arange(width), "float32")[None, None, :]
    ys = ops.cast(ops.arange(height), "float32")[None, :, None]
    px1, py1 = xs - pred[..., 0], ys - pred[..., 1]
    px2, py2 = xs + pred[..., 2], ys + pred[..., 3]
    tx1, ty1, tx2, ty2 = (target[..., i] for i in range(4))
    pred_area = (px2 - px1) * (py2 - py1)
    target_area = (tx2 - tx1) * (ty2 - ty1)
    inter = ops.maximum(ops.minimum(px2, tx2) - ops.maximum(px1, tx1), 0.0) * ops.maximum(
        ops.minimum(py2, ty2) - ops.maximum(py1, ty1), 0.0
    )
    # Positive denominators everywhere: pixels of weight 0 hold zero boxes, and 0/0 would make NaN gradients.
    union = ops.maximum(pred_area + target_area - inter, 1e-6)
    enclosing = ops.maximum(
        (ops.maximum(px2, tx2) - ops.minimum(px1, tx1)) * (ops.maximum(py2, ty2) - ops.minimum(py1, ty1)), 1e-6
    )
    giou = inter / union - (enclosing - union) / enclosing
    total = cross_replica_sum(ops.sum(weight))
    return ops.sum((1.0 - giou) * weight) / (total + 1e-4)


@keras.saving.register_keras_serializable(package="centernet_tf")
class CenterNetLoss:
    """``total = heatmap_weight * focal + wh_weight * L1(wh) + offset_weight * L1(offset)`` (paper: 1, 0.1, 1).

    With ``box="giou_ttf"`` the ``wh`` term is :func:`giou_box_loss` on the dense ``box_target`` /
    ``box_weight`` targets (TTFNet weighs it 5) and there is no offset term. With several output stacks
    (Hourglass' intermediate supervision) each term is the mean over the stacks, as in the original code.

    ``gaussian_radius`` says how the heatmap targets it compares with are drawn (``cornernet``: the formula
    CornerNet and CenterNet use; ``exact``: its IoU argument solved correctly, tighter on large boxes;
    ``elliptic``: TTFNet's, one radius per axis in proportion to the box's sides); like
    ``box``, which also decides the targets, it is saved with the model.
    """

    def __init__(
        self,
        heatmap_weight: float = 1.0,
        wh_weight: float = 0.1,
        offset_weight: float = 1.0,
        focal_alpha: float = 2.0,
        focal_beta: float = 4.0,
        box: str = "l1",
        gaussian_radius: str = "cornernet",
    ) -> None:
        if box not in BOX_LOSSES:
            raise ValueError(f"box must be one of {', '.join(BOX_LOSSES)}, got {box!r}")
        if gaussian_radius not in GAUSSIAN_RADII:
            raise ValueError(f"gaussian_radius must be one of {', '.join(GAUSSIAN_RADII)}, got {gaussian_radius!r}")
        self.box = box
        self.gaussian_radius = gaussian_radius
        self.heatmap_weight = float(heatmap_weight)
        self.wh_weight = float(wh_weight)
        self.offset_weight = float(offset_weight)
        self.focal_alpha = float(focal_alpha)
        self.focal_beta = float(focal_beta)

    @property
    def term_names(self) -> tuple[str, ...]:
        """The loss terms, which are also the model outputs they compare."""
        return BOX_LOSS_TERMS[self.box]

    def terms(self, targets: Mapping[str, Any], predictions: Mapping[str, Any]) -> dict[str, Any]:
        """The unweighted terms of one output stack (``heatmap``, ``wh`` and, with the L1 box loss, ``offset``)."""
        heatmap = focal_loss(targets["heatmap"], predictions["heatmap"], self.focal_alpha, self.focal_beta)
        if self.box == "giou_ttf":
            return {"heatmap": heatmap,
                    "wh": giou_box_loss(predictions["wh"], targets["box_target"], targets["box_weight"])}
        indices, mask = targets["indices"], targets["mask"]
        return {
            "heatmap": heatmap,
            "wh": regression_l1_loss(predictions["wh"], targets["wh"], indices, mask),
            "offset": regression_l1_loss(predictions["offset"], targets["offset"], indices, mask),
        }

    def __call__(
        self, targets: Mapping[str, Any], predictions: Mapping[str, Any], stacks: Sequence[str] = ("",)
    ) -> dict[str, Any]:
        """``{"heatmap", "wh", "offset"}`` (the :attr:`term_names`, each averaged over ``stacks``) and their weighted sum ``"loss"``.

        ``stacks`` are the prefixes of each stack's output keys (``""`` is the final stack: ``"heatmap"``...).
        """
        totals: dict[str, Any] = {}
        for prefix in stacks:
            stack = {term: predictions[prefix + term] for term in self.term_names}
            for term, value in self.terms(targets, stack).items():
                totals[term] = totals.get(term, 0.0) + value / len(stacks)
        weights = {"heatmap": self.heatmap_weight, "wh": self.wh_weight, "offset": self.offset_weight}
        totals["loss"] = sum(weights[term] * totals[term] for term in self.term_names)
        return totals

    def get_config(self) -> dict[str, Any]:
        return {
            "heatmap_weight": self.heatmap_weight,
            "wh_weight": self.wh_weight,
            "offset_weight": self.offset_weight,
            "focal_alpha": self.focal_alpha,
            "focal_beta": self.focal_beta,
            "box": self.box,
            "gaussian_radius": self.gaussian_radius,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CenterNetLoss:
        return cls(**config)
