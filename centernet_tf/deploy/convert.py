"""The original CenterNet's checkpoints (github xingyizhou/CenterNet, ``.pth``) as Keras models of parts.

An original checkpoint is ``{"epoch": ..., "state_dict": ...}`` for one ``--arch``; its network takes BGR
pixels normalised with the training set's statistics and returns heatmap logits, ``wh`` and ``reg`` (offset).
:func:`load_official_checkpoint` builds the :class:`~centernet_tf.model.centernet.CenterNet` of that arch (same layers,
PyTorch padding and BatchNorm epsilon), puts the normalisation in the model (it takes RGB 0-255 like every
model here), copies every tensor and fails naming the keys when something does not fit. PyTorch is needed to
read the file only (``pip install "centernet-tf[pretrained]"``)::

    python -m centernet_tf.deploy.convert ctdet_coco_hg.pth --arch hourglass --output coco_hg.keras

The deformable convolutions (DCNv2) of the ``resdcn_*`` and ``dla_34`` archs, most of the published ``ctdet``
files, are :class:`~centernet_tf.model.deformable.DeformableConv2D` layers: builtin ops only.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from centernet_tf.model.backbones.dla import UNUSED_ORIGINAL_MODULES
from centernet_tf.model.centernet import CenterNet, build_centernet
from centernet_tf.model.torch_checkpoint import assign_state_dict, load_pth_state_dict

INSTALL_HINT = 'pip install "centernet-tf[pretrained]"'

#: Original head names of this library's output terms.
TORCH_HEADS = {"heatmap": "hm", "wh": "wh", "offset": "reg"}

#: The original datasets' input statistics: (x / 255 - mean) / std on **BGR** pixels, channels in BGR order.
#: (Pascal's are ImageNet's RGB values applied to BGR channels, as the original code does.)
ORIGINAL_NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "coco": ((0.40789654, 0.44719302, 0.47026115), (0.28863828, 0.27408164, 0.27809835)),
    "pascal": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
PASCAL_CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

#: Keys only deformable convolution (DCNv2) has.
DCN_KEY_MARKER = "conv_offset_mask"


@dataclass(frozen=True)
class OriginalArch:
    """How an original ``--arch`` is built here, and how its Keras layer names map to the checkpoint's keys."""

    backbone: str
    neck: str
    head_conv: int
    backbone_keys: Callable[[str], str | None]
    neck_keys: Callable[[str], str | None]
    #: Modules of the original network that no output depends on: their tensors are dropped, not converted.
    unused_modules: tuple[str, ...] = ()
    #: Whether its checkpoints hold deformable convolutions (``conv_offset_mask`` tensors).
    deformable: bool = False
    #: ``(head, stack, num_stacks) -> (3x3 conv module, final 1x1 conv module)`` of the original heads.
    head_modules: Callable[[str, int, int], tuple[str, str]] = lambda head, stack, stacks: (
        (f"{head}.0", f"{head}.2") if stacks == 1 else (f"{head}.{stack}.0", f"{head}.{stack}.2")
    )


def _torchvision_resnet_key(name: str) -> str | None:
    """``stage2_block1_down_conv`` -> ``layer2.0.downsample.0`` (see :mod:`centernet_tf.model.backbones.resnet`)."""
    stems = {"stem_conv": "conv1", "stem_bn": "bn1"}
    if name in stems:
        return stems[name]
    match = re.fullmatch(r"stage(\d+)_block(\d+)_(conv\d|bn\d|down_conv|down_bn)", name)
    if match is None:
        return None
    stage, block, part = match.groups()
    part = {"down_conv": "downsample.0", "down_bn": "downsample.1"}.get(part, part)
    return f"layer{stage}.{int(block) - 1}.{part}"


def _deconv_layers_key(name: str) -> str | None:
    """``decoder2_deconv`` -> ``deconv_layers.3`` (each block is ConvTranspose2d, BatchNorm2d, ReLU)."""
    match = re.fullmatch(r"decoder(\d)_(deconv|bn)", name)
    if match is None:
        return None
    block, part = int(match.group(1)) - 1, match.group(2)
    return f"deconv_layers.{3 * block + (0 if part == 'deconv' else 1)}"


