"""What the flip test and the multi-scale test add: COCO mAP and seconds per image on a held-out split.

    python benchmarks/test_time.py --model runs/aquarium_benchmark/model.keras --split test

Evaluates one trained model four ways through the library's own path (:func:`centernet_tf.evaluation.metrics
.evaluate_detector` on a :class:`~centernet_tf.deploy.inference.KerasDetector`, one image at a time): plain, flip
test, multi-scale (``--scales``, merged by Gaussian soft-NMS as the original) and both, with the decoder
settings saved in the model otherwise. Writes ``benchmarks/results/test_time_<config name>.json``.
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

from benchmarks.bccd import machine  # noqa: E402
from centernet_tf.cli import setup_logging  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.deploy.inference import KerasDetector  # noqa: E402
from centernet_tf.deploy.tta import describe  # noqa: E402
from centernet_tf.evaluation.metrics import evaluate_detector  # noqa: E402
from centernet_tf.model.centernet import decoder_for, load_centernet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a .keras file with its run's config.yaml beside it")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.75, 1.0, 1.25])
    parser.add_argument("--output", help="default: benchmarks/results/test_time_<config name>.json")
    args = parser.parse_args()
    setup_logging()
    started = time.perf_counter()
    model_path = Path(args.model)
    config = load_config(model_path.with_name("config.yaml"), [])
    model = load_centernet(model_path)
    index = load_split(config.data, args.split, class_names=model.class_names)
    variants = {
        "plain": {},
        "flip": {"flip_test": True},
        "scales": {"test_scales": args.scales},
        "flip_and_scales": {"flip_test": True, "test_scales": args.scales},
    }
    results = {}
    for name, settings in variants.items():
        decoder = decoder_for(model, settings)
        metrics = evaluate_detector(KerasDetector(model, decoder), index)
        results[name] = {
            "test_time_augmentation": describe(decoder),
            "mAP": metrics["mAP"], "mAP50": metrics["mAP50"], "mAP75": metrics["mAP75"],
            "median_ms_per_image": 1000 * metrics["median_seconds_per_image"],
        }
        print(f"{name:16s} mAP {metrics['mAP']:.4f}  mAP@0.5 {metrics['mAP50']:.4f}  "
              f"{results[name]['median_ms_per_image']:.0f} ms/image  ({describe(decoder)})", flush=True)
    output = Path(args.output or REPO / "benchmarks" / "results" / f"test_time_{config.name}.json")
    output.write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(), "model": str(model_path), "split": args.split, "images": len(index.examples),
        "wall_seconds": round(time.perf_counter() - started, 1), "results": results,
    }, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
