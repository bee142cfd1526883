"""What a trained model predicts at its objects' true centres: heatmap score and box size against the truth.

Tells *why* a detector misses on a split (often its own training split): centre scores under the drawing
threshold, sizes that have not grown to the objects' size, or several detections of one object (flat heatmap
blobs on large objects give several 3x3 peaks, which the paper's NMS-free decoding keeps). Plain letterboxed images, no augmentation::

    python benchmarks/fit_diagnostics.py --model runs/x/model.keras --config runs/x/config.yaml --split train
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.letterbox import letterbox_boxes  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.data.pipeline import build_eval_dataset  # noqa: E402
from centernet_tf.evaluation.metrics import box_iou  # noqa: E402
from centernet_tf.model.centernet import load_centernet  # noqa: E402


#: Detections at least this confident count when looking for several detections of one object.
DUPLICATE_SCORE = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--output", help="write the summary as JSON here")
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    model = load_centernet(args.model)
    index = load_split(config.data, args.split, class_names=model.class_names)
    stride = model.output_stride
    by_id = {e.image_id: e for e in index.examples}
    decoder = model.decoder  # the model's own decoding: without NMS unless it was trained with eval.nms
    scores, ratios, local_max, duplicates = [], [], [], []
    for batch in build_eval_dataset(index, model.input_shape[1:3], 8):
        out = model(batch["image"], training=False)
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
    summary = {
        "objects": len(scores),
        "median_centre_score": float(np.median(scores)),
        "median_best_score_within_2px": float(np.median(local_max)),
        "share_centre_score_over_0.3": float(np.mean(np.array(local_max) > 0.3)),
        f"mean_detections_iou50_per_object_score_over_{DUPLICATE_SCORE}": float(np.mean(duplicates)),
        "median_size_ratio_predicted_to_true": float(np.median(ratios)),
        "size_ratio_p10_p90": [float(np.percentile(ratios, 10)), float(np.percentile(ratios, 90))],
    }
    print(json.dumps(summary, indent=2))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
