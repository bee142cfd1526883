"""Reading PyTorch checkpoints into Keras layers: layouts, key matching and errors that name the keys.

Every converter in this library (ImageNet backbones, the original CenterNet's checkpoints) maps Keras layer
names to PyTorch module names and lets :func:`assign_state_dict` move the tensors, so the layout rules and the
error messages live here once. PyTorch itself is imported only by :func:`load_pth_state_dict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: PyTorch BatchNorm fields in the order of Keras' weights: gamma, beta, moving mean, moving variance.
BN_FIELDS = ("weight", "bias", "running_mean", "running_var")
#: Buffers PyTorch keeps that no Keras weight holds.
IGNORED_SUFFIXES = ("num_batches_tracked",)


def torch_tensors_for(layer: Any, module: str, state: Mapping[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    """The checkpoint keys a Keras layer takes and their arrays in Keras layout (absent keys are left out)."""
    kind = type(layer).__name__

    def take(keys: list[str], layout: Any = None) -> tuple[list[str], list[np.ndarray]]:
        arrays = []
        for key in keys:
            if key in state:
                array = state[key]
                arrays.append(layout(array) if (layout is not None and key.endswith(".weight")) else array)
        return keys, arrays

    bias = [f"{module}.bias"] if getattr(layer, "use_bias", False) else []
    if kind == "BatchNormalization":
        return take([f"{module}.{field}" for field in BN_FIELDS])
    if kind in ("DepthwiseConv2D", "DepthwiseConv2DTranspose"):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return take([f"{module}.weight", *bias], lambda w: w.transpose(2, 3, 0, 1))
    if kind == "Conv2DTranspose":  # (in, out, kh, kw) -> (kh, kw, out, in); both frameworks use the adjoint
        return take([f"{module}.weight", *bias], lambda w: w.transpose(2, 3, 1, 0))
    if kind == "DeformableConv2D":  # the original DCN module: its weight and bias, then its offset branch's
        return take([f"{module}.weight", *bias, f"{module}.conv_offset_mask.weight", f"{module}.conv_offset_mask.bias"],
                    lambda w: w.transpose(2, 3, 1, 0))
    if kind == "Conv2D":  # (out, in, kh, kw) -> (kh, kw, in, out)
        return take([f"{module}.weight", *bias], lambda w: w.transpose(2, 3, 1, 0))
    if kind == "Dense":  # (out, in) -> (in, out)
        return take([f"{module}.weight", *bias], lambda w: w.T)
    raise TypeError(f"no conversion rule for Keras layer {layer.name!r} of type {kind}")


def assign_state_dict(
    keras_layers: Iterable[Any], keras_to_torch: Mapping[str, str], state: Mapping[str, np.ndarray], what: str
) -> None:
    """Set every weighted layer from the checkpoint's arrays; fail on any leftover or missing key.

    ``keras_to_torch`` maps Keras layer names to PyTorch module names. The error names the Keras layers without
    a checkpoint tensor, the checkpoint keys no layer took, and shape mismatches (key, checkpoint shape, Keras
    shape), all at once, so a wrong architecture or class count is recognisable from one message.
    """
    used: set[str] = set()
    missing: list[str] = []
    mismatched: list[str] = []
    for layer in keras_layers:
        if not layer.weights:
            continue
        module = keras_to_torch.get(layer.name)
        if module is None:
            missing.append(f"{layer.name} (no checkpoint module is mapped to this Keras layer)")
            continue
        keys, arrays = torch_tensors_for(layer, module, state)
        absent = [key for key in keys if key not in state]
        used.update(key for key in keys if key in state)  # named once, with the layer, not again as leftovers
        if absent:
            missing.append(f"{layer.name} <- {', '.join(absent)}")
            continue
        current = layer.get_weights()
        if len(current) != len(arrays):
            raise ValueError(
                f"Keras layer {layer.name!r} has {len(current)} weights, the checkpoint gives {len(arrays)}"
            )
        bad = [
            f"{key} -> {layer.name}: checkpoint {tuple(state[key].shape)} (as {array.shape} in Keras layout), "
            f"Keras {variable.shape}"
            for key, array, variable in zip(keys, arrays, current)
            if array.shape != variable.shape
        ]
        if bad:
            mismatched.extend(bad)
            continue
        layer.set_weights([np.asarray(array, dtype=variable.dtype) for array, variable in zip(arrays, current)])
    unmatched = sorted(key for key in state if key not in used and not key.endswith(IGNORED_SUFFIXES))
    problems = []
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if missing:
        problems.append("Keras layers without checkpoint tensors: " + "; ".join(missing))
    if unmatched:
        problems.append("checkpoint tensors no Keras layer takes: " + ", ".join(unmatched))
    if problems:
        raise ValueError(f"The checkpoint does not match {what}. " + " | ".join(problems))


def load_pth_state_dict(pth_path: str, install_hint: str) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as float32 NumPy arrays (needs PyTorch).

    Accepts a bare state dict or ``{"state_dict": ..., ...}`` (the original CenterNet's format); the
    ``module.`` prefix that ``DataParallel`` adds is removed, as the original ``load_model`` does.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading the PyTorch checkpoint {pth_path!r} needs PyTorch (a CPU build is enough): {install_hint}"
        ) from error
    state = torch.load(pth_path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{pth_path!r} holds a {type(state).__name__}, not a PyTorch state dict")
    arrays = {}
    for key, value in state.items():
        if key.startswith("module.") and not key.startswith("module_list"):
            key = key[len("module."):]
        arrays[key] = value.detach().cpu().float().numpy()
    return arrays
