"""BCCD from scratch: train on ``trainval``, evaluate on ``test``, write the COCO metrics and wall time as JSON.

    python benchmarks/bccd.py                      # configs/bccd.yaml, augmentation as configured
    python benchmarks/bccd.py --no-augmentation    # same run, flips only: what augmentation buys

The JSON holds mAP@0.5, mAP@[.5:.95], per-class AP, the mAP curve of the evaluations made during training,
the wall time, the command line and the machine, so a row of the README results table can be traced back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from centernet_tf.cli import format_metrics, setup_logging  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.train.training import run_training  # noqa: E402

#: Overrides that turn every augmentation but the horizontal flip off.
NO_AUGMENTATION = ["data.random_crop=false", "data.colour_jitter=0", "data.lighting_std=0"]


def machine() -> dict[str, object]:
    import tensorflow as tf

    return {
        "cpus": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bccd.yaml"))
    parser.add_argument("--no-augmentation", action="store_true", help="flips only (" + ", ".join(NO_AUGMENTATION) + ")")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run-dir", help="default: runs/bccd_benchmark[_no_augmentation]")
    parser.add_argument("--output", help="default: benchmarks/results/bccd[_no_augmentation].json")
    args = parser.parse_args(argv)
    setup_logging()

    suffix = "_no_augmentation" if args.no_augmentation else ""
    overrides = (NO_AUGMENTATION if args.no_augmentation else []) + args.overrides
    config = load_config(args.config, overrides)
    run_dir = Path(args.run_dir or REPO / "runs" / f"bccd_benchmark{suffix}")
    output = Path(args.output or REPO / "benchmarks" / "results" / f"bccd{suffix}.json")

    started = time.perf_counter()
    metrics = run_training(config, run_dir, verbose=2)
    result = {
        "command": " ".join(["python", "benchmarks/bccd.py", *(argv if argv is not None else sys.argv[1:])]),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "config": config.to_dict(),
        **metrics,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(format_metrics(metrics, f"BCCD test{' (no augmentation)' if args.no_augmentation else ''}"))
    print(f"wall time {result['wall_seconds'] / 60:.1f} min; wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
