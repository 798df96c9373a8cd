"""Reference VGG16_bn-style classifier (torch) for 32x32 digits: VGG16-BN's layout at half its widths
(32 to 256 channels).

Half, not a quarter: at a quarter width the first layers have 16 channels, too narrow for int8 GEMM
kernels to pay (onnxruntime ran that model in int8 at 0.56x its float time, this one at 0.32x; measured
side by side, bench/QUANT.md), and a real vgg16_bn is wider still.

`build()` takes no arguments on purpose: users point qconvert at
`models/vgg_torch.py:build` together with `--weights vgg_weights.pt`, so the
defaults are exactly the trained reference configuration. The tiny test
variant is `build_tiny()` (use it with weights from a `--tiny` build).
"""

import torch
from torch import nn

from models.torch_train import train_on_digits

# Classic VGG16 layout: output channels of each 3x3 conv, "M" = 2x2 max-pool.
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, width_mult=0.5, num_classes=10, in_channels=3):
        super().__init__()
        layers, channels = [], in_channels
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(4, int(item * width_mult))
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        # Five pools take 32x32 to 1x1, so the classifier sees `channels` features.
        hidden = channels
        self.classifier = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.3),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(width_mult=0.5, num_classes=10, in_channels=3):
    return VGG(width_mult, num_classes, in_channels)


def build_tiny():
    return build(width_mult=0.125)


FULL_TRAIN = dict(epochs=12, lr=0.05)
TINY_TRAIN = dict(epochs=3, lr=0.05)


def build_and_train(tiny=False, seed=0):
    """Returns (model in eval mode, eval x, eval y, eval top-1, train seconds)."""
    return train_on_digits(build_tiny if tiny else build, TINY_TRAIN if tiny else FULL_TRAIN, seed)
