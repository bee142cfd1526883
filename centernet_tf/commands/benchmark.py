"""Benchmark every deployment format: ``python benchmark.py --model runs/NAME/model.keras [--split test]``.

Exports the model to each format available here (Keras, SavedModel, TFLite fp32 / fp16 / int8, ONNX), scores
each with the same COCO metric code on the run's validation (or test) split, times each per image (median over
alternating rounds) and prints one table; it and the JSON are written to ``--output-dir``. A format whose
runtime is not installed is listed as skipped with the extra to install; a format whose mAP@0.5 differs from
the Keras model's by more than 1.5 points is flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from centernet_tf.cli import add_debug_flag, run_cli, setup_logging  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a .keras file written by train.py")
    parser.add_argument("--config", help="the run's config (default: config.yaml beside the model)")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--formats", help="comma-separated subset (default: all): keras, saved_model, tflite_fp32, "
                        "tflite_fp16, tflite_int8, onnx")
    parser.add_argument("--rounds", type=int, default=3, help="timing passes over the timed images")
    parser.add_argument("--timed-images", type=int, default=50, help="images timed per pass")
    parser.add_argument("--threads", type=int, help="TFLite / ONNX Runtime threads (default: all cores)")
    parser.add_argument("--output-dir", help="where the exports, benchmark.md and benchmark.json go "
                        "(default: <model folder>/benchmark)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()

    import centernet_tf  # noqa: F401  (registers the custom layers)
    from centernet_tf.evaluation.benchmark import markdown_table, run_benchmark
    from centernet_tf.commands import decoder_for_command
    from centernet_tf.config import load_config
    from centernet_tf.data.loaders import load_split
    from centernet_tf.files import atomic_write, refuse_overwriting
    from centernet_tf.labels import class_names_for
    from centernet_tf.model.centernet import load_centernet

    model_path = Path(args.model)
    if not model_path.is_file():
        parser.error(f"--model {model_path}: no such file")
    if args.rounds < 1 or args.timed_images < 1:
        parser.error("--rounds and --timed-images must be at least 1")
    config_path = Path(args.config) if args.config else model_path.parent / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"config not found: {config_path} (pass --config: the data to benchmark on)")
    config = load_config(config_path, args.overrides)
    output_dir = Path(args.output_dir) if args.output_dir else model_path.parent / "benchmark"
    refuse_overwriting([output_dir / "benchmark.md", output_dir / "benchmark.json"], [model_path, config_path],
                       "--output-dir")
    model = load_centernet(model_path)
    class_names = model.class_names or class_names_for(model_path)
    index = load_split(config.data, args.split, class_names=class_names)
    formats = tuple(f.strip() for f in args.formats.split(",")) if args.formats else None
    calibration = load_split(config.data, "train", class_names=class_names) if not formats or "tflite_int8" in formats \
        else None
    output_dir.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(model, decoder_for_command(model, config, args.overrides), index, output_dir, formats,
                           calibration, args.rounds, args.timed_images, args.threads)
    result = {"command": " ".join(["python benchmark.py", *(argv if argv is not None else sys.argv[1:])]),
              "model": str(model_path), **result}
    table = markdown_table(result)
    atomic_write(output_dir / "benchmark.md", table + "\n")
    atomic_write(output_dir / "benchmark.json", json.dumps(result, indent=2) + "\n")
    print(f"{result['split']}: {result['images']} images for mAP, {result['timed_images']} timed x {result['rounds']} "
          f"rounds, {result['threads']} threads\n{table}\nwrote {output_dir / 'benchmark.md'}")
    return 0


def run() -> int:
    """The console entry point: ``main`` with one-line errors."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run())
