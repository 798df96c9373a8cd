"""What the user chose, in frozen groups: the CLI's option groups build them (qconvert.cli), the keyword API
builds them from its arguments (qconvert.api), and the stages read them. A new flag is a field here and a
click.option in its group."""

from __future__ import annotations

from dataclasses import dataclass

from qconvert.backends.targets import EmitOptions
from qconvert.errors import UsageError
from qconvert.passes.prune_magnitude import Magnitudes
from qconvert.prune.method import PruneKind, PruneMethod
from qconvert.quant.config import QuantConfig
from qconvert.quant.data import ImageOptions


@dataclass(frozen=True)
class SourceOptions:
    """How the model file is read."""

    input_shapes: tuple[str, ...] = ()  # [NAME=]D,D,..[:DTYPE] where the file does not record a shape
    weights: str | None = None  # state_dict for a file.py:factory source
    trust_code: bool = False  # allow importing and running the model's (and the data's) own Python code


@dataclass(frozen=True)
class MeasureOptions:
    """How the source and every artifact are run and timed."""

    device: str = "cpu"  # cpu | cuda
    threads: int | None = None  # for every runtime; None: the physical cores
    batch: int = 1  # the timing batch
    parity_samples: int = 16  # samples compared with the source
    runs: int = 20  # timed runs
    warmup: int = 3


@dataclass(frozen=True)
class CalibrationOptions:
    """The calibration set of static int8 targets (qconvert.quant.data)."""

    calib: str | None = None  # .npz, .npy, a folder of images, file.py:function, or "random"
    calib_samples: int | None = 256  # the first N; None: all
    calib_image: ImageOptions = ImageOptions()  # how a folder of images is scaled and normalised


@dataclass(frozen=True)
class EvalOptions:
    """The evaluation set that adds a task metric to every row."""

    eval_path: str | None = None  # .npz: the inputs plus `labels`
    metric: str | None = None  # top1 | dice | cosine; None: inferred from the source's outputs and labels


@dataclass(frozen=True)
class MixedPrecisionOptions:
    """Layers left float in the static int8 IR."""

    # Keep the most sensitive layers float until the static int8 metric is within this of the float
    # model's (needs an evaluation set).
    max_drop: float | None = None


@dataclass(frozen=True)
class TrainingOptions:
    """Training on the IR (qconvert.train): fine-tuning the float IR first, QAT of the QDQ IR after
    calibration. Without labels, both distil the float IR's outputs."""

    train_path: str | None = None  # .npz: the inputs keyed by input name, plus optional `labels`
    finetune: bool = False
    qat: bool = False
    epochs: int = 3
    lr: float = 1e-4  # Adam's, for fine-tuning and QAT alike (see below)
    train_batch: int = 32  # the IR's own batch where it is fixed
    temperature: float = 4.0  # distillation of class scores
    # --finetune: each Conv-BatchNorm-rectifier block trains under batch statistics and is refolded after
    # (qconvert/train/batchnorm.py); False: BatchNorm stays folded into the conv, as the IR holds it
    finetune_batch_statistics: bool = True

    @property
    def trains(self) -> bool:
        return self.finetune or self.qat

    # One rate: fine-tuning starts from trained weights, and QAT from weight scales already at each layer's
    # least output error (qconvert/train/weight_scales.py), so both take small steps. On both per-tensor
    # dwnet builds QAT's training loss fell from the first epoch at 1e-4 and rose for two epochs at 1e-3.


