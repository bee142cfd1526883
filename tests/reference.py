"""Plain numpy reference implementations, written from the papers, that the TensorFlow code is tested against.

They are deliberately loop-based and close to the original CornerNet / CenterNet code paths (draw a
``(2r+1)`` Gaussian patch, paste it with ``np.maximum``), so they share no logic with the vectorised library.
"""

from __future__ import annotations

import math

import numpy as np


def gaussian_radius_cornernet(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet's ``gaussian_radius`` as published (with its root quirk)."""
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def iou_after_shift(height: float, width: float, r: float, case: str) -> float:
    """IoU between a ``width x height`` box and the same box with its corners moved by ``r``."""
    area = width * height
    if case == "inward":
        return max(width - 2 * r, 0) * max(height - 2 * r, 0) / area
    if case == "outward":
        return area / ((width + 2 * r) * (height + 2 * r))
    inter = max(width - r, 0) * max(height - r, 0)
    return inter / (2 * area - inter)


def gaussian_patch(radius: int) -> np.ndarray:
    diameter = 2 * radius + 1
    sigma = diameter / 6
    m = (diameter - 1) / 2
    y, x = np.ogrid[-m : m + 1, -m : m + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g


def draw_gaussian(heatmap: np.ndarray, center: tuple[int, int], radius: int) -> None:
    """Paste a Gaussian at integer ``center`` (x, y) into ``heatmap`` ``[H, W]`` with element-wise max."""
    g = gaussian_patch(radius)
    x, y = center
    height, width = heatmap.shape
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    region = heatmap[y - top : y + bottom, x - left : x + right]
    patch = g[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(region, patch, out=region)


def encode_targets_reference(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    input_size: tuple[int, int],
    num_classes: int,
    stride: int = 4,
    max_objects: int = 128,
) -> dict[str, np.ndarray]:
    """The CenterNet ``ctdet`` targets for one image; degenerate boxes take no slot."""
    out_h, out_w = input_size[0] // stride, input_size[1] // stride
    heatmap = np.zeros((num_classes, out_h, out_w), np.float64)
    wh = np.zeros((max_objects, 2), np.float64)
    offset = np.zeros((max_objects, 2), np.float64)
    indices = np.zeros((max_objects,), np.int64)
    mask = np.zeros((max_objects,), np.float64)
    k = 0
    dropped = 0
    for box, cls in zip(np.asarray(boxes, np.float64).reshape(-1, 4), class_ids):
        b = box / stride
        b[[0, 2]] = np.clip(b[[0, 2]], 0, out_w - 1)
        b[[1, 3]] = np.clip(b[[1, 3]], 0, out_h - 1)
        h, w = b[3] - b[1], b[2] - b[0]
        if not (h > 0 and w > 0):
            continue
        if k == max_objects:
            dropped += 1
            continue
        radius = max(0, int(gaussian_radius_cornernet(math.ceil(h), math.ceil(w))))
        center = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
        center_int = center.astype(np.int64)
        draw_gaussian(heatmap[int(cls)], (int(center_int[0]), int(center_int[1])), radius)
        wh[k] = w, h
        offset[k] = center - center_int
        indices[k] = center_int[1] * out_w + center_int[0]
        mask[k] = 1
        k += 1
    return {
        "heatmap": heatmap.transpose(1, 2, 0),
        "wh": wh,
        "offset": offset,
        "indices": indices,
        "mask": mask,
        "num_objects": k,
        "num_dropped": dropped,
    }


def focal_loss_reference(gt: np.ndarray, pred: np.ndarray, alpha: float = 2, beta: float = 4) -> float:
    """CornerNet's ``_neg_loss`` on a batch, with the prediction clamped to [1e-4, 1 - 1e-4]."""
    pred = np.clip(pred.astype(np.float64), 1e-4, 1 - 1e-4)
    gt = gt.astype(np.float64)
    pos = gt == 1
    neg = gt < 1
    pos_loss = (np.log(pred) * (1 - pred) ** alpha)[pos].sum()
    neg_loss = (np.log(1 - pred) * pred**alpha * (1 - gt) ** beta)[neg].sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return float(-neg_loss)
    return float(-(pos_loss + neg_loss) / num_pos)


def reg_l1_loss_reference(pred_map: np.ndarray, target: np.ndarray, indices: np.ndarray, mask: np.ndarray) -> float:
    """CenterNet's ``RegL1Loss``: L1 at the gathered centres, divided by (2 * objects + 1e-4)."""
    batch, height, width, channels = pred_map.shape
    total = 0.0
    for b in range(batch):
        flat = pred_map[b].reshape(height * width, channels)
        for k in range(len(indices[b])):
            if mask[b, k]:
                total += np.abs(flat[indices[b, k]] - target[b, k]).sum()
    return float(total / (2 * mask.sum() + 1e-4))
