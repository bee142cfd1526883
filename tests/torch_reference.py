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


class DCN(nn.Module):
    """The original ``DCN`` module's parameters (``weight``, ``bias``, ``conv_offset_mask``) and forward pass, with
    the NumPy version of its CUDA kernel (``tests/dcn_reference.py``, vectorised) in place of the compiled op."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_offset_mask = nn.Conv2d(in_channels, 3 * kernel * kernel, kernel, stride, padding, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from tests.dcn_reference import dcn_v2_vectorised

        o1, o2, mask = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset, mask = torch.cat((o1, o2), dim=1), torch.sigmoid(mask)
        out = dcn_v2_vectorised(*(t.detach().double().numpy() for t in (x, offset, mask, self.weight, self.bias)),
                     stride=self.stride, pad=self.padding)
        return torch.from_numpy(out).float()


class PoseResDCN(PoseResNet):
    """``resnet_dcn.py``: the same ResNet, then three blocks of DCN 3x3 + BN + ReLU + ConvTranspose2d(k4, s2, p1)
    + BN + ReLU (256, 128, 64 channels), heads on 64 channels."""

    def __init__(self, depth: int, num_classes: int, head_conv: int = 64) -> None:
        super().__init__(depth, num_classes, head_conv)
        self.inplanes = 512 * RESNET_SPECS[depth][0].expansion
        blocks: list[nn.Module] = []
        for planes in (256, 128, 64):
            blocks += [DCN(self.inplanes, planes), nn.BatchNorm2d(planes, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
                       nn.ConvTranspose2d(planes, planes, 4, 2, 1, 0, bias=False),
                       nn.BatchNorm2d(planes, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
            self.inplanes = planes
        self.deconv_layers = nn.Sequential(*blocks)
        for head in sorted(self.heads):
            setattr(self, head, _head(64, head_conv, self.heads[head]))


def original_preprocess(rgb_uint8: torch.Tensor, mean_bgr: tuple, std_bgr: tuple) -> torch.Tensor:
    """The original detector's input: BGR, ``(x / 255 - mean) / std``, NCHW."""
    bgr = rgb_uint8.float().flip(-1) / 255.0
    normalised = (bgr - torch.tensor(mean_bgr)) / torch.tensor(std_bgr)
    return normalised.permute(0, 3, 1, 2).contiguous()


