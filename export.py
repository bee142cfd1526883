"""Export a trained model: ``python export.py --model runs/bccd/model.keras --format tflite --quantize int8``.

The same program as the installed ``centernet-export`` command (:mod:`centernet_tf.commands.export`).
"""

import os

os.environ["CENTERNET_TF_COMMAND"] = "1"  # quiet TensorFlow's C++ log (centernet_tf.native_log)

from centernet_tf.commands.export import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run())
