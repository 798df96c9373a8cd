"""What the user chose for quantization: calibration method, weight granularity, activation type."""

from __future__ import annotations

from dataclasses import dataclass

from qconvert.errors import UsageError

METHODS = ("minmax", "moving-average", "percentile", "entropy", "mse")
DEFAULT_PERCENTILE = 99.99
# The default is measured, not assumed (bench/quant_vs_ort.py → bench/QUANT.md, "Calibration methods"):
# percentile:99.99 gave the smallest UNet Dice drop on the evaluation set and on 1024 more images, on
# models trained on two machines (0.0002 vs minmax 0.0005; +0.0004 vs minmax −0.0001), and the same VGG
# and ConvNet top-1 as every method. percentile:99.9 scores the UNet higher but cuts the VGG to 26 dB
# and quadruples the BERT's static cosine drop. minmax keeps ~3 dB more output SQNR, its BERT static
# cosine drop was smaller on one machine's models and larger on the other's, and it is onnxruntime's
# default: `--calibrate minmax` gives it.
DEFAULT_METHOD = "percentile"


@dataclass(frozen=True)
class QuantConfig:
    method: str = DEFAULT_METHOD  # with `percentile` below: percentile:99.99
    percentile: float = DEFAULT_PERCENTILE  # only for method == "percentile"
    per_channel: bool = True  # weights: one scale per output channel (else one per tensor)
    symmetric_activations: bool = False  # activations: zero point fixed at the middle (else affine)
    activation_dtype: str = "int8"  # int8 | uint8; weights are always int8, symmetric, narrow range

    @property
    def method_label(self) -> str:
        """The method as --calibrate spells it: `percentile:99.99`, `minmax`."""
        return f"percentile:{self.percentile:g}" if self.method == "percentile" else self.method

    def describe(self) -> str:
        return (f"{self.method_label}, weights {'per-channel' if self.per_channel else 'per-tensor'}, activations "
                f"{'symmetric' if self.symmetric_activations else 'affine'} {self.activation_dtype}")


def parse_method(text: str) -> tuple[str, float]:
    """`percentile:99.9` -> ("percentile", 99.9); other names carry no argument."""
    name, _, argument = text.strip().partition(":")
    if name not in METHODS:
        raise UsageError(f"unknown calibration method {text!r}; use one of {', '.join(METHODS)} "
                         f"(percentile takes an optional :P, e.g. percentile:99.99)")
    if argument and name != "percentile":
        raise UsageError(f"calibration method {name} takes no argument (got {text!r})")
    percentile = DEFAULT_PERCENTILE
    if argument:
        try:
            percentile = float(argument)
        except ValueError:
            raise UsageError(f"percentile must be a number in (50, 100], got {argument!r}") from None
        if not 50.0 < percentile <= 100.0:
            raise UsageError(f"percentile must be in (50, 100], got {percentile:g}")
    return name, percentile


def make_config(calibrate: str = DEFAULT_METHOD, weights: str = "per-channel", activations: str = "affine",
                dtype: str = "int8") -> QuantConfig:
    """A QuantConfig from the CLI's words, each checked."""
    method, percentile = parse_method(calibrate)
    if weights not in ("per-channel", "per-tensor"):
        raise UsageError(f"--weights must be per-channel or per-tensor, got {weights!r}")
    if activations not in ("affine", "symmetric"):
        raise UsageError(f"--activations must be affine or symmetric, got {activations!r}")
    if dtype not in ("int8", "uint8"):
        raise UsageError(f"--activation-type must be int8 or uint8, got {dtype!r}")
    return QuantConfig(method, percentile, weights == "per-channel", activations == "symmetric", dtype)
