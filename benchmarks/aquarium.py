"""Aquarium photos: ImageNet-pretrained transfer learning against the same config trained from scratch.

    python benchmarks/aquarium.py                  # configs/aquarium.yaml: pretrained backbone, frozen then fine-tuned
    python benchmarks/aquarium.py --from-scratch   # same config, random init, no frozen phase

Trains on ``train`` (mAP on ``valid`` during training, as configured), then scores the final model and the
best one by ``valid`` mAP on the held-out ``test`` split with pycocotools. The JSON holds mAP@0.5,
mAP@[.5:.95], per-class AP, the ``valid`` mAP curve, the wall time, the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bccd import machine  # noqa: E402  (also sets up the import path and TensorFlow's log level)

from centernet_tf.cli import format_metrics, setup_logging  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.evaluation.metrics import evaluate_model  # noqa: E402
from centernet_tf.model.centernet import load_centernet  # noqa: E402
from centernet_tf.train.training import run_training  # noqa: E402

#: What "from scratch" changes: random initialisation and no frozen-backbone phase.
FROM_SCRATCH = ["model.backbone_weights=null", "train.freeze_backbone_epochs=0"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "aquarium.yaml"))
    parser.add_argument("--from-scratch", action="store_true", help="; ".join(FROM_SCRATCH))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run-dir", help="default: runs/aquarium_benchmark[_from_scratch]")
    parser.add_argument("--output", help="default: benchmarks/results/aquarium[_from_scratch].json")
    args = parser.parse_args(argv)
    setup_logging()

    suffix = "_from_scratch" if args.from_scratch else ""
    config = load_config(args.config, (FROM_SCRATCH if args.from_scratch else []) + args.overrides)
    run_dir = Path(args.run_dir or REPO / "runs" / f"aquarium_benchmark{suffix}")
    output = Path(args.output or REPO / "benchmarks" / "results" / f"aquarium{suffix}.json")

    started = time.perf_counter()
    valid_metrics = run_training(config, run_dir, verbose=2)
    train_wall = time.perf_counter() - started
    class_names = valid_metrics["class_names"]
    test = load_split(config.data, "test", class_names=class_names)
    results = {}
    for name in ("model", "best_model"):
        path = run_dir / f"{name}.keras"
        if path.is_file():
            metrics = evaluate_model(load_centernet(path), test, batch_size=config.eval.batch_size)
            metrics.pop("summary", None)
            results[name] = metrics
    result = {
        "command": " ".join(["python", "benchmarks/aquarium.py", *(argv if argv is not None else sys.argv[1:])]),
        "train_wall_seconds": round(train_wall, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "config": config.to_dict(),
        "test": results,
        "valid": {k: v for k, v in valid_metrics.items() if k != "class_names"},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for name, metrics in results.items():
        print(format_metrics(metrics, f"aquarium test, {name}.keras{' (from scratch)' if args.from_scratch else ''}"))
    print(f"wall time {result['wall_seconds'] / 60:.1f} min; wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
