"""Fine-tuning the float IR: the IR as a trainable torch program, a deterministic training loop, and the
trained weights written back into a copy of the IR.

Adam, not SGD with momentum: Adam's step is per parameter, invariant to its scale, so one default rate
serves weights whose scales differ by layer (folded BatchNorm scales each conv by gamma/sigma: 5x across
the tiny VGG's convs) and, for QAT, quantization scales orders of magnitude below the weights. Measured on
the tiny VGG (folded, 3 epochs of the digits, from 90.5% top-1): Adam 98.3% at 1e-4 and 3e-4, 95.5% at
1e-3; SGD momentum 0.9 98.1% at 1e-3, 97.5% at 1e-2, 10.6% at 3e-2. The default rate is low (1e-4)
because fine-tuning starts from a trained model.

Fine-tuning trains each Conv-BatchNorm-ReLU block under BatchNorm batch statistics and refolds it before
the write-back (qconvert/train/batchnorm.py; a pruned model's BatchNorms start at the unpruned model's
scale and shift). Measured on the reference VGG, 3 epochs at Adam 1e-4, top-1 of 359 samples: pruned
layer-wise to 80%, 98.61 against 95.54 trained folded (global 40%: 99.16 against 97.77); the unpruned tiny
VGG 99.16 against 98.33 (torch's own model with BatchNorm: 98.9 with batch statistics, 98.6 frozen).
finetune's batch_statistics=False (--finetune-folded) trains the folded IR as it is. QAT trains under
batch statistics too (quantization_aware's batch_statistics), each layer in its source's units
(batchnorm.py): on the Keras UNet that is what matches tfmot (bench/QAT.md).

Deterministic: torch seeded, deterministic kernels, and the data order drawn from a generator of its own
seed; two runs with the same options on the same machine give identical weights.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import onnx_ir as ir
import torch

from qconvert.errors import UsageError
from qconvert.ir import fold_factors
from qconvert.quant.calibrate import batch_size_of
from qconvert.quant.evaluate import run_first_output
from qconvert.report.accuracy import evaluate, infer_metric
from qconvert.train.batchnorm import estimate_statistics, fold, layers as batchnorm_layers
from qconvert.train.data import Feeds, TrainData
from qconvert.train.fake_quant import qat_program
from qconvert.train.losses import Loss, choose_loss
from qconvert.train.masks import HeldZeros, Masks
from qconvert.train.program import TrainableProgram, trainable_program
from qconvert.train.writeback import write_back, write_back_quantized

Progress = Callable[[int, int, int, float], None]  # (epoch from 1, batch from 1, batches per epoch, loss)


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 3
    lr: float = 1e-4
    batch: int = 32  # the IR's own batch where it is fixed
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N
    temperature: float = 4.0  # distillation of class scores (no labels)
    threads: int | None = None  # torch's CPU threads while training; None: torch's default

    def __post_init__(self):
        for flag, value, ok in (("--epochs", self.epochs, self.epochs >= 1), ("--lr", self.lr, self.lr > 0),
                                ("--train-batch", self.batch, self.batch >= 1),
                                ("--temperature", self.temperature, self.temperature > 0),
                                ("--threads", self.threads, self.threads is None or self.threads >= 1)):
            if not ok:
                raise UsageError(f"{flag} {value}: must be positive")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise UsageError(f"--device {self.device}: train on cpu or cuda")


@dataclass(frozen=True)
class EvalSet:
    feeds: Feeds
    labels: np.ndarray
    metric: str | None = None  # None: inferred from the float IR's outputs, as the report does


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 0: the model before training
    loss: float  # mean training loss over the epoch's batches (epoch 0: of the untrained model)
    metric: dict[str, float] | None = None  # on the eval set, when one is given
    seconds: float = 0.0  # the epoch's training steps (epoch 0: none)


@dataclass
class History:
    loss: str  # the loss's name
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None  # whose weights were kept (train's docstring says which)
    batchnorm_layers: int = 0  # layers trained under BatchNorm batch statistics (0: the folded IR as it is)


@contextmanager
def deterministic(options: TrainOptions) -> Iterator[None]:
    """Seeded torch with deterministic kernels (and the thread count asked for); the previous global
    settings are restored afterwards."""
    if options.device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode needs it
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.get_num_threads(), torch.utils.deterministic.fill_uninitialized_memory)
    # warn_only: a kernel with no deterministic form (CUDA's upsampling backward) warns rather than stops
    torch.use_deterministic_algorithms(True, warn_only=True)
    # the deterministic mode otherwise fills every new tensor with NaN before its kernel writes it, a share
    # of every training step; kernels write all they return, so the results are the same
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_num_threads(options.threads or previous[2])
    torch.manual_seed(options.seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous[2])
        torch.utils.deterministic.fill_uninitialized_memory = previous[3]


# glibc's mallopt parameters, and its defaults (mallopt(3))
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, DEFAULT_THRESHOLD = -1, -3, 128 * 1024
KEPT = 1 << 30  # blocks up to 1 GiB come from the heap and stay there between steps


@contextmanager
def kept_heap() -> Iterator[None]:
    """Freed activation buffers stay in the process's heap while training, for the next step to reuse.
    glibc maps each block over its mmap threshold afresh and faults in every page of it, a large share
    of a UNet QAT step's CPU time (bench/QAT.md). Afterwards the defaults return and the heap is
    trimmed. Without glibc's mallopt nothing changes."""
    try:
        libc = ctypes.CDLL(None)
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    mallopt(M_MMAP_THRESHOLD, KEPT)
    mallopt(M_TRIM_THRESHOLD, KEPT)
    try:
        yield
    finally:
        mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, DEFAULT_THRESHOLD)
        trim(0)


