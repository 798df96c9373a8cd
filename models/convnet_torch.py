"""Reference small ConvNet (torch) for 32x32 digits: three conv+BN+ReLU+pool
blocks and one linear layer. `build()` with no arguments is the trained
reference configuration; `build_tiny()` is the test variant."""

import torch
from torch import nn

from models.torch_train import train_on_digits


class ConvNet(nn.Module):
    def __init__(self, channels=(16, 32, 64), num_classes=10, in_channels=3):
        super().__init__()
        layers, prev = [], in_channels
        for out in channels:
            layers += [
                nn.Conv2d(prev, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            prev = out
        self.features = nn.Sequential(*layers)
        side = 32 // 2 ** len(channels)
        self.classifier = nn.Linear(prev * side * side, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(channels=(16, 32, 64), num_classes=10, in_channels=3):
    return ConvNet(channels, num_classes, in_channels)


def build_tiny():
    return build(channels=(4, 8, 8))


FULL_TRAIN = dict(epochs=8, lr=0.05)
TINY_TRAIN = dict(epochs=3, lr=0.05)


def build_and_train(tiny=False, seed=0):
    """Returns (model in eval mode, eval x, eval y, eval top-1, train seconds)."""
    return train_on_digits(build_tiny if tiny else build, TINY_TRAIN if tiny else FULL_TRAIN, seed)
