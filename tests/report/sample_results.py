"""Report models with every section filled, built by hand (no conversion runs), at the sizes a large
conversion reaches: 14 rows with 1000 timed runs each, 40 int8 layers, 3 activation histograms, 4 int8
artifacts, 3 training stages of 20 epochs, 2 deployment bundles (one with TFLite Micro)."""

from __future__ import annotations

import numpy as np

from qconvert.quant.activation_ranges import DISPLAY_BINS, ActivationHistogram
from qconvert.quant.sensitivity import LayerSensitivity, Sensitivity
from qconvert.report.bundles import BundleRecord, MicroFacts
from qconvert.report.int8_parity import ParityPair
from qconvert.report.result import ConversionResult, Row, Status, TrainingRun

TARGETS = ["onnx-fp32", "onnx-fp16", "onnx-qdq", "onnx-dynamic", "tflite-fp32", "tflite-fp16", "tflite-int8",
           "tflite-uint8", "tflite-dynamic", "torch-fp32", "torch-int8", "torch-dynamic"]
INT8 = ["onnx-qdq", "tflite-int8", "tflite-uint8", "torch-int8"]


def _row(rng, target: str, index: int) -> Row:
    latencies = list(rng.gamma(20.0, 0.05 * (1 + index % 4), 1000))
    int8 = "int8" in target or "qdq" in target
    return Row(target, target.split("-")[0], Status.OK, path=f"out/model.{target}", sqnr_db=38.25 if int8 else 131.0,
               max_abs_error=2.5e-3 * (index + 1), top1_agreement=0.96875 if int8 else 1.0,
               latency_ms=float(np.median(latencies)), latency_p90_ms=float(np.percentile(latencies, 90)),
               relative_time=0.5 + index / 10, size_mb=1.0 if int8 else 4.0, zip_mb=0.8 if int8 else 3.7,
               peak_rss_mb=100.0 + index, convert_s=0.25 * index, metrics={"top1": 97.5 - 0.1 * int8 * index},
               latencies_ms=latencies)


def full_result() -> ConversionResult:
    rng = np.random.default_rng(0)
    result = ConversionResult("models/vgg.pt2", "torch", "exported-program", "out", "cpu", 2, 32, 64, 3.5,
                              parity_data="eval", metric="top1")
    source = _row(rng, "source", 0)
    source.sqnr_db = source.max_abs_error = source.top1_agreement = None
    result.rows = [source] + [_row(rng, target, i + 1) for i, target in enumerate(TARGETS)]
    result.rows[1].sqnr_db = float("inf")
    result.rows.append(Row("torch-fp16", "torch", Status.FAILED, error="UnsupportedOpError: Gelu | approximate"))
    result.rows[-2].status = Status.SKIPPED
    result.rows[-2].error = "torch is not installed"
    result.int8_parity = [ParityPair(a, b, 41.3 if "torch" not in b else float("inf"), 1.0 + i, 0.984375)
                          for i, (a, b) in enumerate((a, b) for k, a in enumerate(INT8) for b in INT8[k + 1:])]
    layers = [LayerSensitivity(f"node_Conv_{i}", "Conv", f"features.{i}.weight", 30.0 + i, 0.25 * (i % 3),
                               29.0 - i / 100, -0.1) for i in range(40)]
    result.sensitivity = Sensitivity("top1", 97.5, 28.75, 0.5, layers)
    for layer in layers[:3]:
        counts = (1e4 * np.exp(-np.linspace(0, 8, DISPLAY_BINS))).astype(int).tolist()
        ranges = {"minmax": [0.0, 12.0], "moving-average": [0.0, 8.0], "percentile:99.99": [0.0, 9.5],
                  "entropy": [0.0, 7.0], "mse": [0.0, 6.5]}
        result.sensitivity.activations.append(ActivationHistogram(
            layer.layer, f"relu_{layer.layer}", np.linspace(0, 12, DISPLAY_BINS + 1).tolist(), counts, ranges,
            "percentile:99.99", [-9.5, 9.5]))
    epochs = [{"epoch": e, "loss": 1.0 / (e + 1), "metric": {"top1": 90.0 + e / 4}, "seconds": 1.5 * (e > 0)}
              for e in range(21)]
    result.training = [
        TrainingRun("finetune", "--train, labels", 30.0, "cross-entropy", epochs, 20, 1e-4,
                    {"sqnr_db": 12.0, "top1": 95.0}, {"sqnr_db": 11.0, "top1": 97.0},
                    batchnorm="batch statistics, 12 layers"),
        TrainingRun("qat", "--train, labels", 60.0, "cross-entropy", epochs, 18, 1e-3,
                    {"sqnr_db": 37.0, "top1": 96.25}, {"sqnr_db": 39.0, "top1": 97.25}, batchnorm="folded"),
        TrainingRun("adaround", "--calib", 5.0, before={"sqnr_db": 36.0, "top1": 96.0},
                    after={"sqnr_db": 37.0, "top1": 96.25}),
    ]
    result.bundles = [
        BundleRecord("tflite-uint8", "LiteRT", "bundle-tflite-uint8", "vgg.uint8.tflite", 1_234_567, True, [], 4,
                     38.5, float("inf"), "OK: 12 files match SHA256SUMS; 4 golden samples reproduced by LiteRT",
                     MicroFacts("0.dev20261023182759", 123_456, 1, 0.00390625, 2.5, 40, 9),
                     "9 NPU / 0 CPU ops, 0.123 ms at 500 MHz, SRAM 96.0 KiB, flash 1205.6 KiB"),
        BundleRecord("torch-int8", "torch", "bundle-torch-int8", "vgg.int8.pt", 1_300_000, False, ["x[0]"], 4,
                     38.4, 60.2, "OK: 8 files match SHA256SUMS; 4 golden samples reproduced by torch"),
    ]
    return result
