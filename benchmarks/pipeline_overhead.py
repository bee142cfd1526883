"""Does the input pipeline slow training down? Step time with the real augmented pipeline vs in-memory batches.

    python benchmarks/pipeline_overhead.py                  # configs/bccd.yaml (augmentation on)
    python benchmarks/pipeline_overhead.py --steps 24 --repeats 12     # longer, less noisy

Both runs train the same compiled model with ``model.fit``. "pipeline" reads JPEGs and letterboxes, augments and
encodes targets in ``tf.data`` for every step, exactly as ``train.py`` does; "in_memory" first materialises the
same number of batches from that pipeline and replays them from memory. The per-step times come from a callback
(time between consecutive batch ends) after a warm-up epoch of each (XLA compilation, buffers), and the runs
alternate in short segments so that machine noise hits both. Writes a JSON with the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bccd import machine  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.train.build import model_from_config  # noqa: E402
from centernet_tf.train.phases import compile_centernet  # noqa: E402
from centernet_tf.train.train_data import train_dataset_from_config  # noqa: E402


class StepTimer(keras.callbacks.Callback):
    """Seconds between consecutive ``on_train_batch_end`` calls (input wait + step), per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[list[float]] = []
        self._last = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs.append([])
        self._last = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self.epochs[-1].append(now - self._last)
        self._last = now


def time_steps(model: keras.Model, dataset: tf.data.Dataset, steps: int, warmup: bool = False) -> list[float]:
    """Per-step seconds of one epoch of ``steps`` steps (after one warm-up epoch if ``warmup``).

    The first step of each ``fit`` call is left out: it waits for a fresh iterator to fill its buffers,
    which a real run (one ``fit`` over a repeated dataset) pays once, not every few steps.
    """
    timer = StepTimer()
    model.fit(dataset, epochs=2 if warmup else 1, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False)
    return timer.epochs[-1][1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "bccd.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=12, help="steps per measured run")
    parser.add_argument("--repeats", type=int, default=8, help="alternating pipeline / in-memory runs")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "pipeline_overhead.json"))
    args = parser.parse_args(argv)

    config = load_config(args.config, args.overrides)
    keras.utils.set_random_seed(config.train.seed)
    train_index = load_split(config.data, "train")
    pipeline, _ = train_dataset_from_config(config, train_index)
    # The same batches, produced once by the same pipeline and replayed from memory.
    in_memory = pipeline.take(args.steps).cache().repeat()
    for _ in in_memory.take(args.steps):
        pass
    # On a shared machine the step time drifts by tens of percent within minutes, so the two runs alternate
    # in short segments (drift hits both alike) and the medians are over all segments.

    model = model_from_config(config, list(train_index.class_names))
    compile_centernet(model, config, steps_per_epoch=args.steps)
    times: dict[str, list[float]] = {"pipeline": [], "in_memory": []}
    segments: dict[str, list[float]] = {"pipeline": [], "in_memory": []}
    for name, dataset in (("pipeline", pipeline), ("in_memory", in_memory)):
        time_steps(model, dataset, args.steps, warmup=True)  # XLA compilation, buffers
    for repeat in range(args.repeats):
        for name, dataset in (("pipeline", pipeline), ("in_memory", in_memory)):
            steps = time_steps(model, dataset, args.steps)
            times[name] += steps
            segments[name].append(round(statistics.median(steps), 4))
            print(f"repeat {repeat + 1}/{args.repeats} {name}: median step {statistics.median(steps):.3f} s")

    median = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "command": " ".join(["python", "benchmarks/pipeline_overhead.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "input_size": config.model.input_size,
        "batch_size": config.train.batch_size,
        "backbone": config.model.backbone,
        "augmentation": {k: getattr(config.data, k) for k in ("flip", "random_crop", "colour_jitter", "lighting_std")},
        "steps_measured": {name: len(values) for name, values in times.items()},
        "median_step_seconds": {name: round(value, 4) for name, value in median.items()},
        "segment_medians": segments,
        "overhead": round(median["pipeline"] / median["in_memory"] - 1.0, 4),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_step_seconds"]), f"overhead {100 * result['overhead']:+.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
