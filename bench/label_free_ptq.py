"""Label-free PTQ improvements on the tiny reference models: plain PTQ, AdaRound, bias correction, both.

    .venv/bin/python -m models.build --out /tmp/tinyA --tiny --only vgg,mobilenet
    .venv/bin/python -m bench.label_free_ptq /tmp/tinyA

For each (model, weight granularity): top-1 on the digits evaluation set and output SQNR against the float
model, both as onnx-qdq's integer kernels compute them (qconvert.quant.evaluate.run_first_output) and as
the QDQ IR defines the function ("ref": onnxruntime's reference QuantizeLinear/DequantizeLinear and float
ops, no graph optimisation; what AdaRound and bias correction optimise), the agreement of the int8 top-1
with the float model's, and the wall time of the step after PTQ. Calibration: NAME_calib.npz.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from qconvert.passes import cleanup, prepare_for_int8
from qconvert.quant.config import QuantConfig
from qconvert.quant.evaluate import run_first_output
from qconvert.quant.static import quantize_static
from qconvert.report.metrics import sqnr_db
from qconvert.train.adaround import AdaRoundOptions, adaround
from qconvert.train.bias_correction import BiasCorrectionOptions, correct_biases

CASES = (("vgg", True), ("mobilenet", False), ("vgg", False), ("mobilenet", True))


def reference_output(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The QDQ IR's function as its ops define it: onnxruntime without graph optimisation."""
    import onnx_ir as ir
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", type=Path)
    parser.add_argument("--iterations", type=int, default=AdaRoundOptions().iterations)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from qconvert.converters import load_source

    torch.set_num_threads(args.threads)
    print("| model | weights | variant | top-1 | top-1 ref | agrees with float | SQNR dB | SQNR dB ref | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, per_channel in CASES:
        model = prepare_for_int8(cleanup(load_source(str(args.models / f"{name}.pt2")).ir))
        calib = {"x": np.load(args.models / f"{name}_calib.npz")["x"]}
        with np.load(args.models / f"{name}_eval.npz") as data:
            feeds, labels = {"x": data["x"]}, data["labels"]
        reference = run_first_output(model, feeds)

        def row(variant: str, qdq, seconds: float) -> None:
            output, exact = run_first_output(qdq, feeds), reference_output(qdq, feeds)
            print(f"| {name} | {'per-channel' if per_channel else 'per-tensor'} | {variant} | "
                  f"{np.mean(output.argmax(1) == labels):.4f} | {np.mean(exact.argmax(1) == labels):.4f} | "
                  f"{np.mean(output.argmax(1) == reference.argmax(1)):.4f} | {sqnr_db(reference, output):.2f} | "
                  f"{sqnr_db(reference, exact):.2f} | {seconds:.1f} |", flush=True)

        top1 = np.mean(reference.argmax(1) == labels)
        print(f"| {name} | float | - | {top1:.4f} | {top1:.4f} | 1 | - | - | - |")
        began = time.perf_counter()
        ptq = quantize_static(model, calib, QuantConfig(per_channel=per_channel))
        row("PTQ", ptq, time.perf_counter() - began)
        rounded, facts = adaround(ptq, model, calib, AdaRoundOptions(iterations=args.iterations, threads=args.threads))
        row(f"AdaRound ({args.iterations} steps)", rounded, facts["seconds"])
        for target in ("quantized", "float"):
            corrected, facts = correct_biases(ptq, model, calib,
                                              BiasCorrectionOptions(target_inputs=target, threads=args.threads))
            row(f"bias correction ({target} inputs)", corrected, facts["seconds"])
        both, facts = correct_biases(rounded, model, calib, BiasCorrectionOptions(target_inputs="float",
                                                                                  threads=args.threads))
        row("AdaRound + bias correction (float)", both, facts["seconds"])


if __name__ == "__main__":
    main()
