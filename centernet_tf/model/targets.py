"""CenterNet training targets, built with TensorFlow ops so they run inside ``tf.data``.

Semantics follow the original ``ctdet`` sampler of CenterNet (Zhou et al., 2019): boxes are scaled to the
output map, clipped to ``[0, map_w - 1] x [0, map_h - 1]``, and every object with positive size gets a Gaussian
peak at its integer centre, its size (``wh``) and the sub-pixel offset of its centre, all on the output map.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

# How the heatmap peaks are sized (see ``encode_targets``); the loss and the config validate against this tuple.
GAUSSIAN_RADII = ("cornernet", "exact", "elliptic")


def gaussian_radius(height: Any, width: Any, min_overlap: float = 0.7, exact: bool = False) -> tf.Tensor:
    """Radius of the Gaussian peak for a box of ``height`` x ``width`` (on the output map).

    The radius is chosen so that a box whose corners are off by ``r`` still overlaps the true box with IoU
    ``min_overlap``. With ``exact=False`` this is the formula of CornerNet, which CenterNet copied verbatim
    and which all published CenterNet results use. It has a known quirk: each of its three quadratics takes
    ``(b + sqrt(b^2 - 4ac)) / 2`` instead of the smaller root ``(b - sqrt(...)) / (2a)``, so the radius is
    larger than the IoU argument says (several times so for big boxes). Keep it for parity with the paper.
    ``exact=True`` solves the three cases (both corners inwards, both outwards, one corner shifted) correctly
    and returns the smallest root; it gives tighter peaks.
    Works on scalars or tensors (element-wise).
    """
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    o = tf.constant(min_overlap, tf.float32)
    if not exact:
        b1 = h + w
        c1 = w * h * (1.0 - o) / (1.0 + o)
        r1 = (b1 + tf.sqrt(b1 * b1 - 4.0 * c1)) / 2.0
        b2 = 2.0 * (h + w)
        c2 = (1.0 - o) * w * h
        r2 = (b2 + tf.sqrt(b2 * b2 - 16.0 * c2)) / 2.0
        a3 = 4.0 * o
        b3 = -2.0 * o * (h + w)
        c3 = (o - 1.0) * w * h
        r3 = (b3 + tf.sqrt(b3 * b3 - 4.0 * a3 * c3)) / 2.0
        return tf.minimum(tf.minimum(r1, r2), r3)
    # One corner shifted by (r, r): (w-r)(h-r) / (2wh - (w-r)(h-r)) >= o.
    s = h + w
    r_shift = (s - tf.sqrt(s * s - 4.0 * w * h * (1.0 - o) / (1.0 + o))) / 2.0
    # Both corners inwards: (w-2r)(h-2r) / wh >= o.
    r_in = (2.0 * s - tf.sqrt(4.0 * s * s - 16.0 * w * h * (1.0 - o))) / 8.0
    # Both corners outwards: wh / ((w+2r)(h+2r)) >= o.
    r_out = (-2.0 * s + tf.sqrt(4.0 * s * s + 16.0 * w * h * (1.0 / o - 1.0))) / 8.0
    return tf.minimum(tf.minimum(r_shift, r_in), r_out)


def encode_targets(
    boxes: Any,
    class_ids: Any,
    input_size: tuple[int, int],
    num_classes: int,
    stride: int = 4,
    max_objects: int = 128,
    min_overlap: float = 0.7,
    radius: str = "cornernet",
    box_targets: bool = False,
) -> dict[str, tf.Tensor]:
    """Build the CenterNet targets of one image.

    Args:
      boxes: float ``[N, 4]`` as ``x1, y1, x2, y2`` in input-image pixels (after letterboxing).
      class_ids: int ``[N]`` in ``[0, num_classes)``.
      input_size: ``(height, width)`` of the network input; both divisible by ``stride``.
      radius: the heatmap peaks' radius (the config's ``loss.gaussian_radius``): ``cornernet`` (the paper's, :func:`gaussian_radius`),
        ``exact`` (its IoU argument solved) or ``elliptic`` (TTFNet: ``TTF_GAUSSIAN_AREA`` times the half-width
        and half-height, one sigma per axis, so the heatmap itself tells wide boxes from tall ones).
    Returns a dict with
      ``heatmap`` ``[H/stride, W/stride, num_classes]``: per class, the element-wise max of the objects' Gaussians;
      ``wh`` and ``offset`` ``[max_objects, 2]``: box size and centre offset on the output map (``x, y`` order);
      ``indices`` ``[max_objects]`` int32: flat ``y * map_w + x`` of each integer centre;
      ``mask`` ``[max_objects]`` float32: 1 for a real object;
      ``num_objects`` and ``num_dropped``: objects kept, and objects with positive size that did not fit in
      ``max_objects`` (the first ``max_objects`` are kept; degenerate boxes never take a slot);
      with ``box_targets``, also ``box_target`` and ``box_weight`` of :func:`encode_box_targets`.
    Eager on numpy input, and graph-safe inside ``tf.data`` (no ``py_function``).
    """
    map_h, map_w = int(input_size[0]) // stride, int(input_size[1]) // stride
    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4]) / float(stride)
    class_ids = tf.reshape(tf.cast(class_ids, tf.int32), [-1])
    x1 = tf.clip_by_value(boxes[:, 0], 0.0, map_w - 1.0)
    y1 = tf.clip_by_value(boxes[:, 1], 0.0, map_h - 1.0)
    x2 = tf.clip_by_value(boxes[:, 2], 0.0, map_w - 1.0)
    y2 = tf.clip_by_value(boxes[:, 3], 0.0, map_h - 1.0)
    w = x2 - x1
    h = y2 - y1
    valid = (w > 0.0) & (h > 0.0) & (class_ids >= 0) & (class_ids < num_classes)
    valid_idx = tf.where(valid)[:, 0]
    num_valid = tf.shape(valid_idx)[0]
    keep_idx = valid_idx[:max_objects]
    num_kept = tf.shape(keep_idx)[0]

    def take(t: tf.Tensor) -> tf.Tensor:
        return tf.gather(t, keep_idx)

    x1, y1, x2, y2, w, h, cls = map(take, (x1, y1, x2, y2, w, h, class_ids))
    cx = (x1 + x2) / 2.0
    cy = (y1 + y2) / 2.0
    # Centres are >= 0 after clipping, so flooring equals the original's int32 truncation.
    cx_int = tf.floor(cx)
    cy_int = tf.floor(cy)
    if radius == "elliptic":
        x_radius, y_radius = elliptic_radii(w, h)
    elif radius in ("cornernet", "exact"):
        r = gaussian_radius(tf.math.ceil(h), tf.math.ceil(w), min_overlap, exact=radius == "exact")
        x_radius = y_radius = tf.maximum(0.0, tf.floor(r))
    else:
        raise ValueError(f"radius must be one of {', '.join(GAUSSIAN_RADII)}, got {radius!r}")

    heatmap = _draw_gaussians(cx_int, cy_int, x_radius, y_radius, cls, map_h, map_w, num_classes)
    dense = encode_box_targets(x1, y1, x2, y2, cx_int, cy_int, map_h, map_w, stride) if box_targets else {}

    pad = [[0, max_objects - num_kept]]
    wh = tf.pad(tf.stack([w, h], axis=-1), pad + [[0, 0]])
    offset = tf.pad(tf.stack([cx - cx_int, cy - cy_int], axis=-1), pad + [[0, 0]])
    indices = tf.pad(tf.cast(cy_int, tf.int32) * map_w + tf.cast(cx_int, tf.int32), pad)
    mask = tf.pad(tf.ones([num_kept], tf.float32), pad)
    return {
        "heatmap": heatmap,
        "wh": tf.ensure_shape(wh, [max_objects, 2]),
        "offset": tf.ensure_shape(offset, [max_objects, 2]),
        "indices": tf.ensure_shape(indices, [max_objects]),
        "mask": tf.ensure_shape(mask, [max_objects]),
        "num_objects": num_kept,
        "num_dropped": num_valid - num_kept,
        **dense,
    }


#: TTFNet's share of a box's half-size covered by its Gaussian area (``alpha = beta = 0.54`` in its paper).
TTF_GAUSSIAN_AREA = 0.54


def encode_box_targets(
    x1: tf.Tensor, y1: tf.Tensor, x2: tf.Tensor, y2: tf.Tensor, cx_int: tf.Tensor, cy_int: tf.Tensor,
    map_h: int, map_w: int, stride: int, area: float = TTF_GAUSSIAN_AREA,
) -> dict[str, tf.Tensor]:
    """Dense box targets of TTFNet (Liu et al. 2020) for the ``giou_ttf`` box loss, from boxes on the output map.

    Each object owns the pixels of an elliptic Gaussian around its integer centre, truncated at ``area`` times
    its half-width and half-height (sigma = (2 r + 1) / 6 per axis); where areas overlap the smaller box wins,
    as TTFNet draws the large ones first. ``box_target`` ``[H, W, 4]``: the owner's ``x1, y1, x2, y2`` (output
    units; 0 elsewhere). ``box_weight`` ``[H, W]``: the owner's Gaussian value normalised to sum to
    ``log(box area in input pixels)`` over its whole Gaussian, so every object weighs by its log-area however
    many pixels regress it (TTFNet's ``log`` area weighting).
    """
    gaussian = _gaussians(cx_int, cy_int, *elliptic_radii(x2 - x1, y2 - y1, area), map_h, map_w)
    box_area = (x2 - x1) * (y2 - y1) * float(stride * stride)
    # A padding object that owns nothing keeps argmin defined when there are no objects.
    gaussian = tf.concat([gaussian, tf.zeros([1, map_h, map_w])], axis=0)
    areas = tf.concat([box_area, [float("inf")]], axis=0)
    owner = tf.argmin(tf.where(gaussian > 0.0, areas[:, None, None], float("inf")), axis=0, output_type=tf.int32)
    owned = tf.reduce_any(gaussian > 0.0, axis=0)
    boxes = tf.concat([tf.stack([x1, y1, x2, y2], axis=-1), tf.zeros([1, 4])], axis=0)
    log_area = tf.math.log(tf.maximum(tf.concat([box_area, [1.0]], axis=0), 1.0))
    norm = log_area / tf.maximum(tf.reduce_sum(gaussian, axis=[1, 2]), 1e-12)
    owner_gaussian = tf.gather(tf.transpose(gaussian, [1, 2, 0]), owner, batch_dims=2)
    weight = tf.where(owned, owner_gaussian * tf.gather(norm, owner), 0.0)
    box_target = tf.where(owned[..., None], tf.gather(boxes, owner), 0.0)
    return {"box_target": box_target, "box_weight": weight}


def elliptic_radii(width: tf.Tensor, height: tf.Tensor, area: float = TTF_GAUSSIAN_AREA) -> tuple[tf.Tensor, tf.Tensor]:
    """TTFNet's per-axis radii of a box's Gaussian: ``floor(area * half-width)`` and ``floor(area * half-height)``."""
    return tf.floor(width / 2.0 * area), tf.floor(height / 2.0 * area)


def _gaussians(
    cx: tf.Tensor, cy: tf.Tensor, x_radius: tf.Tensor, y_radius: tf.Tensor, map_h: int, map_w: int
) -> tf.Tensor:
    """``[N, H, W]``: one Gaussian per object at its integer centre, sigma = (2 r + 1) / 6 per axis, zero
    outside ``|dx| <= x_radius, |dy| <= y_radius`` (a round peak when both radii are equal)."""
    ys = tf.range(map_h, dtype=tf.float32)[None, :, None]
    xs = tf.range(map_w, dtype=tf.float32)[None, None, :]
    dx = xs - cx[:, None, None]
    dy = ys - cy[:, None, None]
    rx, ry = x_radius[:, None, None], y_radius[:, None, None]
    sx, sy = (2.0 * rx + 1.0) / 6.0, (2.0 * ry + 1.0) / 6.0
    inside = (tf.abs(dx) <= rx) & (tf.abs(dy) <= ry)
    return tf.where(inside, tf.exp(-dx * dx / (2.0 * sx * sx) - dy * dy / (2.0 * sy * sy)), 0.0)


def _draw_gaussians(
    cx: tf.Tensor,
    cy: tf.Tensor,
    x_radius: tf.Tensor,
    y_radius: tf.Tensor,
    class_ids: tf.Tensor,
    map_h: int,
    map_w: int,
    num_classes: int,
) -> tf.Tensor:
    """Render one truncated Gaussian per object and combine them per class with element-wise max.

    Vectorised over objects (``[N, H, W]`` intermediate, never ``[N, H, W, C]``) so 80-class data stays cheap.
    """
    g = _gaussians(cx, cy, x_radius, y_radius, map_h, map_w)
    per_class = tf.math.unsorted_segment_max(g, class_ids, num_segments=num_classes)
    # Classes with no object come back as the lowest float; they are all-zero maps.
    per_class = tf.maximum(per_class, 0.0)
    return tf.transpose(per_class, [1, 2, 0])


#: What ``model.fit`` consumes as ``y``: everything :meth:`centernet_tf.model.centernet.CenterNet.compute_loss` reads
#: (the dense ``box_target`` / ``box_weight`` too when they were encoded).
TARGET_KEYS = ("heatmap", "wh", "offset", "indices", "mask", "box_target", "box_weight")


def keras_targets(targets: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The ``y`` dict of ``model.fit``: heatmap, wh, offset, int32 indices and mask (no bookkeeping counts)."""
    return {key: targets[key] for key in TARGET_KEYS if key in targets}
