"""ResNet-18/34/50 with torchvision's module and parameter names, and a width multiplier.

Names and shapes match `torchvision.models.resnet*` key for key at width 1.0, so
an ImageNet checkpoint saved by torchvision loads directly (see
`dkp.models.load_pretrained`). `width` scales the base channels (64 x width).
The convolution weights are channels-last (NHWC in memory): a convolution's output takes
its weight's layout, so every activation is channels-last too, the layout oneDNN's CPU
convolutions and batch norms run fastest on. State-dict keys and shapes do not depend on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# arch -> (block kind, blocks per stage)
LAYOUTS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with stride s, run as the stride-1 convolution of every s-th pixel: the
    same arithmetic and parameters, without oneDNN's strided 1x1 CPU kernel. That kernel's weight
    gradient writes past its workspace on channels-last input with fewer channels than its block
    (16 on AVX-512, 8 on AVX2; uxlfoundation/oneDNN#6035), so a narrow ResNet's first downsample
    (8 channels at width 0.125) corrupts the heap on odd batch sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sh, sw = self.stride
        return F.conv2d(x[:, :, ::sh, ::sw], self.weight, self.bias)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    if stride == 1:
        return nn.Conv2d(cin, cout, 1, bias=False)
    return StridedPointwise(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + skip)


class ResNet(nn.Module):
    head_name = "fc"  # classifier parameters, re-initialised when loading ImageNet weights

    def __init__(self, arch: str, num_classes: int, width: float = 1.0):
        super().__init__()
        kind, depths = LAYOUTS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        base = max(1, int(round(64 * width)))
        self.inplanes = base
        self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(block, base, depths[0], 1)
        self.layer2 = self._stage(block, base * 2, depths[1], 2)
        self.layer3 = self._stage(block, base * 4, depths[2], 2)
        self.layer4 = self._stage(block, base * 8, depths[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = base * 8 * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        del self.inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.to(memory_format=torch.channels_last)

    def _stage(self, block, planes: int, depth: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        blocks = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        blocks += [block(self.inplanes, planes, 1, None) for _ in range(depth - 1)]
        return nn.Sequential(*blocks)

    @property
    def head(self) -> nn.Linear:
        return self.fc

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) standardised images -> (B, D) pooled features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))
