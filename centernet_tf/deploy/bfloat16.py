"""bfloat16 inference: the network's weights and arithmetic in bfloat16, its heads' last convolutions and the
decoding in float32.

On a CPU with native bfloat16 (AVX512-BF16, AMX) oneDNN runs the convolutions on those units, which float32
leaves idle (GPUs of compute capability 8.0+ have them too); elsewhere bfloat16 is emulated and slower, so
this is an option, measured per machine by ``benchmark.py`` (its ``keras_bfloat16`` /
``saved_model_bfloat16`` rows), never a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from centernet_tf.model.centernet import CenterNet
from centernet_tf.model.policy import dtype_policy

#: Layers that keep their float32 dtype: the input (photos arrive as float32 or uint8; the first layer casts).
_KEEP_FLOAT32 = ("InputLayer",)


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX), which oneDNN uses (Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def computes_bfloat16() -> bool:
    """Whether this machine computes bfloat16 natively: a GPU of compute capability 8.0 or later (all of them,
    if several), else such a CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) >= (8, 0)
                   for gpu in gpus)
    return cpu_computes_bfloat16()


def _in_bfloat16(layer_config: Any) -> Any:
    """A serialized layer graph with every float32 dtype policy made bfloat16 (inputs excepted)."""
    if isinstance(layer_config, list):
        return [_in_bfloat16(item) for item in layer_config]
    if not isinstance(layer_config, dict):
        return layer_config
    if layer_config.get("class_name") in _KEEP_FLOAT32:
        return layer_config
    converted = {key: _in_bfloat16(value) for key, value in layer_config.items()}
    dtype = converted.get("dtype")
    if isinstance(dtype, dict) and dtype.get("config", {}).get("name") == "float32":
        converted["dtype"] = {**dtype, "config": {**dtype["config"], "name": "bfloat16"}}
    elif dtype == "float32":
        converted["dtype"] = "bfloat16"
    return converted


def bfloat16_model(model: CenterNet) -> CenterNet:
    """A twin of ``model`` computing in bfloat16, with its weights (rounded to bfloat16): the backbone rebuilt
    from its config with bfloat16 layers, the neck and heads built under the bfloat16 policy (the heads' output
    convolutions are float32 by construction, so the decoder reads float32 maps)."""
    config = model.get_config()
    config["backbone"] = _in_bfloat16(config["backbone"])
    with dtype_policy("bfloat16"):
        twin = CenterNet.from_config(config)
    twin.set_weights(model.get_weights())
    return twin
