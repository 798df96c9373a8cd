"""A YOLOv8-style detector written here (no wheel, no weights): Conv-BN-SiLU, C2f blocks (Split/Concat),
SPPF (MaxPool), an FPN/PAN neck with nearest Upsample and a decoupled head with DFL.

The anchors and strides are built at run time from the feature maps' sizes (arange, meshgrid, expand),
as the real export does, so the graph carries Shape/Range/Expand arithmetic on the input's height and
width. Outputs: boxes [B, 4, A] as (cx, cy, w, h) in pixels and class scores [B, NC, A] after sigmoid.
Saved as .pt2 (dynamic batch) and as .onnx with symbolic batch, height and width.
"""

from __future__ import annotations

from pathlib import Path

from models.zoo.registry import ZooModel
from models.zoo.torch_common import MAX_BATCH, example_inputs, prepare, save_pt2, spec

BUILDER = "models.zoo.detector:build"
SIZE, CLASSES, REG_MAX, WIDTH = 128, 8, 16, 16
STRIDES = (8, 16, 32)

ENTRIES = [
    ZooModel(name="yolov8_style", family="detector", arch="yolov8_style", format="pt2",
             inputs=(spec("images", (2, 3, SIZE, SIZE)),), builder=BUILDER, outputs=2),
    # Symbolic H and W in the file: the CLI pins them (the batch stays dynamic).
    ZooModel(name="yolov8_style.onnx", family="detector", arch="yolov8_style", format="onnx",
             inputs=(spec("images", (2, 3, SIZE, SIZE), dynamic=(0, 2, 3)),), builder=BUILDER, outputs=2,
             pin_shapes=True),
]


