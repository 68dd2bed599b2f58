"""MobileNetV2 with torchvision's module and parameter names and width multiplier (alpha).

`features.0.0` ... `features.18.*` and `classifier.1` match
`torchvision.models.mobilenet_v2(width_mult=alpha)` key for key, so an ImageNet
checkpoint saved by torchvision loads directly. Because torchvision names the
trunk `features`, the pooled per-frame feature method is `embed`, as on ResNet.
The convolution weights are channels-last, as on ResNet.
"""

from __future__ import annotations

import torch
from torch import nn

# expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def round_channels(value: float, divisor: int = 8) -> int:
    """Nearest multiple of divisor, never below divisor nor more than 10% under value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_relu(
    cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers = [] if expand == 1 else [_conv_bn_relu(cin, hidden, kernel=1)]
        layers += [
            _conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]  # linear bottleneck
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    head_name = "classifier.1"

    def __init__(self, num_classes: int, width: float = 1.0, dropout: float = 0.2):
        super().__init__()
        cin = round_channels(32 * width)
        last = round_channels(1280 * max(1.0, width))  # torchvision never narrows the last layer
        layers: list[nn.Module] = [_conv_bn_relu(3, cin, stride=2)]
        for t, c, n, s in SETTING:
            cout = round_channels(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_conv_bn_relu(cin, last, kernel=1))
        self.features = nn.Sequential(*layers)
        self.feature_dim = last
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        self.to(memory_format=torch.channels_last)

    @property
    def head(self) -> nn.Linear:
        return self.classifier[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) standardised images -> (B, D) pooled features."""
        return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))