def _dcn_deconv_layers_key(name: str) -> str | None:
    """``decoder2_dcn`` -> ``deconv_layers.6`` (each block is DCN, BatchNorm2d, ReLU, ConvTranspose2d,
    BatchNorm2d, ReLU: ``resnet_dcn.py``)."""
    match = re.fullmatch(r"decoder(\d)_(dcn|dcn_bn|deconv|bn)", name)
    if match is None:
        return None
    block, part = int(match.group(1)) - 1, match.group(2)
    return f"deconv_layers.{6 * block + {'dcn': 0, 'dcn_bn': 1, 'deconv': 3, 'bn': 4}[part]}"


def _prefixed(prefix: str, accept: Callable[[str], bool]) -> Callable[[str], str | None]:
    """Keras layers named by their original module path, below ``prefix`` in the original network."""
    return lambda name: f"{prefix}.{name}" if accept(name) else None


ARCHS: dict[str, OriginalArch] = {
    **{
        f"res_{depth}": OriginalArch(backbone, "deconv3_256", 64, _torchvision_resnet_key, _deconv_layers_key)
        for depth, backbone in ((18, "resnet18"), (34, "resnet34"), (50, "resnet50_v1b"), (101, "resnet101_v1b"))
    },
    **{
        f"resdcn_{depth}": OriginalArch(backbone, "dcn_deconv3", 64, _torchvision_resnet_key, _dcn_deconv_layers_key,
                                        deformable=True)
        for depth, backbone in ((18, "resnet18"), (34, "resnet34"), (50, "resnet50_v1b"), (101, "resnet101_v1b"))
    },
    "dlav0_34": OriginalArch(
        "dla34", "ida_up", 256,
        _prefixed("base", lambda name: "." in name),
        _prefixed("dla_up", lambda name: name.startswith("ida_")),
        tuple(f"base.{module}" for module in UNUSED_ORIGINAL_MODULES),
    ),
    "dla_34": OriginalArch(
        "dla34", "dla_up_dcn", 256,
        _prefixed("base", lambda name: "." in name),
        lambda name: name if name.startswith(("dla_up.", "ida_up.")) else None,
        tuple(f"base.{module}" for module in UNUSED_ORIGINAL_MODULES),
        deformable=True,
    ),
    # The original hourglass ignores --head_conv: its heads are convolution(3, 256, 256, with_bn=False) + 1x1.
    "hourglass": OriginalArch(
        "hourglass104", "identity", 256,
        lambda name: name if "." in name else None,
        lambda name: None,
        head_modules=lambda head, stack, stacks: (f"{head}.{stack}.0.conv", f"{head}.{stack}.1"),
    ),
}

def _check_arch(arch: str) -> OriginalArch:
    if arch in ARCHS:
        return ARCHS[arch]
    raise ValueError(f"unknown arch {arch!r}; archs that convert: {', '.join(sorted(ARCHS))}")


def _head_keys(model: CenterNet, spec: OriginalArch) -> dict[str, str]:
    """Keras head layer names -> original module names (e.g. ``hm.0`` / ``hm.2``)."""
    keys = {}
    for stack, prefix in enumerate(model.stack_prefixes):
        for term, head in TORCH_HEADS.items():
            conv, final = spec.head_modules(head, stack, model.num_stacks)
            keys[f"{prefix}{term}_head_conv"] = conv
            keys[f"{prefix}{term}"] = final
    return keys


def keras_to_torch_names(model: CenterNet, arch: str) -> dict[str, str]:
    """Every weighted Keras layer name of an ``arch`` model -> the original module name it takes tensors from."""
    spec = _check_arch(arch)
    names: dict[str, str] = {}
    for layer in model.backbone.layers:
        key = spec.backbone_keys(layer.name)
        if key is not None:
            names[layer.name] = key
    for layer in model.layers:
        key = spec.neck_keys(layer.name)
        if key is not None:
            names[layer.name] = key
    names.update(_head_keys(model, spec))
    return names


def original_class_names(num_classes: int, dataset: str) -> tuple[str, ...] | None:
    """The original dataset's class names when the class count is that dataset's."""
    names = {"coco": COCO_CLASS_NAMES, "pascal": PASCAL_CLASS_NAMES}.get(dataset)
    return names if names is not None and len(names) == num_classes else None


def original_normalization(dataset: str) -> dict[str, Any]:
    """The original preprocessing as :class:`ImageNormalization` settings on RGB 0-255 pixels."""
    try:
        mean_bgr, std_bgr = ORIGINAL_NORMALIZATION[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(ORIGINAL_NORMALIZATION)}") from None
    return {"mean": [255.0 * m for m in mean_bgr[::-1]], "std": [255.0 * s for s in std_bgr[::-1]], "bgr": True}