def _device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: torch sees no CUDA device here; train with --device cpu")
    return torch.device(name)


def _tensors(feeds: Feeds, index, device: torch.device) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(array[index])).to(device) for name, array in feeds.items()}


def predict(program: TrainableProgram, feeds: Feeds, batch: int, device: torch.device) -> np.ndarray:
    """The program's first output on `feeds`, without gradients."""
    program.module.train(False)
    count = len(next(iter(feeds.values())))
    with torch.no_grad():
        parts = [program(_tensors(feeds, slice(i, i + batch), device))[0].cpu().numpy()
                 for i in range(0, count, batch)]
    return np.concatenate(parts)


def _mean_loss(program: TrainableProgram, loss: Loss, feeds: Feeds, targets: np.ndarray, batch: int,
               device: torch.device) -> float:
    """The loss without training, as an epoch reports it: the mean of the batch losses, by sample."""
    outputs, total = predict(program, feeds, batch, device), 0.0
    with torch.no_grad():
        for i in range(0, len(targets), batch):
            part = slice(i, i + batch)
            total += float(loss(torch.from_numpy(outputs[part]), torch.from_numpy(targets[part]))) * len(outputs[part])
    return total / len(targets)


class _Scorer:
    """The eval metric of the program's weights, against the float IR's outputs as the reference."""

    def __init__(self, model: ir.Model, eval: EvalSet, batch: int, device: torch.device):
        self.eval, self.batch, self.device = eval, batch, device
        self.reference = run_first_output(model, eval.feeds)
        self.metric = eval.metric or infer_metric(self.reference, eval.labels)

    def __call__(self, program: TrainableProgram) -> dict[str, float]:
        output = predict(program, self.eval.feeds, self.batch, self.device)
        return evaluate(self.metric, output, self.eval.labels, self.reference)


def _epoch(program: TrainableProgram, loss: Loss, optimizer: torch.optim.Optimizer, data: TrainData,
           targets: np.ndarray, order: torch.Generator, batch: int, device: torch.device,
           report: Callable[[int, int, float], None] | None, held: HeldZeros | None = None) -> float:
    """One pass over the data in the order `order` draws; the mean of the batch losses, by sample.
    `held`: pruned weights put back to zero after every step."""
    program.module.train(True)
    total, steps = 0.0, torch.randperm(data.count, generator=order).split(batch)
    for step, index in enumerate(steps, start=1):
        index = index.numpy()
        output = program(_tensors(data.feeds, index, device))[0]
        value = loss(output, torch.from_numpy(targets[index]).to(device))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        program.constrain()
        if held is not None:
            held.apply()
        total += float(value.detach()) * len(index)
        if report is not None:
            report(step, len(steps), float(value.detach()))
    return total / data.count


