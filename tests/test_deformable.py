"""DeformableConv2D (DCNv2) against hand-computed cases and a loop-for-loop NumPy transcription of the
original CUDA kernel (``tests/dcn_reference.py``); gradients against finite differences; save and TFLite."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.deploy.inference import tflite_interpreter
from centernet_tf.model.deformable import DeformableConv2D, modulated_deformable_columns
from tests.dcn_reference import dcn_v2

SURE = 40.0  # a mask logit whose sigmoid is 1 to float precision


def _layer(channels: int, filters: int, kernel: int = 3, offset_bias: np.ndarray | None = None,
           offset_kernel_scale: float = 0.0, seed: int = 0, **kwargs) -> DeformableConv2D:
    """A built layer with random kernel and bias; the offset branch's bias is ``offset_bias`` (else zeros)
    and its kernel random times ``offset_kernel_scale`` (0: the same offsets everywhere)."""
    rng = np.random.default_rng(seed)
    layer = DeformableConv2D(filters, kernel, **kwargs)
    layer.build((None, None, None, channels))
    taps = kernel * kernel
    layer.kernel.assign(rng.normal(0, 0.5, (kernel, kernel, channels, filters)).astype(np.float32))
    layer.bias.assign(rng.normal(0, 0.5, filters).astype(np.float32))
    branch = rng.normal(0, 1, (kernel, kernel, channels, 3 * taps)) * offset_kernel_scale
    bias = np.zeros(3 * taps) if offset_bias is None else offset_bias
    layer.conv_offset_mask.set_weights([branch.astype(np.float32), np.asarray(bias, np.float32)])
    return layer


def _image(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """A plain convolution with explicit (top, bottom, left, right) zero padding."""
    top, bottom, left, right = pads
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    return tf.nn.conv2d(padded, kernel, 1, "VALID").numpy() + bias


def _reference(layer: DeformableConv2D, x: np.ndarray) -> np.ndarray:
    """The NumPy kernel transcription fed with the layer's own offsets and masks, in the original layout."""
    taps = layer.kernel_size[0] * layer.kernel_size[1]
    branch = layer.conv_offset_mask(layer.pad(x)).numpy().astype(np.float64)
    offsets = branch[..., : 2 * taps].transpose(0, 3, 1, 2)
    masks = (1 / (1 + np.exp(-branch[..., 2 * taps:]))).transpose(0, 3, 1, 2)
    weight = layer.kernel.numpy().transpose(3, 2, 0, 1).astype(np.float64)
    out = dcn_v2(x.transpose(0, 3, 1, 2).astype(np.float64), offsets, masks, weight, layer.bias.numpy(),
                 stride=layer.strides[0], pad=layer.padding[0], dilation=layer.dilation_rate[0])
    return out.transpose(0, 2, 3, 1)


def test_a_new_layer_is_a_plain_convolution_at_half_weight() -> None:
    """The offset branch starts at zero: no shift, every mask sigmoid(0) = 0.5."""
    layer = _layer(3, 4)
    x = _image((2, 6, 7, 3))
    expected = 0.5 * _conv(x, layer.kernel.numpy(), 0.0, (1, 1, 1, 1)) + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
    fresh = DeformableConv2D(4)
    fresh.build((None, 6, 7, 3))
    assert not np.any(fresh.conv_offset_mask.get_weights()[0]) and not np.any(fresh.conv_offset_mask.get_weights()[1])


