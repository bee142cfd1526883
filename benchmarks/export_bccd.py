"""Exported BCCD models: parity with Keras, mAP and latency of Keras, TFLite fp32 / fp16 / int8 on BCCD ``test``.

    python benchmarks/export_bccd.py --model runs/bccd_benchmark/model.keras

Exports the model (SavedModel and the three TFLite variants, int8 calibrated on up to 300 ``trainval`` images of
the run's config), then runs every variant image by image over the test split through
:mod:`centernet_tf.deploy.inference` (the letterbox, the network and the decoding, no JPEG decoding) and scores it
with pycocotools. Latency is the median time of ``detect`` per image, measured in ``--rounds`` passes over the
test images, the detectors taking turns. TFLite runs with ``--threads`` threads (2 = all cores here) and Keras
is a ``tf.function`` (TensorFlow uses all cores). Parity: for every test image, the largest box difference
(relative to the image size) and score difference between Keras and the SavedModel / TFLite-fp32 detections.
Each variant is also scored on the training images (``trainval``), where four times as many boxes make the
gap to Keras a steadier measure of what export costs; those images are not held out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks.bccd import machine  # noqa: E402
from centernet_tf.cli import setup_logging  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.data.pipeline import read_image  # noqa: E402
from centernet_tf.deploy.export import export_saved_model, export_tflite, model_input_size, representative_images  # noqa: E402
from centernet_tf.deploy.inference import KerasDetector, SavedModelDetector, TFLiteDetector  # noqa: E402
from centernet_tf.evaluation.benchmark import interleaved_latency  # noqa: E402
from centernet_tf.evaluation.metrics import evaluate_detector  # noqa: E402
from centernet_tf.model.centernet import load_centernet  # noqa: E402
from centernet_tf.model.centernet import decoder_for  # noqa: E402
from centernet_tf.model.decode import decoder_settings  # noqa: E402


def parity(reference, other, index, score_tolerance: float = 1e-4) -> dict[str, float]:
    """Worst differences over the split: boxes (fraction of the image size) and scores, after pairing each
    reference detection with a detection of the other runtime of the same class and a score within
    ``score_tolerance`` (two detections whose scores differ by less than float rounding may swap ranks
    between runtimes); a detection with no such partner counts as unmatched."""
    worst_box, worst_score, unmatched, swapped, count_mismatch = 0.0, 0.0, 0, 0, 0
    for example in index.examples:
        image = read_image(example.image_path, example.orientation).numpy()
        a, b = reference.detect(image), other.detect(image)
        count_mismatch += int(len(a.scores) != len(b.scores))
        size = max(image.shape[:2])
        free = np.ones(len(b.scores), bool)
        for i in range(len(a.scores)):
            candidates = np.flatnonzero(free & (b.classes == a.classes[i])
                                        & (np.abs(b.scores - a.scores[i]) <= score_tolerance))
            if not len(candidates):
                unmatched += 1
                continue
            box_errors = np.abs(b.boxes[candidates] - a.boxes[i]).max(axis=1)
            j = candidates[box_errors.argmin()]
            free[j] = False
            swapped += int(j != i)
            worst_box = max(worst_box, float(box_errors.min()) / size)
            worst_score = max(worst_score, float(abs(b.scores[j] - a.scores[i])))
    return {"max_box_error_of_image_size": worst_box, "max_score_error": worst_score,
            "unmatched_detections": unmatched, "detections_at_another_rank": swapped,
            "images_with_a_different_count": count_mismatch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "runs" / "bccd_benchmark" / "model.keras"))
    parser.add_argument("--config", help="default: config.yaml beside the model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="latency: passes over the test images")
    parser.add_argument("--split", default="val", choices=["val", "test"],
                        help="the held-out split of the run's config (BCCD: val is its test split)")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "export_bccd.json"))
    args = parser.parse_args(argv)
    setup_logging()

    model_path = Path(args.model)
    config = load_config(Path(args.config) if args.config else model_path.parent / "config.yaml")
    train = load_split(config.data, "train")
    test = load_split(config.data, args.split, class_names=list(train.class_names))
    model = load_centernet(model_path)
    decoder = decoder_for(model, decoder_settings(config.eval))
    names = list(train.class_names)
    out_dir = model_path.parent / "export"

    started = time.perf_counter()
    saved_model = export_saved_model(model, out_dir / "saved_model", names, decoder)
    calibration = representative_images(train, model_input_size(model), 300)
    tflite = {q: export_tflite(model, out_dir / f"model_{q}.tflite", names, q, calibration if q == "int8" else None,
                               decoder) for q in ("fp32", "fp16", "int8")}
    export_seconds = time.perf_counter() - started

    detectors = {"keras": KerasDetector(model, decoder)}
    detectors.update({f"tflite_{q}": TFLiteDetector(path, args.threads) for q, path in tflite.items()})
    images = [read_image(example.image_path, example.orientation).numpy() for example in test.examples]
    latency = interleaved_latency(detectors, images, args.rounds)
    variants = {}
    for name, detector in detectors.items():
        metrics = evaluate_detector(detector, test)
        variants[name] = {
            "mAP50": metrics["mAP50"], "mAP": metrics["mAP"], "per_class_AP50": metrics["per_class_AP50"],
            "median_ms_per_image": latency[name],
        }
        if name != "keras":
            variants[name]["file_mb"] = round(tflite[name.split("_")[1]].stat().st_size / 1e6, 2)
        # Fidelity to Keras on the 292 training images too: 4x the boxes of test, so a few detections that
        # change rank move the figure less (these images are not held out: this is not an accuracy figure).
        on_train = evaluate_detector(detector, train)
        variants[name]["trainval"] = {"mAP50": on_train["mAP50"], "mAP": on_train["mAP"]}
        print(f"{name:12s} mAP@0.5 {metrics['mAP50']:.4f}  mAP {metrics['mAP']:.4f}  "
              f"{variants[name]['median_ms_per_image']:.1f} ms/image  (trainval mAP@0.5 {on_train['mAP50']:.4f})")
    keras_ms = variants["keras"]["median_ms_per_image"]
    result = {
        "command": " ".join(["python", "benchmarks/export_bccd.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "model": str(model_path),
        "input_size": list(model_input_size(model)),
        "tflite_threads": args.threads,
        "export_seconds": round(export_seconds, 1),
        "variants": variants,
        "speedup_vs_keras": {k: round(keras_ms / v["median_ms_per_image"], 2) for k, v in variants.items()},
        "parity_vs_keras": {
            "saved_model": parity(detectors["keras"], SavedModelDetector(saved_model), test),
            "tflite_fp32": parity(detectors["keras"], detectors["tflite_fp32"], test),
        },
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["parity_vs_keras"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
