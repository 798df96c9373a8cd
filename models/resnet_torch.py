"""Reference residual classifier (torch) for 32x32 digits: a CIFAR-width ResNet (He et al. 2016, sec. 4.2).

A Conv+BN+ReLU stem, then three stages of two BasicBlocks at widths 16/32/64 (the second and third
stages open with a stride-2 block whose shortcut is a 1x1 conv + BN projection; the other shortcuts are
identities), global average pooling and one linear layer.

Two blocks end in their residual Add with no ReLU after it, so that conversions see both forms:
the first block of stage 2 (its sum feeds the next block's conv and that block's identity Add) and
the last block (its sum feeds the pooling). Every other block is Add -> ReLU.

`build()` with no arguments is the trained reference configuration; `build_tiny()` is the test variant.
"""

import torch
from torch import nn

from models.torch_train import train_on_digits


def conv_bn(cin, cout, kernel, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)
    )


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut; ReLU after the Add unless `relu_after_add` is False."""

    def __init__(self, cin, cout, stride, relu_after_add=True):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), conv_bn(cout, cout, 3, 1))
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        self.relu_after_add = relu_after_add

    def forward(self, x):
        out = self.body(x) + self.shortcut(x)
        return torch.relu(out) if self.relu_after_add else out


# (stage, block) indices whose Add has no ReLU after it; see the module docstring.
NO_RELU_AFTER_ADD = {(1, 0), (2, 1)}


class ResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), blocks=2, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(in_channels, widths[0], 3, 1), nn.ReLU(inplace=True))
        layers, prev = [], widths[0]
        for stage, width in enumerate(widths):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(BasicBlock(prev, width, stride, (stage, index) not in NO_RELU_AFTER_ADD))
                prev = width
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def build(widths=(16, 32, 64), blocks=2, num_classes=10, in_channels=3):
    return ResNet(widths, blocks, num_classes, in_channels)


def build_tiny():
    # Same layout (both shortcut kinds, both Add forms), narrower.
    return build(widths=(4, 8, 8))


FULL_TRAIN = dict(epochs=6, lr=0.1)
TINY_TRAIN = dict(epochs=3, lr=0.1)


def build_and_train(tiny=False, seed=0):
    """Returns (model in eval mode, eval x, eval y, eval top-1, train seconds)."""
    return train_on_digits(build_tiny if tiny else build, TINY_TRAIN if tiny else FULL_TRAIN, seed)
