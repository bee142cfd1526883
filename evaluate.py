"""Evaluate a trained model with COCO metrics: ``python evaluate.py --model runs/NAME/model.keras``.

The same program as the installed ``centernet-evaluate`` command (:mod:`centernet_tf.commands.evaluate`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from centernet_tf.commands.evaluate import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run())
