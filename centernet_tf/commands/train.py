"""Train CenterNet: ``python train.py`` (built-in shapes data) or ``python train.py --config configs/bccd.yaml``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from centernet_tf.cli import add_debug_flag, format_metrics, run_cli, setup_logging  # noqa: E402
from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.train.callbacks import TrainingDiverged  # noqa: E402
from centernet_tf.train.training import run_training  # noqa: E402

#: The built-in default (synthetic shapes): the repository's configs/, or where pip installs them.
CONFIG_DIRS = (Path(__file__).resolve().parents[2] / "configs", Path(sys.prefix) / "share" / "centernet-tf" / "configs")


def default_config() -> Path:
    for directory in CONFIG_DIRS:
        if (directory / "shapes.yaml").is_file():
            return directory / "shapes.yaml"
    raise FileNotFoundError(f"the default config shapes.yaml is in none of {[str(d) for d in CONFIG_DIRS]}; "
                            "pass --config")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="YAML experiment file (default: the built-in shapes config)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument("--run-dir", help="output directory (default: <output_dir>/<name>)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config or default_config(), args.overrides)
    try:
        # Keras' per-step progress bar (with ETA) on a terminal; one line per epoch in a log file or CI.
        metrics = run_training(config, args.run_dir, verbose=1 if sys.stdout.isatty() else 2)
    except TrainingDiverged as error:
        logging.getLogger("train").error("Training diverged: %s", error)
        return 1
    logging.getLogger("train").info("Finished %s", config.name)
    if "worker" in metrics:  # a multi-worker run's other workers: the chief writes and reports the results
        return 0
    print(format_metrics(metrics, f"{config.name} (val)"))
    return 0


def run() -> int:
    """The console entry point: ``main`` with one-line errors."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run())
