"""The adapter contract: the IR computes what the source computes, checked before the IR is returned."""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx_ir as ir

from qconvert.converters.input_spec import InputSpec
from qconvert.errors import ParityError
from qconvert.ir.inputs import random_feeds
from qconvert.report.metrics import max_abs_error, sqnr_db

# Export is exact up to float reassociation; anything below this is a real divergence.
EXPORT_SQNR_FLOOR_DB = 50.0


def run_ir(model: ir.Model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # The check is of the export, not of onnxruntime's rewrites (its PadFusion changes a zero Pad -> MaxPool).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    proto = ir.serde.serialize_model(model)
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def check_ir_matches_source(
    model: ir.Model,
    predict: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    source_name: str,
    *,
    batch: int = 2,
    seed: int = 0,
) -> None:
    """Run source and IR on the same random inputs (batch 2, so a lost dynamic batch shows up)."""
    from qconvert.ir.inputs import specs_from_ir

    specs: list[InputSpec] = specs_from_ir(model)
    feeds = random_feeds(specs, batch, seed)
    expected = predict(feeds)
    try:
        actual = run_ir(model, feeds)
    except Exception as error:
        raise ParityError(f"the IR exported from {source_name} does not run in onnxruntime: {error}") from error
    names = [v.name for v in model.graph.outputs]
    if len(expected) != len(actual):
        raise ParityError(f"{source_name} gives {len(expected)} outputs but its IR gives {len(actual)}")
    for name, want, got in zip(names, expected, actual):
        want = np.asarray(want)
        if want.shape != got.shape:
            raise ParityError(
                f"output {name!r} of the IR has shape {got.shape} but {source_name} gives {want.shape}"
            )
        score = sqnr_db(want, got)
        if score < EXPORT_SQNR_FLOOR_DB:
            raise ParityError(
                f"output {name!r} of the IR diverges from {source_name}: SQNR {score:.1f} dB "
                f"(floor {EXPORT_SQNR_FLOOR_DB:.0f}), max abs error {max_abs_error(want, got):.3g}; "
                "an op was exported wrongly, rerun with --debug and report the model"
            )
