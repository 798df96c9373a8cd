"""Mixed precision (--max-drop): keep the layers whose float form wins back the most, one at a time,
until the int8 model's metric is within the allowed drop of the float model's."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.quant.calibrate import Ranges
from qconvert.quant.config import QuantConfig
from qconvert.quant.evaluate import Scorer
from qconvert.quant.plan import find_layers, layer_name
from qconvert.quant.static import quantize_with_ranges


def choose_float_layers(model: ir.Model, ranges: Ranges, config: QuantConfig, feeds: dict[str, np.ndarray],
                        labels: np.ndarray, metric: str | None, max_drop: float,
                        gains: dict[str, float] | None = None) -> list[str]:
    """The layers to keep float, most sensitive first; [] when all-int8 already meets the bound. `gains`:
    each layer's all-but-this-int8 SQNR where a sensitivity analysis on the same data measured it."""
    scorer = Scorer(model, feeds, labels, metric)
    _, drop = scorer.score(quantize_with_ranges(model, ranges, config))
    if drop <= max_drop:
        return []
    names = [layer_name(layer.node) for layer in find_layers(model.graph)]
    # Rank by what keeping each layer float wins back (output SQNR: smoother than a metric on a
    # finite set, so ties do not decide the order).
    gain = gains or {name: scorer.score(quantize_with_ranges(model, ranges, config, {name}))[0] for name in names}
    kept: list[str] = []
    for name in sorted(names, key=lambda n: -gain[n]):
        kept.append(name)
        _, drop = scorer.score(quantize_with_ranges(model, ranges, config, set(kept)))
        if drop <= max_drop:
            break
    return kept
