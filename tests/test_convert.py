"""The original CenterNet's archs in Keras: parameter counts and checkpoint conversion against PyTorch twins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from centernet_tf.deploy import convert
from centernet_tf.deploy.convert import build_original_arch, load_official_checkpoint
from centernet_tf.model.centernet import load_centernet

torch = pytest.importorskip("torch", reason='the conversion tests need PyTorch: pip install -e ".[pretrained]"')
from tests.torch_reference import (  # noqa: E402
    DLASeg, DLASegDCN, HourglassNet, PoseResDCN, PoseResNet, fill_randomly, original_preprocess,
)

REPO = Path(__file__).resolve().parents[1]

#: Trainable parameters of the original code's networks for 80 classes (its default head_conv per arch).
ORIGINAL_PARAMETER_COUNTS = {
    "res_18": 15_820_372, "res_101": 53_435_476, "dlav0_34": 18_474_476, "hourglass": 191_284_008,
    # resnet_dcn.py, counted by hand: ResNet-18 without its classifier 11,176,512; per upsampling block a DCN
    # (weight, bias, 27-channel offset branch), two BatchNorms and a dense ConvTranspose2d: 2,353,947 + 619,931
    # + 170,715; heads 42,128 + 2 x 37,058.
    "resdcn_18": 14_437_349, "resdcn_34": 24_545_509, "resdcn_50": 30_681_061, "resdcn_101": 49_673_189,
    # pose_dla_dcn.py: the same DLA-34 base (with its ImageNet classifier) as dlav0_34, deformable DLAUp and IDAUp.
    "dla_34": 20_188_892,
}
#: Of those, parameters no output depends on, which the Keras models leave out: DLA-34's ImageNet classifier
#: (512 x 1000 + 1000) and the projections of its two-level trees (levels 3 and 4), recomputed by their subtrees.
UNUSED_PARAMETERS = {"dlav0_34": 513_000 + 41_728, "dla_34": 513_000 + 41_728}
TWINS = {"res_18": lambda classes: PoseResNet(18, classes), "res_101": lambda classes: PoseResNet(101, classes),
         "resdcn_18": lambda classes: PoseResDCN(18, classes), "resdcn_101": lambda classes: PoseResDCN(101, classes),
         "resdcn_34": lambda classes: PoseResDCN(34, classes), "resdcn_50": lambda classes: PoseResDCN(50, classes),
         "dla_34": lambda classes: DLASegDCN(classes),
         "dlav0_34": lambda classes: DLASeg(classes), "hourglass": lambda classes: HourglassNet(classes)}


def _trainable_parameters(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("arch", sorted(ORIGINAL_PARAMETER_COUNTS))
def test_parameter_counts_equal_the_original_code(arch: str) -> None:
    model = build_original_arch(arch, 80, (None, None))
    expected = ORIGINAL_PARAMETER_COUNTS[arch] - UNUSED_PARAMETERS.get(arch, 0)
    assert _trainable_parameters(model) == expected
    assert model.class_names[0] == "person" and len(model.class_names) == 80


@pytest.mark.parametrize("arch", ["res_18", "dlav0_34", "resdcn_18", "dla_34"])
def test_pytorch_twins_have_the_original_counts_and_unused_parameters(arch: str) -> None:
    """The reference twins are the original layout (same counts, so the comparisons below mean something), and
    the parameters the Keras models leave out are exactly those of the modules named unused."""
    twin = TWINS[arch](80)
    assert sum(p.numel() for p in twin.parameters()) == ORIGINAL_PARAMETER_COUNTS[arch]
    unused = convert.ARCHS[arch].unused_modules
    dropped = sum(p.numel() for name, p in twin.named_parameters() if name.startswith(tuple(f"{m}." for m in unused)))
    assert dropped == UNUSED_PARAMETERS.get(arch, 0)


def _save_original_checkpoint(network: torch.nn.Module, path: Path) -> Path:
    """As the original ``save_model`` writes it from a DataParallel model: keys prefixed ``module.``."""
    state = {f"module.{key}": value for key, value in network.state_dict().items()}
    torch.save({"epoch": 140, "state_dict": state}, path)
    return path


def _compare_on_an_image(network: torch.nn.Module, model, size: tuple[int, int], atol: float) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, size=(1, *size, 3), dtype=np.uint8)
    mean, std = convert.ORIGINAL_NORMALIZATION["coco"]
    with torch.no_grad():
        stacks = network(original_preprocess(torch.from_numpy(pixels), mean, std))
    got = model(pixels.astype(np.float32), training=False)
    assert len(stacks) == model.num_stacks
    for prefix, reference in zip(model.stack_prefixes, stacks):  # every stack: intermediate supervision too
        expected = {"heatmap": torch.sigmoid(reference["hm"]), "wh": reference["wh"], "offset": reference["reg"]}
        for term, value in expected.items():
            want = value.permute(0, 2, 3, 1).numpy()
            assert got[prefix + term].shape == want.shape
            assert float(np.abs(want).max()) > 1e-3  # not a comparison of zeros
            np.testing.assert_allclose(got[prefix + term].numpy(), want, atol=atol, rtol=0, err_msg=prefix + term)


def _deform_strongly(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Offsets of a few pixels and masks far from 0.5 in every DCN: a zero or weak offset branch would hide a
    wrong channel order (which channel is dy, which dx, which tap)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if ".conv_offset_mask." in name:
                if name.endswith("weight"):
                    tensor.mul_(12.0)
                else:
                    tensor.copy_(2.5 * torch.randn(tensor.shape, generator=generator))
    return network


@pytest.mark.parametrize("arch, atol", [("res_18", 1e-4), ("res_101", 1e-3), ("dlav0_34", 1e-4), ("hourglass", 1e-3),
                                        ("resdcn_18", 1e-4), ("resdcn_34", 1e-4), ("resdcn_50", 1e-3),
                                        ("resdcn_101", 1e-3), ("dla_34", 1e-4)])
def test_converted_checkpoint_gives_the_original_outputs(tmp_path: Path, arch: str, atol: float) -> None:
    network = _deform_strongly(fill_randomly(TWINS[arch](5), seed=len(arch)))
    path = _save_original_checkpoint(network, tmp_path / f"ctdet_{arch}.pth")
    # Non-square; odd feature-map sizes deeper down (3 x 4 at stride 32); the hourglass needs multiples of 128.
    size = (128, 256) if arch == "hourglass" else (96, 128)
    model = load_official_checkpoint(path, arch, input_size=size)
    assert model.num_classes == 5 and model.class_names is None
    branches = [m.conv_offset_mask for m in network.modules() if hasattr(m, "conv_offset_mask")]
    seen = [hook for branch in branches for hook in [[]] if branch.register_forward_hook(
        lambda module, inputs, output, hook=hook: hook.append(output.detach()))]
    _compare_on_an_image(network, model, size, atol)
    for output in (out for hook in seen for out in hook):  # the comparison covered strong deformations
        offsets, masks = output[:, : 2 * 9], torch.sigmoid(output[:, 2 * 9:])
        assert float(offsets.abs().median()) > 1.0 and float((masks - 0.5).abs().median()) > 0.2


@pytest.mark.parametrize("arch", ["res_18", "resdcn_18"])  # resdcn_18: the deformable layer in a fresh process
def test_conversion_cli_writes_a_keras_file_that_predicts(tmp_path: Path, arch: str) -> None:
    network = _deform_strongly(fill_randomly(TWINS[arch](80), seed=1))
    path = _save_original_checkpoint(network, tmp_path / f"ctdet_coco_{arch}.pth")
    output = tmp_path / f"{arch}.keras"
    done = subprocess.run(
        [sys.executable, "-m", "centernet_tf.deploy.convert", str(path), "--arch", arch, "--output", str(output),
         "--input-size", "64", "96"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "80 classes" in done.stdout
    model = load_centernet(output)
    assert model.class_names[:2] == ["person", "bicycle"] and model.input_shape[1:3] == (64, 96)
    _compare_on_an_image(network, model, (64, 96), 1e-4)

    # What a user does next: predict and export the converted file, no config.yaml beside it.
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 110, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    for command in (
        ["predict.py", "--model", str(output), "--input", str(tmp_path / "a.jpg"), "--output", str(tmp_path / "out"),
         "--score-threshold", "0"],
        ["export.py", "--model", str(output), "--format", "saved_model", "--output", str(tmp_path / "saved")],
    ):
        done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    detections = (tmp_path / "out" / "detections.json").read_text()
    assert '"class_names": [\n    "person"' in detections and '"class_name": "' in detections
    assert (tmp_path / "saved" / "labels.txt").read_text().splitlines()[0] == "person"


def test_checkpoints_that_do_not_fit_are_errors_naming_the_keys(tmp_path: Path) -> None:
    state = {key: value.numpy() for key, value in PoseResNet(18, num_classes=3).state_dict().items()}
    broken = dict(state)
    del broken["layer3.1.bn2.running_var"]
    broken["layer5.0.conv1.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    broken["deconv_layers.3.weight"] = np.zeros((256, 128, 4, 4), np.float32)
    with pytest.raises(ValueError) as error:
        convert.model_from_state_dict(broken, "res_18", input_size=(64, 64))
    message = str(error.value)
    assert "stage3_block2_bn2 <- layer3.1.bn2.running_var" in message
    assert "checkpoint tensors no Keras layer takes: layer5.0.conv1.weight" in message
    assert "deconv_layers.3.weight -> decoder2_deconv: checkpoint (256, 128, 4, 4)" in message

    with pytest.raises(ValueError, match=r"hm\.2\.weight -> heatmap: checkpoint \(3, 64, 1, 1\)"):
        convert.model_from_state_dict(state, "res_18", num_classes=80, input_size=(64, 64))

    dcn = {**state, "deconv_layers.0.conv_offset_mask.weight": np.zeros((27, 512, 3, 3), np.float32)}
    with pytest.raises(ValueError, match=r"deformable-convolution \(DCNv2\) tensors \(deconv_layers\.0\.conv_"):
        convert.model_from_state_dict(dcn, "res_18")
    with pytest.raises(ValueError, match=r"unknown arch 'vgg_16'; archs that convert: dla_34, dlav0_34, hourglass, res_101, res_18"):
        convert.model_from_state_dict(state, "vgg_16")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_official_checkpoint(tmp_path / "missing.pth", "res_18")


@pytest.mark.parametrize("factor", [2, 4])
def test_depthwise_transposed_convolution_equals_pytorch_grouped_one(factor: int) -> None:
    from centernet_tf.model.layers import DepthwiseConv2DTranspose, bilinear_upsampling_kernel

    channels, kernel, padding = 3, 2 * factor, factor // 2
    reference = torch.nn.ConvTranspose2d(channels, channels, kernel, factor, padding, groups=channels, bias=False)
    layer = DepthwiseConv2DTranspose(kernel, factor, padding)
    x = np.random.default_rng(factor).normal(size=(2, 5, 7, channels)).astype(np.float32)
    layer.build(x.shape)
    # Starts as the original's bilinear upsampling (its fill_up_weights), e.g. 1/16 * [1 3 3 1]^2 for factor 2.
    if factor == 2:
        np.testing.assert_allclose(bilinear_upsampling_kernel(4), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 16)
    np.testing.assert_allclose(layer.kernel.numpy()[:, :, 1, 0], bilinear_upsampling_kernel(kernel))
    with torch.no_grad():
        reference.weight.normal_()
    layer.set_weights([reference.weight.detach().numpy().transpose(2, 3, 0, 1)])
    with torch.no_grad():
        want = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    got = layer(x).numpy()
    assert got.shape == want.shape == (2, 5 * factor, 7 * factor, channels)
    np.testing.assert_allclose(got, want, atol=1e-5)
