"""Seconds per training step of a config's model: XLA on and off, float32 and mixed precision, backbone
trainable (and with ``--frozen`` also frozen, with ``--frozen-strides`` frozen up to each stride), the
variants taking turns in one run.

    python benchmarks/train_step_time.py --config configs/bccd.yaml --output benchmarks/results/train_step_time_bccd.json
    python benchmarks/train_step_time.py --config configs/photos.yaml --precisions none --xla off --frozen \
        --frozen-strides 4 8 16 --output benchmarks/results/train_step_time_photos.json

Random images and real-shaped targets (a few boxes each) at the config's input size and batch size, through
``model.train_on_batch`` (the step ``fit`` runs); the first step of each variant (tracing, compiling) is not
counted, but its time is reported as ``first_step_seconds``. With ``train.freeze_backbone_epochs`` in the
config the trainable variants are fine-tuning's step (backbone BatchNorm as ``train.fine_tune_batch_norm``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bccd import machine  # noqa: E402  (also sets up the import path and TensorFlow's log level)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.model.targets import encode_targets, keras_targets  # noqa: E402
from centernet_tf.train.build import model_from_config  # noqa: E402
from centernet_tf.model.policy import dtype_policy  # noqa: E402
from centernet_tf.train.precision import DTYPE_POLICIES  # noqa: E402
from centernet_tf.train.transfer import set_backbone_trainable, unfreeze_for_fine_tuning  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "aquarium.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["none", "bfloat16"], choices=list(DTYPE_POLICIES))
    parser.add_argument("--frozen", action="store_true", help="also time the frozen-backbone phase")
    parser.add_argument("--frozen-strides", nargs="+", type=int, default=[], metavar="STRIDE",
                        help="also time fine-tuning with the backbone frozen up to each stride "
                             "(train.fine_tune_frozen_stride)")
    parser.add_argument("--xla", choices=["both", "off"], default="both")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "train_step_time.json"))
    args = parser.parse_args(argv)
    config = load_config(args.config, ["model.backbone_weights=null", *args.overrides])
    height, width = config.model.input_size
    batch = config.train.batch_size
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
    names = config.data.class_names or ["object"]
    variants, first_step = {}, {}
    # (variant, stride kept frozen while fine-tuning; None: the whole backbone frozen)
    backbones = ([("frozen_backbone", None)] if args.frozen else []) + [("trainable_backbone", 0)]
    backbones += [(f"backbone_frozen_to_stride_{stride}", stride) for stride in args.frozen_strides]
    for (mode, stride), precision, jit in [(b, p, j) for b in backbones for p in args.precisions
                                           for j in ((True, False) if args.xla == "both" else (False,))]:
        with dtype_policy(DTYPE_POLICIES[precision]):
            model = model_from_config(config, list(names))
        targets = []
        for _ in range(batch):
            boxes = rng.uniform(0, 1, (6, 4)) * [width / 2, height / 2, width / 2, height / 2]
            boxes[:, 2:] += boxes[:, :2] + 16
            targets.append(keras_targets(encode_targets(boxes, rng.integers(0, len(names), 6), (height, width),
                                                        len(names), model.output_stride, config.data.max_objects,
                                                        box_targets=config.loss.box == "giou_ttf")))
        y = {k: tf.stack([t[k] for t in targets]) for k in targets[0]}
        if stride is None:
            set_backbone_trainable(model, False)
        elif config.train.freeze_backbone_epochs or stride:
            # With a frozen phase the trainable step is fine-tuning's: BatchNorm as the config sets it.
            batch_norm = config.train.fine_tune_batch_norm or not config.train.freeze_backbone_epochs
            unfreeze_for_fine_tuning(model, dataclasses.replace(
                config.train, fine_tune_batch_norm=batch_norm, fine_tune_frozen_stride=stride))
        model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit)
        name = f"{mode}/{precision}/{'xla' if jit else 'no_xla'}"
        started = time.perf_counter()
        model.train_on_batch(images, y)  # trace and compile
        first_step[name] = round(time.perf_counter() - started, 1)
        variants[name] = (model, y)
        print(name, "first step", first_step[name], "s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (model, y) in variants.items():
            for _ in range(args.steps):
                started = time.perf_counter()
                model.train_on_batch(images, y)
                times[name].append(time.perf_counter() - started)
    result = {
        "command": " ".join(["python", "benchmarks/train_step_time.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "backbone": config.model.backbone, "input_size": [height, width], "batch_size": batch,
        "median_seconds_per_step": {name: round(float(np.median(t)), 3) for name, t in times.items()},
        "first_step_seconds": first_step,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_seconds_per_step"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
