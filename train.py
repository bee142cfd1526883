"""Train CenterNet: ``python train.py`` (built-in shapes data) or ``python train.py --config configs/bccd.yaml``.

The same program as the installed ``centernet-train`` command (:mod:`centernet_tf.commands.train`).
"""

import os

os.environ["CENTERNET_TF_COMMAND"] = "1"  # quiet TensorFlow's C++ log (centernet_tf.native_log)

from centernet_tf.commands.train import run  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run())
