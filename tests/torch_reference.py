"""PyTorch twins of the original CenterNet networks, written for the tests from the structure of the original
``src/lib/models/networks/*.py`` files (github xingyizhou/CenterNet), with the same module names, so their
``state_dict`` keys are those of the published checkpoints. They are the reference the converted Keras models
are compared against; nothing here is used by the library.
"""

from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM = 0.1
#: Output channels of the heads besides the heatmap, as the original ``heads`` dict.
REGRESSION_HEADS = {"wh": 2, "reg": 2}


def fill_randomly(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every weight, bias and BatchNorm statistic random (variances positive), so no mapping error can hide."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("running_mean", ".bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif tensor.dim() == 1:  # BatchNorm gamma
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:  # kernels: a He-like scale keeps activations in range through deep stacks
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (1.0 / fan_in) ** 0.5)
    return model.eval()


def _head(in_channels: int, head_conv: int, out_channels: int) -> nn.Sequential:
    """``Conv3x3(head_conv, bias) + ReLU + Conv1x1``: keys ``{head}.0.*`` and ``{head}.2.*``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, head_conv, 3, padding=1, bias=True),
        nn.ReLU(inplace=True),
        nn.Conv2d(head_conv, out_channels, 1),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


RESNET_SPECS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
                50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class PoseResNet(nn.Module):
    """``msra_resnet.py``: torchvision ResNet, three ``ConvTranspose2d(k4, s2, p1)`` + BN + ReLU (256 each), heads."""

    def __init__(self, depth: int, num_classes: int, head_conv: int = 64) -> None:
        super().__init__()
        block, layers = RESNET_SPECS[depth]
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        deconvs: list[nn.Module] = []
        for _ in range(3):
            deconvs += [nn.ConvTranspose2d(self.inplanes, 256, 4, 2, 1, 0, bias=False),
                        nn.BatchNorm2d(256, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
            self.inplanes = 256
        self.deconv_layers = nn.Sequential(*deconvs)
        self.heads = {"hm": num_classes, **REGRESSION_HEADS}
        for head in sorted(self.heads):
            setattr(self, head, _head(256, head_conv, self.heads[head]))

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.deconv_layers(x)
        return [{head: getattr(self, head)(x) for head in self.heads}]


def original_preprocess(rgb_uint8: torch.Tensor, mean_bgr: tuple, std_bgr: tuple) -> torch.Tensor:
    """The original detector's input: BGR, ``(x / 255 - mean) / std``, NCHW."""
    bgr = rgb_uint8.float().flip(-1) / 255.0
    normalised = (bgr - torch.tensor(mean_bgr)) / torch.tensor(std_bgr)
    return normalised.permute(0, 3, 1, 2).contiguous()
