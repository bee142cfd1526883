"""Detect objects: ``python predict.py --model runs/bccd/model.keras --input image.jpg|images/|video.mp4``.

The same program as the installed ``centernet-predict`` command (:mod:`centernet_tf.commands.predict`).
"""

import os

os.environ["CENTERNET_TF_COMMAND"] = "1"  # quiet TensorFlow's C++ log (centernet_tf.native_log)

from centernet_tf.commands.predict import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run())
