"""What every detector returns: boxes in the input image's pixels, scores and 0-based class ids (no TensorFlow,
so drawing and reporting code can take it without importing a runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Detections:
    """Boxes ``[N, 4]`` as ``x1, y1, x2, y2`` pixels of the input image, scores ``[N]``, 0-based classes ``[N]``."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def above(self, score_threshold: float) -> Detections:
        keep = self.scores >= score_threshold
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])

    def to_list(self, class_names: list[str] | None = None) -> list[dict[str, Any]]:
        """JSON-ready rows: ``{"box": [x1, y1, x2, y2], "score", "class_id", "class_name"}``."""
        rows = []
        for box, score, cls in zip(self.boxes, self.scores, self.classes):
            row: dict[str, Any] = {
                "box": [round(float(v), 2) for v in box],
                "score": round(float(score), 5),
                "class_id": int(cls),
            }
            if class_names is not None:
                row["class_name"] = class_names[int(cls)] if 0 <= cls < len(class_names) else str(int(cls))
            rows.append(row)
        return rows
