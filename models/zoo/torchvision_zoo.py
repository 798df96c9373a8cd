"""torchvision architectures with seeded random weights (weights=None, no download)."""

from __future__ import annotations

from pathlib import Path

from models.zoo.registry import ZooModel
from models.zoo.torch_common import import_torchvision, prepare, save_pt2, save_torchscript, spec

BUILDER = "models.zoo.torchvision_zoo:build"
SMALL_VIT = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128,
                 num_classes=10)


def _entry(arch, size=64, fmt="pt2", outputs=1, **options) -> ZooModel:
    name = arch if fmt == "pt2" else f"{arch}.{fmt}"
    return ZooModel(name=name, family="torchvision", arch=arch, format=fmt,
                    inputs=(spec("x", (2, 3, size, size)),), builder=BUILDER, options=options,
                    pin_shapes=fmt == "pt", outputs=outputs)


ENTRIES = [
    _entry("resnet50"),
    _entry("mobilenet_v2"),
    _entry("mobilenet_v3_small"),
    _entry("efficientnet_b0"),
    _entry("regnet_y_400mf"),
    _entry("shufflenet_v2_x1_0"),
    _entry("squeezenet1_1"),
    _entry("densenet121"),
    _entry("convnext_tiny", layer_scale=(0.1, 0.5)),
    _entry("mnasnet0_5"),
    _entry("googlenet", aux_logits=False, init_weights=True),
    _entry("swin_t", layer_scale=None),
    _entry("vit_small", size=32),
    _entry("lraspp_mobilenet_v3_large", size=96),
    _entry("deeplabv3_mobilenet_v3_large", size=96, outputs=2, aux_loss=True),
    _entry("efficientnet_b0", fmt="pt"),
    _entry("vit_small", size=32, fmt="pt"),
]


class _Segmentation:
    """Wraps a torchvision segmentation model (which returns a dict) to return its tensors in order."""

    @staticmethod
    def wrap(model):
        import torch

        class Outputs(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                result = self.inner(x)
                return tuple(result[key] for key in ("out", "aux") if key in result)

        return Outputs(model)


def make_module(model: ZooModel):
    import torch

    tv = import_torchvision()
    torch.manual_seed(model.seed)
    options = {k: v for k, v in model.options.items() if k != "layer_scale"}
    if model.arch == "vit_small":
        from torchvision.models.vision_transformer import VisionTransformer

        vit = VisionTransformer(**SMALL_VIT)
        # torchvision zero-initializes the classifier (for fine-tuning): all-zero logits measure nothing.
        torch.nn.init.normal_(vit.heads.head.weight, std=SMALL_VIT["hidden_dim"] ** -0.5)
        return vit
    if model.arch.startswith(("lraspp", "deeplabv3")):
        factory = getattr(tv.models.segmentation, model.arch)
        return _Segmentation.wrap(factory(weights=None, weights_backbone=None, num_classes=4, **options))
    return getattr(tv.models, model.arch)(weights=None, num_classes=10, **options)


def prepared(model: ZooModel):
    """The module with its seeded weights and BatchNorm statistics, as it is saved."""
    return prepare(make_module(model), model, layer_scale=model.options.get("layer_scale"))


def build(model: ZooModel, out: Path) -> None:
    module = prepared(model)
    (save_torchscript if model.format == "pt" else save_pt2)(module, model, out)