def test_an_integer_offset_is_a_shifted_image() -> None:
    """dy = +1 on every tap: output row y reads input rows y .. y + 2, i.e. a convolution padded 0 rows above
    and 2 below."""
    taps = 9
    bias = np.concatenate([np.tile([1.0, 0.0], taps), np.full(taps, SURE)])
    layer = _layer(2, 3, offset_bias=bias)
    x = _image((1, 5, 6, 2))
    expected = _conv(x, layer.kernel.numpy(), layer.bias.numpy(), (0, 2, 1, 1))
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_a_half_pixel_offset_averages_neighbours_and_the_border_counts_one() -> None:
    layer = _layer(1, 1, kernel=1, offset_bias=np.array([0.0, 0.5, SURE]))
    layer.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    layer.bias.assign(np.zeros(1, np.float32))
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    out = layer(x).numpy()[0, ..., 0]
    expected = np.array([[0.5, 1.5, 2.5, 1.5], [4.5, 5.5, 6.5, 3.5], [8.5, 9.5, 10.5, 5.5]])  # last: 0.5 * x
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_masks_weight_each_tap() -> None:
    logits = np.linspace(-3, 3, 9)
    layer = _layer(2, 3, offset_bias=np.concatenate([np.zeros(18), logits]))
    x = _image((1, 5, 5, 2))
    scaled = layer.kernel.numpy() * (1 / (1 + np.exp(-logits))).reshape(3, 3, 1, 1)
    expected = _conv(x, scaled.astype(np.float32), layer.bias.numpy(), (1, 1, 1, 1))
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_samples_leaving_the_map_read_zeros_and_edge_samples_count_their_inside_neighbours() -> None:
    """dy = -1.5: the top row's taps land at y = -2.5 (outside: 0) or -1.5 (outside) or -0.5 (half of row 0)."""
    bias = np.concatenate([np.tile([-1.5, 0.0], 9), np.full(9, SURE)])
    layer = _layer(1, 1, offset_bias=bias)
    x = _image((1, 4, 4, 1))
    np.testing.assert_allclose(layer(x).numpy(), _reference(layer, x), atol=1e-5)
    ones = _layer(1, 1, kernel=1, offset_bias=np.array([-0.5, 0.0, SURE]))
    ones.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    ones.bias.assign(np.zeros(1, np.float32))
    first_row = ones(np.ones((1, 3, 3, 1), np.float32)).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(first_row, [0.5, 0.5, 0.5], atol=1e-6)  # y = -0.5: only row 0, at weight 0.5


@pytest.mark.parametrize("strides, dilation, kernel", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1)])
def test_random_offsets_crossing_the_border_match_the_kernel_reference(strides: int, dilation: int, kernel: int) -> None:
    taps = kernel * kernel
    rng = np.random.default_rng(strides * 10 + dilation)
    bias = np.concatenate([rng.normal(0, 3, 2 * taps), rng.normal(0, 2, taps)])  # shifts of a few pixels
    layer = _layer(3, 4, kernel=kernel, offset_bias=bias, offset_kernel_scale=0.8, strides=strides,
                   dilation_rate=dilation, seed=strides + dilation)
    x = _image((2, 7, 9, 3), seed=kernel)
    out, expected = layer(x).numpy(), _reference(layer, x)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1e-5


