"""Export a trained model: ``python export.py --model runs/bccd/model.keras --format tflite --quantize int8``.

The same program as the installed ``centernet-export`` command (:mod:`centernet_tf.commands.export`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from centernet_tf.commands.export import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run())
