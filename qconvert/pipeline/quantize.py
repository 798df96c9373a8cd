"""Post-training quantization: the float IR calibrated into the QDQ IR (IRVariant.QDQ) that every static
int8 target is emitted from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx_ir as ir

from qconvert.backends.targets import IRVariant
from qconvert.pipeline.state import ConversionState
from qconvert.quant.config import QuantConfig

if TYPE_CHECKING:
    from qconvert.quant.sensitivity import Sensitivity


def ptq(graph: ir.Model, calib_feeds: dict[str, np.ndarray], quant: QuantConfig,
        eval_feeds: dict[str, np.ndarray] | None, labels: np.ndarray | None, metric: str | None,
        max_drop: float | None) -> tuple[ir.Model, list[str], Sensitivity | None]:
    """The QDQ IR, the layers that mixed precision (`max_drop`, scored on the evaluation set) left float,
    and the per-layer sensitivity it chose them by (for the report), with its activation histograms."""
    from qconvert.passes import prepare_for_int8
    from qconvert.quant.activation_ranges import most_sensitive_histograms
    from qconvert.quant.calibrate import calibrate
    from qconvert.quant.evaluate import Scorer
    from qconvert.quant.mixed import choose_float_layers
    from qconvert.quant.sensitivity import analyze
    from qconvert.quant.static import quantize_with_ranges

    graph = prepare_for_int8(graph)
    ranges = calibrate(graph, calib_feeds, quant)
    float_layers: list[str] = []
    sensitivity = None
    if max_drop is not None:
        sensitivity = analyze(graph, ranges, quant, Scorer(graph, eval_feeds, labels, metric))
        sensitivity.activations = most_sensitive_histograms(graph, calib_feeds, sensitivity, quant)
        gains = {layer.layer: layer.all_but_sqnr_db for layer in sensitivity.layers}
        float_layers = choose_float_layers(graph, ranges, quant, eval_feeds, labels, metric, max_drop, gains)
    return quantize_with_ranges(graph, ranges, quant, set(float_layers)), float_layers, sensitivity


def quantize(state: ConversionState) -> None:
    """Runs when a target that will be emitted consumes the QDQ IR."""
    if not any(t.consumes is IRVariant.QDQ and t.name not in state.uncalibrated for t in state.targets):
        return
    state.notify("calibrate", "static int8")
    data, options, result = state.data, state.options, state.result
    try:
        state.variants[IRVariant.QDQ], result.float_layers, result.sensitivity = ptq(
            state.variants[IRVariant.FLOAT], data.calib_feeds, options.quant, data.eval_feeds, data.labels,
            result.metric or options.evaluation.metric, options.mixed.max_drop)
    except Exception as error:  # the static int8 rows fail; the other targets still run
        state.failed_variants[IRVariant.QDQ] = f"quantization failed: {type(error).__name__}: {error}".splitlines()[0]
