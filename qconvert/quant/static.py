"""Static int8 on the IR: calibrate once, then write QDQ for any choice of layers kept float."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qconvert.ir.values import copy_model
from qconvert.passes.insert_qdq import InsertQDQ
from qconvert.passes.pipelines import run_pipeline
from qconvert.passes.strip_debug_metadata import StripDebugMetadata
from qconvert.quant.calibrate import Ranges, calibrate
from qconvert.quant.config import QuantConfig


def quantize_with_ranges(model: ir.Model, ranges: Ranges, config: QuantConfig,
                         exclude: set[str] | frozenset[str] = frozenset()) -> ir.Model:
    """A QDQ copy of the float IR; `model` is left as it is."""
    return run_pipeline(copy_model(model), [
        InsertQDQ(ranges=ranges, config=config, exclude=exclude),
        # The int8 artifact is for deployment: no exporter stack traces in it.
        StripDebugMetadata(),
    ], "quantize")


def quantize_static(model: ir.Model, feeds: dict[str, np.ndarray], config: QuantConfig,
                    exclude: set[str] | frozenset[str] = frozenset()) -> ir.Model:
    return quantize_with_ranges(model, calibrate(model, feeds, config), config, exclude)
