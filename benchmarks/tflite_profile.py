"""Where the time goes: latency of each part of the network, Keras vs TFLite fp32 / int8, on this CPU.

    python benchmarks/tflite_profile.py --model runs/bccd_benchmark/model.keras
    python benchmarks/tflite_profile.py --config configs/bccd.yaml      # an untrained model of that config

The Python TFLite interpreter has no per-op profiler, so the network is cut into prefixes (input -> end of
backbone, -> end of the neck, -> the three heads, -> the decoded detections) and every prefix is
converted and timed on its own; a segment's cost is the difference between consecutive prefixes. int8
prefixes are integer end to end with float input and output, like the exported int8 file, whose own
``invoke`` and full ``detect`` (letterbox + invoke + undo letterbox) times are reported beside them.
Timings are medians over rounds in which every variant runs a block of calls in turn (see :func:`median_ms`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.bccd import machine  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.deploy.export import (  # noqa: E402
    SIGNATURE,
    export_archive,
    export_tflite,
    model_input_size,
    representative_images,
)
from centernet_tf.deploy.inference import TFLiteDetector, tflite_interpreter  # noqa: E402
from centernet_tf.model.centernet import load_centernet  # noqa: E402
from centernet_tf.model.centernet import decoder_for  # noqa: E402
from centernet_tf.model.decode import decoder_settings  # noqa: E402
from centernet_tf.train.build import model_from_config  # noqa: E402


def prefixes(model: keras.Model) -> dict[str, keras.Model]:
    """Sub-models from the input to the end of the backbone (all its levels), of the neck and of the heads."""
    cuts = {"backbone": model.part_outputs["backbone"], "neck": model.part_outputs["neck"], "heads": model.outputs}
    return {name: keras.Model(model.input, out, name=f"{model.name}_{name}") for name, out in cuts.items()}


def convert(model: keras.Model, quantize: str, calibration: list[np.ndarray]) -> bytes:
    """A prefix as TFLite: float, or integer end to end with float input/output (built-in int8 ops only)."""
    height, width = model_input_size(model)
    spec = tf.TensorSpec([1, height, width, 3], tf.float32)
    with tempfile.TemporaryDirectory() as tmp:
        export_archive(model, lambda image: model(image, training=False), spec).write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
        if quantize == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def invoker(flatbuffer: bytes | Path, threads: int) -> Callable[[], None]:
    interpreter = tflite_interpreter(flatbuffer, threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    pixels = np.random.default_rng(0).uniform(0, 255, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], pixels)
    return interpreter.invoke


def median_ms(runs: dict[str, Callable[[], object]], rounds: int, block: int = 10) -> dict[str, float]:
    """Median of ``rounds`` passes in which each callable runs ``block`` times in a row after a warm-up call.

    Taking turns spreads a shared machine's drift over all variants; running blocks rather than single calls
    keeps one runtime's still-spinning worker threads from slowing the next runtime's call.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            fn()
            for _ in range(block):
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
    return {name: round(1000 * float(np.median(t)), 2) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained .keras file (its config.yaml beside it)")
    parser.add_argument("--config", help="without --model: profile an untrained model of this config")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "tflite_profile.json"))
    args = parser.parse_args(argv)
    if not args.model and not args.config:
        parser.error("give --model or --config")

    config = load_config(args.config or Path(args.model).parent / "config.yaml")
    train = load_split(config.data, "train")
    if args.model:
        model = load_centernet(args.model)
    else:
        model = model_from_config(config, list(train.class_names))
    decoder = decoder_for(model, decoder_settings(config.eval))
    size = model_input_size(model)
    calibration = representative_images(train, size, args.calibration_images)
    image = np.asarray(calibration[0][None], np.float32)

    runs: dict[str, Callable[[], object]] = {}
    keras_fn = tf.function(lambda x: model(x, training=False), jit_compile=False)
    keras_detect = tf.function(lambda x: decoder(model(x, training=False)))
    runs["keras/heads"] = lambda: keras_fn(image)
    runs["keras/detections"] = lambda: keras_detect(image)
    with tempfile.TemporaryDirectory() as tmp:
        for quantize in ("fp32", "int8"):
            for name, prefix in prefixes(model).items():
                runs[f"tflite_{quantize}/{name}"] = invoker(convert(prefix, quantize, calibration), args.threads)
            path = export_tflite(model, Path(tmp) / f"model_{quantize}.tflite", train.class_names, quantize,
                                 calibration if quantize == "int8" else None, decoder)
            runs[f"tflite_{quantize}/detections"] = invoker(path, args.threads)
            detector = TFLiteDetector(path, args.threads)
            original = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
            runs[f"tflite_{quantize}/detect_640x480"] = lambda d=detector: d.detect(original)
        timings = median_ms(runs, args.rounds)

    variants: dict[str, dict[str, float]] = {}
    for key, ms in timings.items():
        variant, part = key.split("/")
        variants.setdefault(variant, {})[part] = ms
    segments = {}
    order = ["backbone", "neck", "heads", "detections"]
    for variant, parts in variants.items():
        if "backbone" in parts:
            previous, segment = 0.0, {}
            for part in order:
                segment[part] = round(parts[part] - previous, 2)
                previous = parts[part]
            segments[variant] = segment
    result = {
        "command": " ".join(["python", "benchmarks/tflite_profile.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "model": args.model or f"untrained, {args.config}",
        "input_size": list(size),
        "threads": args.threads,
        "cumulative_ms": variants,
        "segment_ms": segments,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"cumulative_ms": variants, "segment_ms": segments}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
