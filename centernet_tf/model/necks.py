"""Necks: registered builders that turn a backbone's ``{"P{level}": features}`` into the heads' input maps.

A neck returns a list with one feature map per output stack; the heads are built on each, and the loss is
applied to every stack (intermediate supervision), while inference and export use the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import keras
from keras import layers

from centernet_tf.model.backbones.registry import features_by_stride, pyramids_by_stack
from centernet_tf.model.deformable import DeformableConv2D
from centernet_tf.model.layers import TORCH_BN_EPSILON, BilinearUpsampling, DepthwiseConv2DTranspose

NeckBuilder = Callable[[Mapping[str, keras.KerasTensor]], list[keras.KerasTensor]]
_NECKS: dict[str, NeckBuilder] = {}

#: Filters of the paper's three upsampling blocks for ResNets.
DECONV_FILTERS = (256, 128, 64)
#: Filters of the original code's blocks for ResNets without deformable convolution (``msra_resnet.py``).
DECONV_256_FILTERS = (256, 256, 256)
#: Filters of the ``fpn`` neck's top-down levels, stride 16 -> 8 -> 4 (the finest feeds the heads).
FPN_FILTERS = (128, 64, 64)


def register_neck(name: str) -> Callable[[NeckBuilder], NeckBuilder]:
    def decorate(fn: NeckBuilder) -> NeckBuilder:
        _NECKS[name] = fn
        return fn

    return decorate


def available_necks() -> list[str]:
    return sorted(_NECKS)


def build_neck(name: str, pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    try:
        builder = _NECKS[name]
    except KeyError:
        raise ValueError(f"Unknown neck {name!r}; available: {', '.join(available_necks())}") from None
    stacks = builder(pyramid)
    if not stacks:
        raise ValueError(f"neck {name!r} returned no feature map")
    return list(stacks)


@register_neck("deconv3")
def deconv3(pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """The paper's upsampling for ResNets: three bias-free ``Conv2DTranspose(k=4, s=2)`` + BN + ReLU blocks
    (256, 128, 64 filters) on the coarsest features: stride 32 -> 4."""
    return [_upsample_blocks(pyramid, DECONV_FILTERS)]


@register_neck("deconv3_256")
def deconv3_256(pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """The original code's upsampling for ResNets without deformable convolution (``msra_resnet.py``, the
    ``res_18`` / ``res_101`` archs): the same blocks with 256 filters each and PyTorch's BatchNorm epsilon, so
    the original checkpoints give the original outputs."""
    return [_upsample_blocks(pyramid, DECONV_256_FILTERS, epsilon=TORCH_BN_EPSILON)]


def _upsample_blocks(
    pyramid: Mapping[str, keras.KerasTensor], filters_per_block: tuple[int, ...], epsilon: float = 1e-3
) -> keras.KerasTensor:
    """Bias-free ``Conv2DTranspose(k=4, s=2, "same")`` + BN + ReLU blocks on the coarsest features. Keras'
    ``"same"`` here crops one pixel on each side, as PyTorch's ``ConvTranspose2d(k=4, s=2, padding=1)``."""
    by_stride = features_by_stride(pyramid)
    x = by_stride[max(by_stride)]
    for i, filters in enumerate(filters_per_block, start=1):
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, name=f"decoder{i}_deconv")(x)
        x = layers.BatchNormalization(epsilon=epsilon, name=f"decoder{i}_bn")(x)
        x = layers.ReLU(name=f"decoder{i}_relu")(x)
    return x


@register_neck("dcn_deconv3")
def dcn_deconv3(pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """The original code's upsampling of the ``resdcn`` archs (``resnet_dcn.py``): three blocks of a 3x3
    deformable convolution (DCNv2, with bias) + BN + ReLU, then ``ConvTranspose2d(k=4, s=2, p=1)`` (bias-free,
    bilinear at start) + BN + ReLU, with 256, 128 and 64 filters: stride 32 -> 4. PyTorch's BatchNorm epsilon."""
    by_stride = features_by_stride(pyramid)
    x = by_stride[max(by_stride)]
    for i, filters in enumerate(DECONV_FILTERS, start=1):
        x = DeformableConv2D(filters, 3, padding=1, name=f"decoder{i}_dcn")(x)
        x = layers.BatchNormalization(epsilon=TORCH_BN_EPSILON, name=f"decoder{i}_dcn_bn")(x)
        x = layers.ReLU(name=f"decoder{i}_dcn_relu")(x)
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=BilinearUpsampling(), name=f"decoder{i}_deconv")(x)
        x = layers.BatchNormalization(epsilon=TORCH_BN_EPSILON, name=f"decoder{i}_bn")(x)
        x = layers.ReLU(name=f"decoder{i}_relu")(x)
    return [x]


