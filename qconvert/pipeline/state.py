"""What the stages of one conversion share: what was asked, then what each stage has made so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx_ir as ir

from qconvert.backends.measure import Measurement, RunSettings
from qconvert.backends.targets import IRVariant, Target
from qconvert.converters.source import Source
from qconvert.pipeline.data import Data
from qconvert.pipeline.options import ConvertOptions
from qconvert.report.pruning import PruneRun
from qconvert.report.result import ConversionResult, TrainingRun

Progress = Callable[[str, str], None]  # (stage, target name)


@dataclass
class ConversionState:
    model: str  # as the user gave it
    targets: list[Target]
    uncalibrated: set[str]  # static int8 targets that `all` brought in without --calib: skipped rows
    out: Path
    options: ConvertOptions
    settings: RunSettings  # how every runtime is run, the thread count resolved
    notify: Progress
    source: Source | None = None  # load
    variants: dict[IRVariant, ir.Model] = field(default_factory=dict)  # the IR each target may consume
    failed_variants: dict[IRVariant, str] = field(default_factory=dict)  # why a stage could not make one
    load_s: float | None = None
    data: Data | None = None
    result: ConversionResult | None = None  # the report, started once the inputs are known good
    reference: Measurement | None = None  # the source in its own framework
    int8_outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)  # static int8 parity outputs
    io_scales: list[float | None] = field(default_factory=list)  # an integer artifact's output scales
    training: list[TrainingRun] = field(default_factory=list)  # the report's, from before it is started
    # Outputs on the parity samples of a variant that training made a function of its own (QAT's QDQ IR,
    # in onnxruntime): its artifacts' parity floor is checked against them.
    trained_outputs: dict[IRVariant, list[np.ndarray]] = field(default_factory=dict)
    pruning: PruneRun | None = None  # the report's, from before it is started
    unpruned: ir.Model | None = None  # the float IR before pruning: the teacher of label-free fine-tuning
    masks: dict[str, np.ndarray] | None = None  # unstructured pruning: the weights that stay zero in training
