"""Pictures that users of detection toolkits look at first, drawn with Pillow (no plotting library needed) into
the run folder and TensorBoard: before training, the label statistics and a grid of augmented training samples
with their boxes (the check to run before trusting a pipeline); after it, precision-recall curves per class
and a confusion matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from centernet_tf.evaluation.metrics import box_iou

#: Distinct line colours (Okabe-Ito, readable by colour-blind users), repeated past eight classes.
PALETTE = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (0, 0, 0))


def confusion_matrix(
    results: Sequence[Mapping[str, Any]], index: Any, iou_threshold: float = 0.5, score_threshold: float = 0.3
) -> np.ndarray:
    """``[C + 1, C + 1]`` counts: row = true class, column = predicted class; the last row counts detections
    that match no object (false positives), the last column objects no detection found (misses).

    Per image, detections above ``score_threshold`` in descending score each take the unmatched object (of any
    class, so confusions show) with the highest IoU, if it reaches ``iou_threshold``.
    """
    classes = len(index.class_names)
    matrix = np.zeros((classes + 1, classes + 1), np.int64)
    by_image: dict[int, list[Mapping[str, Any]]] = {}
    for result in results:
        if result["score"] >= score_threshold:
            by_image.setdefault(int(result["image_id"]), []).append(result)
    for example in index.examples:
        truth = np.asarray(example.boxes, np.float64).reshape(-1, 4)
        taken = np.zeros(len(truth), bool)
        for found in sorted(by_image.get(example.image_id, []), key=lambda r: -r["score"]):
            x, y, w, h = found["bbox"]
            predicted = int(found["category_id"]) - 1
            overlaps = box_iou(np.array([x, y, x + w, y + h]), truth) if len(truth) else np.zeros(0)
            overlaps[taken] = -1.0
            best = int(np.argmax(overlaps)) if len(overlaps) else -1
            if best >= 0 and overlaps[best] >= iou_threshold:
                taken[best] = True
                matrix[int(example.class_ids[best]), predicted] += 1
            else:
                matrix[classes, predicted] += 1
        for true_class in np.asarray(example.class_ids)[~taken]:
            matrix[int(true_class), classes] += 1
    return matrix


def draw_precision_recall(curves: Mapping[str, Sequence[float]], size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """Precision over recall (COCOeval's 101 recall points at IoU 0.5), one line per class, AP in the legend;
    ``uint8 [H, W, 3]``. Classes without ground truth (precision -1) are left out."""
    width, height = size
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 50, 20, width - 170, height - 40

    def point(recall: float, precision: float) -> tuple[float, float]:
        return left + recall * (right - left), bottom - precision * (bottom - top)

    for tick in np.linspace(0, 1, 6):
        draw.line([point(tick, 0), point(tick, 1)], fill=(230, 230, 230))
        draw.line([point(0, tick), point(1, tick)], fill=(230, 230, 230))
        draw.text((point(tick, 0)[0] - 8, bottom + 5), f"{tick:.1f}", fill=(0, 0, 0))
        draw.text((left - 30, point(0, tick)[1] - 6), f"{tick:.1f}", fill=(0, 0, 0))
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text(((left + right) // 2 - 20, height - 18), "recall", fill=(0, 0, 0))
    draw.text((5, top - 15), "precision (IoU 0.5)", fill=(0, 0, 0))
    recalls = np.linspace(0, 1, 101)
    row = 0
    for k, (name, precision) in enumerate(curves.items()):
        values = np.asarray(precision, np.float64)
        if values.size != recalls.size or (values < 0).all():
            continue
        colour = PALETTE[k % len(PALETTE)]
        draw.line([point(r, max(p, 0.0)) for r, p in zip(recalls, values)], fill=colour, width=2)
        ap = float(values[values >= 0].mean())
        draw.line([(right + 10, top + 10 + 16 * row), (right + 30, top + 10 + 16 * row)], fill=colour, width=3)
        draw.text((right + 35, top + 4 + 16 * row), f"{name[:14]} {ap:.3f}", fill=(0, 0, 0))
        row += 1
    return np.asarray(image)


def draw_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], cell: int = 56) -> np.ndarray:
    """The matrix as a picture: counts in cells shaded by their share of the row; ``uint8 [H, W, 3]``."""
    names = [*class_names, "background"]
    margin = 110
    size = margin + cell * len(names) + 10
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i, name in enumerate(names):
        draw.text((5, margin + i * cell + cell // 2 - 6), name[:16], fill=(0, 0, 0))
        draw.text((margin + i * cell + 4, margin - 18), name[:8], fill=(0, 0, 0))
        for j in range(len(names)):
            shade = int(255 - 200 * shares[i, j])
            box = [margin + j * cell, margin + i * cell, margin + (j + 1) * cell, margin + (i + 1) * cell]
            draw.rectangle(box, fill=(shade, shade, 255), outline=(160, 160, 160))
            draw.text((box[0] + 6, box[1] + cell // 2 - 6), str(int(matrix[i, j])),
                      fill=(255, 255, 255) if shares[i, j] > 0.6 else (0, 0, 0))
    draw.text((margin, 8), "true (rows) vs predicted (columns)", fill=(0, 0, 0))
    return np.asarray(image)


def boxes_from_targets(targets: Mapping[str, np.ndarray], stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The boxes the training targets encode, per image: ``(boxes x1, y1, x2, y2 in input pixels, class ids)``,
    decoded from ``indices``, ``offset``, ``wh`` and the class channel of the heatmap peak, i.e. exactly what
    the network is asked to predict."""
    heatmap = np.asarray(targets["heatmap"])
    width = heatmap.shape[2]
    decoded = []
    for b in range(heatmap.shape[0]):
        keep = np.asarray(targets["mask"][b]) > 0
        index = np.asarray(targets["indices"][b])[keep].astype(np.int64)
        ys, xs = index // width, index % width
        offset, wh = np.asarray(targets["offset"][b])[keep], np.asarray(targets["wh"][b])[keep]
        cx, cy = xs + offset[:, 0], ys + offset[:, 1]
        boxes = np.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], axis=1) * stride
        decoded.append((boxes.astype(np.float32), heatmap[b, ys, xs].argmax(axis=-1).astype(np.int32)))
    return decoded