@register_neck("fpn")
def fpn(pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """A feature-pyramid top-down path to stride 4, for small objects and mobile backbones.

    ``deconv3`` sees only the stride-32 features, so a 20-pixel fish must be recovered from a map where it
    covers under one cell; here each upsampling step adds the backbone's own finer features (lateral 1x1
    conv), as in FPN (Lin et al. 2017) and the CenterNet MobileNet-FPN models of the TF detection zoo:
    ``x = ReLU(BN(Conv3x3(Upsample2x(Conv1x1(x)) + Conv1x1(lateral))))``, 128/64/64 filters at strides
    16/8/4. Needs the backbone's levels down to stride 4.
    """
    by_stride = features_by_stride(pyramid)
    coarsest = max(by_stride)
    wanted = [coarsest // 2 ** (i + 1) for i in range(len(FPN_FILTERS))]
    missing = [s for s in wanted if s not in by_stride]
    if missing:
        raise ValueError(f"the fpn neck needs backbone features at strides {wanted}; missing {missing}")
    x = by_stride[coarsest]
    for i, (stride, filters) in enumerate(zip(wanted, FPN_FILTERS), start=1):
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"fpn{i}_reduce")(x)
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"fpn{i}_upsample")(x)
        lateral = layers.Conv2D(filters, 1, use_bias=False, name=f"fpn{i}_lateral")(by_stride[stride])
        x = layers.Add(name=f"fpn{i}_add")([x, lateral])
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"fpn{i}_conv")(x)
        x = layers.BatchNormalization(name=f"fpn{i}_bn")(x)
        x = layers.ReLU(name=f"fpn{i}_relu")(x)
    return [x]