@dataclass(frozen=True)
class PruneOptions:
    """Pruning the float IR before fine-tuning and quantization (qconvert.prune). Unstructured methods zero
    weights (kept zero through training and int8); `channel` removes filters and shrinks the graph."""

    sparsity: float | None = None  # the share of weights (channel: of each group's channels) removed; None: off
    method: PruneMethod = PruneMethod(PruneKind.GLOBAL)
    steps: int = 1  # > 1: iterative, on the cubic schedule, fine-tuned (--finetune) between steps
    depthwise: bool = False  # unstructured: prune depthwise Conv weights too
    keep_first_last: bool = False  # unstructured: leave the first and last prunable layers dense
    importance: str = "l1"  # channel: l1 | l2 | bn (filter norm or BatchNorm gamma)
    multiple_of: int = 8  # channel: kept channels rounded up to a multiple of this
    magnitudes: Magnitudes = Magnitudes.FOLDED  # layer, global: what the threshold compares

    def __post_init__(self):
        if not isinstance(self.magnitudes, Magnitudes):  # the CLI's and the API's text
            choices = " or ".join(m.value for m in Magnitudes)
            if self.magnitudes not in [m.value for m in Magnitudes]:
                raise UsageError(f"--prune-magnitudes {self.magnitudes}: choose {choices}")
            object.__setattr__(self, "magnitudes", Magnitudes(self.magnitudes))
        if self.steps < 1:
            raise UsageError(f"--prune-steps {self.steps}: must be 1 or more")
        if self.importance not in ("l1", "l2", "bn"):
            raise UsageError(f"--prune-importance {self.importance}: choose l1, l2 or bn")
        if self.multiple_of < 1:
            raise UsageError(f"--prune-multiple-of {self.multiple_of}: must be 1 or more")
        if self.sparsity is None:  # prune-sweep's options: each point sets its sparsity and method
            return
        fixed, kind = self.method.fixed_sparsity, self.method.kind
        if not 0 <= self.sparsity < 1:
            raise UsageError(f"--prune {self.sparsity:g}: give the share removed, from 0 up to (not including) 1")
        if fixed is not None and abs(self.sparsity - fixed) > 1e-9:
            raise UsageError(f"--prune {self.sparsity:g} with --prune-method {self.method.name}: an N:M pattern "
                             f"removes {fixed:g} of the weights; pass --prune {fixed:g}")
        if self.steps > 1 and kind in (PruneKind.N_M,):
            raise UsageError(f"--prune-steps {self.steps}: an N:M pattern is reached in one step; drop --prune-steps")

    @property
    def prunes(self) -> bool:
        return self.sparsity is not None and self.sparsity > 0


@dataclass(frozen=True)
class RoundingOptions:
    """Label-free refinements of PTQ on the calibration set, in this order: weight scales at each layer's
    least output error (their integer weights and int32 biases requantized), integer weights (AdaRound, scales
    kept), float biases (bias correction, scales kept)."""

    weight_scales: bool = False
    adaround: bool = False
    bias_correction: bool = False

    @property
    def any(self) -> bool:
        return self.weight_scales or self.adaround or self.bias_correction


@dataclass(frozen=True)
class BundleOptions:
    """--bundle: deployment bundles (qconvert.bundle) written after the report."""

    enabled: bool = False
    targets: tuple[str, ...] = ()  # the targets bundled; empty: every target that wrote an artifact
    micro: bool = False  # TFLite targets: also the TFLite Micro C array, op resolver and measured arena


@dataclass(frozen=True)
class ConvertOptions:
    """Everything a conversion reads besides the model, the targets and the output folder."""

    source: SourceOptions = SourceOptions()
    measure: MeasureOptions = MeasureOptions()
    calibration: CalibrationOptions = CalibrationOptions()
    evaluation: EvalOptions = EvalOptions()
    quant: QuantConfig = QuantConfig()
    mixed: MixedPrecisionOptions = MixedPrecisionOptions()
    pruning: PruneOptions = PruneOptions()
    training: TrainingOptions = TrainingOptions()
    rounding: RoundingOptions = RoundingOptions()
    emit: EmitOptions = EmitOptions()  # its `quant` is ignored: the emit stage sets it from `quant`
    bundle: BundleOptions = BundleOptions()
    seed: int = 0  # random parity and timing feeds, random calibration data and its sampling, training