def test_gradients_match_finite_differences() -> None:
    """To the input, the offsets and the masks (the op), and through the layer to its kernel and offset branch.
    Offsets sit away from whole pixels, where the bilinear sampling is not differentiable."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(0, 1, (1, 3, 3, 2)))  # numerical Jacobians cost two evaluations per element
    offsets = tf.constant(rng.integers(-2, 3, (1, 3, 3, 18)) + rng.uniform(0.2, 0.8, (1, 3, 3, 18)))
    masks = tf.constant(rng.uniform(0.1, 0.9, (1, 3, 3, 9)))
    project = tf.constant(rng.normal(0, 1, (1, 3, 3, 18)))

    def op(x: tf.Tensor, offsets: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
        return modulated_deformable_columns(x, offsets, masks, (3, 3), (1, 1), (1, 1), (1, 1))[..., :18] * project

    theoretical, numerical = tf.test.compute_gradient(op, [x, offsets, masks], delta=1e-4)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-6)

    keras.backend.set_floatx("float64")
    try:
        layer = DeformableConv2D(2, 3, dtype="float64")
        layer.build((None, 3, 3, 2))
        layer.conv_offset_mask.set_weights([rng.normal(0, 0.05, (3, 3, 2, 27)), rng.uniform(0.2, 0.8, 27)])
        for variable in (layer.kernel, layer.conv_offset_mask.kernel):
            start = variable.numpy()

            def through_layer(value: tf.Tensor, variable=variable) -> tf.Tensor:
                variable.assign(value)
                return tf.reduce_sum(layer(x) ** 2)

            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(x) ** 2)
            grad = tape.gradient(loss, variable).numpy()
            flat = start.reshape(-1)
            for position in rng.choice(flat.size, 6, replace=False):
                plus, minus = flat.copy(), flat.copy()
                plus[position] += 1e-5
                minus[position] -= 1e-5
                numeric = (through_layer(plus.reshape(start.shape)) - through_layer(minus.reshape(start.shape))) / 2e-5
                assert grad.reshape(-1)[position] == pytest.approx(float(numeric), rel=1e-4, abs=1e-7)
            variable.assign(start)
    finally:
        keras.backend.set_floatx("float32")


def test_keras_round_trip_keeps_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    inputs = keras.Input((8, 8, 3))
    layer = DeformableConv2D(5, 3, strides=2, name="dcn")
    model = keras.Model(inputs, layer(inputs))
    layer.conv_offset_mask.set_weights([rng.normal(0, 0.3, (3, 3, 3, 27)).astype(np.float32),
                                        rng.normal(0, 1, 27).astype(np.float32)])
    x = _image((2, 8, 8, 3))
    model.save(tmp_path / "dcn.keras")
    loaded = keras.models.load_model(tmp_path / "dcn.keras")
    assert isinstance(loaded.get_layer("dcn"), DeformableConv2D)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert loaded.get_layer("dcn").get_config()["strides"] == (2, 2)


def test_tflite_conversion_uses_builtin_ops_with_parity() -> None:
    rng = np.random.default_rng(3)
    inputs = keras.Input((12, 10, 4), batch_size=1)
    layer = DeformableConv2D(6, 3)
    model = keras.Model(inputs, layer(inputs))
    layer.conv_offset_mask.set_weights([rng.normal(0, 0.3, (3, 3, 4, 27)).astype(np.float32),
                                        rng.normal(0, 2, 27).astype(np.float32)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tflite_interpreter(converter.convert())
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}  # noqa: SLF001
    assert "GATHER" in ops and not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)
    x = _image((1, 12, 10, 4))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model(x).numpy(), atol=1e-4)


def test_under_mixed_precision_samples_are_placed_in_float32() -> None:
    """At x = 300.5 bfloat16 would round the position to a whole pixel; the layer keeps the half pixel."""
    x = np.zeros((1, 1, 320, 1), np.float32)
    x[0, 0, 300], x[0, 0, 301] = 1.0, 3.0
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        layer = _layer(1, 1, kernel=1, offset_bias=np.array([0.0, 0.5, SURE]))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    layer.kernel.assign(np.ones((1, 1, 1, 1), np.float32))
    layer.bias.assign(np.zeros(1, np.float32))
    out = layer(x)
    assert out.dtype == tf.bfloat16
    assert float(out[0, 0, 300, 0]) == 2.0  # the average of 1 and 3: exact in bfloat16


@pytest.mark.parametrize("strides, padding, dilation, kernel", [(1, 1, 1, 3), (2, 1, 1, 3), (1, 2, 2, 3), (2, 2, 1, 5)])
def test_the_vectorised_reference_is_the_loop_transcription(strides: int, padding: int, dilation: int, kernel: int) -> None:
    """The PyTorch twins of whole networks use the vectorised reference; it must be the kernel's loops exactly."""
    from tests.dcn_reference import dcn_v2_vectorised

    rng = np.random.default_rng(kernel + strides)
    x = rng.normal(size=(2, 3, 7, 9))
    out_h = (7 + 2 * padding - dilation * (kernel - 1) - 1) // strides + 1
    out_w = (9 + 2 * padding - dilation * (kernel - 1) - 1) // strides + 1
    offsets = rng.normal(0, 3, (2, 2 * kernel * kernel, out_h, out_w))  # many samples leave the map
    masks = rng.uniform(size=(2, kernel * kernel, out_h, out_w))
    weight, bias = rng.normal(size=(4, 3, kernel, kernel)), rng.normal(size=4)
    expected = dcn_v2(x, offsets, masks, weight, bias, strides, padding, dilation)
    np.testing.assert_allclose(dcn_v2_vectorised(x, offsets, masks, weight, bias, strides, padding, dilation),
                               expected, atol=1e-12)
