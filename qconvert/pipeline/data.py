"""The data stage: what every runtime is fed, read and checked against the IR's inputs before any
calibration or artifact, so that bad data fails first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx_ir as ir

from qconvert.backends.targets import IRVariant
from qconvert.ir.inputs import random_feeds, specs_from_ir
from qconvert.pipeline.options import CalibrationOptions, EvalOptions
from qconvert.quant.calibrate import batch_size_of
from qconvert.quant.data import load_calibration, load_eval
from qconvert.train.data import TrainData, load_train

if TYPE_CHECKING:  # the state holds a Data
    from qconvert.pipeline.state import ConversionState

Feeds = dict[str, np.ndarray]


@dataclass
class Data:
    """Parity samples, a timing batch, and the calibration and evaluation sets."""

    feeds: Feeds
    parity_data: str  # eval | calib | random
    timing_feeds: Feeds
    calib_feeds: Feeds | None
    eval_feeds: Feeds | None
    labels: np.ndarray | None
    eval_batch: int
    train: TrainData | None = None  # --train, checked against the float IR


def load_datasets(graph: ir.Model, calibration: CalibrationOptions, evaluation: EvalOptions, *, trust_code: bool,
                  seed: int) -> tuple[Feeds | None, Feeds | None, np.ndarray | None]:
    """The calibration feeds, and the evaluation feeds and labels, each None where not given."""
    specs = specs_from_ir(graph)
    calib_feeds = load_calibration(calibration.calib, specs, samples=calibration.calib_samples,
                                   trust_code=trust_code, image=calibration.calib_image,
                                   seed=seed) if calibration.calib else None
    eval_feeds, labels = load_eval(evaluation.eval_path, specs) if evaluation.eval_path else (None, None)
    return calib_feeds, eval_feeds, labels


def load_data(state: ConversionState) -> None:
    graph, options = state.variants[IRVariant.FLOAT], state.options
    calib_feeds, eval_feeds, labels = load_datasets(graph, options.calibration, options.evaluation,
                                                    trust_code=options.source.trust_code, seed=options.seed)
    specs, samples, seed = specs_from_ir(graph), options.measure.parity_samples, options.seed
    # Parity on real data where there is some: int8 ranges fit real inputs, not random ones.
    feeds, parity_data = random_feeds(specs, samples, seed), "random"
    real_calib = calib_feeds if options.calibration.calib != "random" else None
    for name, real in (("eval", eval_feeds), ("calib", real_calib)):
        if real:
            feeds, parity_data = {k: v[:samples] for k, v in real.items()}, name
            break
    train = load_train(options.training.train_path, graph) if options.training.train_path else None
    state.data = Data(feeds, parity_data, random_feeds(specs, options.measure.batch, seed + 1), calib_feeds,
                      eval_feeds, labels, batch_size_of(graph), train)