@register_neck("identity")
def identity(pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """The backbone's finest features as they are, one map per stack (backbones that upsample themselves,
    e.g. hourglasses, whose earlier stacks get heads of their own for intermediate supervision)."""
    maps = []
    for levels in pyramids_by_stack(pyramid):
        by_stride = features_by_stride(levels)
        maps.append(by_stride[min(by_stride)])
    return maps


@register_neck("ida_up")
def ida_up(pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """The original CenterNet's ``DLAUp`` (``dlav0.py``): iterative deep aggregation from the coarsest level to
    stride 4, built from the backbone's levels P2-P5 and their channels.

    Stage ``i`` merges the levels from the ``i + 2``-th coarsest down: each is projected (1x1 conv + BN + ReLU)
    to that level's channels, upsampled by a per-channel ``ConvTranspose2d(k=4, s=2, p=1)`` (bilinear at
    start) to its resolution, and folded in one by one by 3x3 conv + BN + ReLU "nodes"; the node outputs
    replace the coarser levels for the next stage. Layer names are the original module paths
    (``ida_1.node_2.0``), which checkpoint conversion maps by.
    """
    by_stride = features_by_stride(pyramid)
    strides = sorted(s for s in by_stride if s >= 4)
    if len(strides) < 2 or strides[0] != 4:
        raise ValueError(f"the ida_up neck needs backbone features from stride 4 on; got strides {sorted(by_stride)}")
    features = [by_stride[s] for s in strides]
    scales = list(strides)
    for stage in range(len(features) - 1):
        first = len(features) - stage - 2
        target_channels = int(features[first].shape[-1])
        merged, outputs = None, []
        for j, (x, scale) in enumerate(zip(features[first:], scales[first:])):
            name = f"ida_{stage}"
            if int(x.shape[-1]) != target_channels:
                x = layers.Conv2D(target_channels, 1, use_bias=False, name=f"{name}.proj_{j}.0")(x)
                x = layers.BatchNormalization(epsilon=TORCH_BN_EPSILON, name=f"{name}.proj_{j}.1")(x)
                x = layers.ReLU(name=f"{name}.proj_{j}.2")(x)
            factor = scale // scales[first]
            if factor > 1:
                x = DepthwiseConv2DTranspose(2 * factor, factor, factor // 2, name=f"{name}.up_{j}")(x)
            if merged is None:
                merged = x
                continue
            merged = layers.Concatenate(name=f"{name}.node_{j}.concat")([merged, x])
            merged = layers.Conv2D(target_channels, 3, padding="same", use_bias=False, name=f"{name}.node_{j}.0")(merged)
            merged = layers.BatchNormalization(epsilon=TORCH_BN_EPSILON, name=f"{name}.node_{j}.1")(merged)
            merged = layers.ReLU(name=f"{name}.node_{j}.2")(merged)
            outputs.append(merged)
        features[first + 1:] = outputs
        scales[first + 1:] = [scales[first]] * len(outputs)
    return [merged]


def _deform_conv(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """The original ``DeformConv``: DCNv2 3x3 (with bias) + BN + ReLU, named by its module path."""
    x = DeformableConv2D(filters, 3, padding=1, name=f"{name}.conv")(x)
    x = layers.BatchNormalization(epsilon=TORCH_BN_EPSILON, name=f"{name}.actf.0")(x)
    return layers.ReLU(name=f"{name}.actf.1")(x)


def _ida_step(x: keras.KerasTensor, finer: keras.KerasTensor, filters: int, factor: int, name: str) -> keras.KerasTensor:
    """One merge of the deformable ``IDAUp``: ``node(up(proj(x)) + finer)``, ``up`` per channel (bilinear at start)."""
    x = _deform_conv(x, filters, name.replace("{}", "proj"))
    if factor > 1:
        x = DepthwiseConv2DTranspose(2 * factor, factor, factor // 2, name=name.replace("{}", "up"))(x)
    x = layers.Add(name=name.replace("{}", "add"))([x, finer])
    return _deform_conv(x, filters, name.replace("{}", "node"))


@register_neck("dla_up_dcn")
def dla_up_dcn(pyramid: Mapping[str, keras.KerasTensor]) -> list[keras.KerasTensor]:
    """The deformable DLA-34's upsampling (``pose_dla_dcn.py``, ``--arch dla_34``), not ``dlav0``'s: every
    projection and node is a ``DeformConv`` (DCNv2 3x3 + BN + ReLU) and nodes *add* the upsampled coarser map to
    the finer one instead of concatenating. ``DLAUp`` runs three stages from stride 16 down to stride 4, each
    folding every coarser level into the finer one; an extra ``IDAUp`` then merges the stages' last outputs at
    strides 4, 8 and 16 into the stride-4 map the heads read. Layer names are the original module paths.
    """
    by_stride = features_by_stride(pyramid)
    strides = [4, 8, 16, 32]
    missing = [s for s in strides if s not in by_stride]
    if missing:
        raise ValueError(f"the dla_up_dcn neck needs backbone features at strides {strides}; missing {missing}")
    levels = [by_stride[s] for s in strides]
    channels = [int(x.shape[-1]) for x in levels]
    scales = [1, 2, 4, 8]
    outputs = [levels[-1]]
    for stage in range(len(levels) - 1):
        first = len(levels) - stage - 2
        for k in range(first + 1, len(levels)):
            name = f"dla_up.ida_{stage}.{{}}_{k - first}"
            levels[k] = _ida_step(levels[k], levels[k - 1], channels[first], scales[k] // scales[first], name)
        scales[first + 1:] = [scales[first]] * (len(scales) - first - 1)
        outputs.insert(0, levels[-1])
    merged = outputs[:3]  # strides 4, 8, 16 (``last_level`` 5 of the original)
    for k in range(1, len(merged)):
        merged[k] = _ida_step(merged[k], merged[k - 1], channels[0], 2 ** k, f"ida_up.{{}}_{k}")
    return [merged[-1]]

