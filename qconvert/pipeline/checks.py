"""Everything that can be checked before the model is loaded, so that a bad option fails at once."""

from __future__ import annotations

import os
from pathlib import Path

from qconvert.backends.targets import IRVariant, Quantization, Target, resolve_targets
from qconvert.errors import UsageError
from qconvert.pipeline.bundle import check_bundle
from qconvert.pipeline.options import ConvertOptions
from qconvert.quant.data import check_data_path


def check_conversion(names: list[str], options: ConvertOptions, out: Path) -> tuple[list[Target], set[str]]:
    """The targets asked for, and the static int8 ones that `all` brought in without --calib: those become
    skipped rows, not an error (a named one is)."""
    targets = resolve_targets(names)
    calib = options.calibration.calib
    uncalibrated = {t.name for t in targets if t.consumes is IRVariant.QDQ and calib is None and t.name not in names}
    if options.measure.device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {options.measure.device!r}; use cpu or cuda")
    check_writable(out)
    _check_engine(options.emit.torch_engine, targets)
    _check_quantization_options([t for t in targets if t.name not in uncalibrated], options)
    _check_training_options([t for t in targets if t.name not in uncalibrated], options)
    check_bundle([t.name for t in targets], options)
    _check_pruning_options(options)
    return targets, uncalibrated


def check_writable(out_dir: Path) -> None:
    """Fail before any work if the output folder cannot be made or written."""
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write to output folder {out_dir}: {existing} is a file; choose another -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to output folder {out_dir}: {existing} is not writable; choose another -o")


def _check_quantization_options(targets: list[Target], options: ConvertOptions) -> None:
    """What static int8 needs."""
    calib, eval_path = options.calibration.calib, options.evaluation.eval_path
    static = [t.name for t in targets if t.consumes is IRVariant.QDQ]
    if static and calib is None:
        raise UsageError(
            f"{', '.join(static)} needs calibration data: pass --calib with real input samples (.npz keyed "
            f"by input name, .npy, a folder of images, or file.py:function with --trust-code); "
            f"--calib random only for a smoke test")
    if calib is not None:
        check_data_path(calib, trust_code=options.source.trust_code)
    if eval_path is not None:
        check_data_path(eval_path, trust_code=False, flag="--eval")
    if options.mixed.max_drop is not None and not (static and eval_path):
        raise UsageError("--max-drop needs a static int8 target (e.g. --to onnx-qdq) and --eval data to measure "
                         "the drop on")


def _check_engine(engine: str | None, targets: list[Target]) -> None:
    if engine is None:
        return
    if not any(t.runtime == "torch" and t.quantization is not Quantization.NONE for t in targets):
        raise UsageError(f"--engine {engine} applies to torch-int8 and torch-dynamic; none was asked for")
    import torch

    supported = torch.backends.quantized.supported_engines
    if engine not in supported:
        raise UsageError(f"--engine {engine}: this torch build has {', '.join(supported)}")


def _check_training_options(targets: list[Target], options: ConvertOptions) -> None:
    """What training and the PTQ refinements need: data, and a variant to change."""
    training, rounding = options.training, options.rounding
    static = any(t.consumes is IRVariant.QDQ for t in targets)
    for flag, asked in (("--qat", training.qat), ("--search-weight-scales", rounding.weight_scales),
                        ("--adaround", rounding.adaround),
                        ("--bias-correction", rounding.bias_correction)):
        if asked and not static:
            raise UsageError(f"{flag} changes the static int8 IR; ask for a static int8 target too "
                             f"(e.g. --to onnx-qdq,tflite-int8) and pass --calib")
    if training.finetune and training.train_path is None:
        raise UsageError("--finetune needs training data: pass --train with an .npz of inputs keyed by input "
                         "name (with 'labels' to train on them, without to distil the source's outputs)")
    if training.train_path is not None:
        if not training.trains:
            raise UsageError("--train is read by --finetune and --qat; add one of them")
        check_data_path(training.train_path, trust_code=False, flag="--train")


def _check_pruning_options(options: ConvertOptions) -> None:
    pruning = options.pruning
    if not pruning.prunes:
        return
    if pruning.steps > 1 and not options.training.finetune:
        raise UsageError(f"--prune-steps {pruning.steps} fine-tunes between steps: add --finetune and --train "
                         f"(or pass --prune-steps 1 for one-shot pruning)")
    structured = pruning.method.kind.structured
    for flag, asked in (("--prune-depthwise", pruning.depthwise), ("--prune-keep-first-last", pruning.keep_first_last)):
        if asked and structured:
            raise UsageError(f"{flag} applies to unstructured pruning (layer, global, N:M), not to "
                             f"--prune-method {pruning.method.name}")