def draw_training_samples(
    images: np.ndarray, targets: Mapping[str, np.ndarray], stride: int, class_names: Sequence[str], columns: int = 4
) -> np.ndarray:
    """A grid of augmented training images with the boxes their targets encode, labelled by class."""
    from centernet_tf.model.detections import Detections
    from centernet_tf.deploy.visualize import draw_detections

    tiles = []
    for image, (boxes, classes) in zip(np.asarray(images), boxes_from_targets(targets, stride)):
        found = Detections(boxes, np.ones(len(boxes), np.float32), classes)
        tiles.append(draw_detections(np.clip(image, 0, 255).astype(np.uint8), found, list(class_names), show_scores=False))
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    blank = np.full_like(tiles[0], 255)
    rows[-1] += [blank] * (columns - len(rows[-1]))
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def draw_label_statistics(index: Any, size: tuple[int, int] = (900, 360)) -> np.ndarray:
    """Boxes per class (bars) and the box-size histogram (square root of box area over image area, 20 bins,
    with COCO's small / medium / large counts): what the data asks of the model."""
    width, height = size
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    names = list(index.class_names)
    counts = np.zeros(len(names), np.int64)
    relative, areas = [], []
    for example in index.examples:
        np.add.at(counts, np.asarray(example.class_ids, np.int64), 1)
        boxes = np.asarray(example.boxes, np.float64).reshape(-1, 4)
        box_areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        areas.extend(box_areas.tolist())
        relative.extend(np.sqrt(box_areas / (example.width * example.height)).tolist())
    half = width // 2

    def bars(values: np.ndarray, labels: list[str], x0: int, x1: int, title: str, one_colour: bool = False) -> None:
        top, bottom = 40, height - 50
        draw.text((x0, 10), title, fill=(0, 0, 0))
        peak = max(int(values.max()) if values.size else 0, 1)
        step = (x1 - x0) / max(len(values), 1)
        for i, value in enumerate(values):
            left = x0 + i * step + 2
            draw.rectangle([left, bottom - (bottom - top) * value / peak, left + step - 4, bottom],
                           fill=(0, 114, 178) if one_colour else PALETTE[i % len(PALETTE)])
            if labels[i]:
                draw.text((left, bottom + 4 + 12 * (i % 2)), labels[i][:10], fill=(0, 0, 0))
        draw.text((x0, top - 14), f"max {peak}", fill=(90, 90, 90))

    bars(counts, names, 20, half - 20, f"boxes per class ({int(counts.sum())} boxes, {len(index.examples)} images)")
    histogram, _ = np.histogram(relative, bins=20, range=(0.0, 1.0))
    ticks = [f"{v:.2f}" if i % 5 == 0 else "" for i, v in enumerate(np.linspace(0, 1, 21)[:-1])]
    areas_array = np.asarray(areas)
    coco = (int((areas_array < 32**2).sum()), int(((areas_array >= 32**2) & (areas_array < 96**2)).sum()),
            int((areas_array >= 96**2).sum()))
    bars(histogram, ticks, half + 20, width - 20,
         f"box size sqrt(box/image area); small {coco[0]}, medium {coco[1]}, large {coco[2]}", one_colour=True)
    return np.asarray(image)