def make_module(model: ZooModel, width: int = WIDTH, classes: int = CLASSES):
    import torch
    from torch import nn

    class Conv(nn.Sequential):
        def __init__(self, cin, cout, k=1, s=1):
            super().__init__(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU())

    class Bottleneck(nn.Module):
        def __init__(self, c, shortcut=True):
            super().__init__()
            self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

        def forward(self, x):
            y = self.cv2(self.cv1(x))
            return x + y if self.add else y

    class C2f(nn.Module):
        def __init__(self, cin, cout, n=1, shortcut=True):
            super().__init__()
            self.c = cout // 2
            self.cv1 = Conv(cin, 2 * self.c)
            self.cv2 = Conv((2 + n) * self.c, cout)
            self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

        def forward(self, x):
            y = list(self.cv1(x).split((self.c, self.c), 1))
            for block in self.m:
                y.append(block(y[-1]))
            return self.cv2(torch.cat(y, 1))

    class SPPF(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.cv1, self.cv2 = Conv(cin, cin // 2), Conv(cin * 2, cout)
            self.pool = nn.MaxPool2d(5, 1, 2)

        def forward(self, x):
            y = [self.cv1(x)]
            for _ in range(3):
                y.append(self.pool(y[-1]))
            return self.cv2(torch.cat(y, 1))

    class DFL(nn.Module):
        """Expected box side over REG_MAX bins: Softmax, then a 1x1 conv holding 0..REG_MAX-1."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(REG_MAX, 1, 1, bias=False).requires_grad_(False)
            self.conv.weight.data[:] = torch.arange(REG_MAX, dtype=torch.float32).view(1, REG_MAX, 1, 1)

        def forward(self, x):
            b, _, a = x.shape
            return self.conv(x.view(b, 4, REG_MAX, a).transpose(2, 1).softmax(1)).view(b, 4, a)

    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            w = width
            self.stem = nn.Sequential(Conv(3, w, 3, 2), Conv(w, 2 * w, 3, 2), C2f(2 * w, 2 * w))
            self.p3 = nn.Sequential(Conv(2 * w, 4 * w, 3, 2), C2f(4 * w, 4 * w, 2))
            self.p4 = nn.Sequential(Conv(4 * w, 8 * w, 3, 2), C2f(8 * w, 8 * w, 2))
            self.p5 = nn.Sequential(Conv(8 * w, 8 * w, 3, 2), C2f(8 * w, 8 * w), SPPF(8 * w, 8 * w))
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.top4 = C2f(16 * w, 8 * w, shortcut=False)
            self.top3 = C2f(12 * w, 4 * w, shortcut=False)
            self.down3, self.bottom4 = Conv(4 * w, 4 * w, 3, 2), C2f(12 * w, 8 * w, shortcut=False)
            self.down4, self.bottom5 = Conv(8 * w, 8 * w, 3, 2), C2f(16 * w, 8 * w, shortcut=False)
            chans = (4 * w, 8 * w, 8 * w)
            box_c, cls_c = max(16, chans[0] // 4, 4 * REG_MAX), max(chans[0], classes)
            self.box = nn.ModuleList(nn.Sequential(Conv(c, box_c, 3), Conv(box_c, box_c, 3),
                                                   nn.Conv2d(box_c, 4 * REG_MAX, 1)) for c in chans)
            self.cls = nn.ModuleList(nn.Sequential(Conv(c, cls_c, 3), Conv(cls_c, cls_c, 3),
                                                   nn.Conv2d(cls_c, classes, 1)) for c in chans)
            self.dfl = DFL()

        @staticmethod
        def anchors(features):
            """Anchor centres and strides from each map's size, at run time."""
            points, strides = [], []
            for feature, stride in zip(features, STRIDES):
                h, w = feature.shape[2:]
                sy = torch.arange(h, dtype=torch.float32) + 0.5
                sx = torch.arange(w, dtype=torch.float32) + 0.5
                yy, xx = torch.meshgrid(sy, sx, indexing="ij")
                points.append(torch.stack((xx, yy), -1).view(-1, 2))
                strides.append(torch.full((1, 1), float(stride)).expand(h * w, 1))
            return torch.cat(points).transpose(0, 1), torch.cat(strides).transpose(0, 1)

        def forward(self, images):
            c2 = self.stem(images)
            c3 = self.p3(c2)
            c4 = self.p4(c3)
            c5 = self.p5(c4)
            t4 = self.top4(torch.cat((self.up(c5), c4), 1))
            t3 = self.top3(torch.cat((self.up(t4), c3), 1))
            b4 = self.bottom4(torch.cat((self.down3(t3), t4), 1))
            b5 = self.bottom5(torch.cat((self.down4(b4), c5), 1))
            features = (t3, b4, b5)
            b = images.shape[0]
            raw = [torch.cat((box(f), cls(f)), 1).view(b, 4 * REG_MAX + classes, -1)
                   for f, box, cls in zip(features, self.box, self.cls)]
            distances, logits = torch.cat(raw, 2).split((4 * REG_MAX, classes), 1)
            anchors, strides = self.anchors(features)
            lt, rb = self.dfl(distances).chunk(2, 1)
            x1y1, x2y2 = anchors.unsqueeze(0) - lt, anchors.unsqueeze(0) + rb
            boxes = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
            return boxes, logits.sigmoid()

    torch.manual_seed(model.seed)
    return Detector().eval()


def save_onnx(module, model: ZooModel, out: Path) -> None:
    """torch.onnx's dynamo exporter with symbolic batch, height and width (multiples of the 32 stride)."""
    import torch
    from torch.export import Dim

    batch = Dim("batch", min=1, max=MAX_BATCH)
    height, width = 32 * Dim("h32", min=1, max=64), 32 * Dim("w32", min=1, max=64)
    torch.onnx.export(module, example_inputs(model), str(out / model.file), dynamo=True,
                      input_names=["images"], output_names=["boxes", "scores"],
                      dynamic_shapes={"images": {0: batch, 2: height, 3: width}}, external_data=False)


def prepared(model: ZooModel):
    """The module with its seeded weights and BatchNorm statistics, as it is saved."""
    return prepare(make_module(model), model)


def build(model: ZooModel, out: Path) -> None:
    module = prepared(model)
    (save_onnx if model.format == "onnx" else save_pt2)(module, model, out)
