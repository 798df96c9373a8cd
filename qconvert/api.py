"""The Python API: `convert(path, to=[...])` does what `qconvert MODEL --to ...` does.

The keyword arguments build the option groups of qconvert.pipeline.options (their defaults are the groups'),
and qconvert.pipeline runs the stages on them, as it does for the CLI.
"""

from __future__ import annotations

from pathlib import Path

from qconvert.backends.targets import EmitOptions
from qconvert.pipeline import convert as pipeline_convert
from qconvert.pipeline import sensitivity as pipeline_sensitivity
from qconvert.pipeline.options import (BundleOptions, CalibrationOptions, ConvertOptions, EvalOptions,
                                       MeasureOptions, MixedPrecisionOptions, PruneOptions, RoundingOptions,
                                       SourceOptions, TrainingOptions)
from qconvert.prune.method import parse_method
from qconvert.pipeline.state import Progress
from qconvert.quant.config import QuantConfig
from qconvert.quant.data import ImageOptions
from qconvert.report.result import ConversionResult


def convert(
    model: str | Path,
    to: list[str] | str,
    *,
    out_dir: str | Path = "qconvert-out",
    input_shapes: list[str] | tuple[str, ...] = SourceOptions.input_shapes,
    weights: str | None = SourceOptions.weights,
    trust_code: bool = SourceOptions.trust_code,
    device: str = MeasureOptions.device,
    io_layout: str | None = EmitOptions.io_layout,
    threads: int | None = MeasureOptions.threads,
    batch: int = MeasureOptions.batch,
    parity_samples: int = MeasureOptions.parity_samples,
    runs: int = MeasureOptions.runs,
    warmup: int = MeasureOptions.warmup,
    seed: int = ConvertOptions.seed,
    progress: Progress | None = None,
    calib: str | None = CalibrationOptions.calib,
    calib_samples: int | None = CalibrationOptions.calib_samples,
    calib_image: ImageOptions = CalibrationOptions.calib_image,
    quant: QuantConfig = ConvertOptions.quant,
    eval_path: str | None = EvalOptions.eval_path,
    metric: str | None = EvalOptions.metric,
    max_drop: float | None = MixedPrecisionOptions.max_drop,
    engine: str | None = EmitOptions.torch_engine,
    prune: float | None = PruneOptions.sparsity,
    prune_method: str = PruneOptions.method.name,
    prune_steps: int = PruneOptions.steps,
    prune_depthwise: bool = PruneOptions.depthwise,
    prune_keep_first_last: bool = PruneOptions.keep_first_last,
    prune_importance: str = PruneOptions.importance,
    prune_multiple_of: int = PruneOptions.multiple_of,
    prune_magnitudes: str = PruneOptions.magnitudes.value,
    train: str | None = TrainingOptions.train_path,
    finetune: bool = TrainingOptions.finetune,
    qat: bool = TrainingOptions.qat,
    epochs: int = TrainingOptions.epochs,
    lr: float = TrainingOptions.lr,
    train_batch: int = TrainingOptions.train_batch,
    temperature: float = TrainingOptions.temperature,
    finetune_batch_statistics: bool = TrainingOptions.finetune_batch_statistics,
    search_weight_scales: bool = RoundingOptions.weight_scales,
    adaround: bool = RoundingOptions.adaround,
    bias_correction: bool = RoundingOptions.bias_correction,
    bundle: bool | str | list[str] = BundleOptions.enabled,
    micro: bool = BundleOptions.micro,
) -> ConversionResult:
    """`calib`: calibration data for static int8 targets (qconvert.quant.data); `eval_path`: an .npz of
    inputs and labels that adds a task metric per row; `max_drop`: keep the most sensitive layers float
    until the static int8 metric is within this of the float model's (needs `eval_path`); `engine`: the
    PyTorch int8 engine (x86, qnnpack for ARM...) torch-int8/torch-dynamic weights are packed for;
    `train`: an .npz of inputs (and optional labels) that `finetune` (the float model, first) and `qat` (the
    static int8 model, after calibration) train on; `finetune_batch_statistics`: fine-tuning trains each
    Conv-BatchNorm-ReLU block's BatchNorm on batch statistics (False: folded into the conv);
    `search_weight_scales`, `adaround`, `bias_correction`: label-free PTQ refinements on the calibration set; `prune`: the share of weights
    pruned from the float model first (`prune_method` layer, global, channel or N:M; `prune_steps` > 1
    fine-tunes between steps); `bundle`:
    deployment bundles in OUT/bundle-<target>/ (qconvert.bundle), True for every target that passed or the
    targets named; `micro`: with `bundle`, TFLite bundles also get the TFLite Micro sources and measured arena."""
    options = ConvertOptions(
        source=SourceOptions(tuple(input_shapes), weights, trust_code),
        measure=MeasureOptions(device, threads, batch, parity_samples, runs, warmup),
        calibration=CalibrationOptions(calib, calib_samples, calib_image),
        evaluation=EvalOptions(eval_path, metric),
        quant=quant,
        mixed=MixedPrecisionOptions(max_drop),
        pruning=PruneOptions(prune, parse_method(prune_method), prune_steps, prune_depthwise, prune_keep_first_last,
                             prune_importance, prune_multiple_of, prune_magnitudes),
        training=TrainingOptions(train, finetune, qat, epochs, lr, train_batch, temperature,
                                 finetune_batch_statistics),
        rounding=RoundingOptions(search_weight_scales, adaround, bias_correction),
        emit=EmitOptions(io_layout=io_layout, torch_engine=engine),
        bundle=_bundle_options(bundle, micro),
        seed=seed,
    )
    names = to.split(",") if isinstance(to, str) else list(to)
    return pipeline_convert.convert(str(model), names, options, out_dir=out_dir, progress=progress)


def _bundle_options(bundle: bool | str | list[str], micro: bool) -> BundleOptions:
    """As the CLI's --bundle [TARGETS] --micro: False, True (every target that passed), or the targets."""
    from qconvert.errors import UsageError

    if bundle is False or bundle is None:
        if micro:
            raise UsageError("micro=True is read by bundle; add bundle=True")
        return BundleOptions()
    names = () if bundle is True else tuple(t.strip() for t in (bundle.split(",") if isinstance(bundle, str)
                                                                else bundle) if t.strip())
    return BundleOptions(True, names, micro)


def sensitivity(
    model: str | Path,
    *,
    calib: str,
    out_dir: str | Path = "qconvert-out",
    input_shapes: list[str] | tuple[str, ...] = SourceOptions.input_shapes,
    weights: str | None = SourceOptions.weights,
    trust_code: bool = SourceOptions.trust_code,
    threads: int | None = None,
    calib_samples: int | None = CalibrationOptions.calib_samples,
    calib_image: ImageOptions = CalibrationOptions.calib_image,
    quant: QuantConfig = ConvertOptions.quant,
    eval_path: str | None = EvalOptions.eval_path,
    metric: str | None = EvalOptions.metric,
    seed: int = ConvertOptions.seed,
):
    """`qconvert sensitivity`: each static int8 layer's cost (qconvert.quant.sensitivity), written to
    OUT/sensitivity.json. Scored on the --eval set where given, else on the calibration data (SQNR only)."""
    return pipeline_sensitivity.sensitivity(
        str(model), SourceOptions(tuple(input_shapes), weights, trust_code),
        CalibrationOptions(calib, calib_samples, calib_image), EvalOptions(eval_path, metric), quant,
        out_dir=out_dir, threads=threads, seed=seed)
