"""Reference MobileNetV3-style classifier (torch) for 32x32 digits (Howard et al. 2019, at digit scale).

A stride-2 Conv+BN+HardSwish stem, then inverted residual blocks: 1x1 expansion conv + BN + activation, 3x3
depthwise conv + BN + activation, optionally a squeeze-excitation gate (x * gate(conv1x1(relu(
conv1x1(gap(x)))))), and a 1x1 linear projection conv + BN with no activation; where stride is 1 and
the widths match, the block input is added to that projection (an Add with no activation after it).
Then a 1x1 conv + BN + HardSwish head, global average pooling and one linear layer.

The SE gates are HardSigmoid, as in MobileNetV3, except in one block that uses Sigmoid, so that
conversions see both gates; the activations are HardSwish except ReLU in the first block (also as in
MobileNetV3's first blocks).

`build()` with no arguments is the trained reference configuration; `build_tiny()` is the test variant.
"""

import torch
from torch import nn

from models.torch_train import train_on_digits

# (expansion width, output width, stride, SE gate or None, activation) per block, at width_mult 1.
BLOCKS = [
    (32, 16, 1, "hardsigmoid", "relu"),  # residual
    (64, 24, 2, None, "hardswish"),
    (72, 24, 1, "sigmoid", "hardswish"),  # residual
    (96, 40, 2, "hardsigmoid", "hardswish"),
    (120, 40, 1, "hardsigmoid", "hardswish"),  # residual
]
STEM, HEAD = 16, 128
ACTIVATIONS = {"relu": nn.ReLU, "hardswish": nn.Hardswish}
GATES = {"hardsigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid}


def conv_bn_act(cin, cout, kernel, stride=1, groups=1, act="hardswish"):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([ACTIVATIONS[act]()] if act else []))


def scaled(width, mult):
    return max(4, int(round(width * mult / 4)) * 4)


class SqueezeExcite(nn.Module):
    def __init__(self, channels, gate):
        super().__init__()
        squeezed = max(4, channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = GATES[gate]()

    def forward(self, x):
        return x * self.gate(self.expand(torch.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, expanded, cout, stride, gate, act):
        super().__init__()
        layers = [conv_bn_act(cin, expanded, 1, act=act),
                  conv_bn_act(expanded, expanded, 3, stride, groups=expanded, act=act)]
        if gate:
            layers.append(SqueezeExcite(expanded, gate))
        layers.append(conv_bn_act(expanded, cout, 1, act=None))  # linear bottleneck
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.body(x)
        return out + x if self.residual else out


class MobileNet(nn.Module):
    def __init__(self, width_mult=1.0, num_classes=10, in_channels=3):
        super().__init__()
        prev = scaled(STEM, width_mult)
        self.stem = conv_bn_act(in_channels, prev, 3, stride=2)  # 16x16: the digits are 8x8 upscaled
        blocks = []
        for expanded, out, stride, gate, act in BLOCKS:
            out = scaled(out, width_mult)
            blocks.append(InvertedResidual(prev, scaled(expanded, width_mult), out, stride, gate, act))
            prev = out
        self.blocks = nn.Sequential(*blocks)
        head = scaled(HEAD, width_mult)
        self.head = conv_bn_act(prev, head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.head(self.blocks(self.stem(x)))), 1))


def build(width_mult=1.0, num_classes=10, in_channels=3):
    return MobileNet(width_mult, num_classes, in_channels)


def build_tiny():
    # Same layout (every residual, gate and activation kind), a quarter of the widths.
    return build(width_mult=0.25)


FULL_TRAIN = dict(epochs=8, lr=0.05)
TINY_TRAIN = dict(epochs=4, lr=0.1)


def build_and_train(tiny=False, seed=0):
    """Returns (model in eval mode, eval x, eval y, eval top-1, train seconds)."""
    return train_on_digits(build_tiny if tiny else build, TINY_TRAIN if tiny else FULL_TRAIN, seed)
