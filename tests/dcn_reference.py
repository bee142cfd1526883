"""A NumPy transcription of the DCNv2 forward pass in the original code's layout (NCHW, weight
``[out, in, kh, kw]``, offsets ``[B, 2 * kh * kw, Ho, Wo]``), loop for loop as its CUDA im2col kernel: the
reference ``centernet_tf.model.deformable`` is held against (the PyPI torchvision wheels do not load with the CPU
PyTorch here, so ``deform_conv2d`` cannot serve). Written for clarity, not speed: small maps only.
"""

from __future__ import annotations

import math

import numpy as np


def bilinear(image: np.ndarray, h: float, w: float) -> np.ndarray:
    """``image`` ``[C, H, W]`` at ``(h, w)``: each of the four neighbours counts only inside the map."""
    height, width = image.shape[1:]
    h_low, w_low = math.floor(h), math.floor(w)
    h_high, w_high = h_low + 1, w_low + 1
    lh, lw = h - h_low, w - w_low
    hh, hw = 1 - lh, 1 - lw
    value = np.zeros(image.shape[0], np.float64)
    if h_low >= 0 and w_low >= 0:
        value += hh * hw * image[:, h_low, w_low]
    if h_low >= 0 and w_high <= width - 1:
        value += hh * lw * image[:, h_low, w_high]
    if h_high <= height - 1 and w_low >= 0:
        value += lh * hw * image[:, h_high, w_low]
    if h_high <= height - 1 and w_high <= width - 1:
        value += lh * lw * image[:, h_high, w_high]
    return value


def dcn_v2(
    x: np.ndarray, offset: np.ndarray, mask: np.ndarray, weight: np.ndarray, bias: np.ndarray,
    stride: int = 1, pad: int = 1, dilation: int = 1,
) -> np.ndarray:
    """Modulated deformable convolution, one deformable group: ``[B, out, Ho, Wo]``."""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = offset.shape[2:]
    result = np.zeros((batch, out_channels, out_h, out_w), np.float64)
    for b in range(batch):
        for ho in range(out_h):
            for wo in range(out_w):
                column = np.zeros((channels, kh, kw), np.float64)
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        h = ho * stride - pad + i * dilation + offset[b, 2 * k, ho, wo]
                        w = wo * stride - pad + j * dilation + offset[b, 2 * k + 1, ho, wo]
                        if -1 < h < height and -1 < w < width:
                            column[:, i, j] = bilinear(x[b], h, w) * mask[b, k, ho, wo]
                result[b, :, ho, wo] = np.tensordot(weight, column, axes=3) + bias
    return result


def dcn_v2_vectorised(
    x: np.ndarray, offset: np.ndarray, mask: np.ndarray, weight: np.ndarray, bias: np.ndarray,
    stride: int = 1, pad: int = 1, dilation: int = 1,
) -> np.ndarray:
    """``dcn_v2`` with the same sampling rules evaluated for every output position at once, so the PyTorch twins
    of whole deformable networks run in seconds; ``tests/test_deformable.py`` holds it to the loop version."""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = offset.shape[2:]
    rows = np.arange(out_h)[:, None] * stride - pad
    cols = np.arange(out_w)[None, :] * stride - pad
    flat = x.reshape(batch, channels, height * width)
    columns = np.zeros((batch, channels, kh * kw, out_h * out_w), np.float64)
    for i in range(kh):
        for j in range(kw):
            k = i * kw + j
            h = rows + i * dilation + offset[:, 2 * k]  # [B, Ho, Wo]
            w = cols + j * dilation + offset[:, 2 * k + 1]
            inside = (h > -1) & (h < height) & (w > -1) & (w < width)
            h_low, w_low = np.floor(h).astype(np.int64), np.floor(w).astype(np.int64)
            lh, lw = h - h_low, w - w_low
            sample = np.zeros((batch, channels, out_h * out_w), np.float64)
            for dh, dw, weight_hw in ((0, 0, (1 - lh) * (1 - lw)), (0, 1, (1 - lh) * lw),
                                      (1, 0, lh * (1 - lw)), (1, 1, lh * lw)):
                hy, wx = h_low + dh, w_low + dw
                valid = inside & (hy >= 0) & (hy <= height - 1) & (wx >= 0) & (wx <= width - 1)
                index = (np.clip(hy, 0, height - 1) * width + np.clip(wx, 0, width - 1)).reshape(batch, 1, -1)
                gathered = np.take_along_axis(flat, np.broadcast_to(index, (batch, channels, index.shape[-1])), axis=2)
                sample += gathered * (weight_hw * valid).reshape(batch, 1, -1)
            columns[:, :, k] = sample * mask[:, k].reshape(batch, 1, -1)
    out = np.einsum("ock,bckp->bop", weight.reshape(out_channels, channels, kh * kw), columns)
    return (out + bias[None, :, None]).reshape(batch, out_channels, out_h, out_w)
