"""Images per second of the training input pipeline alone (read, decode, augment, encode targets, batch), with
the parallel map deterministic and not, taking turns in one run.

    python benchmarks/input_pipeline.py --config configs/bccd.yaml

Compare with the step time of the same config (``train_step_time.py``): the pipeline runs beside the step, so
it only costs time when it is slower than the step. Writes ``benchmarks/results/input_pipeline_<config>.json``.
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

import numpy as np  # noqa: E402

from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.augment import Augmentation  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.data.pipeline import build_train_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bccd.yaml"))
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output")
    args = parser.parse_args()
    config = load_config(args.config)
    index = load_split(config.data, "train")
    datasets = {
        f"deterministic_{flag}".lower(): iter(build_train_dataset(
            index, tuple(config.model.input_size), config.train.batch_size, config.data.max_objects,
            config.data.flip, seed=config.train.seed, augmentation=Augmentation.from_settings(config.data),
            deterministic=flag).repeat())
        for flag in (True, False)
    }
    for iterator in datasets.values():  # warm-up: tracing, first files
        for _ in range(3):
            next(iterator)
    times: dict[str, list[float]] = {name: [] for name in datasets}
    for _ in range(args.rounds):
        for name, iterator in datasets.items():
            started = time.perf_counter()
            for _ in range(args.batches):
                next(iterator)
            times[name].append(time.perf_counter() - started)
    images = args.batches * config.train.batch_size
    results = {name: {"images_per_second": round(images / float(np.median(t)), 1),
                      "ms_per_batch": round(1000 * float(np.median(t)) / args.batches, 1)} for name, t in times.items()}
    print(json.dumps(results, indent=2))
    output = Path(args.output or REPO / "benchmarks" / "results" / f"input_pipeline_{Path(args.config).stem}.json")
    output.write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "machine": machine(),
        "config": Path(args.config).name, "batch_size": config.train.batch_size, "results": results,
    }, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
