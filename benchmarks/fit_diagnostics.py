"""What a trained model predicts at its objects' true centres: heatmap score and box size against the truth.

Tells *why* a detector misses on a split (often its own training split): centre scores under the drawing
threshold, sizes that have not grown to the objects' size, boxes of one shape for every object (the size ratio
of the areas can be right while width / height is not: hence the aspect correlation), or several detections of
one object (flat heatmap blobs on large objects give several 3x3 peaks, which the paper's NMS-free decoding
keeps). ``--probe`` also asks whether each part's features at the centres *carry* the boxes' shape and size: a
ridge regression (5-fold cross-validated on the split) from each backbone level and from the neck to
log(width / height) and log(sqrt(area)); a shape the backbone carries and the neck does not is one the training
never asked the neck for. Plain letterboxed images, no augmentation::

    python benchmarks/fit_diagnostics.py --model runs/x/model.keras --config runs/x/config.yaml --split train --probe
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.letterbox import letterbox_boxes  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.data.pipeline import build_eval_dataset  # noqa: E402
from centernet_tf.evaluation.metrics import box_iou  # noqa: E402
from centernet_tf.model.centernet import load_centernet  # noqa: E402


#: Detections at least this confident count when looking for several detections of one object.
DUPLICATE_SCORE = 0.1
#: Ridge penalty of the probe (on standardised features); 10-1000 gave the same correlations within 0.05.
PROBE_RIDGE = 100.0


def log_shape(width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """``[N, 2]``: log(width / height) and log(sqrt(width * height)), sizes clipped at 1e-3."""
    width, height = np.maximum(width, 1e-3), np.maximum(height, 1e-3)
    return np.stack([np.log(width / height), 0.5 * np.log(width * height)], axis=-1)


def cross_validated_ridge(features: np.ndarray, target: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Correlation of ``target`` with its ridge prediction from ``features``, each sample predicted by a fit
    on the other folds (standardised with the fitting folds' statistics)."""
    order = np.random.RandomState(seed).permutation(len(target))
    predicted = np.zeros(len(target))
    for held in np.array_split(order, folds):
        fit = np.setdiff1d(order, held)
        mean, std = features[fit].mean(0), features[fit].std(0) + 1e-6
        a, b = (features[fit] - mean) / std, (features[held] - mean) / std
        weights = np.linalg.solve(a.T @ a + PROBE_RIDGE * np.eye(a.shape[1]), a.T @ (target[fit] - target[fit].mean()))
        predicted[held] = b @ weights + target[fit].mean()
    return correlation(target, predicted)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r, 0 where either side is constant (undefined there; NaN would break the JSON summary). The
    spread is judged by the range, not ``std() > 0``: equal floats can leave a std of 1e-17 from rounding."""
    return float(np.corrcoef(a, b)[0, 1]) if np.ptp(a) > 1e-12 and np.ptp(b) > 1e-12 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--probe", action="store_true", help="also probe each part's features for box shape")
    parser.add_argument("--output", help="write the summary as JSON here")
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    model = load_centernet(args.model)
    index = load_split(config.data, args.split, class_names=model.class_names)
    stride = model.output_stride
    by_id = {e.image_id: e for e in index.examples}
    decoder = model.decoder  # the model's own decoding: without NMS unless it was trained with eval.nms
    scores, ratios, local_max, duplicates, true_wh, predicted_wh = [], [], [], [], [], []
    parts = model.part_outputs["backbone"] + [model.part_outputs["neck"]] if args.probe else []
    # One forward pass gives the heads' outputs and, with --probe, the parts' features (same layers, same graph).
    forward = keras.Model(model.inputs, [model.output, parts])
    part_features: list[list[np.ndarray]] = [[] for _ in parts]
    for batch in build_eval_dataset(index, model.input_shape[1:3], 8):
        out, part_maps = forward(batch["image"], training=False)
        part_maps = [m.numpy() for m in part_maps]
        heatmap, sizes = out["heatmap"].numpy(), out["wh"].numpy()
        found = decoder({key: out[key] for key in ("heatmap", "wh", "offset") if key in out})
        for b, image_id in enumerate(batch["image_id"].numpy()):
            example = by_id[int(image_id)]
            boxes = letterbox_boxes(np.asarray(example.boxes, np.float32).reshape(-1, 4), batch["letterbox"][b]).numpy()
            keep = found["scores"][b].numpy() >= DUPLICATE_SCORE
            detected = found["boxes"][b].numpy()[keep]
            for box in boxes:
                duplicates.append(int((box_iou(box, detected) >= 0.5).sum()))
            for box, cls in zip(boxes / stride, example.class_ids):
                x, y = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
                y, x = min(y, heatmap.shape[1] - 1), min(x, heatmap.shape[2] - 1)
                window = heatmap[b, max(y - 2, 0):y + 3, max(x - 2, 0):x + 3, cls]
                scores.append(float(heatmap[b, y, x, cls]))
                local_max.append(float(window.max()))
                s = sizes[b, y, x]
                predicted = (s[0], s[1]) if s.shape[-1] == 2 else (s[0] + s[2], s[1] + s[3])
                ratios.append(float(np.sqrt(max(predicted[0], 0) * max(predicted[1], 0)
                                            / max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))))
                true_wh.append((box[2] - box[0], box[3] - box[1]))
                predicted_wh.append(predicted)
                for features, part_map in zip(part_features, part_maps):
                    scale = part_map.shape[1] / heatmap.shape[1]  # the part's grid against the output grid
                    py = min(int((box[1] + box[3]) / 2 * scale), part_map.shape[1] - 1)
                    px = min(int((box[0] + box[2]) / 2 * scale), part_map.shape[2] - 1)
                    features.append(part_map[b, py, px])
    summary = {
        "objects": len(scores),
        "median_centre_score": float(np.median(scores)),
        "median_best_score_within_2px": float(np.median(local_max)),
        "share_centre_score_over_0.3": float(np.mean(np.array(local_max) > 0.3)),
        f"mean_detections_iou50_per_object_score_over_{DUPLICATE_SCORE}": float(np.mean(duplicates)),
        "median_size_ratio_predicted_to_true": float(np.median(ratios)),
        "size_ratio_p10_p90": [float(np.percentile(ratios, 10)), float(np.percentile(ratios, 90))],
    }
    truth, guess = log_shape(*np.array(true_wh, float).T), log_shape(*np.array(predicted_wh, float).T)
    summary.update({
        "log_aspect_sd_true": float(truth[:, 0].std()),
        "log_aspect_sd_predicted": float(guess[:, 0].std()),
        "log_aspect_correlation_predicted_true": correlation(truth[:, 0], guess[:, 0]),
    })
    if args.probe:
        names = [f"backbone level {i}" for i in range(len(parts) - 1)] + ["neck"]
        summary["probe_cross_validated_correlation"] = {
            name: {
                "channels": int(features[0].shape[-1]),
                "log_aspect": cross_validated_ridge(np.array(features), truth[:, 0]),
                "log_size": cross_validated_ridge(np.array(features), truth[:, 1]),
            }
            for name, features in zip(names, part_features)
        }
    print(json.dumps(summary, indent=2))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