def build_original_arch(
    arch: str,
    num_classes: int,
    input_size: tuple[int | None, int | None] = (512, 512),
    dataset: str = "coco",
    class_names: tuple[str, ...] | list[str] | None = None,
) -> CenterNet:
    """The Keras :class:`CenterNet` of an original ``--arch`` (random weights), with the original defaults:
    its neck, heads without BatchNorm, ``head_conv`` 64 (256 for DLA) and the dataset's input normalisation."""
    spec = _check_arch(arch)
    return build_centernet(
        num_classes,
        spec.backbone,
        (*input_size, 3),
        head_conv=spec.head_conv,
        neck=spec.neck,
        head_batch_norm=False,
        class_names=class_names if class_names is not None else original_class_names(num_classes, dataset),
        normalization=original_normalization(dataset),
    )


def model_from_state_dict(
    state: Mapping[str, np.ndarray],
    arch: str,
    num_classes: int | None = None,
    input_size: tuple[int, int] = (512, 512),
    dataset: str = "coco",
    class_names: tuple[str, ...] | list[str] | None = None,
) -> CenterNet:
    """The Keras :class:`CenterNet` of ``arch`` holding an original state dict (``module.`` already removed)."""
    spec = _check_arch(arch)
    dcn = sorted(key for key in state if DCN_KEY_MARKER in key)
    if dcn and not spec.deformable:
        raise ValueError(
            f"the checkpoint has deformable-convolution (DCNv2) tensors ({', '.join(dcn[:3])}, ... {len(dcn)} in "
            f"all), which arch {arch!r} has not: it was trained with a resdcn or dla arch. Archs with deformable "
            f"convolution that convert: {', '.join(sorted(a for a, s in ARCHS.items() if s.deformable))}."
        )
    heatmap_bias = next((key for key in ("hm.2.bias", "hm.1.1.bias") if key in state), None)
    if num_classes is None:
        if heatmap_bias is None:
            raise ValueError("no heatmap head (hm.2.bias) in the checkpoint; pass num_classes")
        num_classes = int(state[heatmap_bias].shape[0])
    model = build_original_arch(arch, num_classes, input_size, dataset, class_names)
    layers = [*model.backbone.layers, *(layer for layer in model.layers if layer is not model.backbone)]
    used = {key: value for key, value in state.items() if not key.startswith(tuple(f"{m}." for m in spec.unused_modules))}
    assign_state_dict(layers, keras_to_torch_names(model, arch), used, f"the original {arch!r} with {num_classes} classes")
    return model


def load_official_checkpoint(
    path: str | Path,
    arch: str,
    num_classes: int | None = None,
    input_size: tuple[int, int] = (512, 512),
    dataset: str = "coco",
) -> CenterNet:
    """Read an original CenterNet ``.pth`` (``--arch`` ``arch``) into a Keras :class:`CenterNet`.

    ``num_classes`` defaults to the checkpoint's; with 80 (``dataset="coco"``) or 20 (``"pascal"``) classes
    the model carries that dataset's class names. ``input_size`` (height, width) fixes the model's input, which
    the detectors letterbox to; the weights work at any size that is a multiple of the backbone's.
    """
    _check_arch(arch)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return model_from_state_dict(load_pth_state_dict(str(path), INSTALL_HINT), arch, num_classes, input_size, dataset)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Convert an original CenterNet checkpoint (.pth) to a Keras model (.keras).",
        epilog=__doc__.split("::")[0].split("\n\n")[-1],
    )
    parser.add_argument("checkpoint", help="the original .pth file, e.g. ctdet_coco_hg.pth")
    parser.add_argument("--arch", required=True, help=f"the original --arch: {', '.join(sorted(ARCHS))}")
    parser.add_argument("--output", required=True, help="the .keras file to write")
    parser.add_argument("--num-classes", type=int, help="default: the checkpoint's")
    parser.add_argument("--dataset", default="coco", choices=sorted(ORIGINAL_NORMALIZATION),
                        help="what it was trained on: its input statistics (and class names)")
    parser.add_argument("--input-size", type=int, nargs=2, default=(512, 512), metavar=("HEIGHT", "WIDTH"))
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end with .keras, got {args.output!r}")
    model = load_official_checkpoint(args.checkpoint, args.arch, args.num_classes, tuple(args.input_size), args.dataset)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.output)
    print(f"wrote {args.output}: {args.arch}, {model.num_classes} classes, input {tuple(args.input_size)}, "
          f"{model.count_params():,} parameters")


if __name__ == "__main__":
    main()
