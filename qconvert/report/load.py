"""report.json back into the ConversionResult it was written from (ConversionResult.to_dict's inverse), so that
a page can be rendered again from a run's folder: `qconvert package` renders the bundle's report.html this way."""

from __future__ import annotations

from dataclasses import fields

from qconvert.report import bundles
from qconvert.report.pruning import PruneRun, PruneStep
from qconvert.report.result import ConversionResult, Row, TrainingRun

NON_FINITE = ("inf", "-inf", "nan")  # how to_dict writes a non-finite float in strict JSON


def _number(value):
    return float(value) if isinstance(value, str) and value in NON_FINITE else value


def _known(cls, data: dict) -> dict:
    """The keys `cls` has: a report.json by another qconvert version may hold more or fewer."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _scores(scores: dict | None) -> dict | None:
    return {k: _number(v) for k, v in scores.items()} if scores else scores


def _sensitivity(data: dict | None):
    if not data:
        return None
    from qconvert.quant.activation_ranges import ActivationHistogram
    from qconvert.quant.sensitivity import LayerSensitivity, Sensitivity

    layers = [LayerSensitivity(**{k: _number(v) for k, v in _known(LayerSensitivity, layer).items()})
              for layer in data.get("layers", [])]
    activations = [ActivationHistogram(**_known(ActivationHistogram, item)) for item in data.get("activations", [])]
    return Sensitivity(**{**_known(Sensitivity, data), "int8_sqnr_db": _number(data.get("int8_sqnr_db")),
                          "layers": layers, "activations": activations})


def _pruning(data: dict | None) -> PruneRun | None:
    if not data:
        return None
    steps = [PruneStep(**_known(PruneStep, step)) for step in data.get("steps", [])]
    return PruneRun(**{**_known(PruneRun, data), "steps": steps})


def result_from_dict(data: dict) -> ConversionResult:
    """Raises KeyError or TypeError where `data` is not a conversion's report."""
    from qconvert.report.int8_parity import ParityPair

    result = ConversionResult(**{k: v for k, v in _known(ConversionResult, data).items()
                                 if k not in ("rows", "int8_parity", "sensitivity", "training", "pruning", "bundles")})
    result.rows = [Row(**{k: _number(v) for k, v in _known(Row, row).items()}) for row in data["rows"]]
    result.int8_parity = [ParityPair(**{k: _number(v) for k, v in _known(ParityPair, pair).items()})
                          for pair in data.get("int8_parity") or []]
    result.sensitivity = _sensitivity(data.get("sensitivity"))
    result.training = [TrainingRun(**{**_known(TrainingRun, run), "before": _scores(run.get("before")),
                                      "after": _scores(run.get("after"))}) for run in data.get("training") or []]
    result.pruning = _pruning(data.get("pruning"))
    result.bundles = [bundles.from_dict(_known(bundles.BundleRecord, b)) for b in data.get("bundles") or []]
    return result
