"""The backbone registry: name -> builder + the input normalisation its weights expect."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import keras
from keras import layers

from centernet_tf.model.layers import BN_MOMENTUM, ImageNormalization

#: ``fn(normalised_image, weights) -> {"P{level}": features}``; ``weights`` is None or what the builder accepts.
BackboneBuilder = Callable[[keras.KerasTensor, "str | None"], dict[str, keras.KerasTensor]]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and how its input must be normalised (its pretrained weights expect it)."""

    build: BackboneBuilder
    #: Per-channel mean and std in RGB order applied to 0-255 pixels, and whether to feed BGR.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool
    description: str
    #: Input height and width must be multiples of this (the coarsest stride, or more for hourglasses).
    size_multiple: int = 32


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    bgr: bool = False,
    description: str = "",
    size_multiple: int = 32,
) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator adding a builder ``fn(normalised_image, weights) -> {"P{level}": features}``."""

    def decorate(fn: BackboneBuilder) -> BackboneBuilder:
        _REGISTRY[name] = BackboneSpec(
            fn, tuple(mean), tuple(std), bool(bgr), description or (fn.__doc__ or "").strip(), int(size_multiple)
        )
        return fn

    return decorate


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}; available: {', '.join(available_backbones())}") from None


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def build_backbone(
    name: str,
    input_shape: tuple[int | None, int | None, int] = (512, 512, 3),
    weights: str | None = None,
    normalization: Mapping[str, Any] | None = None,
) -> keras.Model:
    """The nested backbone model: RGB 0-255 ``input_shape`` -> normalisation -> ``{"P{level}": features}``.

    ``weights``: None (random init), ``"imagenet"`` (download, or the Keras cache) or a local weights file.
    ``normalization``: ``{"mean": ..., "std": ..., "bgr": ...}`` (as :class:`ImageNormalization`) replacing the
    registered one, for weights trained with another (e.g. the original CenterNet checkpoints' COCO statistics).
    """
    spec = get_backbone(name)
    height, width = input_shape[0], input_shape[1]
    for size in (height, width):
        if size is not None and size % spec.size_multiple:
            raise ValueError(
                f"backbone {name!r} needs input height and width divisible by {spec.size_multiple}, "
                f"got {tuple(input_shape[:2])}"
            )
    image = keras.Input(shape=tuple(input_shape), name="image")
    settings = {"mean": spec.mean, "std": spec.std, "bgr": spec.bgr, **(normalization or {})}
    normalised = ImageNormalization(**settings, name="normalize")(image)
    pyramid = spec.build(normalised, weights)
    if not any(_is_level(key) for key in pyramid) or not all(_is_level(_unstacked(key)) for key in pyramid):
        raise ValueError(
            f"backbone {name!r} must return a dict keyed 'P<level>' (and 'stack<i>_P<level>' for earlier stacks), "
            f"got {list(pyramid)}"
        )
    model = keras.Model(image, dict(pyramid), name=name)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


def _is_level(key: str) -> bool:
    return key.startswith("P") and key[1:].isdigit()


def _unstacked(key: str) -> str:
    """``"stack1_P2"`` -> ``"P2"``."""
    prefix, _, level = key.partition("_")
    return level if prefix.startswith("stack") and prefix[5:].isdigit() else key


def features_by_stride(pyramid: Mapping[str, Any]) -> dict[int, Any]:
    """``{"P3": x, "P5": y}`` -> ``{8: x, 32: y}`` (the last stack's levels; earlier stacks' keys are skipped)."""
    return {2 ** int(key[1:]): value for key, value in pyramid.items() if _is_level(key)}


def pyramids_by_stack(pyramid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A backbone with several stacks (hourglasses) returns the last stack's levels as ``"P<level>"`` and earlier
    stacks' as ``"stack<i>_P<level>"`` (1-based, the output keys' convention): one dict per stack, in order."""
    stacks: dict[int, dict[str, Any]] = {}
    for key, value in pyramid.items():
        level = _unstacked(key)
        stack = int(key.partition("_")[0][5:]) if level != key else 10**9  # the unprefixed stack is the last
        stacks.setdefault(stack, {})[level] = value
    return [stacks[stack] for stack in sorted(stacks)]


def level_of_stride(stride: int) -> str:
    """32 -> ``"P5"``."""
    level = math.log2(stride)
    if level != int(level):
        raise ValueError(f"stride {stride} is not a power of two")
    return f"P{int(level)}"


def check_weights_argument(weights: str | None) -> str | None:
    """Fail early with an actionable message instead of deep inside Keras."""
    if weights is None or weights == "imagenet":
        return weights
    path = os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"backbone_weights={weights!r} is neither None, 'imagenet' nor an existing weights file."
        )
    return path


def keras_cache_dir() -> str:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    return os.path.join(os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")), "models")


def keras_cached_weights(filename: str) -> str | None:
    path = os.path.join(keras_cache_dir(), filename)
    return path if os.path.isfile(path) else None


def load_builder_weights(image: keras.KerasTensor, outputs: Any, weights: str | None) -> None:
    """Load a file written by ``save_weights`` of the same backbone, into the layers between image and outputs."""
    if weights is not None:
        keras.Model(keras.utils.get_source_inputs(image), outputs).load_weights(weights)
