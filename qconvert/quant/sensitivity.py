"""Sensitivity analysis: how much each layer's int8 form costs, measured two ways.

only     this layer int8, every other layer float: the error it introduces on its own
all-but  every layer int8 except this one: what keeping it float would win back

Both are the model output's SQNR against the float model and, with an --eval set, the metric's drop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import onnx_ir as ir

from qconvert.quant.calibrate import Ranges
from qconvert.quant.config import QuantConfig
from qconvert.quant.evaluate import Scorer
from qconvert.quant.plan import find_layers, layer_name
from qconvert.quant.static import quantize_with_ranges


@dataclass
class LayerSensitivity:
    layer: str
    op: str
    weight: str | None  # the weight's name: the source's parameter path (features.0.weight)
    only_sqnr_db: float
    only_drop: float | None
    all_but_sqnr_db: float
    all_but_drop: float | None


@dataclass
class Sensitivity:
    metric: str | None
    float_metric: float | None
    int8_sqnr_db: float  # every layer int8
    int8_drop: float | None
    layers: list[LayerSensitivity] = field(default_factory=list)  # most sensitive first
    # The most sensitive layers' input activations with every calibration method's range
    # (qconvert.quant.activation_ranges.ActivationHistogram).
    activations: list = field(default_factory=list)

    def to_dict(self) -> dict:
        def clean(value):
            return value if not isinstance(value, float) or np.isfinite(value) else str(value)

        data = asdict(self)
        data["layers"] = [{k: clean(v) for k, v in layer.items()} for layer in data["layers"]]
        data["int8_sqnr_db"] = clean(self.int8_sqnr_db)
        return data


def analyze(model: ir.Model, ranges: Ranges, config: QuantConfig, scorer: Scorer) -> Sensitivity:
    layers = [(layer_name(layer.node), layer.node.op_type, layer.weight.name if layer.weight else None)
              for layer in find_layers(model.graph)]
    names = {name for name, _, _ in layers}
    int8_sqnr, int8_drop = scorer.score(quantize_with_ranges(model, ranges, config))
    results = []
    for name, op, weight in layers:
        only = scorer.score(quantize_with_ranges(model, ranges, config, names - {name}))
        all_but = scorer.score(quantize_with_ranges(model, ranges, config, {name}))
        results.append(LayerSensitivity(name, op, weight, only[0], only[1], all_but[0], all_but[1]))
    # Most sensitive first: the lowest SQNR when quantized alone.
    results.sort(key=lambda r: (r.only_sqnr_db, -r.all_but_sqnr_db))
    return Sensitivity(scorer.metric, scorer.float_metric, int8_sqnr, int8_drop, results)