class DLABasicBlock(nn.Module):
    """``dlav0.py``'s BasicBlock: the residual comes from outside (the tree), there is no downsample of its own."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        residual = x if residual is None else residual
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + residual)


class Root(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *children: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(torch.cat(children, 1))))


class Tree(nn.Module):
    """A DLA tree. As in the original, a tree of two levels computes its own ``project`` but its first subtree
    recomputes the residual with its own: the outer ``project`` holds parameters that no output depends on."""

    def __init__(self, levels: int, in_channels: int, out_channels: int, stride: int = 1,
                 level_root: bool = False, root_dim: int = 0) -> None:
        super().__init__()
        root_dim = root_dim or 2 * out_channels
        if level_root:
            root_dim += in_channels
        if levels == 1:
            self.tree1 = DLABasicBlock(in_channels, out_channels, stride)
            self.tree2 = DLABasicBlock(out_channels, out_channels, 1)
            self.root = Root(root_dim, out_channels)
        else:
            self.tree1 = Tree(levels - 1, in_channels, out_channels, stride)
            self.tree2 = Tree(levels - 1, out_channels, out_channels, root_dim=root_dim + out_channels)
        self.level_root = level_root
        self.levels = levels
        self.downsample = nn.MaxPool2d(stride, stride) if stride > 1 else None
        self.project = None
        if in_channels != out_channels:
            self.project = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                         nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None,
                children: list[torch.Tensor] | None = None) -> torch.Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample else x
        residual = self.project(bottom) if self.project else bottom
        if self.level_root:
            children.append(bottom)
        x1 = self.tree1(x, residual)
        if self.levels == 1:
            return self.root(self.tree2(x1, x1), x1, *children)
        children.append(x1)
        return self.tree2(x1, children=children)


def _conv_level(inplanes: int, planes: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes),
                         nn.ReLU(inplace=True))


class DLA34(nn.Module):
    CHANNELS = (16, 32, 64, 128, 256, 512)

    def __init__(self) -> None:
        super().__init__()
        c = self.CHANNELS
        self.base_layer = nn.Sequential(nn.Conv2d(3, c[0], 7, 1, 3, bias=False), nn.BatchNorm2d(c[0]),
                                        nn.ReLU(inplace=True))
        self.level0 = _conv_level(c[0], c[0])
        self.level1 = _conv_level(c[0], c[1], 2)
        self.level2 = Tree(1, c[1], c[2], 2)
        self.level3 = Tree(2, c[2], c[3], 2, level_root=True)
        self.level4 = Tree(2, c[3], c[4], 2, level_root=True)
        self.level5 = Tree(1, c[4], c[5], 2, level_root=True)
        self.fc = nn.Conv2d(c[5], 1000, 1)  # the ImageNet classifier: in the checkpoints, unused by detection

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        x = self.base_layer(x)
        for i in range(6):
            x = getattr(self, f"level{i}")(x)
            levels.append(x)
        return levels


class IDAUp(nn.Module):
    def __init__(self, out_dim: int, channels: list[int], up_factors: list[int]) -> None:
        super().__init__()
        self.count = len(channels)
        for i, (c, factor) in enumerate(zip(channels, up_factors)):
            proj = nn.Identity() if c == out_dim else nn.Sequential(
                nn.Conv2d(c, out_dim, 1, bias=False), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True))
            up = nn.Identity() if factor == 1 else nn.ConvTranspose2d(
                out_dim, out_dim, factor * 2, stride=factor, padding=factor // 2, groups=out_dim, bias=False)
            setattr(self, f"proj_{i}", proj)
            setattr(self, f"up_{i}", up)
        for i in range(1, len(channels)):
            setattr(self, f"node_{i}", nn.Sequential(
                nn.Conv2d(out_dim * 2, out_dim, 3, 1, 1, bias=False), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True)))

    def forward(self, layers: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layers = [getattr(self, f"up_{i}")(getattr(self, f"proj_{i}")(x)) for i, x in enumerate(layers)]
        x, outputs = layers[0], []
        for i in range(1, len(layers)):
            x = getattr(self, f"node_{i}")(torch.cat([x, layers[i]], 1))
            outputs.append(x)
        return x, outputs


class DLAUp(nn.Module):
    def __init__(self, channels: list[int], scales: list[int]) -> None:
        super().__init__()
        in_channels, scales = list(channels), list(scales)
        for i in range(len(channels) - 1):
            j = -i - 2
            setattr(self, f"ida_{i}", IDAUp(channels[j], in_channels[j:], [s // scales[j] for s in scales[j:]]))
            scales[j + 1:] = [scales[j]] * len(scales[j + 1:])
            in_channels[j + 1:] = [channels[j]] * len(in_channels[j + 1:])
        self.count = len(channels)

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        layers = list(layers)
        for i in range(self.count - 1):
            x, outputs = getattr(self, f"ida_{i}")(layers[-i - 2:])
            layers[-i - 1:] = outputs
        return x


class DLASeg(nn.Module):
    """``dlav0.py`` with ``dla34``: DLA-34, DLAUp from stride 4 (first level 2), heads with ``head_conv`` 256."""

    def __init__(self, num_classes: int, head_conv: int = 256) -> None:
        super().__init__()
        self.base = DLA34()
        channels = list(DLA34.CHANNELS[2:])
        self.dla_up = DLAUp(channels, [2**i for i in range(len(channels))])
        self.heads = {"hm": num_classes, **REGRESSION_HEADS}
        for head, classes in self.heads.items():
            setattr(self, head, _head(channels[0], head_conv, classes))

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        x = self.dla_up(self.base(x)[2:])
        return [{head: getattr(self, head)(x) for head in self.heads}]


class DeformConv(nn.Module):
    """``pose_dla_dcn.py``'s DeformConv: ``conv`` (DCN 3x3) then ``actf`` (BatchNorm2d, ReLU)."""

    def __init__(self, chi: int, cho: int) -> None:
        super().__init__()
        self.actf = nn.Sequential(nn.BatchNorm2d(cho, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
        self.conv = DCN(chi, cho)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.actf(self.conv(x))


class IDAUpDCN(nn.Module):
    """The deformable IDAUp: for each level after the first, ``node(up(proj(level)) + previous level)``, in place."""

    def __init__(self, out_dim: int, channels: list[int], up_factors: list[int]) -> None:
        super().__init__()
        for i in range(1, len(channels)):
            factor = int(up_factors[i])
            setattr(self, f"proj_{i}", DeformConv(channels[i], out_dim))
            setattr(self, f"up_{i}", nn.ConvTranspose2d(out_dim, out_dim, factor * 2, stride=factor,
                                                        padding=factor // 2, groups=out_dim, bias=False))
            setattr(self, f"node_{i}", DeformConv(out_dim, out_dim))

    def forward(self, layers: list[torch.Tensor], start: int, end: int) -> None:
        for i in range(start + 1, end):
            x = getattr(self, f"up_{i - start}")(getattr(self, f"proj_{i - start}")(layers[i]))
            layers[i] = getattr(self, f"node_{i - start}")(x + layers[i - 1])


class DLAUpDCN(nn.Module):
    def __init__(self, channels: list[int], scales: list[int]) -> None:
        super().__init__()
        in_channels, scales = list(channels), list(scales)
        for i in range(len(channels) - 1):
            j = -i - 2
            setattr(self, f"ida_{i}", IDAUpDCN(channels[j], in_channels[j:], [s // scales[j] for s in scales[j:]]))
            scales[j + 1:] = [scales[j]] * len(scales[j + 1:])
            in_channels[j + 1:] = [channels[j]] * len(in_channels[j + 1:])
        self.count = len(channels)

    def forward(self, layers: list[torch.Tensor], first_level: int) -> list[torch.Tensor]:
        layers = list(layers)
        out = [layers[-1]]
        for i in range(len(layers) - first_level - 1):
            getattr(self, f"ida_{i}")(layers, len(layers) - i - 2, len(layers))
            out.insert(0, layers[-1])
        return out


class DLASegDCN(nn.Module):
    """``pose_dla_dcn.py`` with ``dla34`` (``--arch dla_34``): DLA-34, the deformable DLAUp from stride 4, an
    IDAUp over its outputs up to ``last_level`` 5, heads with ``head_conv`` 256."""

    def __init__(self, num_classes: int, head_conv: int = 256) -> None:
        super().__init__()
        self.base = DLA34()
        channels = list(DLA34.CHANNELS)
        self.dla_up = DLAUpDCN(channels[2:], [2**i for i in range(4)])
        self.ida_up = IDAUpDCN(channels[2], channels[2:5], [1, 2, 4])
        self.heads = {"hm": num_classes, **REGRESSION_HEADS}
        for head, classes in self.heads.items():
            setattr(self, head, _head(channels[2], head_conv, classes))

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        x = self.dla_up(self.base(x), first_level=2)
        y = [x[i].clone() for i in range(3)]
        self.ida_up(y, 0, len(y))
        return [{head: getattr(self, head)(y[-1]) for head in self.heads}]


class HGConvolution(nn.Module):
    """``large_hourglass.py``'s ``convolution``: conv (bias only without BN) + BN + ReLU."""

    def __init__(self, k: int, inp_dim: int, out_dim: int, stride: int = 1, with_bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inp_dim, out_dim, k, stride, (k - 1) // 2, bias=not with_bn)
        self.bn = nn.BatchNorm2d(out_dim) if with_bn else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class HGResidual(nn.Module):
    def __init__(self, inp_dim: int, out_dim: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inp_dim, out_dim, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        self.skip = nn.Sequential(nn.Conv2d(inp_dim, out_dim, 1, stride, bias=False), nn.BatchNorm2d(out_dim)) \
            if stride != 1 or inp_dim != out_dim else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))) + self.skip(x))


class KPModule(nn.Module):
    """One hourglass level: ``up1`` at this resolution + ``low1`` (strided) -> ``low2`` (inner level or the
    innermost residuals) -> ``low3`` -> nearest 2x upsampling."""

    def __init__(self, n: int, dims: list[int], modules: list[int]) -> None:
        super().__init__()
        curr_mod, next_mod, curr_dim, next_dim = modules[0], modules[1], dims[0], dims[1]
        self.up1 = nn.Sequential(*[HGResidual(curr_dim, curr_dim) for _ in range(curr_mod)])
        self.low1 = nn.Sequential(HGResidual(curr_dim, next_dim, 2),
                                  *[HGResidual(next_dim, next_dim) for _ in range(curr_mod - 1)])
        if n > 1:
            self.low2 = KPModule(n - 1, dims[1:], modules[1:])
        else:
            self.low2 = nn.Sequential(*[HGResidual(next_dim, next_dim) for _ in range(next_mod)])
        self.low3 = nn.Sequential(*[HGResidual(next_dim, next_dim) for _ in range(curr_mod - 1)],
                                  HGResidual(next_dim, curr_dim))
        self.up2 = nn.Upsample(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(x))))


class HourglassNet(nn.Module):
    """``large_hourglass.py``'s ``HourglassNet`` (``exkp``): stem, two hourglasses with the inter-stack merge,
    heads per stack (``convolution(3, 256, 256, with_bn=False)`` + Conv1x1), every stack's outputs returned."""

    def __init__(self, num_classes: int, num_stacks: int = 2, n: int = 5,
                 dims: tuple[int, ...] = (256, 256, 384, 384, 384, 512),
                 modules: tuple[int, ...] = (2, 2, 2, 2, 2, 4), cnv_dim: int = 256) -> None:
        super().__init__()
        curr_dim = dims[0]
        self.nstack = num_stacks
        self.pre = nn.Sequential(HGConvolution(7, 3, 128, stride=2), HGResidual(128, 256, stride=2))
        self.kps = nn.ModuleList([KPModule(n, list(dims), list(modules)) for _ in range(num_stacks)])
        self.cnvs = nn.ModuleList([HGConvolution(3, curr_dim, cnv_dim) for _ in range(num_stacks)])
        self.inters = nn.ModuleList([HGResidual(curr_dim, curr_dim) for _ in range(num_stacks - 1)])
        self.inters_ = nn.ModuleList([nn.Sequential(nn.Conv2d(curr_dim, curr_dim, 1, bias=False),
                                                    nn.BatchNorm2d(curr_dim)) for _ in range(num_stacks - 1)])
        self.cnvs_ = nn.ModuleList([nn.Sequential(nn.Conv2d(cnv_dim, curr_dim, 1, bias=False),
                                                  nn.BatchNorm2d(curr_dim)) for _ in range(num_stacks - 1)])
        self.heads = {"hm": num_classes, **REGRESSION_HEADS}
        for head, classes in self.heads.items():
            setattr(self, head, nn.ModuleList([
                nn.Sequential(HGConvolution(3, cnv_dim, curr_dim, with_bn=False), nn.Conv2d(curr_dim, classes, 1))
                for _ in range(num_stacks)]))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, image: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        inter = self.pre(image)
        outs = []
        for i in range(self.nstack):
            cnv = self.cnvs[i](self.kps[i](inter))
            outs.append({head: getattr(self, head)[i](cnv) for head in self.heads})
            if i < self.nstack - 1:
                inter = self.inters[i](self.relu(self.inters_[i](inter) + self.cnvs_[i](cnv)))
        return outs
