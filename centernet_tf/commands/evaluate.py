"""Evaluate a trained model with COCO metrics: ``python evaluate.py --model runs/NAME/model.keras``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import centernet_tf  # noqa: E402,F401 - registers the custom layers and losses for load_model
from centernet_tf.cli import add_debug_flag, format_metrics, run_cli, setup_logging  # noqa: E402
from centernet_tf.commands import decoder_for_command  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.data.loaders import load_split  # noqa: E402
from centernet_tf.deploy.tta import describe as describe_test_time  # noqa: E402
from centernet_tf.evaluation.metrics import evaluate_model  # noqa: E402
from centernet_tf.files import atomic_write, refuse_overwriting  # noqa: E402
from centernet_tf.labels import class_names_for  # noqa: E402
from centernet_tf.model.centernet import load_centernet  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Test-time augmentation: --set eval.flip_test=true --set 'eval.test_scales=[0.75,1,1.25]'",
    )
    parser.add_argument("--model", required=True, help="a .keras file written by train.py")
    parser.add_argument("--config", help="YAML config (default: config.yaml next to the model)")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", help="write the metrics as JSON here")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    if not Path(args.model).is_file():
        raise FileNotFoundError(f"model not found: {args.model}")
    config_path = Path(args.config or Path(args.model).with_name("config.yaml"))
    if not config_path.is_file():
        raise FileNotFoundError(f"config not found: {config_path} (pass --config: the data to evaluate on)")
    if args.output:
        refuse_overwriting([args.output], [args.model, config_path], "--output")
    config = load_config(config_path, args.overrides)
    model = load_centernet(args.model)
    class_names = model.class_names or class_names_for(args.model)
    index = load_split(config.data, args.split, class_names=class_names)
    decoder = decoder_for_command(model, config, args.overrides)
    metrics = evaluate_model(model, index, decoder, config.eval.batch_size)
    metrics["test_time_augmentation"] = describe_test_time(decoder)
    summary = metrics.pop("summary", "")
    print(summary)
    print(format_metrics(metrics, f"{index.name or args.split} (test-time augmentation: {describe_test_time(decoder)})"))
    if args.output:
        atomic_write(args.output, json.dumps(metrics, indent=2))
    return 0


def run() -> int:
    """The console entry point: ``main`` with one-line errors."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run())
