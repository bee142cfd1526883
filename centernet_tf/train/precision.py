"""``train.mixed_precision``: Keras dtype policies, and ``auto`` decided from what this machine computes natively."""

from __future__ import annotations

import tensorflow as tf

from centernet_tf.deploy.bfloat16 import cpu_computes_bfloat16 as _cpu_computes_bfloat16

#: train.mixed_precision -> Keras dtype policy.
DTYPE_POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def resolve_mixed_precision(name: str) -> str:
    """``train.mixed_precision`` with ``auto`` decided for this machine: ``bfloat16`` where it is native (GPU
    compute capability 8.0+, or a CPU with AVX512-BF16 / AMX: measured 1.2-1.5x faster per step here, see the
    README), ``float16`` on 7.x GPUs (tensor cores without bfloat16), else ``none``."""
    if name != "auto":
        return name
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
                        for gpu in gpus]
        lowest = min(capabilities)
        return "bfloat16" if lowest >= (8, 0) else "float16" if lowest >= (7, 0) else "none"
    return "bfloat16" if _cpu_computes_bfloat16() else "none"
