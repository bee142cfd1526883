"""Fine-tuning from a published checkpoint (``model.init_from``): what users of detection libraries do first.

The source is an original CenterNet ``.pth`` (converted on the fly, :mod:`centernet_tf.deploy.convert`) or any
``.keras`` CenterNet. Layers are matched by name, which is the module path the parts are built with, so a
model configured with the checkpoint's backbone and neck takes every tensor. The heatmap's last convolution
has one output channel per class: a class whose name the source also has takes over that channel (COCO
``person`` -> your ``person``); the others keep their fresh start at the focal prior.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from centernet_tf.deploy.convert import load_official_checkpoint
from centernet_tf.model.centernet import CenterNet, load_centernet
from centernet_tf.model.layers import ImageNormalization

logger = logging.getLogger(__name__)


def load_init_source(path: str | Path, arch: str | None = None, dataset: str = "coco") -> CenterNet:
    """The model to start from: a ``.keras`` CenterNet, or an original ``.pth`` of ``--arch`` ``arch``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.init_from: no such file: {path}")
    if path.suffix == ".pth":
        if not arch:
            raise ValueError("model.init_from is an original .pth: set model.init_arch to its --arch (e.g. dla_34)")
        return load_official_checkpoint(path, arch, input_size=(None, None), dataset=dataset)
    if path.suffix == ".keras":
        return load_centernet(path)
    raise ValueError(f"model.init_from must be a .keras file or an original CenterNet .pth, got {path.name}")


def image_normalization(model: CenterNet) -> dict[str, Any] | None:
    """The input normalisation inside ``model`` (mean, std, BGR), to build a model that sees the same inputs."""
    for layer in model.backbone.layers:
        if isinstance(layer, ImageNormalization):
            return {"mean": list(layer.mean), "std": list(layer.std), "bgr": layer.bgr}
    return None


def transfer_weights(source: CenterNet, target: CenterNet) -> dict[str, Any]:
    """Copy every layer of ``source`` whose name and weight shapes match into ``target``; the heatmap output
    layers by class name. Returns (and logs) what was loaded, matched and started afresh."""
    heatmaps = {layer.name for layer in target.heatmap_output_layers}
    by_name = {layer.name: layer for layer in [*source.backbone.layers, *source.layers] if layer.weights}
    loaded, skipped, tensors = [], [], 0
    for layer in [*target.backbone.layers, *target.layers]:
        if not layer.weights or layer is target.backbone or layer.name in heatmaps:
            continue
        other = by_name.get(layer.name)
        if other is not None and [w.shape for w in other.get_weights()] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(other.get_weights())
            loaded.append(layer.name)
            tensors += len(layer.weights)
        else:
            skipped.append(layer.name)
    source_names = list(source.class_names or [])
    target_names = list(target.class_names or [])
    matched = [name for name in target_names if name in source_names]
    for layer, other in zip(target.heatmap_output_layers, source.heatmap_output_layers[-len(target.heatmap_output_layers):]):
        kernel, bias = layer.get_weights()
        source_kernel, source_bias = other.get_weights()
        if source_kernel.shape[:-1] != kernel.shape[:-1]:
            skipped.append(layer.name)
            continue
        for name in matched:
            kernel[..., target_names.index(name)] = source_kernel[..., source_names.index(name)]
            bias[target_names.index(name)] = source_bias[source_names.index(name)]
        layer.set_weights([kernel, bias])
    fresh = [name for name in target_names if name not in matched]
    report = {"loaded_layers": len(loaded), "loaded_tensors": tensors, "skipped_layers": skipped,
              "matched_classes": matched, "fresh_classes": fresh}
    logger.info(
        "model.init_from: loaded %d layers (%d tensors); %d did not fit and start afresh%s; heatmap classes taken "
        "over: %s; started at the focal prior: %s", len(loaded), tensors, len(skipped),
        f" ({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''})" if skipped else "",
        ", ".join(matched) or "none", ", ".join(fresh) or "none",
    )
    return report
