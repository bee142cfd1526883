"""Small helpers shared by the command-line scripts."""

from __future__ import annotations

import logging
from typing import Any


def setup_logging() -> None:
    """Readable INFO logs for our modules."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def format_metrics(metrics: dict[str, Any], title: str) -> str:
    """The closing report: COCO mAP figures and per-class AP."""
    lines = [
        f"COCO metrics on {title} (pycocotools):",
        f"  mAP@[.5:.95] = {metrics['mAP']:.4f}",
        f"  mAP@0.5      = {metrics['mAP50']:.4f}",
        f"  mAP@0.75     = {metrics['mAP75']:.4f}",
    ]
    for name, ap in metrics.get("per_class_AP", {}).items():
        ap50 = metrics.get("per_class_AP50", {}).get(name, float("nan"))
        lines.append(f"  AP[{name}] = {ap:.4f} (AP50 {ap50:.4f})")
    if "total_seconds" in metrics:
        lines.append(f"  wall time: {metrics['total_seconds']:.0f} s (training {metrics['train_seconds']:.0f} s)")
    return "\n".join(lines)