def train(program: TrainableProgram, model: ir.Model, data: TrainData, options: TrainOptions = TrainOptions(),
          eval: EvalSet | None = None, progress: Progress | None = None, teacher: ir.Model | None = None,
          masks: Masks | None = None, never_worse: bool = False) -> History:
    """Trains `program`, built from `model`, in place on `data`. Without labels the target is `teacher`'s
    output (default: `model`'s own; the unpruned float IR, the float IR of a QDQ IR), which is also the
    reference of an eval metric that needs one. With `eval`, the program ends with the weights of the
    epoch with the best metric (epoch 0, the model as given, included). Without it, the last epoch's, or
    with `never_worse` the epoch whose loss on the training data, measured after it as epoch 0's is, is
    lowest (epoch 0 included): the weights it was given unless training improved on them by its own
    objective. `masks` (qconvert.train.masks, by initializer name): pruned weights that stay exactly zero."""
    device = _device(options.device)
    batch = batch_size_of(model, options.batch)
    targets = data.labels if data.labels is not None else run_first_output(teacher or model, data.feeds)
    loss = choose_loss(model, data.task, None if data.labels is not None else targets, options.temperature)
    scorer = _Scorer(teacher or model, eval, batch, device) if eval is not None else None
    history, best = History(loss.name), None
    with deterministic(options), kept_heap():
        program.module.to(device)
        held = HeldZeros(program, masks) if masks else None
        optimizer = torch.optim.Adam(program.parameter_groups(options.lr))
        order = torch.Generator().manual_seed(options.seed)
        for epoch in range(options.epochs + 1):
            began = time.perf_counter()
            if epoch == 0:
                epoch_loss, seconds = _mean_loss(program, loss, data.feeds, targets, batch, device), 0.0
            else:
                epoch_loss = _epoch(program, loss, optimizer, data, targets, order, batch, device,
                                    partial(progress, epoch) if progress is not None else None, held)
                seconds = time.perf_counter() - began
            metric = scorer(program) if scorer is not None else None
            history.epochs.append(EpochRecord(epoch, epoch_loss, metric, seconds))
            score = next(iter(metric.values())) if metric else None
            if scorer is None and never_worse:
                score = -(epoch_loss if epoch == 0 else _mean_loss(program, loss, data.feeds, targets, batch, device))
            if score is not None and (best is None or score > best[0]):
                best, history.best_epoch = (score, _snapshot(program)), epoch
        if best is not None:
            program.module.load_state_dict(best[1])
        else:
            history.best_epoch = options.epochs
        if held is not None:
            held.remove()
    return history


def _snapshot(program: TrainableProgram) -> dict[str, torch.Tensor]:
    """Parameters and buffers (a BatchNorm's running statistics belong to its epoch's weights)."""
    return {name: t.detach().clone() for name, t in program.module.state_dict().items()}


def finetune(model: ir.Model, data: TrainData, options: TrainOptions = TrainOptions(), eval: EvalSet | None = None,
             progress: Progress | None = None, teacher: ir.Model | None = None, masks: Masks | None = None,
             batch_statistics: bool = True) -> tuple[ir.Model, History]:
    """The float IR trained on `data` (see `train`), written back into a copy of it. `batch_statistics`:
    Conv-rectifier layers train under BatchNorm batch statistics, refolded before the write-back
    (qconvert/train/batchnorm.py; off: BatchNorm stays folded, see the module docstring)."""
    program = trainable_program(model, batch_statistics)
    # the unpruned model's γ and β start a pruned one's BatchNorms; folded training has none to start
    before = trainable_program(teacher, True) if batch_statistics and teacher is not None and teacher is not model \
        else None
    estimate_statistics(program, data.feeds, batch_size_of(model, options.batch), before)
    history = train(program, model, data, options, eval, progress, teacher, masks)
    history.batchnorm_layers = len(batchnorm_layers(program.module))
    folded = fold(program)
    trained = write_back(model, program)
    for attr, factor in folded.items():  # the refold scaled these weights: pruning divides it out again
        fold_factors.refolded(trained.graph, program.parameters[attr], factor)
    return trained, history


def quantization_aware(model: ir.Model, data: TrainData, options: TrainOptions = TrainOptions(),
                       eval: EvalSet | None = None, progress: Progress | None = None, teacher: ir.Model | None = None,
                       float_model: ir.Model | None = None, masks: Masks | None = None,
                       batch_statistics: bool = True) -> tuple[ir.Model, History]:
    """The QDQ IR trained with LSQ fake-quants (qconvert/train/fake_quant.py) and written back as a QDQ IR:
    trained integer weights, scales and int32 biases. `teacher`: the float IR whose outputs a label-free
    run distils; `float_model`: the prepared float IR the QDQ IR was quantized from, whose float weights
    the training starts from; `masks`: the float IR's pruned weights, held at zero in their shadows;
    `batch_statistics`: Conv-rectifier layers train under BatchNorm batch statistics, refolded afterwards
    (qconvert/train/batchnorm.py; off: the QDQ IR's folded layers train as they are)."""
    program = qat_program(model, float_model, batch_statistics)
    estimate_statistics(program, data.feeds, batch_size_of(model, options.batch))
    # never_worse: the PTQ IR it starts from is the baseline a user compares QAT with
    history = train(program, model, data, options, eval, progress, teacher, masks, never_worse=True)
    history.batchnorm_layers = len(batchnorm_layers(program.module))
    fold(program)
    return write_back_quantized(model, program), history
