"""Small helpers shared by the command-line scripts."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from centernet_tf.native_log import debug_requested, full_log_requested

#: Errors a user can act on: one line each; anything else is a bug and keeps its traceback. ``OSError`` covers
#: the file system's answers (a full disk, a read-only folder, a file where a folder should be).
USER_ERRORS = (ValueError, TypeError, OSError, ImportError)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; an error a user can act on (bad path, bad file, bad config, diverged training)
    prints one line, ``<script>: error: <message>``, and exits 2 (1 for a diverged training); ``--debug`` (or
    ``CENTERNET_DEBUG=1``) shows the traceback instead."""
    from centernet_tf.train.callbacks import TrainingDiverged

    args = sys.argv[1:] if argv is None else argv
    debug = debug_requested(args)
    try:
        return main(args)
    except (*USER_ERRORS, TrainingDiverged) as error:
        if debug:
            raise
        script = os.path.basename(sys.argv[0]) or "centernet"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"{script}: error: {message}", file=sys.stderr)
        return 1 if isinstance(error, TrainingDiverged) else 2


def setup_logging() -> None:
    """Readable INFO logs for our modules. TensorFlow's own Python INFO lines ("Assets written to ...", printed
    twice: by its handler and ours) only with ``--debug`` / ``CENTERNET_TF_NATIVE_LOG=1``; its warnings always."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not full_log_requested():
        logging.getLogger("tensorflow").setLevel(logging.WARNING)


def format_metrics(metrics: dict[str, Any], title: str) -> str:
    """The closing report: COCO mAP figures and per-class AP."""
    lines = [
        f"COCO metrics on {title} (pycocotools):",
        f"  mAP@[.5:.95] = {metrics['mAP']:.4f}",
        f"  mAP@0.5      = {metrics['mAP50']:.4f}",
        f"  mAP@0.75     = {metrics['mAP75']:.4f}",
    ]
    if "VOC07_mAP50" in metrics:
        lines.append(f"  VOC07 mAP@0.5 (11-point) = {metrics['VOC07_mAP50']:.4f}, VOC2010+ = {metrics['VOC_mAP50']:.4f}")
    for name, ap in metrics.get("per_class_AP", {}).items():
        ap50 = metrics.get("per_class_AP50", {}).get(name, float("nan"))
        if ap != ap:  # NaN: pycocotools has nothing to measure
            lines.append(f"  AP[{name}] = no ground truth (no box of this class in the split)")
        else:
            lines.append(f"  AP[{name}] = {ap:.4f} (AP50 {ap50:.4f})")
    if "total_seconds" in metrics:
        lines.append(f"  wall time: {metrics['total_seconds']:.0f} s (training {metrics['train_seconds']:.0f} s)")
    return "\n".join(lines)
