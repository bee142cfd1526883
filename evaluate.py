"""Evaluate a trained model with COCO metrics: ``python evaluate.py --model runs/NAME/model.keras``.

The same program as the installed ``centernet-evaluate`` command (:mod:`centernet_tf.commands.evaluate`).
"""

import os

os.environ["CENTERNET_TF_COMMAND"] = "1"  # quiet TensorFlow's C++ log (centernet_tf.native_log)

from centernet_tf.commands.evaluate import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run())
