"""`qconvert sensitivity`: each static int8 layer's cost (qconvert.quant.sensitivity), on the load and data
stages of a conversion, written to OUT/sensitivity.json and OUT/report.html."""

from __future__ import annotations

from pathlib import Path

from qconvert.backends.hardware import physical_cores
from qconvert.errors import UsageError
from qconvert.pipeline.checks import check_writable
from qconvert.pipeline.data import load_datasets
from qconvert.pipeline.load import clean, load_model
from qconvert.pipeline.options import CalibrationOptions, EvalOptions, SourceOptions
from qconvert.pipeline.report import write_json
from qconvert.quant.config import QuantConfig
from qconvert.quant.data import check_data_path
from qconvert.report.html import write_html


def sensitivity(model: str, source: SourceOptions, calibration: CalibrationOptions, evaluation: EvalOptions,
                quant: QuantConfig, *, out_dir: str | Path = "qconvert-out", threads: int | None = None,
                seed: int = 0):
    """Scored on the evaluation set where given, else on the calibration data (SQNR only)."""
    from qconvert.passes import prepare_for_int8
    from qconvert.quant.activation_ranges import most_sensitive_histograms
    from qconvert.quant.calibrate import calibrate
    from qconvert.quant.evaluate import Scorer
    from qconvert.quant.sensitivity import analyze

    out = Path(out_dir)
    check_writable(out)
    if calibration.calib is None:
        raise UsageError("qconvert sensitivity needs calibration data: pass --calib with real input samples (.npz "
                         "keyed by input name, .npy, a folder of images, or file.py:function with --trust-code)")
    check_data_path(calibration.calib, trust_code=source.trust_code)
    graph = prepare_for_int8(clean(load_model(model, source)))
    calib_feeds, eval_feeds, labels = load_datasets(graph, calibration, evaluation, trust_code=source.trust_code,
                                                    seed=seed)
    scorer = Scorer(graph, calib_feeds if eval_feeds is None else eval_feeds, labels, evaluation.metric,
                    threads or physical_cores())
    result = analyze(graph, calibrate(graph, calib_feeds, quant), quant, scorer)
    result.activations = most_sensitive_histograms(graph, calib_feeds, result, quant)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sensitivity.json", result.to_dict())
    write_html(result, out / "report.html", model)
    return result
